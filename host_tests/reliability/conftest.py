"""System fixtures for the reliability suite: the same `terminal`, `card_reader`, `acquirer` as host_tests/system.

host_tests/system/conftest.py is loaded once more under its own module name
(conftest modules all share the name `conftest`), and its fixtures are
re-exported here, so the reliability tests drive the real firmware through
the same ptys and simulators as the system tests, on the emulator or (with
--port) on a real terminal.
"""
import importlib.util
import os
import sys

_NAME = "payterm_system_fixtures"
if _NAME not in sys.modules:
    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "system", "conftest.py")
    _spec = importlib.util.spec_from_file_location(_NAME, _path)
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _mod
    _spec.loader.exec_module(_mod)

from payterm_system_fixtures import (  # noqa: E402,F401
    FAST, acquirer, acquirer2, card_reader, cards, panel, sale, start_sale, terminal, terminal_config, terminal_panel)

"""Regression tests for what the fuzzing found: the smallest input that showed each bug.

Each runs in MicroPython without the fuzzer. A crash the fuzzer finds and
nobody has fixed yet goes into fuzzing.KNOWN with an xfail test here; once it
is fixed, the mark and the entry go (the fuzz run then fails on any return).
"""
import pytest

import mpy_runtimes

CONSOLE = r'''
import asyncio
from payterm.diag import Diag
from payterm.diag.console import Console
from payterm.diag.pin import PinGate
from payterm.diag.selftest import SelfTests
import mpt

d = mpt.tmpdir("known")
diag = Diag(d, lambda: 1795435200, lambda: 0)
con = Console(diag, SelfTests(diag), PinGate(d + "/pin.json", "4321", lambda: 1795435200), lambda: 1795435200)
try:
    out = asyncio.run(con.handle("x" * 300))
    print("ANSWER", out[-1])
except Exception as e:
    print("RAISED", repr(e))
'''


@pytest.mark.reliability("fuzz")
def test_console_over_long_command_word_is_a_usage_error(tmp_path):
    script = tmp_path / "known_console.py"
    script.write_text(CONSOLE)
    r = mpy_runtimes.run("unix", [str(script)], tmp=tmp_path, timeout=60)
    assert "ANSWER ERR USAGE" in r.stdout, r.stdout

"""Ownership rules of the firmware's source, read with `ast` (the firmware itself runs in MicroPython):
only `payterm/hal/` imports the hardware modules, and only `payterm/flash.py` (and the host HAL's own
logs) opens a file for writing, so every flash change is one the power-cut suite can cut."""
import ast
import os

import mpy_runtimes

PAYTERM = os.path.join(mpy_runtimes.FIRMWARE, "payterm")
HARDWARE = {"machine", "network", "esp32", "esp", "bluetooth"}


def _modules():
    """(path relative to firmware/, tree) of every module the terminal runs: payterm/, main.py, recqueue.py."""
    paths = [os.path.join(mpy_runtimes.FIRMWARE, n) for n in ("main.py", "recqueue.py")]
    for root, _, names in os.walk(PAYTERM):
        paths += [os.path.join(root, n) for n in sorted(names) if n.endswith(".py")]
    for p in paths:
        with open(p) as f:
            yield os.path.relpath(p, mpy_runtimes.FIRMWARE), ast.parse(f.read(), p)


def _in_hal(rel):
    return rel.startswith(os.path.join("payterm", "hal") + os.sep)


def test_only_the_hal_imports_hardware_modules():
    bad = []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module.split(".")[0]]
            bad += ["%s:%d %s" % (rel, node.lineno, n) for n in names if n in HARDWARE and not _in_hal(rel)]
    assert not bad, "hardware modules imported outside payterm/hal: %s" % bad


def _write_mode(call):
    """The mode of an open(...) call when it may write (a constant with w, a, + or x), else None."""
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return None
    if not isinstance(mode, ast.Constant) or not isinstance(mode.value, str):
        return "?"  # a computed mode: counted as a write
    return mode.value if set(mode.value) & set("wax+") else None


def test_only_payterm_flash_writes_files():
    found, bad = 0, []
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                m = _write_mode(node)
                if m is None:
                    continue
                found += 1
                if rel != os.path.join("payterm", "flash.py") and not _in_hal(rel):
                    bad.append("%s:%d open(..., %r)" % (rel, node.lineno, m))
    assert found >= 2, "the scan found none of flash.py's own writes: it looks at the wrong thing"
    assert not bad, "files written outside payterm.flash (the power-cut hook cannot cut them): %s" % bad

"""Fuzz the keypad and the technician console inside MicroPython (mp_fuzz.py).

keypad: bytes on the panel UART through the real Panel reader task into the
real cashier flows (Cashier: amount entry and its confirmation, function
menu, refund / void / training behind the real merchant PIN gate (1234),
status, reprint, cardholder PIN entry, technician menu with the real PIN
gate), with the engine, the worker and the card readers stubbed, the terminal's
default parameters, and the UI's clock moved on by every key wait the panel
cuts short (time compressed); console: lines (mutated real commands, invalid UTF-8,
control bytes, over-long lines) into `payterm.diag.console.Console.handle`
with the real Diag and PIN gate on scratch files. 2,000 inputs in
`make test`, 20,000 in `make reliability`.
"""
import pytest

from reliability import fuzzing

SIZES = {"keypad": (1000, 10000), "console": (1000, 10000)}
REACH = {"keypad": {"OPR-01", "txn_approved", "techmenu"}, "console": {"OK", "ERR USAGE"}}


@pytest.mark.reliability("fuzz")
@pytest.mark.parametrize("target", sorted(SIZES))
def test_fuzz_keypad_and_console(rel, tmp_path, target):
    n = rel.size(*SIZES[target])
    total = fuzzing.fuzz(rel, target, n, tmp_path)
    assert total["inputs"] == n
    missing = REACH[target] - set(total["outcomes"])
    assert not missing, "%s never reached %s: %r" % (target, sorted(missing), total["outcomes"])

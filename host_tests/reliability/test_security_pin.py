"""Technician PIN lockout survives power cuts (emulator: SIGKILL, then boot from the same flash).

Three wrong PINs on the console lock the technician out (OPR-03) for the
lockout time; after a power cut the terminal is still locked, even for the
right PIN and on its own keypad (the technician menu), and the remaining
time keeps running from the same deadline instead of starting again. In
`make reliability` the test also waits the lockout out (with a second power
cut on the way) and then the right PIN is accepted.
"""
import os
import re
import sys
import time

import pytest

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "firmware")

PIN = "4321"
LOCK_S = 300  # payterm.diag.pin: lockout time

pytestmark = [pytest.mark.emulator_only, pytest.mark.reliability("security"),
              pytest.mark.timeout(LOCK_S + 300)]  # the full size waits the lockout out
LOCKED_RE = re.compile(r"OPR-03 .*\[locked (\d+)s\]")


def display(code):
    """Panel text of a catalog code (payterm.codes is plain Python), so rewording it breaks nothing here."""
    if _FIRMWARE not in sys.path:
        sys.path.append(_FIRMWARE)
    from payterm import codes

    return codes.lookup(code)[codes.DISPLAY].strip()


def _pin(terminal, pin):
    return terminal.console.command("pin " + pin)[-1]


def _left(terminal):
    """Seconds of lockout left, from the newest OPR-03 entry of the fault log (as a technician reads it)."""
    for line in terminal.console.command("faults 10"):
        m = LOCKED_RE.search(line)
        if m:
            return int(m.group(1))
    raise AssertionError("no OPR-03 entry with its lockout time in the fault log")


def _power_cut(terminal):
    terminal.kill()
    terminal.start()
    terminal.panel.wait_screen("READY", 10)


def test_pin_lockout_survives_power_cuts(rel, terminal):
    assert _pin(terminal, "0000").startswith("ERR OPR-05")
    assert _pin(terminal, "1111").startswith("ERR OPR-05")
    assert _pin(terminal, "2222").startswith("ERR OPR-03"), "the third wrong PIN locks"
    locked_at = time.time()
    assert _left(terminal) >= LOCK_S - 2

    _power_cut(terminal)
    assert _pin(terminal, PIN).startswith("ERR OPR-03"), "the right PIN is refused while locked, after a reboot too"
    left = _left(terminal)
    elapsed = time.time() - locked_at
    assert LOCK_S - elapsed - 3 <= left <= LOCK_S - elapsed + 1, \
        "lockout deadline kept across the power cut (left %ds after %.0fs)" % (left, elapsed)
    assert terminal.console.command("clear faults")[-1].startswith(("ERR OPR-03", "ERR OPR-05"))

    terminal.panel.press("F9")
    terminal.panel.expect(r"ENTER PIN", 10)
    terminal.panel.press(PIN + "E")
    terminal.panel.wait_screen(re.escape(display("OPR-03")), 10)  # on the keypad's technician menu too
    terminal.panel.press("C")
    terminal.panel.wait_screen("READY", 10)
    boots = 1
    if rel.full:
        # Wait the lockout out for real, with one more power cut on the way.
        time.sleep(max(0, locked_at + LOCK_S / 2 - time.time()))
        _power_cut(terminal)
        boots += 1
        assert _pin(terminal, PIN).startswith("ERR OPR-03")
        time.sleep(max(0, locked_at + LOCK_S + 2 - time.time()))
        assert _pin(terminal, PIN) == "OK", "the lockout ends after its time"
        assert terminal.console.command("clear faults")[-1] == "OK"
    rel.record("security", pin_lockout="OPR-03 across %d power cut%s%s" % (
        boots, "s" if boots > 1 else "", ", then waited out" if rel.full else ""))

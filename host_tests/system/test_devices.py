"""The terminal's device drivers end to end in the emulator, each against its peer.

The receipt printer is the ESC/POS simulator on the printer pty (the
firmware's escpos driver asks it DLE EOT before and while printing); the
local panel is the firmware's HD44780 or SSD1306 driver on the I2C pty and
its key-matrix driver on the GPIO pty, with LocalPanelSim reading the glass
and pressing the keys. Each fault the peers can show ends as its failure code
on the screen, on the console and in the fault log.
"""
import re
import time

import pytest
from conftest import sale

from test_diag_system import _answer, _faults, display

LOCAL = [{"panel": "local", "display": "hd44780"}, {"panel": "local", "display": "ssd1306"}]
LOCAL_IDS = ["hd44780", "ssd1306"]

pytestmark = pytest.mark.emulator_only


def _selftest(terminal, name):
    return [l for l in _answer(terminal.console.command("selftest")) if name in l]


# ---------------------------------------------------------------- printer
def test_sale_receipt_is_printed_through_the_escpos_driver(terminal, card_reader, acquirer, cards):
    ev = sale(terminal, card_reader, "1234", cards["visa"])
    assert "SALE APPROVED" in ev, ev
    ref = re.search(r"TXN (\d+) ", ev).group(1)
    stan = re.search(r"stan=(\d+)", ev).group(1)
    auth = re.search(r"auth=(\w+)", ev).group(1)
    p = terminal.printer
    assert p.wait(lambda: p.receipts, 10), "no receipt cut; printing: %r" % p.current
    [receipt] = p.receipts
    text = "\n".join(receipt)
    [entry] = [e for e in acquirer.ledger if e["kind"] == "auth"]
    for want in ("TID EMU00001", entry["pan_masked"], "12.34", ref, stan, "APPROVED", auth):
        assert want in text, "%r not on the receipt:\n%s" % (want, text)
    assert cards["visa"].pan not in text and cards["visa"].pan not in terminal.printed()
    # the title as the driver styles it: centred, bold, double size; every line fits 58 mm paper
    assert p.styled[0][1:] == ("center", True, (2, 2)), p.styled[0]
    assert all(len(l) <= 32 for l in receipt), receipt
    assert p.errors == [], "the printer got bytes it did not understand: %r" % p.errors
    assert {1, 4} <= set(p.queries), "real-time status (DLE EOT 1 and 4) asked before printing"
    assert [l for l in _selftest(terminal, "printer") if l.startswith("PASS")], "printer self-test asks it: ready"


def _reprint(terminal, ref):
    """F 4 once the printer is fixed: the approved sale's receipt again, marked DUPLICATE."""
    p = terminal.printer
    terminal.panel.wait_screen("READY", 15)
    terminal.panel.press("F4")
    terminal.console.expect(r"# REPRINT %s" % ref, 10)
    terminal.panel.wait_screen(r"^RECEIPT PRINTED \| AGAIN: REF %s" % ref, 10)
    assert p.wait(lambda: [r for r in p.receipts if "*** DUPLICATE ***" in r], 10), p.current
    [dup] = [r for r in p.receipts if "*** DUPLICATE ***" in r]
    assert "*** DUPLICATE ***" in dup and "SALE APPROVED" in dup, dup
    assert any(l.startswith("REF %s " % ref) for l in dup), dup


def _printer_fails_its_selftest_then_passes(terminal, code):
    assert [l for l in _selftest(terminal, "printer") if l.startswith("FAIL") and code in l]
    terminal.set_printer("ok")
    assert [l for l in _selftest(terminal, "printer") if l.startswith("PASS")], "fixed: the self-test asks again"


# A fault the printer reports when asked before the sale (paper out, cover open, paper jammed in
# the mechanism) is shown with its code before the card is asked for: the cashier goes on without
# a receipt (E) or stops before anything is sent (C). A fault that comes while the receipt prints
# (the cutter jams, paper jams mid-receipt) comes after the approval: the sale stands, the screen
# says why the receipt is missing, with the code, and F 4 prints it once the printer is fixed.
@pytest.mark.parametrize("state,code,moment", [
    ("paper_out", "HW-03", "before"),
    ("cover_open", "HW-07", "before"),
    ("jam", "HW-04", "before"),
    ("cutter_jam", "HW-08", "print"),
    ("jam", "HW-04", "print"),
])
def test_printer_fault_at_the_sale_shows_its_code_on_screen_and_console(terminal, card_reader, acquirer, cards,
                                                                       state, code, moment):
    p = terminal.printer
    panel = terminal.panel
    if moment == "before":
        terminal.set_printer(state)
        panel.wait_screen("READY", 10)
        panel.press("500E")
        panel.wait_screen(r"^%s \| %s \| CONTINUE WITHOUT \| RECEIPT\? E:YES C:NO$"
                          % (re.escape(display(code)), code), 10)
        terminal.console.expect(r"# PRINTER %s before sale" % code, 5)
        assert any(code in l and "print" in l for l in _faults(terminal, 3)), "the technician sees it at once"
        panel.press("C")  # the cashier would rather fix the printer first: nothing is sent
        terminal.console.expect(r"# FAIL SALE code=OPR-01", 10)
        assert acquirer.ledger == []
        panel.press("E")
        panel.wait_screen("READY", 10)
        panel.press("500E")
        panel.wait_screen(r"^%s \| %s \| CONTINUE WITHOUT" % (re.escape(display(code)), code), 10)
        panel.press("E")  # this customer goes without a receipt
        panel.wait_screen("PRESENT CARD", 10)
        card_reader.swipe("visa")
        m = terminal.console.expect(r"# TXN (\d+) SALE APPROVED", 20)
        ref = m.group(1).decode()
        s = panel.wait_screen(r"^APPROVED", 5)
        assert "RECEIPT NOT PRINTED" not in s, "the cashier chose no receipt: nothing to warn about"
        assert p.receipts == [] and p.current == [], "nothing printed on a printer that said it cannot"
        panel.press("E")
        _printer_fails_its_selftest_then_passes(terminal, code)
        _reprint(terminal, ref)
        return
    if state == "cutter_jam":
        terminal.set_printer(state)  # the printer is ready: the cutter jams at the end of the receipt
    else:
        p.line_ms = 50  # a slow printer: the jam comes while the receipt is on its way
    panel.wait_screen("READY", 10)
    panel.press("500E")
    panel.wait_screen("PRESENT CARD", 10)  # ready when asked: no question before the sale
    card_reader.swipe("visa")
    m = terminal.console.expect(r"# TXN (\d+) SALE APPROVED", 20)
    ref = m.group(1).decode()
    panel.wait_screen(r"^APPROVED \| EUR 5\.00 \| AUTH \S+ \| REF %s$" % ref, 5)  # while the receipt prints
    if state == "jam":
        assert p.wait(lambda: p.current, 10), "the receipt never started"
        terminal.set_printer(state)  # paper jams in the mechanism mid-receipt
    terminal.console.expect(r"# PRINTER %s" % code, 15)
    # the result's next page: why there is no receipt, with the code, and that the sale stands
    panel.wait_screen(r"^%s \| %s \| RECEIPT NOT PRINTED \| APPROVED$" % (re.escape(display(code)), code), 10)
    assert p.receipts == [] and p.current, "printed part of it, nothing cut"
    assert any(code in l and "print" in l for l in _faults(terminal, 3)), "the technician sees it"
    recent = _answer(terminal.console.command("recent 1"))
    assert recent[0].startswith("%s sale approved amt=500" % ref), "the payment stands: %r" % recent
    assert [e["amount"] for e in acquirer.ledger if e["kind"] == "auth"] == [500]
    panel.press("E")
    p.line_ms = 5
    _printer_fails_its_selftest_then_passes(terminal, code)
    _reprint(terminal, ref)


def test_paper_running_out_while_printing_is_hw03(terminal, card_reader, cards):
    p = terminal.printer
    p.paper_lines = 3  # the roll ends three lines into the receipt
    sale(terminal, card_reader, "700", cards["visa"])
    terminal.console.expect(r"# PRINTER HW-03", 15)
    terminal.panel.expect(r"D1 HW-03\n", 5)
    assert p.receipts == [] and len(p.current) == 3, p.current
    assert any("HW-03" in l for l in _faults(terminal, 3))


# ---------------------------------------------------------------- local panel
@pytest.mark.parametrize("terminal_panel", LOCAL, ids=LOCAL_IDS)
def test_whole_sale_on_the_local_display_and_keypad(terminal, card_reader, acquirer, cards, terminal_panel):
    panel = terminal.panel
    # the cashier's 4x20 screens as the glass shows them, each key through the key matrix
    panel.wait_screen(r"^PAYTERM DEMO SHOP \| READY \| ENTER AMOUNT \(EUR\) \| F:MENU$", 10)
    panel.press("1250")
    panel.wait_screen(r"^SALE \| EUR 12\.50 \| E:OK B:DELETE \| C:CANCEL$", 10)
    panel.press("E")
    panel.wait_screen(r"^SALE EUR 12\.50 \| PRESENT CARD \| SWIPE OR TAP \| C:CANCEL$", 10)
    card_reader.swipe("visa")
    ev = terminal.console.expect(r"# TXN (\d+) SALE APPROVED", 20)
    ref = ev.group(1).decode()
    panel.wait_screen(r"^APPROVED \| EUR 12\.50 \| AUTH \S+ \| REF %s$" % ref, 10)
    [entry] = [e for e in acquirer.ledger if e["kind"] == "auth"]
    assert entry["amount"] == 1250, "each key once: 1 2 5 0 E"
    assert panel.keypad.wait(lambda: panel.beeps >= 1, 5), "the result beeps on the buzzer"
    assert panel.led() is not None, "the status LED is driven"
    assert panel.errors() == [], "display or keypad driven out of spec: %r" % panel.errors()
    assert terminal.printer.wait(lambda: terminal.printer.receipts, 10), "the receipt prints as with the panel UART"
    status = "\n".join(terminal.console.command("status"))
    assert re.search(r"screen: \S", status), "the console shows the local screen too:\n" + status


@pytest.mark.parametrize("terminal_panel", LOCAL[:1], ids=LOCAL_IDS[:1])
def test_stuck_key_is_hw05_and_the_other_keys_still_work(terminal, card_reader, acquirer, cards, terminal_panel):
    panel = terminal.panel
    panel.stick("*")  # column 0, with 1, 4 and 7: that column cannot raise another edge
    terminal.console.expect(r"# FAULT HW-05 keypad: key \* stuck", 20)
    assert any("HW-05" in l and display("HW-05") in l for l in _faults(terminal, 3))
    assert [l for l in _selftest(terminal, "keypad") if l.startswith("FAIL") and "HW-05" in l]
    ev = sale(terminal, card_reader, "1470", cards["visa"])
    assert "SALE APPROVED" in ev, ev
    [entry] = [e for e in acquirer.ledger if e["kind"] == "auth"]
    assert entry["amount"] == 1470, "keys in the stuck key's column are read by the scan"
    panel.release("*")


@pytest.mark.parametrize("terminal_panel", LOCAL[1:], ids=LOCAL_IDS[1:])
def test_display_unplugged_is_hw06_and_redrawn_when_back(terminal, terminal_panel):
    panel = terminal.panel
    panel.unplug_display()
    panel.press("1")
    terminal.console.expect(r"# FAULT HW-06 display", 10)
    assert "SALE" not in panel.screen(), "nothing reached the unplugged display"
    panel.unplug_display(False)
    panel.wait_screen(r"^SALE \| EUR 0\.01", 5)
    panel.press("C")
    panel.wait_screen("READY", 10)
    assert any("HW-06" in l for l in _faults(terminal, 3))


@pytest.mark.parametrize("terminal_panel", LOCAL[:1], ids=LOCAL_IDS[:1])
def test_keys_pressed_as_soon_as_ready_is_announced_count(terminal, terminal_panel):
    # READY comes after the keypad's first scan: a key pressed then is a press, not one held since power-on
    for _ in range(2):
        terminal.restart()
        terminal.panel.press("7")
        terminal.panel.wait_screen(r"^SALE \| EUR 0\.07", 5)
        terminal.panel.press("C")
        terminal.panel.wait_screen("READY", 10)


def test_payterm_emulate_takes_panel_local_and_the_printer_commands(tmp_path):
    import argparse
    import io

    from payterm_tools import emulate

    p = argparse.ArgumentParser()
    emulate.add_arguments(p)
    args = p.parse_args(["--state", str(tmp_path / "state"), "--panel", "local", "--display", "ssd1306"])
    s = emulate.Session(args, out=io.StringIO())
    s.start()
    try:
        assert (s.emu.panel_kind, s.emu.display_kind) == ("local", "ssd1306")
        s.emu.panel.wait_screen("READY", 10)
        end = time.monotonic() + 5
        while "| READY" not in s.out.getvalue() and time.monotonic() < end:
            time.sleep(0.05)  # the session redraws the display on its own thread
        assert "| READY" in s.out.getvalue(), "the OLED's glass, read back, is what the session shows"
        s.command("12E")
        s.emu.panel.wait_screen(r"^SALE EUR 0\.12 \| PRESENT CARD", 10)
        s.command("C")
        s.emu.panel.wait_screen("READY", 10)
        for word, attr in (("cover", "cover_open"), ("out", "paper_out"), ("jam", "mech_error"),
                           ("cutter", "jam_at_cut")):
            s.command("paper " + word)
            assert getattr(s.emu.printer, attr), word
            s.command("paper ok")
            assert not getattr(s.emu.printer, attr), "paper ok clears %s" % word
    finally:
        s.close()

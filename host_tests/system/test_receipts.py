"""Receipts from the emulated printer: the fields a scheme asks for, paper checked before the sale, reprint.

The receipts are read from the ESC/POS printer simulator the firmware's driver
prints on (`terminal.printer.receipts`: the lines of each receipt as printed, up to
its cut); `set_printer` puts that printer out of paper, its cover open or jammed.
"""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import dismiss, start_sale  # noqa: E402

from payterm_tools.emulator import EMULATOR_PARAMS  # noqa: E402

HOST_WAIT = 30
pytestmark = pytest.mark.emulator_only  # the printer file and its fault injection are the emulator's


def _txn(terminal, timeout=HOST_WAIT):
    return [g.decode() for g in terminal.console.expect(r"# TXN (\S+) (\w+) (\w+)", timeout).groups()]


def _receipts(terminal):
    """The receipts the printer cut, each a list of its printed lines (the blank feed before the cut left out)."""
    return [[l for l in r if l] for r in terminal.printer.receipts]


def _wait_receipts(terminal, n, timeout=10):
    p = terminal.printer
    assert p.wait(lambda: len(p.receipts) >= n, timeout), "printing: %r" % p.current
    return _receipts(terminal)


def test_contactless_receipt_carries_what_a_scheme_asks_for(terminal, card_reader, acquirer, cards):
    start_sale(terminal, "1250")
    card_reader.tap("visa")
    ref = _txn(terminal)[0]
    card_reader.remove()
    [r] = _wait_receipts(terminal, 1)
    auth = [e for e in acquirer.ledger if e["kind"] == "auth"][0]
    # the title: the merchant name, centred in bold double size (16 characters a line: it wraps between words)
    name = EMULATOR_PARAMS["merchant_name"]
    title = [t for t, align, bold, size in terminal.printer.styled if (align, bold, size) == ("center", True, (2, 2))]
    assert " ".join(title) == name and " ".join(r[:len(title)]) == name, (title, r)
    want = EMULATOR_PARAMS["merchant_address"] + [
        "TID " + EMULATOR_PARAMS["terminal_id"], "MID " + EMULATOR_PARAMS["merchant_id"], "SALE",
        "CARD " + cards["visa"].masked, "ENTRY CONTACTLESS", "APP VISA CREDIT", "AID A0000000031010",
        "SALE APPROVED", "-- CUSTOMER COPY --"]
    for w in want:
        assert w in r, (w, r)
    assert any(re.match(r"^AMOUNT +EUR 12\.50$", l) for l in r), r
    assert any(re.match(r"^REF %s +STAN %s$" % (ref, auth["stan"]), l) for l in r), r
    assert any(re.match(r"^AUTH CODE \S+$", l) for l in r) and any(l.startswith("RRN ") for l in r), r
    assert any(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", l) for l in r), r
    assert cards["visa"].pan not in terminal.printed()
    for l in r:
        assert len(l) <= 32, l


def test_swiped_receipt_names_the_entry_mode_and_no_chip_application(terminal, card_reader, acquirer):
    start_sale(terminal, "800")
    card_reader.swipe("visa")
    _txn(terminal)
    [r] = _wait_receipts(terminal, 1)
    assert "ENTRY SWIPED" in r and not [l for l in r if l.startswith(("APP ", "AID "))], r


def test_paper_is_checked_before_the_sale_and_the_last_receipt_reprints(terminal, card_reader, acquirer):
    terminal.set_printer("paper_out")
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("1250E")
    terminal.panel.wait_screen(r"^PRINTER PAPER OUT \| HW-03 \| CONTINUE WITHOUT \| RECEIPT\? E:YES C:NO$", 10)
    terminal.console.expect(r"# PRINTER HW-03 before sale", 5)
    terminal.panel.press("C")  # the cashier would rather fix the paper first: nothing happens
    terminal.console.expect(r"# FAIL SALE code=OPR-01", 10)
    assert acquirer.ledger == []
    dismiss(terminal)
    terminal.panel.press("1250E")
    terminal.panel.wait_screen(r"CONTINUE WITHOUT", 10)
    terminal.panel.press("E")  # no receipt: the sale goes on
    terminal.panel.wait_screen("PRESENT CARD", 10)
    card_reader.swipe("visa")
    ref = _txn(terminal)[0]
    s = terminal.panel.wait_screen(r"^APPROVED", 5)
    assert "RECEIPT NOT PRINTED" not in s
    assert _receipts(terminal) == [], "nothing printed on an empty printer"
    assert any(" HW-03 " in l for l in terminal.console.command("faults 3")), "the technician sees it"
    dismiss(terminal)
    terminal.set_printer("ok")  # paper loaded: the customer gets the receipt after all
    terminal.panel.press("F4")
    terminal.console.expect(r"# REPRINT %s" % ref, 10)
    terminal.panel.wait_screen(r"^RECEIPT PRINTED \| AGAIN: REF %s" % ref, 5)
    [r] = _wait_receipts(terminal, 1)
    assert "SALE APPROVED" in r and "*** DUPLICATE ***" in r and "REF %s" % ref in " ".join(r), r


def test_reprint_with_no_receipt_says_so(terminal):
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("F4")
    terminal.panel.wait_screen(r"^NO RECEIPT TO PRINT \| OPR-12", 10)
    terminal.console.expect(r"# FAIL REPRINT code=OPR-12", 5)


def test_the_last_receipt_reprints_after_a_power_cut_with_its_own_time(terminal, card_reader, acquirer, cards):
    start_sale(terminal, "1250")
    card_reader.swipe("visa")
    ref = _txn(terminal)[0]
    [first] = _wait_receipts(terminal, 1)
    dismiss(terminal)
    terminal.kill()  # power cut at the counter; the customer then asks for a copy
    terminal.start()
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("F4")
    terminal.console.expect(r"# REPRINT %s" % ref, 10)
    terminal.panel.wait_screen(r"^RECEIPT PRINTED \| AGAIN: REF %s" % ref, 5)
    copy = _wait_receipts(terminal, 2)[1]
    assert "*** DUPLICATE ***" in copy, copy
    stamp = [l for l in first if re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", l)]
    assert stamp and stamp[0] in copy, "the copy shows when the sale was printed: %s / %s" % (stamp, copy)
    assert [l for l in copy if l != "*** DUPLICATE ***"] == [l for l in first], (first, copy)
    stored = open(os.path.join(terminal.state_dir, "receipt.json")).read()
    assert cards["visa"].pan not in stored and cards["visa"].masked in stored, stored

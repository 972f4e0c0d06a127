"""The cashier's day through the panel and console UARTs: result screens, paging, merchant flows, limits, training.

Each test drives the terminal as a cashier would (keys on the panel UART, cards
on the reader UARTs) and checks the screens the panel receives, the console's
events and what reached the acquirer.
"""
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import MERCHANT_PIN, dismiss, merchant_pin, refund, start_sale, void  # noqa: E402
from ledger import read_journal  # noqa: E402

HOST_WAIT = 30
TXN = r"# TXN (\S+) (\w+) (\w+)"


def _txn(terminal, timeout=HOST_WAIT):
    m = terminal.console.expect(TXN, timeout)
    return [g.decode() for g in m.groups()]


def _auths(acquirer):
    return [e for e in acquirer.ledger if e["kind"] == "auth"]


def _frames(terminal, since):
    """Every complete screen the panel received after byte offset `since` (a frame ends with its row 3)."""
    rows = ["", "", "", ""]
    out = []
    pos = 0
    for line in terminal.panel.buf.split(b"\n"):
        at = pos
        pos += len(line) + 1
        m = re.match(rb"^D([0-3]) ?(.*)$", line.rstrip(b"\r"))
        if m:
            rows[int(m.group(1))] = m.group(2).decode("utf-8", "replace")
            if m.group(1) == b"3" and at >= since:
                out.append(list(rows))
    return out


# ---------------------------------------------------------------- result screens


def test_a_digit_on_the_result_screen_starts_the_next_amount_with_it(terminal, card_reader, acquirer):
    start_sale(terminal, "1250")
    card_reader.swipe("visa")
    assert _txn(terminal)[2] == "APPROVED"
    shown = time.monotonic()
    terminal.panel.press("555E")  # the cashier types the next amount at once
    terminal.panel.wait_screen(r"^SALE EUR 5\.55 \| PRESENT CARD", 10)
    held = time.monotonic() - shown
    assert held >= 0.45, "the result stayed its minimum time (result_min_ms 500): %.2f s" % held
    card_reader.swipe("visa")
    assert _txn(terminal)[2] == "APPROVED"
    assert [e["amount"] for e in _auths(acquirer)] == [1250, 555], "no EUR 0.55 sale: the first 5 was not lost"


@pytest.mark.parametrize("terminal_config", [{"result_min_ms": 2500}])
def test_keys_pressed_while_waiting_for_the_host_do_not_close_its_answer(terminal, card_reader, acquirer):
    acquirer.script("no_answer")
    acquirer.script("approve", mti="0400")
    start_sale(terminal, "1250")
    card_reader.swipe("visa")
    terminal.panel.wait_screen(r"WAITING FOR HOST", 10)
    terminal.panel.press("C")  # an impatient cashier
    since = len(terminal.panel.buf)
    terminal.panel.wait_screen(r"^NO HOST RESPONSE \| HST-01", HOST_WAIT)
    t0 = time.monotonic()
    time.sleep(1.5)
    assert terminal.panel.screen().startswith("NO HOST RESPONSE | HST-01"), terminal.panel.screen()
    assert time.monotonic() - t0 < 2.4, "checked within the minimum time"
    for f in _frames(terminal, since):
        assert "WAITING FOR HOST" not in f, "a stale status mixed into the result: %r" % f
        if f[0] == "NO HOST RESPONSE":
            assert f[1].startswith("HST-01"), f


def test_a_long_customer_text_pages_instead_of_being_cut(terminal, card_reader, acquirer):
    acquirer.script(("decline", "51"))
    start_sale(terminal, "2000")
    card_reader.swipe("visa")
    assert _txn(terminal)[2] == "DECLINED"
    terminal.panel.wait_screen(r"^INSUFFICIENT FUNDS \| ISS-51  1/2 \| Insufficient \| balance\. Please use$", 5)
    terminal.panel.wait_screen(r"^INSUFFICIENT FUNDS \| ISS-51  2/2 \| another card\. \| $", 5)
    dismiss(terminal)


def test_void_shows_the_transaction_and_asks_before_anything_is_sent(terminal, card_reader, acquirer):
    start_sale(terminal, "600")
    card_reader.swipe("visa")
    ref = _txn(terminal)[0]
    dismiss(terminal)
    n = len(acquirer.ledger)
    asked = void(terminal, ref, confirm=False)
    assert asked == "VOID SALE %s? | EUR 6.00 | CARD ****0010 | E:YES C:NO" % ref, asked
    terminal.console.expect(r"# FAIL VOID code=OPR-01", 10)
    assert len(acquirer.ledger) == n, "C: nothing was sent"
    dismiss(terminal)
    void(terminal, ref)
    vref, kind, status = _txn(terminal)
    assert (kind, status) == ("VOID", "APPROVED")
    s = terminal.panel.wait_screen(r"^VOID APPROVED", 5)
    assert s == "VOID APPROVED | SALE %s VOIDED | EUR 6.00 | REF %s" % (ref, vref), "not a new charge: %s" % s
    assert acquirer.voided_stans() and acquirer.authorized() == []
    dismiss(terminal)
    # voiding twice: refused before any question, in the same words as the status look-up
    screen = void(terminal, ref)
    assert screen.startswith("ALREADY VOIDED | OPR-06"), screen
    terminal.console.expect(r"# TXN \S+ VOID DECLINED code=OPR-06", 10)
    dismiss(terminal)
    terminal.panel.press("F3" + ref + "E")
    terminal.panel.wait_screen(r"REF %s SALE \| EUR 6\.00 \| STATUS VOIDED" % ref, 10)
    # a ref longer than 6 digits is refused as it is typed, not cut silently
    dismiss(terminal)
    terminal.panel.press("F2")
    merchant_pin(terminal, "VOID")
    terminal.panel.wait_screen(r"VOID: REF", 10)
    terminal.panel.press("1234567")
    terminal.panel.wait_screen(r"^VOID: REF \| 123456 \| REF IS 6 DIGITS", 5)
    terminal.panel.press("C")


def test_refund_needs_the_merchant_pin_and_shows_amount_and_card(terminal, card_reader, acquirer):
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("F1")
    merchant_pin(terminal, "REFUND", "4321")  # the technician's PIN is not the merchant's
    terminal.panel.wait_screen(r"^REFUND \| MERCHANT PIN: \|  \| WRONG MERCHANT PIN", 5)
    terminal.panel.press(MERCHANT_PIN + "E")
    terminal.panel.wait_screen(r"^REFUND \| EUR 0\.00", 5)
    terminal.panel.press("300E")
    terminal.panel.wait_screen("PRESENT CARD", 10)
    card_reader.swipe("visa")
    terminal.panel.wait_screen(r"^REFUND\? \| EUR 3\.00 \| TO CARD \*\*\*\*0010 \| E:YES C:NO$", 10)
    assert [e for e in acquirer.ledger if e["kind"] == "refund"] == [], "nothing sent before OK"
    terminal.panel.press("E")
    assert _txn(terminal)[1:] == ["REFUND", "APPROVED"]
    terminal.panel.wait_screen(r"^REFUND APPROVED \| EUR 3\.00", 5)
    assert [e["amount"] for e in acquirer.ledger if e["kind"] == "refund"] == [300]
    dismiss(terminal)
    # the refund's card, once C is pressed at the question, is not used
    refund_keys = ["F1"]
    terminal.panel.press(refund_keys[0])
    merchant_pin(terminal, "REFUND")
    terminal.panel.wait_screen(r"^REFUND \| EUR", 5)
    terminal.panel.press("200E")
    terminal.panel.wait_screen("PRESENT CARD", 10)
    card_reader.swipe("visa")
    terminal.panel.wait_screen(r"^REFUND\? \|", 10)
    terminal.panel.press("C")
    terminal.console.expect(r"# FAIL REFUND code=OPR-01", 10)
    assert [e["amount"] for e in acquirer.ledger if e["kind"] == "refund"] == [300]


def test_wrong_merchant_pins_lock_refunds_not_the_technician(terminal, card_reader, acquirer):
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("F2")
    for i in range(3):
        merchant_pin(terminal, "VOID", "9999")
        if i < 2:
            terminal.panel.wait_screen(r"WRONG MERCHANT PIN", 5)
    terminal.panel.wait_screen(r"^MERCHANT PIN LOCKED \| OPR-08", 5)
    f = [l for l in terminal.console.command("faults 5") if "OPR-0" in l]
    assert any("OPR-08" in l for l in f) and any("OPR-07" in l for l in f), f
    dismiss(terminal)
    terminal.panel.press("F1")
    terminal.panel.wait_screen(r"^MERCHANT PIN LOCKED \| OPR-08", 10)  # even the right PIN waits
    dismiss(terminal)
    terminal.panel.press("F9")
    terminal.panel.wait_screen(r"ENTER PIN", 10)
    terminal.panel.press("4321E")
    terminal.panel.wait_screen(r"^1/7 STATUS", 10)  # the technician's PIN has its own lockout
    terminal.panel.press("C")


@pytest.mark.parametrize("terminal_config", [{"merchant_pin_hash": None}])
def test_without_a_merchant_pin_refund_and_void_stay_closed(terminal, card_reader, acquirer):
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("F1")
    terminal.panel.wait_screen(r"^NO MERCHANT PIN SET \| OPR-09", 10)
    terminal.console.expect(r"# FAIL REFUND code=OPR-09", 5)


def test_amounts_above_the_maximum_are_refused_as_typed_and_large_ones_confirmed(terminal, card_reader, acquirer):
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("99999999999")  # eleven nines: more than the terminal takes
    terminal.panel.wait_screen(r"^SALE \| EUR 9999\.99 \| MAX EUR 10000\.00 \| C:CANCEL$", 10)
    terminal.panel.press("E")
    terminal.panel.wait_screen(r"^SALE \| EUR 9999\.99 \| AMOUNT CORRECT\? \| E:YES C:NO$", 5)
    terminal.panel.press("C")
    terminal.console.expect(r"# FAIL SALE code=OPR-01", 10)
    assert acquirer.ledger == []
    dismiss(terminal)
    terminal.panel.press("60000E")  # EUR 600.00: at the confirmation threshold (EUR 500.00)
    terminal.panel.wait_screen(r"AMOUNT CORRECT\?", 5)
    terminal.panel.press("E")
    terminal.panel.wait_screen("PRESENT CARD", 10)
    card_reader.swipe("visa")
    assert _txn(terminal)[2] == "APPROVED"
    assert [e["amount"] for e in _auths(acquirer)] == [60000]


# ---------------------------------------------------------------- training mode


def test_training_mode_reaches_no_acquirer_and_marks_every_screen_and_receipt(terminal, card_reader, acquirer):
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("F5")
    merchant_pin(terminal, "TRAINING")
    terminal.console.expect(r"# TRAINING ON", 10)
    since = len(terminal.panel.buf)
    terminal.panel.wait_screen(r"TRAINING MODE ON", 5)
    terminal.panel.press("E")
    terminal.panel.wait_screen(r"READY .*TRAINING", 10)
    start_sale(terminal, "1250")
    card_reader.tap("visa")
    ref, kind, status = _txn(terminal)
    card_reader.remove()
    assert (kind, status) == ("SALE", "APPROVED")
    terminal.console.expect(r"training", 1)  # the event line says it
    dismiss(terminal)
    start_sale(terminal, "1251")  # practice amount: declined 51
    card_reader.swipe("visa")
    assert _txn(terminal)[2] == "DECLINED"
    terminal.panel.wait_screen(r"^INSUFFICIENT FUNDS \| ISS-51", 5)
    dismiss(terminal)
    void(terminal, ref)
    assert _txn(terminal)[1:] == ["VOID", "APPROVED"]
    dismiss(terminal)
    terminal.panel.press("F9")  # no technician menu while training
    terminal.panel.wait_screen(r"^END TRAINING FIRST \| OPR-11", 10)
    dismiss(terminal)
    frames = _frames(terminal, since)
    assert len(frames) > 15
    for f in frames:
        assert any(r.endswith("TRAINING") for r in f), "a training screen without the mark: %r" % f
    assert acquirer.ledger == [], "training reached the acquirer"
    assert [t for t in read_journal(terminal.state_dir) if not t["ref"].startswith("~")] == [], \
        "training reached the terminal's journal"
    # the sale, the practice decline and the void each printed, marked at the top (under the merchant's
    # name, the title) and as the last line; read from the ESC/POS printer the driver prints on
    p = terminal.printer
    assert p.wait(lambda: len(p.receipts) >= 3, 10), p.current
    receipts = [[l for l in r if l] for r in p.receipts]
    assert len(receipts) == 3, receipts
    for r, what in zip(receipts, ("SALE APPROVED", "SALE DECLINED ISS-51", "VOID APPROVED")):
        assert what in r, (what, r)
        assert "*** TRAINING - NOT A PAYMENT ***" in r[:4] and r[-1] == "*** TRAINING - NOT A PAYMENT ***", r
        assert " ".join(r[:2]) == "PAYTERM DEMO SHOP", "the merchant's name is the title: %r" % r
    terminal.panel.press("F5")
    terminal.console.expect(r"# TRAINING OFF", 10)
    terminal.panel.wait_screen(r"TRAINING MODE OFF", 5)
    terminal.panel.press("E")
    s = terminal.panel.wait_screen(r"READY", 10)
    assert "TRAINING" not in s
    start_sale(terminal, "700")
    card_reader.swipe("visa")
    assert _txn(terminal)[2] == "APPROVED"
    assert [e["amount"] for e in _auths(acquirer)] == [700], "live again"


def _counts(terminal):
    """The console's statistics without the clock (uptime goes on)."""
    return [l for l in terminal.console.command("stats") if not l.startswith("uptime_s ")]


def test_a_failed_pin_in_training_is_no_fault_of_the_terminal(terminal, card_reader, acquirer):
    faults_before = terminal.console.command("faults 10")
    stats_before = _counts(terminal)
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("F5")
    merchant_pin(terminal, "TRAINING")
    terminal.console.expect(r"# TRAINING ON", 10)
    terminal.panel.wait_screen(r"TRAINING MODE ON", 5)
    terminal.panel.press("E")
    start_sale(terminal, "1500")
    card_reader.swipe("visa_pin")
    terminal.console.expect(r"# PIN REQUIRED training", HOST_WAIT)
    terminal.panel.wait_screen(r"ENTER PIN .*TRAINING", 10)
    terminal.panel.press("C")  # the trainee cancels at the PIN: the sale fails as it would live
    terminal.console.expect(r"# FAIL SALE code=PIN-04 stage=pin training", 10)
    terminal.panel.wait_screen(r"PIN-04", 5)
    dismiss(terminal)
    assert terminal.console.command("faults 10") == faults_before, "training wrote to the terminal's fault log"
    assert _counts(terminal) == stats_before, "training counted in the terminal's statistics"
    assert acquirer.ledger == []
    terminal.panel.press("F5")
    terminal.console.expect(r"# TRAINING OFF", 10)

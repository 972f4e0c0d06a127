"""Card presentment through the UARTs: only a card presented for the sale pays it.

A swipe while no sale waits is discarded; a read error keeps the same sale
waiting for another try; a contactless card must leave the field before
the next read, so a card left on the reader never pays the next sale. Every
test checks what the acquirer simulator received.
"""
import os
import re
import sys

import pytest

from payterm_tools.sim.cardsim import TEST_CARDS, EmvCard
from conftest import start_sale

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "firmware")
HOST_WAIT = 30
CARD_WAIT = 15


def display(code):
    if _FIRMWARE not in sys.path:
        sys.path.append(_FIRMWARE)
    from payterm import codes

    return codes.lookup(code)[codes.DISPLAY]


def auths(acquirer):
    return [e for e in acquirer.ledger if e["kind"] == "auth"]


def outcome(terminal, timeout=HOST_WAIT):
    m = terminal.console.expect(r"# (?:TXN \S+ SALE (\w+)|FAIL SALE code=(\S+))", timeout)
    return (m.group(1) or m.group(2)).decode()


def key_amount(terminal, amount):
    """Key in an amount from the idle screen (the card prompt that follows is up to the test)."""
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press(amount + "E")


def retry(terminal, code, timeout=CARD_WAIT):
    terminal.console.expect(r"# CARD RETRY code=" + re.escape(code), timeout)
    terminal.panel.wait_screen(re.escape(display(code)) + r" \| TRY AGAIN", 5)


# ---------------------------------------------------------------- item 1: no sale waiting


def test_swipe_at_idle_is_discarded_not_charged_to_the_next_sale(terminal, card_reader, acquirer):
    terminal.panel.wait_screen("READY", 10)
    card_reader.swipe("amex")
    terminal.console.expect(r"# CARD IGNORED swipe", CARD_WAIT)
    terminal.panel.wait_screen("NO SALE IN PROGRESS", 5)
    terminal.panel.wait_screen("READY", 5)  # back to the idle screen
    start_sale(terminal, "111")
    card_reader.swipe("visa")  # the card the customer presents for this sale
    assert outcome(terminal) == "APPROVED"
    a = auths(acquirer)
    assert len(a) == 1, a
    assert a[0]["pan_masked"] == TEST_CARDS["visa"].masked and a[0]["amount"] == 111
    assert not any(e["pan_masked"] == TEST_CARDS["amex"].masked for e in acquirer.ledger), "idle swipe reached the host"


def test_swipe_during_amount_entry_or_authorization_is_not_kept(terminal, card_reader, acquirer):
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("5")
    terminal.panel.wait_screen(r"SALE \| EUR 0\.05", 5)
    card_reader.swipe("amex")  # before the card prompt
    terminal.console.expect(r"# CARD IGNORED swipe", CARD_WAIT)
    terminal.panel.press("00E")
    terminal.panel.wait_screen("PRESENT CARD", 5)
    card_reader.swipe("mastercard")
    terminal.console.expect(r"# CARD swipe 541333", CARD_WAIT)
    card_reader.swipe("amex")  # again while the host is asked
    terminal.panel.wait_screen("APPROVED", HOST_WAIT)
    terminal.console.expect(r"# CARD IGNORED swipe", CARD_WAIT)
    start_sale(terminal, "700")
    terminal.panel.press("C")  # nobody presents a card: cancelled
    terminal.console.expect(r"# FAIL SALE code=OPR-01", CARD_WAIT)
    a = auths(acquirer)
    assert [(e["pan_masked"], e["amount"]) for e in a] == [(TEST_CARDS["mastercard"].masked, 500)], a


# ---------------------------------------------------------------- item 2: read error keeps the sale


def test_second_swipe_after_bad_lrc_is_used_by_the_same_sale(terminal, card_reader, acquirer):
    start_sale(terminal, "1250")
    card_reader.swipe("visa", bad_lrc=True)
    retry(terminal, "CRD-05")
    card_reader.swipe("visa")
    assert outcome(terminal) == "APPROVED"
    a = auths(acquirer)
    assert len(a) == 1 and a[0]["amount"] == 1250, a
    # nothing is left for the next sale
    start_sale(terminal, "333")
    terminal.panel.press("C")
    assert outcome(terminal, CARD_WAIT) == "OPR-01"
    assert len(auths(acquirer)) == 1


@pytest.mark.parametrize("terminal_config", [{"card_read_tries": 2}], ids=["two-tries"])
def test_read_errors_end_the_sale_after_card_read_tries(terminal, card_reader, acquirer):
    start_sale(terminal, "990")
    card_reader.swipe("visa", no_start=True)
    retry(terminal, "CRD-03")
    card_reader.swipe("visa", bad_lrc=True)
    assert outcome(terminal, CARD_WAIT) == "CRD-05", "the last read error's code"
    terminal.panel.wait_screen(re.escape(display("CRD-05")) + r" \| CRD-05", 5)
    assert auths(acquirer) == []
    f = [l for l in terminal.console.command("faults 3") if "CRD-0" in l]
    assert any("CRD-05" in l for l in f) and any("CRD-03" in l for l in f), f


# ---------------------------------------------------------------- item 3: a card left on the reader


def _first_sale_by_tap(terminal, card_reader, card):
    start_sale(terminal, "210")
    card_reader.tap(card)
    terminal.panel.expect(r"D3 REMOVE CARD", CARD_WAIT)  # shown while the host is asked
    assert outcome(terminal) == "APPROVED"


@pytest.mark.parametrize("uid", ["per-tap", "per-activation"])
def test_card_left_on_the_reader_is_not_charged_by_the_next_sale(terminal, card_reader, acquirer, uid):
    left = EmvCard("4761739001010010", "3012", "VISA/TEST CARD", "101", aids=[("A0000000031010", "VISA CREDIT", 1)],
                   random_uid=True if uid == "per-tap" else "activation")
    _first_sale_by_tap(terminal, card_reader, left)
    reads = card_reader.apdus().count("80a80000")
    # the card stays on the reader; the next sale asks to take it away instead of charging it
    key_amount(terminal, "320")
    terminal.console.expect(r"# CARD REMOVE", CARD_WAIT)
    terminal.panel.wait_screen(r"SALE EUR 3\.20 \| REMOVE CARD", 5)
    card_reader.remove()
    terminal.panel.wait_screen(r"SALE EUR 3\.20 \| PRESENT CARD", 5)
    card_reader.tap("mastercard")
    assert outcome(terminal) == "APPROVED"
    card_reader.remove()
    a = [(e["pan_masked"], e["amount"]) for e in auths(acquirer)]
    assert a == [(left.masked, 210), (TEST_CARDS["mastercard"].masked, 320)], a
    assert card_reader.apdus().count("80a80000") == reads + 1, "the left card was not even read again"


def test_card_put_down_before_the_prompt_is_read_only_after_it_left(terminal, card_reader, acquirer):
    terminal.panel.wait_screen("READY", 10)
    card_reader.tap("visa")  # on the reader before any sale
    terminal.console.expect(r"# CARD IGNORED tap", CARD_WAIT)
    terminal.panel.wait_screen("NO SALE IN PROGRESS", 5)
    key_amount(terminal, "450")
    terminal.panel.wait_screen(r"SALE EUR 4\.50 \| REMOVE CARD", CARD_WAIT)
    assert card_reader.apdus() == [], "not read"
    card_reader.remove()
    terminal.panel.wait_screen(r"PRESENT CARD", 5)
    card_reader.tap("visa")
    assert outcome(terminal) == "APPROVED"
    card_reader.remove()
    a = auths(acquirer)
    assert len(a) == 1 and a[0]["amount"] == 450


def test_tap_error_asks_to_remove_then_retries_in_the_same_sale(terminal, card_reader, acquirer):
    start_sale(terminal, "600")
    # a record the AFL lists is missing (6A83): CRD-16, a read error worth another try
    card_reader.tap(EmvCard("4761739001010010", service_code="101", sw={"read": 0x6A83}, uid=b"\x04\x21\x22\x23"))
    terminal.console.expect(r"# CARD RETRY code=CRD-16", CARD_WAIT)
    terminal.panel.wait_screen(re.escape(display("CRD-16")) + r" \| REMOVE CARD \| THEN TRY AGAIN", 5)
    card_reader.remove()
    terminal.panel.wait_screen(re.escape(display("CRD-16")) + r" \| TRY AGAIN", 5)
    card_reader.tap("visa")
    assert outcome(terminal) == "APPROVED"
    card_reader.remove()
    a = auths(acquirer)
    assert len(a) == 1 and a[0]["amount"] == 600

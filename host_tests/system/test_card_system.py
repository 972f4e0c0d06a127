"""Swipe and tap through the emulated reader UARTs, approved and failed.

Uses the system fixtures (host_tests/system/conftest.py): `terminal` (panel,
console), `card_reader` (CardReaderSim on the terminal's MAG and NFC ptys)
and `acquirer` (AcquirerSim). Display texts come from the failure-code
catalog, so a reworded message does not break these tests.
"""
import os
import re
import sys

import pytest

from payterm_tools.sim.cardsim import TEST_CARDS, EmvCard
from conftest import start_sale

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "firmware")
FULL_PANS = [c.pan for c in TEST_CARDS.values()]
HOST_WAIT = 30
CARD_WAIT = 15


def display(code):
    """The panel text of a catalog code (payterm.codes is plain Python)."""
    if _FIRMWARE not in sys.path:
        sys.path.append(_FIRMWARE)
    from payterm import codes

    return codes.lookup(code)[codes.DISPLAY]


def answer(lines):
    return [l for l in lines if not l.startswith("# ") and l != "OK"]


def sale(terminal, amount="1000"):
    start_sale(terminal, amount)


def outcome(terminal, timeout=HOST_WAIT):
    """APPROVED/DECLINED/... for a sale that reached the host, or the failure code."""
    m = terminal.console.expect(r"# (?:TXN \S+ SALE (\w+)|FAIL SALE code=(\S+))", timeout)
    return (m.group(1) or m.group(2)).decode()


def auths(acquirer):
    return [e for e in acquirer.ledger if e["kind"] == "auth"]


def assert_no_full_pan(lines):
    for l in lines:
        for pan in FULL_PANS:
            assert pan not in l, "full PAN on the console: %s" % l


def fail_with(terminal, acquirer, code, timeout=CARD_WAIT):
    """The sale fails with the code, the panel shows its text, the fault log has it, nothing went to the host."""
    assert outcome(terminal, timeout) == code
    terminal.panel.expect(re.escape(display(code)), 5)
    f = answer(terminal.console.command("faults 3"))
    assert any(code in l for l in f), f
    assert_no_full_pan(f)
    assert auths(acquirer) == [], "a failed card read must not reach the host"


# ---------------------------------------------------------------- approved


@pytest.mark.parametrize("name", ["visa", "mastercard", "amex"])
def test_tap_approved(terminal, card_reader, acquirer, name):
    sale(terminal, "1000")
    card_reader.tap(name)
    res = outcome(terminal)
    card_reader.remove()
    assert res == "APPROVED"
    a = auths(acquirer)
    assert len(a) == 1 and a[0]["amount"] == 1000
    assert a[0]["pan_masked"] == TEST_CARDS[name].masked
    # the terminal read the card through the whole EMV flow
    heads = card_reader.apdus()
    assert heads[0] == "00a40400" and "80a80000" in heads and "00b2010c" in heads, heads
    assert_no_full_pan(terminal.console.command("status"))


def test_swipe_approved(terminal, card_reader, acquirer):
    sale(terminal, "2550")
    card_reader.swipe("mastercard")
    assert outcome(terminal) == "APPROVED"
    a = auths(acquirer)
    assert len(a) == 1 and a[0]["amount"] == 2550 and a[0]["pan_masked"] == "541333******0434"


def retry(terminal, code, timeout=CARD_WAIT):
    """The sale stays on the card prompt after a read error, saying what went wrong."""
    terminal.console.expect(r"# CARD RETRY code=" + re.escape(code), timeout)
    terminal.panel.wait_screen(re.escape(display(code)) + r" \| TRY AGAIN", 5)


def test_swipe_sentinel_stripped_module_and_second_try(terminal, card_reader, acquirer):
    sale(terminal)
    card_reader.swipe("visa", no_end=2, tracks=(2,))
    retry(terminal, "CRD-04")
    # the same sale asks again; a clean swipe from a module that strips sentinels goes through
    card_reader.swipe("visa", sentinels=False)
    assert outcome(terminal) == "APPROVED"
    assert len(auths(acquirer)) == 1


def test_tap_declined_by_issuer(terminal, card_reader, acquirer):
    acquirer.script(("decline", "51"))
    sale(terminal)
    card_reader.tap("visa")
    res = outcome(terminal)
    card_reader.remove()
    assert res != "APPROVED" and not res.startswith("CRD-")
    assert auths(acquirer)[0]["rc"] == "51"


# ---------------------------------------------------------------- card failures


def _removed_early(r):
    r.tap(EmvCard("4761739001010010", service_code="101", remove_at="read", uid=b"\x04\x12\x34\x56"))


# One read per sale here, so each fault ends the sale with its code (test_presentment.py covers the retries).
@pytest.mark.parametrize("terminal_config", [{"card_read_tries": 1}], ids=["one-try"])
@pytest.mark.parametrize("action,code", [
    (lambda r: r.swipe("chip_swipe"), "CRD-10"),
    (lambda r: r.swipe("bad_luhn"), "CRD-07"),
    (lambda r: r.swipe("visa", bad_lrc=2, tracks=(2,)), "CRD-05"),
    (lambda r: r.swipe("visa", no_start=True), "CRD-03"),
    (lambda r: r.swipe("visa", empty=True), "CRD-02"),
    (lambda r: r.swipe("visa", parity=True), "CRD-06"),
    (lambda r: r.tap("expired"), "CRD-08"),
    (lambda r: r.tap("bad_luhn"), "CRD-07"),
    (lambda r: r.tap("unsupported_aid"), "CRD-09"),
    (lambda r: r.collide("visa", "mastercard"), "CRD-12"),
    (_removed_early, "CRD-11"),
], ids=["chip-swiped", "swipe-luhn", "bad-lrc", "no-start", "no-data", "parity",
        "expired", "tap-luhn", "unsupported-aid", "collision", "removed-early"])
def test_card_failures(terminal, card_reader, acquirer, action, code):
    sale(terminal)
    action(card_reader)
    try:
        fail_with(terminal, acquirer, code)
    finally:
        card_reader.remove()


def test_chip_swipe_fallback_after_failed_tap(terminal, card_reader, acquirer):
    sale(terminal)
    card_reader.tap(EmvCard("4111111111111111", service_code="201", remove_at="gpo", uid=b"\x04\x44\x55\x66"))
    retry(terminal, "CRD-11")
    card_reader.remove()
    # the same sale takes the swipe of the chip card as fallback
    card_reader.swipe("chip_swipe")
    assert outcome(terminal) == "APPROVED"
    assert auths(acquirer)[-1]["pan_masked"] == "411111******1111"


@pytest.mark.emulator_only
def test_reader_not_responding(terminal, card_reader, acquirer):
    card_reader.set_responding(False)
    try:
        sale(terminal)
        # reported when the presentation time runs out with no swipe either
        fail_with(terminal, acquirer, "HW-01", timeout=60)
    finally:
        card_reader.set_responding(True)


def test_reader_recovers_after_garbage_and_line_noise(terminal, card_reader, acquirer):
    card_reader.garbage_next()
    card_reader.corrupt_next()
    sale(terminal)
    card_reader.tap("visa")
    res = outcome(terminal)
    card_reader.remove()
    assert res == "APPROVED"

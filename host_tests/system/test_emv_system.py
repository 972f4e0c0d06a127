"""Contactless EMV through the PN532 UART: each scheme's kernel, the issuer's cryptogram check,
every EMV failure with its own code, limits and CVM, offline taps and their advice.

Uses the system fixtures (host_tests/system/conftest.py): `terminal`, `card_reader`
(CardReaderSim, PN532 bytes paced at 115200 baud), `acquirer` (AcquirerSim with the
issuer of tools/payterm_tools/sim/issuer.py: `arqc` in each ledger entry). Display texts
come from the failure-code catalog.
"""
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import start_sale  # noqa: E402
from ledger import read_journal, reconcile  # noqa: E402
from payterm_tools.sim.cardsim import TEST_CARDS, EmvCard, dol_values  # noqa: E402

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "firmware")
HOST_WAIT = 30
CARD_WAIT = 15
GENAC = "80ae8000"


def display(code):
    if _FIRMWARE not in sys.path:
        sys.path.append(_FIRMWARE)
    from payterm import codes

    return codes.lookup(code)[codes.DISPLAY]


def outcome(terminal, timeout=HOST_WAIT):
    """(status or failure code, the whole console line)."""
    m = terminal.console.expect(r"# (?:TXN \S+ SALE (\w+)[^\n]*|FAIL SALE code=(\S+)[^\n]*)", timeout)
    return (m.group(1) or m.group(2)).decode(), m.group(0).decode()


def auths(acquirer):
    return [e for e in acquirer.ledger if e["kind"] == "auth"]


def tap_sale(terminal, card_reader, card, amount="1000"):
    start_sale(terminal, amount)
    card_reader.tap(card)
    try:
        return outcome(terminal)
    finally:
        card_reader.remove()


# ---------------------------------------------------------------- each scheme, verified by the issuer


@pytest.mark.parametrize("name,kernel", [("visa", "qvsdc"), ("mastercard", "mchip"), ("maestro", "mchip"),
                                         ("girocard", "mchip"), ("amex", "mchip")])
def test_tap_carries_a_cryptogram_the_issuer_verifies(terminal, card_reader, acquirer, name, kernel):
    res, line = tap_sale(terminal, card_reader, name, "1250")
    assert res == "APPROVED", line
    a = auths(acquirer)
    assert len(a) == 1 and a[0]["arqc"] == "ok" and a[0]["rc"] == "00", a
    assert a[0]["pan_masked"] == TEST_CARDS[name].masked
    tags = acquirer._book.issuer.last
    for t in ("9F26", "9F27", "9F10", "9F36", "9F37", "95", "9A", "9C", "9F02", "5F2A", "82", "9F1A"):
        assert t in tags, (t, sorted(tags))
    assert tags["9F02"] == bytes.fromhex("000000001250")
    heads = card_reader.apdus()
    # qVSDC: the ARQC comes with GPO; M/Chip asks for it with GENERATE AC after the records.
    assert (GENAC in heads) == (kernel == "mchip"), heads
    if kernel == "qvsdc":
        assert tags["9F66"][1] & 0x80, "TTQ: online cryptogram required"
    else:
        assert "9F66" not in tags, "no TTQ in an M/Chip field 55"
    assert reconcile(read_journal(terminal.state_dir), acquirer.ledger) == {"sale_approved": 1}


def test_tampered_cryptogram_is_declined_by_the_issuer(terminal, card_reader, acquirer):
    res, line = tap_sale(terminal, card_reader, "visa_tampered")
    assert res == "DECLINED" and "code=ISS-82" in line and "rc=82" in line, line
    terminal.panel.wait_screen(re.escape(display("ISS-82")), 5)
    a = auths(acquirer)
    assert len(a) == 1 and (a[0]["arqc"], a[0]["rc"], a[0]["booked"]) == ("bad", "82", False), a
    assert acquirer.holdings() == {(a[0]["tid"], a[0]["stan"]): 0}


def test_records_with_terminal_tags_do_not_change_field_55(terminal, card_reader, acquirer):
    card = TEST_CARDS["terminal_tags"]
    res, line = tap_sale(terminal, card_reader, card, "777")
    assert res == "APPROVED", line
    tags = acquirer._book.issuer.last
    assert tags["9F02"] == bytes.fromhex("000000000777"), "amount from the terminal, not the record"
    assert tags["9F37"] != bytes.fromhex("CAFEBABE") and tags["95"] != b"\xff" * 5
    assert tags["9A"] != bytes.fromhex("991231") and tags["5F2A"] == bytes.fromhex("0978")
    assert "9F66" not in tags, "a record's 9F66 (PUNATC) is not a TTQ"
    # The card computed its ARQC over the CDOL1 data the terminal sent: the issuer agrees.
    assert auths(acquirer)[0]["arqc"] == "ok"
    got = dol_values(card.cdol1, card.last_cdol_data)
    assert (tags["9F37"], tags["9F02"]) == (got["9F37"], got["9F02"]), "field 55 has what the card got"


# ---------------------------------------------------------------- failures, each with its own code


def _removed_early(r):
    r.tap(EmvCard("5413330089010434", aids=[("A0000000041010", "MASTERCARD", 1)], remove_at="genac",
                  uid=b"\x04\x12\x34\x57"))


@pytest.mark.parametrize("terminal_config", [{"card_read_tries": 1}], ids=["one-try"])
@pytest.mark.parametrize("action,code", [
    (lambda r: r.tap("unsupported_aid"), "CRD-09"),
    (lambda r: r.tap("gpo_refused"), "CRD-15"),
    (lambda r: r.tap("record_missing"), "CRD-16"),
    (lambda r: r.tap("no_cryptogram"), "CRD-17"),
    (lambda r: r.tap("mastercard_aac"), "CRD-18"),
    (lambda r: r.tap("mastercard_magstripe"), "CRD-19"),
    (_removed_early, "CRD-11"),
    (lambda r: r.collide("visa", "mastercard"), "CRD-12"),
], ids=["no-common-aid", "gpo-6985", "record-missing", "no-cryptogram", "aac", "magstripe-mode",
        "removed-during-genac", "collision"])
def test_emv_failures_have_their_own_codes(terminal, card_reader, acquirer, action, code):
    start_sale(terminal)
    action(card_reader)
    try:
        res, line = outcome(terminal, CARD_WAIT)
        assert res == code, line
        terminal.panel.expect(re.escape(display(code)), 5)
    finally:
        card_reader.remove()
    assert auths(acquirer) == [], "a failed tap never reaches the host"


@pytest.mark.parametrize("terminal_config", [{"cl_tx_limit": 5000}])
def test_tap_above_the_contactless_limit_asks_for_a_swipe(terminal, card_reader, acquirer):
    start_sale(terminal, "5001")
    card_reader.tap("visa")
    terminal.console.expect(r"# CARD RETRY code=CRD-14", CARD_WAIT)
    terminal.panel.wait_screen(r"INSERT OR SWIPE CARD", 5)
    assert "80a80000" not in card_reader.apdus(), "no GPO: the card is not even asked"
    card_reader.remove()
    card_reader.swipe("visa")
    res, line = outcome(terminal)
    assert res == "APPROVED", line
    a = auths(acquirer)
    assert len(a) == 1 and a[0]["arqc"] == "-", "the swipe went online, the tap never did"


# ---------------------------------------------------------------- CVM


@pytest.mark.parametrize("name,amount,cvm,receipt", [
    ("visa", "5001", "signature", "CARDHOLDER SIGNATURE"),
    ("mastercard", "7500", "signature", "CARDHOLDER SIGNATURE"),
    ("visa_phone", "7500", "cdcvm", "VERIFIED ON DEVICE"),
    ("mastercard_phone", "7500", "cdcvm", "VERIFIED ON DEVICE"),
    ("visa", "5000", None, None),
])
def test_cvm_above_the_cvm_limit(terminal, card_reader, acquirer, name, amount, cvm, receipt):
    res, line = tap_sale(terminal, card_reader, name, amount)
    assert res == "APPROVED", line
    if cvm:
        assert line.endswith(" cvm=" + cvm), line
        deadline = time.time() + 5
        while receipt not in terminal.printed() and time.time() < deadline:
            time.sleep(0.1)
        assert receipt in terminal.printed()
    else:
        assert " cvm=" not in line, line
        assert "SIGNATURE" not in terminal.printed()
    assert auths(acquirer)[0]["arqc"] == "ok"


# ---------------------------------------------------------------- after the read


def test_beep_then_remove_card_and_no_second_read(terminal, card_reader, acquirer):
    acquirer.script(("delay", 1500))
    start_sale(terminal, "1000")
    n = len(terminal.panel.beeps)
    card_reader.tap("visa")
    terminal.panel.wait_screen(r"CARD \*+\d{4} \| [^|]* \| REMOVE CARD", CARD_WAIT)
    assert len(terminal.panel.beeps) > n, "a beep when the read is done"
    res, line = outcome(terminal)
    assert res == "APPROVED", line
    # Left on the reader, the card is not read again for the next sale.
    terminal.panel.press("E")
    start_sale_heads = len(card_reader.apdus())
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("500E")
    terminal.panel.wait_screen("REMOVE CARD", 5)
    assert len(card_reader.apdus()) == start_sale_heads
    card_reader.remove()
    terminal.panel.wait_screen("PRESENT CARD", 5)
    terminal.panel.press("C")
    assert len(auths(acquirer)) == 1


# ---------------------------------------------------------------- offline (deferred authorization)


def _until(fn, what, timeout=HOST_WAIT):
    end = time.time() + timeout
    while not fn():
        if time.time() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)


def test_offline_tap_keeps_its_arqc_for_the_advice(terminal, card_reader, acquirer):
    acquirer.stop()
    res, line = tap_sale(terminal, card_reader, "visa", "1200")
    assert res == "APPROVED_OFFLINE", line
    acquirer.start()
    _until(lambda: acquirer.advices(), "the advice")
    adv = [e for e in acquirer.ledger if e["kind"] == "advice"]
    tags = acquirer._book.issuer.last
    assert tags["9F02"] == bytes.fromhex("000000001200") and len(tags["9F26"]) == 8, "the ARQC went with it"
    assert tags["9F27"][0] & 0xC0 == 0x80
    for e in adv:
        # Checked in full once the advice carries the card number; without it, not recomputable.
        assert e["arqc"] == ("ok" if e["pan_masked"] else "-"), e
    assert reconcile(read_journal(terminal.state_dir), acquirer.ledger) == {"saf_sent": 1}


def test_offline_tap_of_a_card_that_forbids_deferred_authorization_is_declined(terminal, card_reader, acquirer):
    acquirer.stop()
    res, line = tap_sale(terminal, card_reader, "mastercard", "1200")
    assert res == "DECLINED" and "code=CRD-20" in line, line
    terminal.panel.wait_screen(re.escape(display("CRD-20")), 5)
    acquirer.start()
    time.sleep(0.5)
    assert [e for e in acquirer.ledger if e["kind"] in ("auth", "advice")] == []


# ---------------------------------------------------------------- mag-stripe mode, when the terminal takes it


@pytest.mark.parametrize("terminal_config", [{"cl_magstripe": True}])
def test_magstripe_mode_tap_goes_online_with_its_cvc3(terminal, card_reader, acquirer):
    res, line = tap_sale(terminal, card_reader, "mastercard_magstripe", "1500")
    assert res == "APPROVED", line
    a = auths(acquirer)
    assert len(a) == 1 and (a[0]["arqc"], a[0]["rc"]) == ("ok", "00"), a
    assert "802a8e80" in card_reader.apdus(), "COMPUTE CRYPTOGRAPHIC CHECKSUM"
    tampered = EmvCard("5413330089010491", aids=[("A0000000041010", "MASTERCARD", 1)], magstripe=True,
                       tamper=True)
    terminal.panel.press("E")
    res, line = tap_sale(terminal, card_reader, tampered, "1500")
    assert res == "DECLINED" and "code=ISS-82" in line, line
    assert auths(acquirer)[-1]["arqc"] == "bad"
    terminal.panel.press("E")
    acquirer.stop()
    res, line = tap_sale(terminal, card_reader, "mastercard_magstripe", "1000")
    assert res == "DECLINED" and "code=CRD-20" in line, "a CVC3 is never authorized later: " + line

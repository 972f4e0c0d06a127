"""Engine and messages with a contactless card: the ARQC kept for the advice of an offline tap,
a card that forbids deferred authorization, the AID's floor limit, the CVM on the result and receipt."""
# runtimes: unix
from mpt import eq, tmpdir

from payterm.card import tlv
from payterm.card.card import Card
from payterm.link import messages
from payterm.mask import pan_run
from payterm.printer import MERCHANT, receipt
from payterm.txn.journal import Journal
from txnfakes import FakeSup, engine as _engine, fault as _fault, journal_bytes

PAN = "4761739001010010"
# A field 55 as the kernel builds it (cryptogram, amount, UN ...): long digit runs in hex.
ICC = (tlv.encode(0x9F26, b"\x12\x34\x56\x78\x90\x12\x34\x56") + tlv.encode(0x9F27, b"\x80")
       + tlv.encode(0x9F02, b"\x00\x00\x00\x00\x12\x00") + tlv.encode(0x9F37, b"\x10\x20\x30\x40")
       + tlv.encode(0x9F36, b"\x00\x07") + tlv.encode(0x5F2A, b"\x09\x78"))


def tap(deferral=None, floor=None, cvm="none"):
    c = Card("tap", bytearray(PAN.encode()), "3012", service_code="201", entry_mode="071",
             track2=bytearray((PAN + "=3012201").encode()), icc=bytearray(ICC))
    c.kernel = "qvsdc"
    c.deferral = deferral
    c.floor_limit = floor
    c.cvm = cvm
    return c


class Sup(FakeSup):
    """Keeps a copy of field 55 as it went out (the card's buffer is wiped afterwards)."""

    def __init__(self, *script):
        FakeSup.__init__(self, *script)
        self.icc = []

    async def request(self, fields, deadline_ms=None):
        if "55" in fields:
            self.icc.append(bytes(fields["55"]))
        return await FakeSup.request(self, fields, deadline_ms)


def test_icc_text_round_trip_holds_no_card_number_run():
    t = messages.icc_text(ICC)
    eq(messages.icc_bytes(t), ICC)
    eq(pan_run(t), None)
    eq(pan_run(ICC.hex()) is None, False, "the plain hex would be refused by the journal")


async def test_offline_tap_keeps_its_arqc_and_the_advice_sends_it():
    d = tmpdir("eng_emv_off")
    sup = Sup(_fault("NET-03", False))
    e = _engine(d, sup)
    card = tap()
    r = await e.sale(card, 1200, 978)
    eq((r.approved, r.offline), (True, True))
    eq(sup.icc, [ICC], "the tap's field 55 went to the host first")
    eq(card.wiped, True)
    t = Journal(d).get(r.ref)
    eq(messages.icc_bytes(t["req"]["icc"]), ICC)
    eq(PAN.encode() in journal_bytes(d), False)
    adv = messages.advice(t["req"], t.get("auth"))
    eq((adv["t"], adv["55"]), ("0220", ICC), "the advice carries the ARQC")
    eq(messages.advice(t["req"], t.get("auth"), repeat=True)["55"], ICC)
    eq("55" in messages.reversal(t["req"]), False)


async def test_offline_tap_the_card_forbids_is_declined_with_its_code():
    d = tmpdir("eng_emv_deny")
    e = _engine(d, Sup(_fault("NET-03", False)))
    r = await e.sale(tap(deferral="CRD-20"), 1200, 978)
    eq((r.approved, r.code), (False, "CRD-20"))
    eq(Journal(d).get(r.ref)["st"], "failed")
    eq(e.saf.pending(), [])


async def test_offline_tap_above_the_aids_floor_limit_is_declined():
    d = tmpdir("eng_emv_floor")
    e = _engine(d, Sup(_fault("NET-03", False), _fault("NET-03", False)))
    r = await e.sale(tap(floor=1000), 1200, 978)
    eq((r.approved, r.code), (False, "SYS-08"))
    r = await e.sale(tap(floor=1000), 1000, 978)
    eq((r.approved, r.offline), (True, True))


async def test_online_tap_result_carries_the_cvm_and_the_receipt_asks_for_a_signature():
    d = tmpdir("eng_emv_cvm")
    e = _engine(d, Sup("00", "00"))
    r = await e.sale(tap(cvm="signature"), 7000, 978)
    eq((r.approved, r.cvm), (True, "signature"))
    lines = receipt(r, {"terminal_id": "TERM0042"}, (2026, 11, 23, 12, 0, 0, 0, 0), MERCHANT)
    assert "CARDHOLDER SIGNATURE" in lines, lines  # the cardholder signs the merchant's copy
    r = await e.sale(tap(cvm="cdcvm"), 7000, 978)
    lines = receipt(r, {"terminal_id": "TERM0042"}, (2026, 11, 23, 12, 0, 0, 0, 0), MERCHANT)
    assert "VERIFIED ON DEVICE" in lines and "CARDHOLDER SIGNATURE" not in lines, lines

"""Contactless EMV flow: PPSE, AID priority, PDOL, GPO, AFL records, extraction."""
# runtimes: unix
from mpt import eq

from payterm.errors import Fault
from payterm.card import emv, tlv
from test_card_fakes import FakeCard

NOW = 1795435200  # 2026-11-23 12:00 UTC
UN = b"\xde\xad\xbe\xef"
CFG = {"country": "0250", "ttq": "36004000"}


async def read(card, amount=1234, currency="978", cfg=CFG):
    async def xchg(apdu):
        r = card.respond(bytes(apdu))
        if r is None:
            raise Fault("CRD-11", "gone", "nfc")
        return r

    return await emv.read_card(xchg, amount, currency, cfg, NOW, UN)


async def code(card, **kw):
    try:
        await read(card, **kw)
    except Fault as f:
        return f.code
    raise AssertionError("no Fault")


async def test_a_card_number_in_the_name_tag_is_not_kept_as_the_name():
    c = await read(FakeCard(name="4761739001010010"))
    eq(c.name, "*" * 16)
    c = await read(FakeCard(name="SMITH/JOHN 3RD"))
    eq(c.name, "JOHN 3RD SMITH")


async def test_visa_read_extracts_everything():
    card = FakeCard(name="DOE/JANE")
    c = await read(card)
    eq(card.seen, ["ppse", "select", "gpo", "read", "read"])
    eq(c.source, "tap")
    eq(c.entry_mode, "071")
    eq(c.masked, "476173******0010")
    eq(c.expiry, "3012")
    eq(c.service_code, "201")
    eq(c.name, "JANE DOE")
    eq(c.aid, "A0000000031010")
    eq(c.label, "VISA")
    f = c.auth_fields()
    eq(f["2"], "4761739001010010")
    eq(f["35"], "4761739001010010=301220100000")
    d = tlv.walk(f["55"])
    eq(d[0x9F26], b"\x11" * 8, "cryptogram from GPO")
    eq(d[0x9F37], UN)
    eq(d[0x9F02], b"\x00\x00\x00\x00\x12\x34")
    eq(d[0x5F2A], b"\x09\x78")
    eq(d[0x9A], b"\x26\x11\x23")
    assert "4761739001010010" not in repr(c)


async def test_pdol_data_follows_the_cards_order_and_lengths():
    # amount(6) currency(2) UN(4) TTQ(4) date(3) as the card's PDOL asks
    card = FakeCard()
    await read(card)
    # TTQ: the configured base with byte 2 b8 (online cryptogram required) added by the kernel
    eq(card.pdol_data, b"\x00\x00\x00\x00\x12\x34" + b"\x09\x78" + UN + b"\x36\x80\x40\x00" + b"\x26\x11\x23")
    # lengths differ from the standard: numeric right-aligned, binary left-aligned
    card = FakeCard(pdol=b"\x9f\x02\x04\x9f\x66\x02\x9f\x1a\x03\xdf\x01\x02")
    await read(card, amount=99)
    eq(card.pdol_data, b"\x00\x00\x00\x99" + b"\x36\x80" + b"\x00\x02\x50" + b"\x00\x00")


async def test_aid_priority_and_support():
    card = FakeCard(aids=(("A0000000043060", "MAESTRO", 2), ("A0000000041010", "MASTERCARD", 1)), pan="5555555555554444")
    c = await read(card)
    eq(c.aid, "A0000000041010", "priority 1 wins")
    eq(c.label, "MASTERCARD")
    c = await read(FakeCard(aids=(("A0000000043060", "MAESTRO", 2), ("A0000000041010", "MASTERCARD", 1)), pan="5555555555554444"),
                   cfg={"aids": ["A0000000043060"]})
    eq(c.aid, "A0000000043060", "only supported AID")
    eq(await code(FakeCard(aids=(("A0000009999999", "LOCAL", 1),))), "CRD-09")


async def test_status_words():
    eq(await code(FakeCard(sw={"ppse": 0x6A82})), "CRD-09", "no PPSE")
    eq(await code(FakeCard(sw={"select": 0x6A82})), "CRD-09", "AID not selectable")
    eq(await code(FakeCard(sw={"gpo": 0x6985})), "CRD-15", "GPO refused: use another interface")
    eq(await code(FakeCard(sw={"gpo": 0x6700})), "CRD-13")
    eq(await code(FakeCard(sw={"read": 0x6A83})), "CRD-16", "record missing")
    eq(await code(FakeCard(sw={"read": 0x6A88})), "CRD-13")
    eq(await code(FakeCard(sw={"ppse": 0x6F00})), "CRD-13")


async def test_card_checks():
    eq(await code(FakeCard(pan="4761739001010011")), "CRD-07", "Luhn")
    eq(await code(FakeCard(exp="2610")), "CRD-08", "expired")
    eq(await code(FakeCard(remove_at="read")), "CRD-11", "removed during records")


async def test_missing_and_inconsistent_data():
    card = FakeCard()
    recs = card.records()
    # records without PAN, track 2 or expiry
    card.records = lambda: {(1, 1): tlv.encode(0x70, tlv.encode(0x5F20, b"X")), (2, 1): recs[(2, 1)]}
    c = await read(card)
    eq(c.auth_fields()["2"], "4761739001010010", "5A alone is enough")
    card.records = lambda: {(1, 1): tlv.encode(0x70, tlv.encode(0x5F20, b"X")), (2, 1): tlv.encode(0x70, b"\x9f\x07\x01\x00")}
    eq(await code(card), "CRD-16", "no PAN")
    other = FakeCard(pan="4111111111111111")
    card.records = lambda: {(1, 1): other.records()[(1, 1)], (2, 1): recs[(2, 1)]}
    eq(await code(card), "CRD-13", "5A and 57 disagree")
    card.records = lambda: {(1, 1): b"\x71\x03\x5a\x01\x00", (2, 1): recs[(2, 1)]}
    eq(await code(card), "CRD-13", "not a 70 record")


async def test_gpo_format_1_and_bad_afl():
    mc = (("A0000000041010", "MASTERCARD", 1),)
    card = FakeCard(aids=mc, pan="5413330089010434", raw={"gpo": b"\x80\x0a\x18\x80\x08\x01\x01\x00\x10\x01\x01\x00"})
    c = await read(card)
    eq(c.expiry, "3012")
    eq(card.seen[-1], "genac", "M/Chip: GENERATE AC after the records")
    eq(await code(FakeCard(raw={"gpo": b"\x80\x0a\x20\x00\x08\x01\x01\x00\x10\x01\x01\x00"})), "CRD-17",
       "qVSDC: a format 1 GPO answer has no cryptogram")
    eq(await code(FakeCard(raw={"gpo": b"\x80\x05\x20\x00\x08\x01\x01"})), "CRD-13", "AFL not 4n")
    eq(await code(FakeCard(raw={"gpo": b"\x80\x06\x20\x00\x08\x02\x01\x00"})), "CRD-13", "last < first")
    eq(await code(FakeCard(raw={"gpo": b"\x80\x06\x20\x00\x00\x01\x01\x00"})), "CRD-13", "SFI 0")
    eq(await code(FakeCard(raw={"gpo": b"\x77\x04\x94\x02\x08\x01"})), "CRD-13", "no AIP")


def test_currency_codes():
    eq(emv.currency_code("EUR"), "978")
    eq(emv.currency_code(840), "840")
    eq(emv.currency_code("36"), "036")
    try:
        emv.currency_code("EURO")
    except Fault as f:
        eq(f.code, "SYS-07")
    else:
        raise AssertionError("bad currency accepted")

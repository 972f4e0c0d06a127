"""The contactless kernel step by step: terminal data, DOL filling, AID table and limits,
CVM, qVSDC and M/Chip cryptograms, mag-stripe mode, terminal tags in records, deferral."""
# runtimes: unix
from mpt import eq

from payterm.errors import Fault
from payterm.card import emv, emvrisk, emvterm, tlv
from payterm.config import DEFAULTS
from test_card_fakes import FakeCard, tlv as T

NOW = 1795435200 + 3723  # 2026-11-23 13:02:03 UTC
UN = b"\xde\xad\xbe\xef"
MC = (("A0000000041010", "MASTERCARD", 1),)
MC_PAN = "5413330089010434"


async def read(card, amount=1234, cfg=None):
    async def xchg(apdu):
        r = card.respond(bytes(apdu))
        if r is None:
            raise Fault("CRD-11", "gone", "nfc")
        return r

    return await emv.read_card(xchg, amount, "978", cfg or {"country": "0276"}, NOW, UN)


async def code(card, **kw):
    try:
        c = await read(card, **kw)
    except Fault as f:
        return f.code
    raise AssertionError("no Fault: %r" % c)


def icc(card):
    return tlv.walk(card.auth_fields()["55"])


# ---------------------------------------------------------------- terminal data


def test_terminal_data_is_the_terminals():
    cfg = emv._Params({"country": "0276"})
    d = emvterm.terminal_data(1234, "EUR", cfg, NOW, UN)
    eq(d[0x9F02], b"\x00\x00\x00\x00\x12\x34")
    eq(d[0x9F03], bytes(6))
    eq(d[0x5F2A], b"\x09\x78")
    eq(d[0x9F1A], b"\x02\x76")
    eq(d[0x9A], b"\x26\x11\x23")
    eq(d[0x9F21], b"\x13\x02\x03")
    eq(d[0x9C], b"\x00")
    eq(d[0x9F37], UN, "UN as the RNG gave it")
    eq(d[0x9F66], b"\x22\x80\x40\x00", "TTQ: qVSDC, signature, online cryptogram required, CDCVM")
    eq(d[0x95], b"\x80\x00\x00\x00\x00", "TVR: no offline data authentication")
    eq(d[0x9F33], b"\x40\x28\x00")
    eq(d[0x9F35], b"\x22")
    eq(d[0x9F40], bytes.fromhex("6000F0A001"))
    d = emvterm.terminal_data(1234, "978", emv._Params({"online_pin": True}), NOW, UN, cvm_required=True,
                              above_floor=True)
    eq(d[0x9F66], b"\x26\xc0\x40\x00", "TTQ: online PIN, CVM required")
    eq(d[0x9F33][1] & 0x40, 0x40, "9F33: enciphered PIN online")
    eq(d[0x95][3], 0x80, "TVR: above the floor limit")
    try:
        emvterm.terminal_data(1, "978", cfg, NOW, b"\x01\x02")
    except Fault as f:
        eq(f.code, "SYS-09")
    else:
        raise AssertionError("a 2-byte UN was taken")


def test_dol_filling_book3_5_4():
    td = {0x9F02: b"\x00\x00\x00\x00\x12\x34", 0x9F66: b"\x22\x80\x40\x00", 0x9F37: UN}
    dol = bytes.fromhex("9F0204" "9F0208" "9F6602" "9F6606" "9F3704" "DF0102" "BF0C03")
    eq(emvterm.dol_data(dol, td),
       b"\x00\x00\x12\x34"  # n shorter: leftmost digits cut
       + b"\x00\x00\x00\x00\x00\x00\x12\x34"  # n longer: leading zeros
       + b"\x22\x80"  # b shorter: rightmost bytes cut
       + b"\x22\x80\x40\x00\x00\x00"  # b longer: trailing zeros
       + UN + b"\x00\x00"  # unknown tag: zeros
       + b"\x00\x00\x00", "constructed tag: zeros")
    card = {0x5A: bytearray(b"\x54\x13\x33"), 0x9F02: bytearray(b"\x99" * 6), 0x9F45: bytearray(b"\xab\xcd")}
    got = emvterm.dol_data(bytes.fromhex("5A059F02069F4502"), td, card)
    eq(bytes(got), b"\x54\x13\x33\xff\xff" + b"\x00\x00\x00\x00\x12\x34" + b"\xab\xcd",
       "cn padded with F; a terminal tag never from card data; a card tag from the card")
    assert isinstance(got, bytearray), "wipeable"


# ---------------------------------------------------------------- AID table and limits


def test_aid_table_defaults_and_overrides():
    t = emvrisk.aid_table(emv._Params({}))
    eq([e["aid"] for e in t], [e["aid"] for e in DEFAULTS["aids"]])
    by = {e["aid"]: e for e in t}
    assert "A0000003591010028001" in by and "A0000000043060" in by and "A0000000032020" in by, "debit AIDs"
    eq((by["A0000000031010"]["kernel"], by["A0000000041010"]["kernel"], by["A0000003591010028001"]["kernel"]),
       ("qvsdc", "mchip", "mchip"))
    eq((by["A0000000031010"]["tx_limit"], by["A0000000031010"]["cvm_limit"], by["A0000000031010"]["floor_limit"]),
       (DEFAULTS["cl_tx_limit"], DEFAULTS["cl_cvm_limit"], DEFAULTS["floor_limit"]))
    eq((by["A0000000031010"]["deferred"], by["A0000000041010"]["deferred"]), (True, False))
    t = emvrisk.aid_table(emv._Params({"aids": ["a000000003", {"aid": "A0000000031010", "cvm_limit": 2500,
                                                              "kernel": "qvsdc", "priority": 2, "deferred": False}],
                                       "cl_tx_limit": 9000}))
    eq(emvrisk.match(t, "A0000000031010")["cvm_limit"], 2500, "the longest matching entry")
    eq(emvrisk.match(t, "A0000000032010")["tx_limit"], 9000, "prefix entry, terminal-wide limit")
    eq(emvrisk.match(t, "A0000000041010"), None)
    for bad in ({"aid": "A00"}, {"aid": "A0000000031010", "kernel": "x"}, {"aid": "A0000000031010", "tx_limit": -1},
                {"aid": "A0000000031010", "priority": 0}, {"aid": "A0000000031010", "oops": 1}, 7):
        assert emvrisk.entry_error(bad), bad


async def test_amount_above_the_contactless_limit_never_reaches_gpo():
    card = FakeCard()
    eq(await code(card, amount=5001, cfg={"cl_tx_limit": 5000}), "CRD-14")
    eq(card.seen, ["ppse"], "not selected, no GPO")
    c = await read(FakeCard(), amount=5000, cfg={"cl_tx_limit": 5000})
    eq(c.source, "tap", "at the limit is allowed")
    # Another AID on the card with a higher limit is taken instead.
    two = FakeCard(aids=(("A0000000031010", "VISA", 1), ("A0000000041010", "MASTERCARD", 2)))
    c = await read(two, amount=7000, cfg={"aids": [{"aid": "A0000000031010", "tx_limit": 5000},
                                                  {"aid": "A0000000041010", "kernel": "qvsdc"}]})
    eq(c.aid, "A0000000041010")


async def test_terminal_priority_breaks_ties_of_the_cards_priority():
    aids = (("A0000000031010", "VISA", 1), ("A0000000041010", "MASTERCARD", 1))
    c = await read(FakeCard(aids=aids, kernel="qvsdc"),
                   cfg={"aids": [{"aid": "A0000000031010", "priority": 2}, {"aid": "A0000000041010", "priority": 1,
                                                                         "kernel": "qvsdc"}]})
    eq(c.aid, "A0000000041010")


# ---------------------------------------------------------------- CVM


def test_cvm_decision():
    e = {"cvm_limit": 5000}
    no = emv._Params({})
    pin = emv._Params({"online_pin": True})
    eq(emvrisk.cvm("qvsdc", e, 5000, no), "none")
    eq(emvrisk.cvm("qvsdc", e, 5001, no), "signature")
    eq(emvrisk.cvm("qvsdc", e, 5001, pin), "online_pin")
    eq(emvrisk.cvm("qvsdc", e, 5001, pin, ctq=b"\x40\x00"), "signature", "the card asks for signature only")
    eq(emvrisk.cvm("qvsdc", e, 5001, no, ctq=b"\x00\x80"), "cdcvm")
    eq(emvrisk.cvm("qvsdc", e, 100, no, ctq=b"\x00\x80"), "cdcvm")
    eq(emvrisk.cvm("mchip", e, 5001, no, aip=b"\x18\x80"), "signature")
    eq(emvrisk.cvm("mchip", e, 5001, pin, aip=b"\x18\x80"), "online_pin")
    eq(emvrisk.cvm("mchip", e, 5001, no, aip=b"\x1a\x80"), "cdcvm")
    eq(emvrisk.cvm("mchip", e, 100, no, aip=b"\x1a\x80"), "none")


async def test_cvm_on_the_card_and_in_the_data():
    c = await read(FakeCard(), amount=7500)
    eq(c.cvm, "signature")
    eq(icc(c)[0x9F34], b"\x1e\x00\x00")
    c = await read(FakeCard(ctq=b"\x00\x80"), amount=7500)
    eq(c.cvm, "cdcvm")
    card = FakeCard(aids=MC, pan=MC_PAN, aip=b"\x1a\x80")
    c = await read(card, amount=7500)
    eq(c.cvm, "cdcvm")
    eq(card.cdol_data[-3:], b"\x01\x00\x02", "CVM results in CDOL1 before GENERATE AC")
    c = await read(FakeCard(aids=MC, pan=MC_PAN), amount=100)
    eq(c.cvm, "none")
    eq(icc(c)[0x9F34], b"\x1f\x00\x02")


# ---------------------------------------------------------------- qVSDC


async def test_qvsdc_cryptogram_from_the_gpo_answer():
    card = FakeCard(extra=T(0x9F26, b"\x99" * 8) + T(0x9F36, b"\x99\x99"))
    c = await read(card)
    eq(card.seen, ["ppse", "select", "gpo", "read", "read"], "no GENERATE AC")
    eq(c.kernel, "qvsdc")
    d = icc(c)
    eq((d[0x9F26], d[0x9F27], d[0x9F36], d[0x9F10]), (b"\x11" * 8, b"\x80", b"\x00\x07", FakeCard.IAD_VISA),
       "cryptogram from GPO, never from a record")
    eq(d[0x9F66][1] & 0x80, 0x80, "TTQ in field 55")
    eq(d[0x84], bytes.fromhex("A0000000031010"))
    eq(d[0x5F34], b"\x01")
    for tag in (0x5A, 0x57, 0x5F20, 0x5F24):
        assert tag not in d, "no card holder data in field 55: %x" % tag
    eq(c.deferral, None, "a qVSDC ARQC may be authorized later")


async def test_qvsdc_cryptogram_type_and_missing_data():
    eq(await code(FakeCard(crypto=False)), "CRD-17")
    eq(await code(FakeCard(cid=0x00)), "CRD-18", "AAC")
    eq(await code(FakeCard(cid=0x40)), "CRD-17", "a TC is no ARQC: online only")
    # No 9F27: the type is read from the CVR in the IAD (A0: ARQC).
    card = FakeCard()
    card._crypto = lambda iad: T(0x9F36, b"\x00\x07") + T(0x9F26, card.AC) + T(0x9F10, iad)
    c = await read(card)
    eq(0x9F27 in icc(c), False)


# ---------------------------------------------------------------- M/Chip


async def test_mchip_generate_ac_with_cdol1():
    card = FakeCard(aids=MC, pan=MC_PAN)
    c = await read(card)
    eq(card.seen, ["ppse", "select", "gpo", "read", "read", "genac"])
    eq(c.kernel, "mchip")
    want = (b"\x00\x00\x00\x00\x12\x34" + bytes(6) + b"\x02\x76" + b"\x80\x00\x00\x00\x00" + b"\x09\x78"
            + b"\x26\x11\x23" + b"\x00" + UN + b"\x22" + b"\x1f\x00\x02")
    eq(card.cdol_data, want, "CDOL1 filled from the terminal's data")
    d = icc(c)
    eq((d[0x9F26], d[0x9F27], d[0x9F10]), (card.AC, b"\x80", FakeCard.IAD_MC))
    eq(0x9F66 in d, False, "no TTQ in an M/Chip field 55")
    eq(c.deferral, "CRD-20", "an M/Chip ARQC is completed online")
    c = await read(FakeCard(aids=MC, pan=MC_PAN, genac_format=1))
    eq(icc(c)[0x9F26], FakeCard.AC, "format 1 answer")


async def test_mchip_failures():
    eq(await code(FakeCard(aids=MC, pan=MC_PAN, cid=0x00)), "CRD-18", "AAC")
    eq(await code(FakeCard(aids=MC, pan=MC_PAN, crypto=False)), "CRD-17")
    eq(await code(FakeCard(aids=MC, pan=MC_PAN, crypto=False, genac_format=1)), "CRD-17")
    eq(await code(FakeCard(aids=MC, pan=MC_PAN, sw={"genac": 0x6985})), "CRD-13")
    eq(await code(FakeCard(aids=MC, pan=MC_PAN, remove_at="genac")), "CRD-11")
    eq(await code(FakeCard(aids=MC, pan=MC_PAN, aip=b"\x18\x00")), "CRD-19", "AIP: no EMV mode")
    card = FakeCard(aids=MC, pan=MC_PAN, kernel="qvsdc", extra=T(0x9F6B, b"\x54\x13\x33\x00\x89\x01\x04\x34\xd3\x01"))
    card.kernel = "mchip-magstripe"  # records without CDOL1, mag-stripe data
    eq(await code(card), "CRD-19", "9F6B without CDOL1")
    card = FakeCard(aids=MC, pan=MC_PAN, kernel="qvsdc")
    card.kernel = "mchip-nocdol"
    eq(await code(card), "CRD-16", "no CDOL1")


async def test_terminal_tags_in_records_never_reach_field_55():
    bad = (T(0x9F66, b"\x0e\x70") + T(0x9F02, b"\x00\x00\x99\x99\x99\x99") + T(0x9F37, b"\xca\xfe\xba\xbe")
           + T(0x95, b"\xff" * 5) + T(0x9A, b"\x99\x12\x31") + T(0x5F2A, b"\x08\x40") + T(0x9F1A, b"\x08\x40")
           + T(0x9F33, b"\xff\xff\xff") + T(0x9F35, b"\x99") + T(0x9F03, b"\x99" * 6) + T(0x9C, b"\x20"))
    for card in (FakeCard(extra=bad), FakeCard(aids=MC, pan=MC_PAN, extra=bad)):
        c = await read(card)
        d = icc(c)
        eq(d[0x9F02], b"\x00\x00\x00\x00\x12\x34")
        eq(d[0x9F37], UN)
        eq(d[0x95], b"\x80\x00\x00\x00\x00")
        eq(d[0x9A], b"\x26\x11\x23")
        eq(d[0x5F2A], b"\x09\x78")
        eq(d[0x9F1A], b"\x02\x76")
        eq(d[0x9F33], b"\x40\x28\x00")
        eq(d[0x9F35], b"\x22")
        eq(d[0x9F03], bytes(6))
        eq(d[0x9C], b"\x00")
        if card.kernel == "qvsdc":
            eq(d[0x9F66], b"\x22\x80\x40\x00", "the terminal's TTQ, not the record's 9F66")
        else:
            eq(0x9F66 in d, False)
            eq(card.cdol_data[:6], b"\x00\x00\x00\x00\x12\x34", "CDOL1 from the terminal too")


async def test_deferral_follows_the_aid_parameter():
    c = await read(FakeCard(aids=MC, pan=MC_PAN), cfg={"aids": [{"aid": "A0000000041010", "deferred": True}]})
    eq(c.deferral, None)
    c = await read(FakeCard(), cfg={"aids": [{"aid": "A0000000031010", "deferred": False, "floor_limit": 300}]})
    eq((c.deferral, c.floor_limit), ("CRD-20", 300))


async def test_magstripe_mode_when_the_terminal_takes_it():
    static = bytes.fromhex("5413330089010434D3012201" + "0" * 13 + "F")
    recs = T(0x9F6B, static) + T(0x9F65, b"\x00\x0e") + T(0x9F66, b"\x0e\x70") + T(0x9F67, b"\x03")
    card = FakeCard(aids=MC, pan=MC_PAN, kernel="qvsdc", aip=b"\x00\x00", extra=recs)
    card.kernel = "mchip-magstripe"
    eq(await code(card), "CRD-19", "off by default")
    c = await read(card, cfg={"country": "0276", "cl_magstripe": True})
    eq(card.seen[-1], "ccc")
    eq(card.udol_data, b"\x00\x00\x05\x59", "9F6A: nUN = 6 - 3 digits of the RNG's UN (DEADBEEF: ...559)")
    f = c.auth_fields()
    # DD, bit 0 rightmost: nUN 3 | CVC3 4660 -> 660 at bits 1-3 | UN 559 at bits 4-6 | ATC 007 at bits 9-11
    eq(bytes(f["35"]), b"5413330089010434=3012201" + b"0007005596603")
    eq("55" in f, False, "no field 55 in mag-stripe mode")
    eq((c.entry_mode, c.deferral, c.kernel), ("911", "CRD-20", "mchip"))
    eq(await code(FakeCard(aids=MC, pan=MC_PAN, kernel="qvsdc", aip=b"\x00\x00", extra=T(0x9F6B, static))),
       "CRD-19")
    bad = FakeCard(aids=MC, pan=MC_PAN, kernel="qvsdc", aip=b"\x00\x00", extra=T(0x9F6B, static))
    bad.kernel = "mchip-magstripe"
    eq(await code(bad, cfg={"cl_magstripe": True}), "CRD-16", "no bitmaps")


# ---------------------------------------------------------------- DOL lengths from the card (fuzz findings)


async def test_a_dol_asking_for_more_than_a_command_carries_is_crd_13():
    # The EMV fuzz target's crashes: a PDOL whose entries carry long-form lengths (5A 83FFFFFF: 16 MB,
    # 8A 83FFFFFF) made dol_data allocate what the card asked for: MemoryError instead of a Fault.
    amex = (("A00000002501", "AMEX", 1),)
    eq(await code(FakeCard(pan="374245455400126", aids=amex, pdol=bytes.fromhex("9f02055a83ffffff9f6a81ff"))),
       "CRD-13", "PDOL of the fuzz case (seed 6 case 342)")
    eq(await code(FakeCard(pdol=bytes.fromhex("9f66188a83ffffff9f02069f661c"))), "CRD-13",
       "PDOL of the fuzz case (seed 7 case 3629)")
    eq(await code(FakeCard(pdol=bytes.fromhex("9f0281ff9f3702"))), "CRD-13", "255 + 2 bytes")
    c = await read(FakeCard(pdol=bytes.fromhex("9f6604" "df0181f8")))
    eq(len(c.auth_fields()["2"]), 16, "252 bytes of PDOL data still fit the GPO command")
    mc = FakeCard(aids=MC, pan=MC_PAN)
    mc.CDOL1 = bytes.fromhex("9f0206" "9f3783ffffff")
    eq(await code(mc), "CRD-13", "CDOL1 asking for 16 MB")
    static = bytes.fromhex("5413330089010434D3012201" + "0" * 13 + "F")
    recs = (T(0x9F6B, static) + T(0x9F65, b"\x00\x0e") + T(0x9F66, b"\x0e\x70") + T(0x9F67, b"\x03")
            + T(0x9F69, bytes.fromhex("9f6a8300ffff")))
    ms = FakeCard(aids=MC, pan=MC_PAN, kernel="qvsdc", aip=b"\x00\x00", extra=recs)
    ms.kernel = "mchip-magstripe"
    eq(await code(ms, cfg={"cl_magstripe": True}), "CRD-13", "UDOL asking for 64 KB")
    try:
        emvterm.dol_data(bytes.fromhex("9f02830fffff"), {})
    except Fault as f:
        eq(f.code, "CRD-13")
    else:
        raise AssertionError("dol_data filled a 1 MB DOL")

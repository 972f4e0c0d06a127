"""Request builders: every message encodes under spec87 and names its original."""
from mpt import raises, eq

from payterm.link import iso8583, messages as m

CARD = {"2": "4761739001010010", "14": "2812", "22": "901"}
EPOCH = 1767225600 + 3 * 3600 + 4 * 60 + 5  # 2026-01-01 03:04:05 UTC


def _round_trip(f):
    d = iso8583.decode(iso8583.encode(f))
    for k in f:
        eq(d[k], f[k], "field " + k)
    return d


def test_sale_and_refund():
    s = _round_trip(m.sale("000123", "TERM0001", 1050, "978", CARD, mid="MERCHANT0000001", epoch=EPOCH))
    eq((s["t"], s["3"], s["4"], s["7"], s["12"], s["13"]), ("0200", "000000", "000000001050", "0101030405", "030405", "0101"))
    r = _round_trip(m.refund("000124", "TERM0001", 500, "978", CARD))
    eq(r["3"][:2], "20", "refund processing code")
    raises(ValueError, m.amount, -1)
    raises(ValueError, m.amount, 10 ** 12)


def test_reversal_repeats_and_names_original():
    sale = m.sale("000123", "TERM0001", 1050, "978", CARD, epoch=EPOCH)
    built = m.reversal(sale)
    rev = _round_trip(built)
    eq(rev["t"], "0400")
    eq(rev["90"][:20], "0200" + "000123" + "0101030405", "original MTI, STAN, time")
    eq(len(rev["90"]), 42)
    eq((rev["2"], rev["4"], rev["11"]), (CARD["2"], "000000001050", "000123"))
    rep = m.reversal(sale, repeat=True)
    eq(rep["t"], "0401")
    rep["t"] = "0400"
    eq(rep, built, "a repeat differs only in the MTI")


def test_void_advice_and_network():
    sale = m.sale("000123", "TERM0001", 1050, "978", CARD, epoch=EPOCH)
    v = _round_trip(m.void("000130", sale, rrn="000000000042"))
    eq((v["3"], v["4"], v["90"][4:10], v["37"]), ("020000", "000000001050", "000123", "000000000042"))
    a = _round_trip(m.advice(sale, auth_code="Y1OFFL"))
    eq((a["t"], a["38"], a["11"]), ("0220", "Y1OFFL", "000123"))
    eq(m.advice(sale, repeat=True)["t"], "0221")
    e = _round_trip(m.network("000200", "TERM0001"))
    eq((e["t"], e["70"]), ("0800", "301"))
    eq(m.network("000201", nmi=m.NMI_LOGON)["70"], "001")

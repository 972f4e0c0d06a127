"""One PAN detector (payterm.mask.pan_run) for masking and for the journal's guard: 12-19 digits."""
# runtimes: unix
from mpt import eq, raises, tmpdir

from payterm.errors import Fault
from payterm.mask import luhn_ok, mask_pan, pan_run, scrub

PAN12 = "501800000009"  # 12 digits, Luhn-valid (Maestro lengths start at 12)
PAN16 = "4761739001010010"


def test_pan_run_lengths():
    eq(pan_run("pan " + PAN16 + " ok"), (4, 20))
    eq(pan_run("x" + PAN12 + "y"), (1, 13), "12-digit card number")
    eq(pan_run("12345678901"), None, "11 digits is no card number")
    eq(pan_run("1234567890123"), (0, 13), "13 digits always counts")
    eq(pan_run("9" * 25), (0, 25), "a longer run may hold a PAN")
    eq(pan_run("stan 000123 amt 000000001250"), None, "field 4 amount (zero-led)")
    eq(pan_run("rrn 123456789012"), None, "12 digits failing Luhn")
    eq(pan_run("rrn 000000000018"), None, "zero-led 12 digits, even Luhn-valid")
    eq(pan_run("rrn 123456789012", 0, True), (4, 16), "every=True: every 12-digit run")
    eq(pan_run(b"t2 " + PAN16.encode() + b"=3012"), (3, 19), "bytes-like")
    eq(pan_run(bytearray(PAN12.encode())), (0, 12))


def test_scrub_and_mask():
    eq(scrub("card " + PAN16 + "=3012"), "card 476173******0010=3012")
    eq(scrub("paste " + PAN12), "paste ************", "12 digits are masked whole")
    eq(scrub("n " + "1" * 22), "n " + "*" * 22)
    eq(scrub("ts 1700000000 stan 000123"), "ts 1700000000 stan 000123", "short numbers stay")
    eq(scrub("rrn 123456789012", False), "rrn 123456789012", "every=False: only what may be a PAN")
    eq(mask_pan(bytearray(PAN16.encode())), "476173******0010")
    eq(mask_pan(memoryview(PAN16.encode())), "476173******0010")
    eq(mask_pan(PAN12), "*" * 12)
    assert luhn_ok(PAN12) and luhn_ok(bytearray(PAN16.encode()))


def test_journal_refuses_12_to_19_digit_pans():
    from payterm.txn.journal import Journal

    j = Journal(tmpdir("pg_j"))
    for pan in (PAN12, "5018000000000003", PAN16, "6" * 19):
        e = raises(Fault, j.create, "00000%d" % len(pan), {"pan": pan})
        eq(e.code, "SYS-09", pan)
    # what a real record holds stays accepted: amounts, RRNs, STANs, times
    j.create("000001", {"pan": "476173******0010", "stan": "000001", "ts": 1795435200,
                        "req": {"4": "000000001250", "7": "1123120000"}, "rrn": "123456789012"})
    j.update("000001", {"rrn": "000000000018", "st": "approved"})
    eq(j.get("000001")["rrn"], "000000000018")


def test_card_accepts_12_digit_pan_and_masks_it_whole():
    from payterm.card.card import Card, check_pan

    check_pan(PAN12)
    c = Card("swipe", PAN12, "3012")
    eq(c.masked, "*" * 12)
    assert PAN12 not in repr(c)

"""Magstripe swipes as reader modules send them (ISO/IEC 7811-2 / 7813)."""
# runtimes: unix core core-asan
from mpt import raises, eq

from payterm.errors import Fault
from payterm.card import magstripe as m
from payterm.card.card import luhn_ok

NOW = 1795435200  # 2026-11-23 12:00 UTC
PAN = "4761739001010010"
T1 = "B%s^DOE/JOHN Q^3012101000000" % PAN
T2 = "%s=30121010000000" % PAN


def lrc(track, base):
    x = 0
    for ch in track:
        x ^= (ord(ch) - base) & 0x3F
    return chr(x + base)


def full(t1=T1, t2=T2, with_lrc=True, term="\r\n"):
    a = "%" + t1 + "?"
    b = ";" + t2 + "?"
    if with_lrc:
        a += lrc(a, 0x20)
        b += lrc(b, 0x30)
    return (a + b + term).encode()


def code(data, **kw):
    e = raises(Fault, m.card_from_swipe, data, NOW, **kw)
    return e.code


def test_both_tracks_with_lrc_and_crlf():
    c = m.card_from_swipe(full(), NOW, chip_available=True)
    eq(c.source, "swipe")
    eq(c.expiry, "3012")
    eq(c.service_code, "101")
    eq(c.name, "JOHN Q DOE", "SURNAME/GIVEN reordered")
    eq(c.entry_mode, "901")
    eq(c.masked, "476173******0010")
    f = c.auth_fields()
    eq(f["2"], PAN)
    eq(f["35"], T2)


def test_without_lrc_and_terminator_variants():
    for term in ("\r\n", "\r", "\n", ""):
        c = m.card_from_swipe(full(with_lrc=False, term=term), NOW)
        eq(c.auth_fields()["2"], PAN, "terminator %r" % term)


def test_sentinel_stripped_tracks_on_separate_lines():
    data = (T1 + "\r\n" + T2 + "\r\n").encode()
    tracks = m.decode(data)
    eq(tracks[1], T1)
    eq(tracks[2], T2)
    eq(m.card_from_swipe(data, NOW).name, "JOHN Q DOE")


def test_track2_only_and_track1_only():
    only2 = (";" + T2 + "?\r").encode()
    c = m.card_from_swipe(only2, NOW)
    eq(c.name, "")
    eq(c.auth_fields()["2"], PAN)
    only1 = ("%" + T1 + "?\r").encode()
    c = m.card_from_swipe(only1, NOW)
    eq(c.auth_fields()["2"], PAN)
    assert "35" not in c.auth_fields(), "no track 2 to send"


def test_track3_is_ignored():
    data = full(term="") + b";0112345678901234567890?\r\n"
    eq(m.card_from_swipe(data, NOW).auth_fields()["35"], T2)


def test_lrc_equal_to_a_sentinel_is_not_mistaken():
    # Search a track 1 whose LRC is ';' and check the next track still parses.
    for i in range(2000):
        t1 = "B%s^DOE/%s^3012101%d" % (PAN, chr(65 + i % 26) * (1 + (i // 26) % 3), i)
        a = "%" + t1 + "?"
        if lrc(a, 0x20) == ";":
            break
    else:
        raise AssertionError("no sample with LRC ';'")
    without = (a + ";" + T2 + "?\r\n").encode()
    tr = m.decode(without)
    eq(tr[1], t1, "track 1 without LRC")
    eq(tr[2], T2, "';' is track 2's start sentinel")
    withl = (a + ";" + ";" + T2 + "?\r\n").encode()
    tr = m.decode(withl)
    eq(tr[1], t1)
    eq(tr[2], T2, "';' LRC then track 2")


def test_per_track_read_errors():
    a = "%" + T1 + "?"
    b = ";" + T2 + "?"
    eq(code(b""), "CRD-02", "no data at all")
    eq(code(b"\r\n"), "CRD-02", "terminator only")
    eq(code(b"%?;?\r\n"), "CRD-02", "empty tracks")
    eq(code((T2 + "?\r").encode()), "CRD-03", "track 2 without start sentinel")
    eq(code((";" + T2 + "\r").encode()), "CRD-04", "track 2 without end sentinel")
    eq(code((b + chr(ord(lrc(b, 0x30)) ^ 1) + "\r").encode()), "CRD-05", "track 2 bad LRC")
    eq(code((";4761\x7f39001010010=3012101?\r").encode()), "CRD-06", "parity error shows as bad char")
    eq(code(b";47617390\xb101010010=3012101?\r"), "CRD-06", "8-bit garbage")
    eq(code(b"%E?;E?\r"), "CRD-06", "reader module error report")
    tr = m.decode((a + ";" + T2 + "\r").encode())
    eq(tr[1], T1, "good track 1 survives")
    eq(tr[2].code, "CRD-04", "track 2 no end sentinel")


def test_one_bad_track_does_not_spoil_the_other():
    a = "%" + T1 + "?"
    c = m.card_from_swipe(("%B4761\x01?" + ";" + T2 + "?\r").encode(), NOW)
    eq(c.auth_fields()["35"], T2)
    c = m.card_from_swipe((a + ";" + T2 + "\r").encode(), NOW)
    eq(c.auth_fields()["2"], PAN, "track 1 used when track 2 has no end sentinel")


def test_lrc_required():
    eq(code(full(with_lrc=False), lrc_required=True), "CRD-05")
    m.card_from_swipe(full(), NOW, lrc_required=True)


def test_pan_checks():
    bad = PAN[:-1] + "1"
    assert not luhn_ok(bad)
    eq(code(full(T1.replace(PAN, bad), T2.replace(PAN, bad))), "CRD-07", "Luhn")
    short = "42424242424"  # 11 digits
    eq(code((";" + short + "=3012101?\r").encode()), "CRD-07", "too short")
    long = "4" * 20
    eq(code((";" + long + "=3012101?\r").encode()), "CRD-07", "too long")


def test_tracks_disagree():
    other = "4111111111111111"
    eq(code(full(T1, T2.replace(PAN, other))), "CRD-06")


def test_expiry_against_clock():
    eq(code(full(T1.replace("3012", "2610"), T2.replace("3012", "2610"))), "CRD-08", "last month")
    c = m.card_from_swipe(full(T1.replace("3012", "2611"), T2.replace("3012", "2611")), NOW)
    eq(c.expiry, "2611", "valid through the end of its month")
    eq(code(full(T1.replace("3012", "3013"), T2.replace("3012", "3013"))), "CRD-06", "month 13")


def test_service_code_rules():
    def sw(sc, **kw):
        return full(T1.replace("3012101", "3012" + sc), T2.replace("3012101", "3012" + sc))

    eq(code(sw("201")), "CRD-10", "chip card, chip available")
    eq(code(sw("601")), "CRD-10", "national chip card")
    c = m.card_from_swipe(sw("201"), NOW, chip_available=True, fallback=True)
    eq(c.entry_mode, "801", "fallback swipe")
    c = m.card_from_swipe(sw("201"), NOW, chip_available=False)
    eq(c.entry_mode, "901", "terminal without chip reader")
    eq(code(sw("103")), "CRD-09", "ATM only")
    eq(code(sw("104")), "CRD-09", "cash only")
    eq(code(sw("301")), "CRD-09", "unassigned first digit")
    m.card_from_swipe(sw("120"), NOW)


def test_repr_and_wipe_never_show_pan():
    c = m.card_from_swipe(full(), NOW)
    for s in (repr(c), str(c), c.masked):
        assert PAN not in s and "3012101" not in s, s
    c.wipe()
    raises(Fault, c.auth_fields)
    eq(c.masked, "476173******0010", "masked survives the wipe")


def test_a_card_number_in_the_name_field_is_not_kept_as_the_name():
    # Found by the fuzzer: track 1 "B<PAN>^<PAN>^..." made the PAN the cardholder name (a str, unwipeable).
    for field, want in ((PAN, "*" * 16), ("4761 7390 0101 0010", "**** **** **** ****"),
                        ("DOE/%s" % PAN, "%s DOE" % ("*" * 16)), ("DOE/JOHN 3RD", "JOHN 3RD DOE")):
        c = m.card_from_swipe(full(t1="B%s^%s^3012101000000" % (PAN, field)), NOW)
        eq(c.name, want, field)
        for s in (c.name, repr(c), c.masked):
            assert PAN not in s, s


def test_missing_start_sentinels_with_lrc():
    a = "%" + T1 + "?"
    b = ";" + T2 + "?"
    la, lb = lrc(a, 0x20), lrc(b, 0x30)
    both = (a[1:] + la + b[1:] + lb + "\r\n").encode()
    tr = m.decode(both)
    eq(tr[1].code, "CRD-03", "track 1")
    eq(tr[2].code, "CRD-03", "track 2")
    eq(code(both), "CRD-03")
    only2 = (a + la + b[1:] + lb + "\r\n").encode()
    tr = m.decode(only2)
    eq(tr[1], T1, "track 1 intact, its LRC consumed")
    eq(tr[2].code, "CRD-03")
    eq(m.card_from_swipe(only2, NOW).auth_fields()["2"], PAN, "track 1 alone carries the sale")


def test_civil_date_known_days():
    from payterm.card.card import civil_date

    eq(civil_date(0), (1970, 1, 1))
    eq(civil_date(951782400), (2000, 2, 29), "leap day")
    eq(civil_date(NOW), (2026, 11, 23))
    eq(civil_date(4102444799), (2099, 12, 31))


def test_tracks_are_views_and_the_card_keeps_its_own_copy():
    buf = bytearray(full())
    tr = m.decode(memoryview(buf))
    assert isinstance(tr[2], memoryview), "a slice of the reader's buffer, no str copy"
    c = m.card_from_swipe(memoryview(buf), NOW)
    for i in range(len(buf)):
        buf[i] = 0  # the reader overwrites its buffer once the card is built
    f = c.auth_fields()
    eq(bytes(f["2"]), PAN.encode(), "the card has its own copy")
    eq(bytes(f["35"]), T2.encode())
    for k in ("2", "14", "35"):
        assert isinstance(f[k], bytearray), k
    c.wipe()
    for k in ("2", "14", "35"):
        eq(f[k], bytearray(len(f[k])), "field %s zeroed by wipe()" % k)

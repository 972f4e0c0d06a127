# runtimes: unix core core-asan
"""ISO 8583 codec: wire layout against the 1987 standard, and error paths."""
from mpt import raises, eq

from payterm.errors import Fault
from payterm.link import iso8583
from payterm.link.iso8583 import Codec

PAN = "4761739001010010"


def _sale():
    return {"t": "0200", "2": PAN, "3": "000000", "4": "000000001000", "11": "000123", "41": "TERM0001"}


def test_primary_bitmap_layout():
    b = iso8583.encode(_sale())
    eq(b[:4], b"0200", "MTI")
    # Fields 2,3,4 -> 0x70; 11 -> second byte 0x20; 41 -> sixth byte 0x80 (bit 1 = leftmost).
    eq(b[4:12], b"\x70\x20\x00\x00\x00\x80\x00\x00", "bitmap")
    eq(b[12:30], b"16" + PAN.encode(), "LLVAR PAN")
    eq(b[30:], b"000000" + b"000000001000" + b"000123" + b"TERM0001", "fixed fields")


def test_round_trip_with_secondary_bitmap_and_binary():
    m = _sale()
    m["55"] = b"\x9f\x02\x06\x00\x00\x00\x00\x10\x00"
    m["70"] = "301"
    m["128"] = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    b = iso8583.encode(m)
    eq(b[4] & 0x80, 0x80, "bit 1 announces secondary bitmap")
    d = iso8583.decode(b)
    eq(d["p"][:2], "F0", "primary bitmap hex")
    eq(d["1"], "0400000000000001", "secondary: 70 (bit 6) and 128 (bit 64)")
    for k in m:
        eq(d[k], m[k], "field " + k)
    assert b"009\x9f\x02" in b, "LLLVAR ICC data with ASCII length"


def test_empty_llvar_and_int_keys():
    d = iso8583.decode(iso8583.encode({"t": "0800", 11: "000001", "44": ""}))
    eq(d["44"], "", "zero-length LLVAR")
    eq(d["11"], "000001", "int key encodes as its field number")


def test_encode_rejects_bad_input():
    for bad in (
        {"t": "020"},
        {"t": "0200", "65": b"12345678"},
        {"t": "0200", "129": "x"},
        {"t": "0200", "x": "1"},
        {"t": "0200", "2": "4" * 20},
        {"t": "0200", "3": "00000"},
        {"t": "0200", "41": "TERM\u00e90001"[:8]},
        {"t": "0200", "2": PAN.encode()},
        {"t": "0200", "55": "9F02"},
    ):
        raises(ValueError, iso8583.encode, bad)


def test_buffer_is_reused_but_results_are_independent():
    c = Codec(bufsize=64)
    a = c.encode({"t": "0800", "11": "000001", "70": "301"})
    b = c.encode({"t": "0810", "11": "000002", "39": "00", "70": "301"})
    eq(c.decode(a)["11"], "000001", "first result untouched by the second encode")
    eq(c.decode(b)["39"], "00", "second")
    raises(ValueError, c.encode, {"t": "0200", "48": "x" * 100})


def _decode_fault(data):
    e = raises(Fault, iso8583.decode, data)
    eq(e.code, "HST-02", "code for %r" % (data[:20],))
    return e


def test_decode_faults_are_hst02():
    good = iso8583.encode(_sale())
    _decode_fault(good[:-1])  # truncated last field
    _decode_fault(good + b"X")  # trailing bytes
    _decode_fault(good[:3])  # truncated MTI
    _decode_fault(good[:9])  # truncated bitmap
    _decode_fault(good[:12] + b"1X" + good[14:])  # bad LL length
    _decode_fault(good[:12] + b"25" + good[14:])  # LL length over max 19
    _decode_fault(good[:30] + b"\xff" + good[31:])  # non-ASCII text
    # Bit 65 in the secondary bitmap would announce a tertiary bitmap.
    _decode_fault(b"0200" + b"\x80" + b"\x00" * 7 + b"\x80" + b"\x00" * 7)
    _decode_fault(b"")


def test_bcd_spec_layout():
    fields = {
        2: (2, 19, "n", "n", "PAN"),
        3: (0, 6, "n", "a", "Processing code"),
        35: (2, 37, "a", "b", "Track 2"),
        48: (3, 999, "a", "n", "Private"),
    }
    c = Codec(fields=fields, mti_enc="n", bitmap_enc="a")
    m = {"t": "0200", "2": "476173900101001", "3": "200000", "35": "ABC", "48": "hello"}
    b = c.encode(m)
    eq(b[:2], b"\x02\x00", "BCD MTI")
    eq(b[2:18], b"6000000020010000", "ASCII hex bitmap: fields 2,3 (0x60), 35 (byte 5 0x20), 48 (byte 6 0x01)")
    eq(b[18:27], b"\x15\x04\x76\x17\x39\x00\x10\x10\x01", "BCD LL length 15 + left-padded BCD PAN")
    eq(b[27:30], b"\x20\x00\x00", "fixed BCD")
    eq(b[30:34], b"\x03ABC", "binary length")
    eq(b[34:], b"\x00\x05hello", "BCD LLL length in two bytes")
    d = c.decode(b)
    for k in m:
        eq(d[k], m[k], "field " + k)
    raises(ValueError, c.encode, {"t": "0200", "3": "20000A"})
    _bad = bytearray(b)
    _bad[18] = 0x1A  # not a BCD length
    eq(raises(Fault, c.decode, bytes(_bad)).code, "HST-02", "bad BCD length")
    _bad = bytearray(b)
    _bad[19] = 0x14  # odd-length BCD must be padded with 0
    eq(raises(Fault, c.decode, bytes(_bad)).code, "HST-02", "bad BCD pad")


def test_response_mti():
    eq(iso8583.response_mti("0200"), "0210")
    eq(iso8583.response_mti("0400"), "0410")
    eq(iso8583.response_mti("0401"), "0410")
    eq(iso8583.response_mti("0221"), "0230")
    eq(iso8583.response_mti("0800"), "0810")


def test_frame_has_length_header_and_shares_the_buffer():
    c = Codec(bufsize=128)
    m = {"t": "0800", "11": "000007", "70": "301"}
    f = c.frame(m)
    body = c.encode(m)
    eq(len(f), len(body) + 2, "header + body")
    f = c.frame(m)
    eq((f[0] << 8) | f[1], len(body), "big-endian length")
    eq(bytes(f[2:]), body, "same bytes as encode")


def test_card_data_as_bytearrays_is_encoded_in_place_and_wiped():
    # Card.auth_fields() hands out bytearrays (wipeable); text fields take them like str
    pan = bytearray(PAN.encode())
    t2 = bytearray(b"4761739001010010=30121010000000")
    m = {"t": "0200", "2": pan, "3": "000000", "11": "000123", "14": bytearray(b"3012"), "35": t2,
         "55": bytearray(b"\x9f\x26\x02\x11\x22")}
    c = Codec()
    ref = c.encode(dict(m, **{"2": PAN, "14": "3012", "35": str(t2, "ascii"), "55": bytes(m["55"])}))
    eq(bytes(c.frame(m)[2:]), ref, "same bytes as with str values")
    assert bytes(c._buf).find(PAN.encode()) >= 0
    c.wipe()
    eq(bytes(c._buf), bytes(len(c._buf)), "encode buffer zeroed")
    raises(ValueError, c.encode, {"t": "0200", "2": bytearray(b"4761\xe9")})
    raises(ValueError, c.encode, {"t": "0200", "2": PAN.encode()})  # immutable bytes in a text field: a mix-up
    bcd = Codec(fields={2: (2, 19, "n", "n", "PAN")}, mti_enc="n", bitmap_enc="b")
    eq(bcd.encode({"t": "0200", "2": bytearray(b"476173900101001")}), bcd.encode({"t": "0200", "2": "476173900101001"}),
       "BCD from a bytearray")
    e = raises(ValueError, bcd.encode, {"t": "0200", "2": "4761739001010A1"})
    assert "4761739001" not in str(e), "no card digits in the error"

"""BER-TLV parsing of card responses (EMV Book 3 Annex B)."""
# runtimes: unix core core-asan
from mpt import raises, eq

from payterm.errors import Fault
from payterm.card import tlv


def bad(data):
    e = raises(Fault, tlv.walk, data)
    eq(e.code, "CRD-13", "malformed TLV %r" % (data,))


def test_multibyte_tags_and_long_lengths():
    long_val = bytes(range(200))
    data = b"\x9f\x02\x06\x00\x00\x00\x00\x10\x00" + b"\x5f\x2a\x02\x09\x78" + b"\xdf\x81\x01\x81\xc8" + long_val
    its = tlv.items(data)
    eq([t for t, _ in its], [0x9F02, 0x5F2A, 0xDF8101])
    eq(bytes(its[0][1]), b"\x00\x00\x00\x00\x10\x00")
    eq(bytes(its[2][1]), long_val, "0x81 long form")
    two = b"\x70\x82\x01\x04" + b"\x5a\x82\x01\x00" + bytes(256)
    eq(len(tlv.walk(two)[0x5A]), 256, "0x82 long form")


def test_nested_templates_flatten_first_wins():
    inner = b"\x61\x08\x4f\x03\xa0\x00\x01\x50\x01\x41" + b"\x61\x08\x4f\x03\xa0\x00\x02\x50\x01\x42"
    fci = b"\x6f" + bytes((len(inner) + 6,)) + b"\xa5" + bytes((len(inner) + 4,)) + b"\xbf\x0c\x81" + bytes((len(inner),)) + inner
    d = tlv.walk(fci)
    eq(d[0x4F], b"\xa0\x00\x01", "first directory entry wins")
    disc = tlv.find(fci, (0x6F, 0xA5, 0xBF0C))
    eq(len(tlv.find_all(disc, 0x61)), 2)
    eq(tlv.find(fci, (0x6F, 0x84)), None, "absent path")


def test_padding_between_objects():
    eq(tlv.walk(b"\x00\x00\x5a\x01\x12\xff\xff\x9f\x36\x02\x00\x01")[0x9F36], b"\x00\x01")


def test_encode_round_trip():
    for tag, n in ((0x5A, 8), (0x9F10, 127), (0xBF0C, 128), (0xDF8101, 300)):
        v = bytes((i & 0xFF for i in range(n)))
        enc = tlv.encode(tag, v)
        its = tlv.items(enc)
        eq(len(its), 1)
        eq(its[0][0], tag)
        eq(bytes(its[0][1]), v)
    eq(tlv.constructed(0xBF0C), True)
    eq(tlv.constructed(0x9F38), False)


def test_dol():
    eq(tlv.parse_dol(b"\x9f\x66\x04\x9f\x02\x06\x5f\x2a\x02\x9a\x03"), [(0x9F66, 4), (0x9F02, 6), (0x5F2A, 2), (0x9A, 3)])
    raises(Fault, tlv.parse_dol, b"\x9f\x66")


def test_malformed_is_rejected_cleanly():
    bad(b"\x5a")  # no length
    bad(b"\x5a\x05\x01\x02")  # value overruns
    bad(b"\x9f")  # truncated multi-byte tag
    bad(b"\x9f\x81\x82\x83\x01\x00")  # tag longer than 3 bytes
    bad(b"\x5a\x80\x00\x00")  # indefinite length
    bad(b"\x5a\x85\x00\x00\x00\x00\x01\x00")  # 5 length bytes
    bad(b"\x5a\x82\x01")  # truncated long length
    bad(b"\x70\x04\x5a\x05\x01\x02")  # inner overrun inside a template
    deep = b"\x5a\x01\x00"
    for _ in range(12):
        deep = b"\x70" + bytes((len(deep),)) + deep
    bad(deep)


def test_walk_values_are_wipeable_copies():
    data = bytearray(b"\x70\x0a\x5a\x08\x47\x61\x73\x90\x01\x01\x00\x10")
    d = tlv.walk(data)
    v = d[0x5A]
    assert isinstance(v, bytearray), "bytearray, not bytes"
    data[4] = 0
    eq(v[0], 0x47, "a copy, independent of the response buffer")
    tlv.wipe(d)
    eq(v, bytearray(8), "zeroed in place")
    eq(len(d), 0)
    out = bytearray(b"\x01")
    tlv.encode_into(out, 0x9F26, b"\x11" * 8)
    eq(bytes(out), b"\x01\x9f\x26\x08" + b"\x11" * 8)

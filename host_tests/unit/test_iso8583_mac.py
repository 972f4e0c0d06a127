"""The codec's MAC hook: the MAC is the last field (64, or 128 with a secondary bitmap), over the
message as encoded with its bit set, from the MTI up to the MAC (docs/keys.md)."""
from mpt import eq, raises

from payterm.crypto import cmac
from payterm.link import iso8583
from payterm.link.iso8583 import Codec

KEY = bytes(range(16))


def _mac(data):
    return cmac.mac(KEY, data, 8)


def _sale():
    return {"t": "0200", "3": "000000", "4": "000000001000", "11": "000123", "41": "TERM0001",
            "53": "1234567890ABCDEF00000001"}


def test_mac_in_field_64_over_everything_before_it():
    seen = []

    def mac(data):
        seen.append(bytes(data))
        return _mac(data)

    b = iso8583.encode(_sale(), mac)
    eq(len(seen), 1)
    eq(b[:-8], seen[0], "MAC input: the message up to the MAC field")
    eq(b[-8:], _mac(b[:-8]))
    eq(b[4 + 7] & 0x01, 0x01, "bit 64 set in the primary bitmap (that the MAC covers)")
    d = iso8583.decode(b)
    eq(d["64"], b[-8:])
    eq(iso8583.mac_of(d), b[-8:])
    eq(d["53"], "1234567890ABCDEF00000001", "field 53: the KSN, 24 characters")


def test_mac_in_field_128_when_a_secondary_bitmap_is_there():
    m = _sale()
    m["90"] = "0200000123" + "0" * 32
    b = iso8583.encode(m, _mac)
    d = iso8583.decode(b)
    assert "64" not in d and "1" in d
    eq(d["128"], b[-8:])
    eq(b[-8:], _mac(b[:-8]))
    eq(iso8583.mac_of(d), b[-8:])


def test_frame_has_the_length_header_before_the_maced_message():
    c = Codec()
    f = bytes(c.frame(_sale(), _mac))
    eq((f[0] << 8) | f[1], len(f) - 2)
    eq(f[-8:], _mac(f[2:-8]), "the header is not MACed")
    c.wipe()


def test_no_mac_field_given_by_hand_and_exactly_eight_bytes():
    m = _sale()
    m["64"] = bytes(8)
    raises(ValueError, iso8583.encode, m, _mac)
    raises(ValueError, iso8583.encode, _sale(), lambda data: b"\x00" * 7)
    eq(iso8583.mac_of(iso8583.decode(iso8583.encode(_sale()))), None, "no MAC: None")


def test_field_52_is_16_bytes_and_53_is_24_characters():
    m = _sale()
    m["52"] = bytes(16)
    eq(iso8583.decode(iso8583.encode(m))["52"], bytes(16))
    m["52"] = bytes(8)
    raises(ValueError, iso8583.encode, m)
    m = _sale()
    m["53"] = "1234567890ABCDEF"
    raises(ValueError, iso8583.encode, m)

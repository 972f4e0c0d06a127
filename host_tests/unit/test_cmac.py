# runtimes: unix
"""AES-CMAC (payterm.crypto.cmac) against the RFC 4493 and NIST SP 800-38B examples."""
from binascii import hexlify, unhexlify

from mpt import eq, raises

from payterm.crypto import cmac
from payterm.errors import Fault

# RFC 4493 section 4 / SP 800-38B Appendix D.1 (AES-128): key, subkeys K1 and K2
K128 = unhexlify("2b7e151628aed2a6abf7158809cf4f3c")
K1 = "fbeed618357133667c85e08f7236a8de"
K2 = "f7ddac306ae266ccf90bc11ee46d513b"
# the example message: the first 0, 16, 40 and 64 bytes of it
MSG = unhexlify(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710"
)
TAGS_128 = (
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
)
# SP 800-38B Appendix D.3 (AES-256), same messages
K256 = unhexlify("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
TAGS_256 = (
    (0, "028962f61b7bf89efc6b551f4667d983"),
    (16, "28a7023f452e8f82bd4bf28d8c37c35c"),
    (40, "aaf3d8f1de5640c232f5b169b9c911e6"),
    (64, "e1992190549f6ed5696a2c056c315410"),
)


def h(b):
    return hexlify(b).decode()


def test_subkeys_match_rfc4493():
    c = cmac.Cmac(K128)
    eq(h(c._k1), K1)
    eq(h(c._k2), K2)


def test_rfc4493_and_sp800_38b_examples():
    # AES-192 (D.2) is not run here: the unix port's cryptolib has no 192-bit keys, so the
    # terminal never uses them; test_hsm.py checks the D.2 tags against the host side.
    for key, tags in ((K128, TAGS_128), (K256, TAGS_256)):
        c = cmac.Cmac(key)
        for n, want in tags:
            eq(h(c.mac(MSG[:n])), want, "%d-bit key, %d bytes" % (len(key) * 8, n))
            eq(h(cmac.mac(key, MSG[:n])), want)
            eq(h(c.mac(bytearray(MSG[:n]))), want, "bytearray input")


def test_truncated_tag_for_field64_is_the_leftmost_8_bytes():
    c = cmac.Cmac(K128)
    eq(h(c.mac(MSG[:40], 8)), TAGS_128[2][1][:16])
    assert c.verify(MSG[:40], unhexlify(TAGS_128[2][1][:16]))
    assert c.verify(MSG[:40], unhexlify(TAGS_128[2][1]))


def test_long_messages_cross_the_chunk_boundaries_consistently():
    # the leading blocks go through C in 64-byte chunks: every split must give the
    # same chain as one message MACed block by block (CBC-MAC identity)
    c = cmac.Cmac(K128)
    data = bytes(range(256)) * 2
    from payterm.crypto import aes

    for n in (63, 64, 65, 79, 80, 81, 127, 128, 129, 200, 512):
        m = data[:n]
        # reference: plain CBC chain over padded blocks, per SP 800-38B 6.2, one block at a time
        full = n and n % 16 == 0
        blocks = (n + 15) // 16
        last = bytearray(16)
        tail = m[(blocks - 1) * 16:]
        for i in range(16):
            if full:
                last[i] = tail[i] ^ c._k1[i]
            else:
                b = tail[i] if i < len(tail) else (0x80 if i == len(tail) else 0)
                last[i] = b ^ c._k2[i]
        x = bytearray(16)
        e = aes.ecb(K128)
        for k in range(blocks - 1):
            aes.xor_into(x, m[k * 16:k * 16 + 16])
            x = bytearray(e.encrypt(x))
        aes.xor_into(x, last)
        eq(h(c.mac(m)), h(e.encrypt(x)), "length %d" % n)


def test_verify_rejects_a_changed_message_or_tag_and_check_raises_key07():
    c = cmac.Cmac(K128)
    tag = c.mac(MSG, 8)
    assert c.verify(MSG, tag)
    assert not c.verify(MSG[:-1] + b"\x00", tag)
    bad = bytearray(tag)
    bad[7] ^= 1
    assert not c.verify(MSG, bad)
    c.check(MSG, tag)
    e = raises(Fault, c.check, MSG, bad)
    eq(e.code, "KEY-07")


def test_truncated_field64_is_key05():
    c = cmac.Cmac(K128)
    tag = c.mac(MSG, 8)
    for bad in (tag[:7], b"", None, tag + bytes(9)):
        e = raises(Fault, c.verify, MSG, bad)
        eq(e.code, "KEY-05", repr(bad))


def test_wipe_clears_the_key_and_subkeys():
    c = cmac.Cmac(K128)
    c.wipe()
    eq(c._key, bytearray(16))
    eq(c._k1, bytearray(16))
    eq(c._k2, bytearray(16))

# runtimes: unix
"""ISO 9564-1 format 4 PIN block (payterm.crypto.pinblock) and DUKPT data encryption (payterm.crypto.data)."""
from binascii import hexlify, unhexlify

from mpt import eq, raises

from payterm.crypto import data, dukpt, pinblock
from payterm.errors import Fault

# ASC X9.24-3 test-vector supplement, format 4 example: PIN 1234, PAN 4111111111111111,
# random pad 2F69ADDE2E9E7ACE, under the PIN keys of counters 1 and 2 (Annex B BDK)
PAD = unhexlify("2F69ADDE2E9E7ACE")
PAN = "4111111111111111"
X9_BLOCKS = (
    ("AF8CB133A78F8DC2D1359F18527593FB", "A912150391AB65A67E52883D81CE2D15"),
    ("D30BDC73EC9714B000BEC66BDB7B6D09", "52A00503BD34BA1383F6A7EE9FE2547F"),
)
# psec 1.3.0 decipher_pinblock_iso_4 example: key, block, PAN -> PIN 1234
PSEC_KEY = unhexlify("00112233445566778899AABBCCDDEEFF")
PSEC_BLOCK = unhexlify("E4BE5B623AF7E006AC319E5B93544564")
PSEC_PAN = "1234567890123456"


def H(b):
    return hexlify(b).decode().upper()


def fixed_pad(n):
    assert n == 8
    return PAD


def test_x9_24_3_format4_examples():
    for key, want in X9_BLOCKS:
        pin = bytearray(b"1234")
        eq(H(pinblock.encipher(unhexlify(key), pin, PAN, fixed_pad)), want)
        eq(pinblock.decipher(unhexlify(key), unhexlify(want), PAN), bytearray(b"1234"))


def test_psec_example_deciphers():
    eq(pinblock.decipher(PSEC_KEY, PSEC_BLOCK, PSEC_PAN), bytearray(b"1234"))


def test_pin_block_under_a_dukpt_pin_key_end_to_end():
    d = dukpt.Dukpt(type("S", (), {"d": {}, "get": lambda s, k, v=None: s.d.get(k, v),
                                   "set": lambda s, k, v: s.d.__setitem__(k, v)})())
    d.install(bytearray(unhexlify("1273671EA26AC29AFA4D1084127652A1")), unhexlify("1234567890123456"))
    with d.begin() as t:
        eq(H(pinblock.encipher(t.pin_key(), bytearray(b"1234"), PAN, fixed_pad)), X9_BLOCKS[0][1])
    with d.begin() as t:
        eq(H(pinblock.encipher(t.pin_key(), bytearray(b"1234"), PAN, fixed_pad)), X9_BLOCKS[1][1])


def test_pan_field_encoding():
    out = bytearray(16)
    # psec's encode_pan_field_iso_4 example: 18 digits -> length nibble 6
    eq(H(pinblock.pan_field("112233445566778899", out)), "61122334455667788990000000000000")
    eq(H(pinblock.pan_field(PAN, out)), "44111111111111111000000000000000")
    eq(H(pinblock.pan_field("123456789012", out)), "01234567890120000000000000000000")
    # shorter than 12: right-justified in 12 digits, length nibble 0
    eq(H(pinblock.pan_field("12345", out)), "00000000123450000000000000000000")
    eq(H(pinblock.pan_field(b"4761739001010010", out)), "44761739001010010000000000000000")


def test_pin_digits_are_zeroed_by_the_builder_also_on_failure():
    pin = bytearray(b"987654")
    pinblock.encipher(PSEC_KEY, pin, PAN)
    eq(pin, bytearray(6))
    eq(pinblock._pin_field, bytearray(16), "PIN field buffer cleared")
    pin = bytearray(b"987654")
    raises(Fault, pinblock.encipher, PSEC_KEY, pin, "41111x")
    eq(pin, bytearray(6), "zeroed although the PAN was refused")
    eq(pinblock._pin_field, bytearray(16))


def test_random_pad_makes_every_block_different():
    seen = set()
    for _ in range(20):
        seen.add(pinblock.encipher(PSEC_KEY, bytearray(b"1234"), PAN))
    eq(len(seen), 20)
    for b in seen:
        eq(pinblock.decipher(PSEC_KEY, b, PAN), bytearray(b"1234"))


def test_pin_lengths_4_to_12_and_bad_pins_are_pin01_without_the_digits():
    for n in range(4, 13):
        pin = bytes(b"0123456789012"[:n])
        blk = pinblock.encipher(PSEC_KEY, bytearray(pin), PAN)
        eq(bytes(pinblock.decipher(PSEC_KEY, blk, PAN)), pin, "length %d" % n)
    for bad in (b"123", b"1234567890123", b"12a4", b""):
        e = raises(Fault, pinblock.encipher, PSEC_KEY, bytearray(bad), PAN)
        eq(e.code, "PIN-01", repr(bad))
        if bad:
            assert bad.decode() not in str(e), "PIN digits in the fault"
    e = raises(Fault, pinblock.encipher, PSEC_KEY, b"1234", PAN)  # immutable: cannot be zeroed
    eq(e.code, "PIN-01")
    eq(raises(Fault, pinblock.encipher, PSEC_KEY, bytearray(b"1234"), "").code, "CRD-07")
    eq(raises(Fault, pinblock.encipher, PSEC_KEY, bytearray(b"1234"), "1" * 20).code, "CRD-07")


def test_truncated_block_is_key05_and_wrong_key_or_pan_is_pin02():
    blk = unhexlify(X9_BLOCKS[0][1])
    key = unhexlify(X9_BLOCKS[0][0])
    for bad in (blk[:15], blk[:8], b"", None):
        eq(raises(Fault, pinblock.decipher, key, bad, PAN).code, "KEY-05", repr(bad))
    eq(raises(Fault, pinblock.decipher, key, blk, "4111111111111112").code, "PIN-02")
    eq(raises(Fault, pinblock.decipher, unhexlify(X9_BLOCKS[1][0]), blk, PAN).code, "PIN-02")


def test_data_encryption_round_trip_and_padding():
    key = unhexlify("A35C412EFD41FDB98B69797C02DCD08F")  # data key of counter 1
    for n in (0, 1, 15, 16, 17, 31, 32, 100):
        plain = bytes(range(n))
        c = data.encrypt(key, plain)
        eq(len(c), (n // 16 + 1) * 16, "length %d" % n)
        eq(bytes(data.decrypt(key, c)), plain)
    # CBC with a zero IV: the first block is AES_K(P1 xor 0)
    from payterm.crypto import aes

    c = data.encrypt(key, b"0123456789abcdef")
    eq(c[:16], aes.encrypt_block(key, b"0123456789abcdef"))


def test_data_that_does_not_decrypt_is_key06():
    key = unhexlify("A35C412EFD41FDB98B69797C02DCD08F")
    other = unhexlify("D639514AA33AC43AD9229E433D6D4E5B")
    c = data.encrypt(key, b"4111111111111111=2512")
    for bad in (c[:-1], b"", c[:16] + b"\x00" * 16):
        eq(raises(Fault, data.decrypt, key, bad).code, "KEY-06", repr(bad))
    # the wrong key gives garbage whose padding almost never parses
    eq(raises(Fault, data.decrypt, other, c).code, "KEY-06")

"""AES block helpers over MicroPython's `cryptolib` (FIPS 197 AES; modes from NIST SP 800-38A).

`cryptolib.aes(key, mode[, iv])` does the key expansion once per object and
then encrypts whole blocks in C. An object is one-way: once used to encrypt it
cannot decrypt (and the reverse), so decryption gets its own object.
Every AES object in payterm.crypto is made through `new()` so the benchmark
(tools/bench_crypto.py) can count key expansions and block operations.
"""
from micropython import const

from cryptolib import aes as _aes

BLOCK = const(16)  # FIPS 197 section 3.1: 128-bit block
_MODE_ECB = const(1)  # cryptolib mode numbers (SP 800-38A sections 6.1 and 6.2)
_MODE_CBC = const(2)

# FIPS 197 section 5: AES-128 and AES-256. No AES-192: the unix port's cryptolib (axTLS)
# refuses 24-byte keys, so the terminal never uses them (the ESP32's mbedTLS would).
KEY_SIZES = (16, 32)


def new(key, mode=_MODE_ECB, iv=None):
    if iv is None:
        return _aes(key, mode)
    return _aes(key, mode, iv)


def ecb(key):
    """An ECB cipher object for `key` (use it for one direction only)."""
    return new(key, _MODE_ECB)


def encrypt_block(key, block, out=None):
    """AES_K(block) for one 16-byte block; into `out` when given (no allocation)."""
    c = new(key, _MODE_ECB)
    if out is None:
        return c.encrypt(block)
    c.encrypt(block, out)
    return out


def decrypt_block(key, block, out=None):
    c = new(key, _MODE_ECB)
    if out is None:
        return c.decrypt(block)
    c.decrypt(block, out)
    return out


def cbc_encrypt(key, data, iv):
    """CBC over `data` (a multiple of 16 bytes) with `iv` (SP 800-38A section 6.2)."""
    return new(key, _MODE_CBC, iv).encrypt(data)


def cbc_decrypt(key, data, iv):
    return new(key, _MODE_CBC, iv).decrypt(data)


def xor_into(dst, src, n=BLOCK):
    """dst[i] ^= src[i] for the first n bytes (dst: bytearray or memoryview)."""
    for i in range(n):
        dst[i] ^= src[i]


def wipe(buf):
    """Overwrite a bytearray with zeros (key material, PIN digits) before it is dropped."""
    if isinstance(buf, bytearray):
        for i in range(len(buf)):
            buf[i] = 0


def equal(a, b):
    """Constant-time comparison of two byte strings (MAC verification)."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0

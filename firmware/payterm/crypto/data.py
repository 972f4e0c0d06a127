"""Data encryption with the transaction's DUKPT data key: card data at rest (store-and-forward).

Mode: AES-CBC (NIST SP 800-38A section 6.2) with a zero IV, padded with ISO/IEC
9797-1 padding method 2 (0x80 then zeros to a multiple of 16 bytes; always at
least one byte, so removal is unambiguous). X9.24-3 leaves the mode to the
application; CBC with a zero IV is what AES DUKPT data keys are commonly used
with by readers and HSMs, and is sound here because a data key encrypts one
record only: every transaction counter gives a fresh key, so no key ever sees
two messages under the same IV. The terminal cannot decrypt a record later
(the key's derivation register is erased once the transaction has its keys);
only the host can, from the BDK and the KSN stored beside the record.
"""
from micropython import const

from payterm.crypto import aes
from payterm.errors import Fault

_BLOCK = const(16)
_PAD = const(0x80)  # ISO/IEC 9797-1 padding method 2
_IV = bytes(16)


def encrypt(key, plain):
    """CBC(zero IV) of plain + padding method 2; a new bytes object."""
    n = len(plain)
    buf = bytearray((n // _BLOCK + 1) * _BLOCK)
    buf[:n] = plain
    buf[n] = _PAD
    try:
        return aes.cbc_encrypt(key, buf, _IV)
    finally:
        aes.wipe(buf)


def decrypt(key, cipher):
    """Inverse of `encrypt` (a bytearray the caller wipes); KEY-06 when it is not a valid record."""
    if not cipher or len(cipher) % _BLOCK:
        raise Fault("KEY-06", "data length %d" % len(cipher or b""), "key")
    out = bytearray(aes.cbc_decrypt(key, cipher, _IV))
    i = len(out) - 1
    while i >= 0 and out[i] == 0:
        i -= 1
    if i < len(out) - _BLOCK or out[i] != _PAD:
        aes.wipe(out)
        raise Fault("KEY-06", "data padding", "key")
    plain = bytearray(out[:i])
    aes.wipe(out)
    return plain

"""ISO 9564-1:2017 PIN block format 4 (AES), enciphered under the transaction's PIN key.

Plain text PIN field (16 bytes): control nibble 4, PIN length nibble (4..C),
the PIN digits, fill nibbles A up to nibble 15, then 8 random bytes.
Plain text PAN field (16 bytes): nibble M = PAN length - 12 (0 when shorter,
the PAN then right-justified in 12 digits with zeros on the left), the PAN
digits, zero nibbles to the end.
Encipherment (ISO 9564-1 format 4): A = AES_K(PIN field); B = A xor PAN field;
PIN block = AES_K(B): one key expansion and two AES block operations.

The PIN arrives as a bytearray of ASCII digits and `encipher` zeroes it, and its
own working buffers, before it returns or raises, so the PIN lives in RAM
only while the block is built. Nothing here logs or formats a PIN or a PAN.
"""
from micropython import const

from payterm.crypto import aes
from payterm.errors import Fault

_BLOCK = const(16)
_CONTROL = const(4)  # ISO 9564-1 format 4 control field
_FILL = const(0xA)  # fill digit
_PIN_MIN = const(4)  # ISO 9564-1: PIN length 4..12
_PIN_MAX = const(12)
_PAN_MAX = const(19)  # ISO/IEC 7812-1 PAN length
_PAN_BASE = const(12)  # PAN length field counts from 12 digits
_STAGE = "key"

_pin_field = bytearray(_BLOCK)  # preallocated: one PIN block at a time (hot path)
_pan_field = bytearray(_BLOCK)
_work = bytearray(_BLOCK)


def _digits(pan):
    if isinstance(pan, str):
        pan = pan.encode()
    n = len(pan)
    if not 1 <= n <= _PAN_MAX:
        raise Fault("CRD-07", "PAN length %d" % n, _STAGE)
    for c in pan:
        if not 0x30 <= c <= 0x39:
            raise Fault("CRD-07", "PAN not numeric", _STAGE)
    return pan


def _set_nibble(buf, i, v):
    b = i >> 1
    if i & 1:
        buf[b] = (buf[b] & 0xF0) | v
    else:
        buf[b] = (buf[b] & 0x0F) | (v << 4)


def pan_field(pan, out):
    """The format 4 plain text PAN field of `pan` (digits as str/bytes) into `out` (16 bytes)."""
    pan = _digits(pan)
    n = len(pan)
    for i in range(_BLOCK):
        out[i] = 0
    _set_nibble(out, 0, n - _PAN_BASE if n > _PAN_BASE else 0)
    pad = _PAN_BASE - n if n < _PAN_BASE else 0
    for k in range(n):
        _set_nibble(out, 1 + pad + k, pan[k] - 0x30)
    return out


def encipher(key, pin, pan, rng=None):
    """The 16-byte enciphered PIN block for `pin` (bytearray of ASCII digits, zeroed here) and `pan`.

    `rng(n)` gives the 8 random pad bytes (default os.urandom). PIN-01 when the PIN is
    not 4..12 digits, CRD-07 when the PAN is not 1..19 digits.
    """
    pf = _pin_field
    try:
        if not isinstance(pin, bytearray):
            raise Fault("PIN-01", "PIN must arrive as a bytearray", _STAGE)
        n = len(pin)
        ok = _PIN_MIN <= n <= _PIN_MAX
        for c in pin:
            if not 0x30 <= c <= 0x39:
                ok = False
        if not ok:
            raise Fault("PIN-01", "PIN length or digits", _STAGE)
        pf[0] = (_CONTROL << 4) | n
        for i in range(2, 16):  # nibbles 2..15: PIN digits then fill
            _set_nibble(pf, i, pin[i - 2] - 0x30 if i - 2 < n else _FILL)
        aes.wipe(pin)
        if rng is None:
            import os

            rng = os.urandom
        pad = rng(8)
        if len(pad) != 8:
            raise Fault("SYS-09", "random pad length", _STAGE)
        pf[8:16] = pad
        pan_field(pan, _pan_field)
        c = aes.ecb(key)
        w = _work
        c.encrypt(pf, w)  # A = AES_K(PIN field)
        aes.xor_into(w, _pan_field)  # B = A xor PAN field
        return c.encrypt(w)  # PIN block = AES_K(B)
    finally:
        aes.wipe(pin)
        aes.wipe(pf)
        aes.wipe(_pan_field)
        aes.wipe(_work)


def decipher(key, block, pan):
    """The PIN (bytearray of ASCII digits; wipe it after use) from an enciphered PIN block.

    The terminal never needs this in a payment; it is the inverse for self-tests and the
    cross-checks. KEY-05 when the block is not 16 bytes (a truncated field 52), PIN-02 when
    it does not decipher to a format 4 PIN field (wrong key, KSN or PAN).
    """
    if block is None or len(block) != _BLOCK:
        raise Fault("KEY-05", "field 52 length %d" % (0 if block is None else len(block)), _STAGE)
    w = bytearray(_BLOCK)
    pf = bytearray(_BLOCK)
    panf = bytearray(_BLOCK)
    try:
        c = aes.new(key, 1)
        c.decrypt(block, w)  # B
        aes.xor_into(w, pan_field(pan, panf))  # A
        c.decrypt(w, pf)  # PIN field
        n = pf[0] & 0x0F
        if pf[0] >> 4 != _CONTROL or not _PIN_MIN <= n <= _PIN_MAX:
            raise Fault("PIN-02", "not a format 4 PIN field", _STAGE)
        pin = bytearray(n)
        for i in range(2, 16):
            v = (pf[i >> 1] >> 4) if not i & 1 else (pf[i >> 1] & 0x0F)
            if i - 2 < n:
                if v > 9:
                    aes.wipe(pin)
                    raise Fault("PIN-02", "PIN digit not decimal", _STAGE)
                pin[i - 2] = 0x30 + v
            elif v != _FILL:
                aes.wipe(pin)
                raise Fault("PIN-02", "PIN fill not A", _STAGE)
        return pin
    finally:
        aes.wipe(w)
        aes.wipe(pf)
        aes.wipe(panf)

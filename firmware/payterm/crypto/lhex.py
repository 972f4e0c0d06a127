"""Letter hex: bytes as text with the nibbles 0..15 written as the letters a..p.

Ciphertext the terminal stores or forwards as text (store-and-forward card data,
docs/keys.md) must never look like a card number to the journal's guard, the
console scrubber or a scan of the flash (payterm.mask.pan_run: runs of 12-19
digits). Ordinary hex of random bytes holds a run of 13+ digits in about one
700-character record out of two; letter hex has no digit at all, so nothing it
encodes can ever be taken for a PAN. Two characters per byte, as hex.
"""
from micropython import const

_A = const(0x61)  # "a" stands for nibble 0


def encode(data):
    """str of 2 * len(data) letters a..p (high nibble first)."""
    out = bytearray(2 * len(data))
    for i in range(len(data)):
        b = data[i]
        out[2 * i] = _A + (b >> 4)
        out[2 * i + 1] = _A + (b & 15)
    s = out.decode()
    for i in range(len(out)):
        out[i] = 0
    return s


def decode(text):
    """bytearray from letter hex (str or bytes-like); ValueError when it is not letter hex."""
    if isinstance(text, str):
        text = text.encode()
    n = len(text)
    if n & 1:
        raise ValueError("odd length")
    out = bytearray(n // 2)
    for i in range(0, n, 2):
        hi = text[i] - _A
        lo = text[i + 1] - _A
        if not (0 <= hi < 16 and 0 <= lo < 16):
            for k in range(len(out)):
                out[k] = 0
            raise ValueError("not letter hex")
        out[i // 2] = (hi << 4) | lo
    return out

"""AES-CMAC (NIST SP 800-38B; RFC 4493 for AES-128) over bytes.

The terminal MACs a request with the transaction's MAC-generation key and
checks a response with its MAC-verification key (payterm.crypto.dukpt).
ISO 8583 field 64 holds 8 bytes, so the tag there is the leftmost 64 bits
(SP 800-38B section 5.5 allows Tlen = 64 for this use).

The CBC chain runs in C: every block but the last goes through one
`cryptolib` CBC object in chunks of a preallocated buffer, then the last
(masked) block through the same object, so a message costs
1 + ceil(len/16) AES block operations and two key expansions.
"""
from micropython import const

from payterm.crypto import aes
from payterm.errors import Fault

_BLOCK = const(16)
_RB = const(0x87)  # SP 800-38B section 5.3: R_128 = 0^120 || 10000111
_MIN_TAG = const(8)  # SP 800-38B Appendix A: at least 64 bits unless the risk is analysed
_CHUNK = const(64)  # bytes per C call for the leading blocks (a multiple of 16)
_ZERO = bytes(16)


def _dbl(src, dst):
    # SP 800-38B section 6.1 step 2/3: dst = (src << 1) xor (Rb if msb(src))
    carry = 0
    for i in range(_BLOCK - 1, -1, -1):
        b = src[i]
        dst[i] = ((b << 1) & 0xFF) | carry
        carry = b >> 7
    if carry:
        dst[_BLOCK - 1] ^= _RB


class Cmac:
    """CMAC under one AES key; `mac()` and `verify()` may be called many times."""

    def __init__(self, key):
        if len(key) not in aes.KEY_SIZES:
            raise Fault("KEY-04", "MAC key length %d" % len(key), "key")
        self._key = bytearray(key)
        self._k1 = bytearray(_BLOCK)
        self._k2 = bytearray(_BLOCK)
        self._last = bytearray(_BLOCK)
        self._chunk = bytearray(_CHUNK)
        l = aes.encrypt_block(self._key, _ZERO, bytearray(_BLOCK))  # L = CIPH_K(0^128)
        _dbl(l, self._k1)
        _dbl(self._k1, self._k2)
        aes.wipe(l)

    def mac(self, data, n=_BLOCK):
        """The leftmost `n` bytes of CMAC(key, data) (SP 800-38B section 6.2)."""
        size = len(data)
        nblocks = (size + _BLOCK - 1) // _BLOCK
        complete = size > 0 and size % _BLOCK == 0
        if nblocks == 0:
            nblocks = 1
        head = (nblocks - 1) * _BLOCK
        last = self._last
        if complete:
            for i in range(_BLOCK):
                last[i] = data[head + i] ^ self._k1[i]
        else:
            rest = size - head
            for i in range(_BLOCK):
                if i < rest:
                    b = data[head + i]
                elif i == rest:
                    b = 0x80  # padding 10^j (section 6.2 step 3)
                else:
                    b = 0
                last[i] = b ^ self._k2[i]
        c = aes.new(self._key, 2, _ZERO)  # CBC with a zero IV is the CMAC chain
        if head:
            mv = memoryview(data)
            chunk = self._chunk
            pos = 0
            while pos < head:
                k = head - pos
                if k > _CHUNK:
                    k = _CHUNK
                if k == _CHUNK:
                    c.encrypt(mv[pos:pos + k], chunk)
                else:
                    c.encrypt(mv[pos:pos + k], memoryview(chunk)[:k])
                pos += k
        tag = c.encrypt(last)
        return tag[:n] if n < _BLOCK else tag

    def verify(self, data, tag):
        """True when `tag` (8..16 bytes, e.g. field 64) is the CMAC of data; KEY-05 for a short tag."""
        if tag is None or len(tag) < _MIN_TAG or len(tag) > _BLOCK:
            raise Fault("KEY-05", "MAC field length %d" % (0 if tag is None else len(tag)), "key")
        return aes.equal(self.mac(data, len(tag)), tag)

    def check(self, data, tag):
        """Like `verify`, but a wrong MAC raises KEY-07."""
        if not self.verify(data, tag):
            raise Fault("KEY-07", "MAC mismatch", "key")

    def wipe(self):
        for b in (self._key, self._k1, self._k2, self._last, self._chunk):
            aes.wipe(b)


def mac(key, data, n=_BLOCK):
    c = Cmac(key)
    try:
        return c.mac(data, n)
    finally:
        c.wipe()

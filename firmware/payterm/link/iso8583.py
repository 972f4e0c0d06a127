"""ISO 8583 codec: message dicts in pyiso8583's form <-> wire bytes.

The acquirer side (and the host tools) use pyiso8583, so messages here keep
its shape: {"t": MTI, "2": ..., "55": b"..."} with field numbers as string
keys, text fields as str, binary fields as bytes. On decode the bitmaps come
back as "p"/"1" upper-case hex strings, as pyiso8583 returns them.

Encoding writes into one preallocated buffer: a sale request is built every
transaction and on the device the heap is small and fragments easily.
Card data reaches the codec as bytearrays (Card.auth_fields(): text fields
may be a bytearray of ASCII instead of a str, so the caller can wipe them)
and is written straight into that buffer without intermediate copies;
`wipe()` zeroes the buffer once the frame was sent.
Bad input from our own code is a programming error (ValueError); bad bytes
from the host are a host fault (HST-02) the supervisor must handle.
"""
from micropython import const

from payterm.errors import Fault
from payterm.link import spec87

# ISO 8583:1987 section 4.2: a bitmap is 64 bits; bit 1 announces the next one.
_BITMAP_BYTES = const(8)
# ISO 8583:1987 4.2: the MAC is field 64, or field 128 when a secondary bitmap is present.
_MAC1 = const(64)
_MAC2 = const(128)
# Longest frame the 2-byte length header of the link can carry.
_MAX_MSG = const(4096)
_DEFAULT_BUF = const(2048)

_HEX = "0123456789ABCDEF"


def _hex(b):
    out = []
    for x in b:
        out.append(_HEX[x >> 4])
        out.append(_HEX[x & 15])
    return "".join(out)


def _bad(detail):
    return Fault("HST-02", detail, "link")


class Codec:
    """One message layout (field table, MTI and bitmap encodings)."""

    def __init__(self, fields=None, mti_enc=None, bitmap_enc=None, bufsize=_DEFAULT_BUF):
        self.fields = spec87.FIELDS if fields is None else fields
        self.mti_enc = mti_enc or spec87.MTI_ENC
        self.bitmap_enc = bitmap_enc or spec87.BITMAP_ENC
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self._bm = bytearray(2 * _BITMAP_BYTES)
        self._hi = 0  # bytes of the buffer written since the last wipe

    # ------------------------------------------------------------ encode
    def encode(self, msg, mac=None):
        """Message dict -> bytes. Raises ValueError on a malformed dict.

        The result is a copy the caller cannot wipe: the link sends `frame()`.
        mac: see `frame`.
        """
        return bytes(self._mv[: self._encode(msg, 0, mac)])

    def wipe(self):
        """Zero the encode buffer (it held the last request, PAN and track data included)."""
        buf = self._buf
        for i in range(self._hi):
            buf[i] = 0
        self._hi = 0

    def frame(self, msg, mac=None):
        """Message with the link's 2-byte big-endian length header in front.

        Returns a memoryview into the shared buffer (no copy on the hot path):
        valid until the next encode/frame call.

        mac: None, or a callable(memoryview) -> 8 bytes (payterm.crypto.msgmac.Seal.mac).
        The message then carries its MAC as the last field: 64, or 128 when a
        secondary bitmap is present (ISO 8583:1987 4.2); the MAC is computed over
        the encoded message with that bit set, from the MTI up to the MAC field
        (docs/keys.md), and written in place after it.
        """
        end = self._encode(msg, 2, mac)
        n = end - 2
        if n > _MAX_MSG:
            raise ValueError("message longer than %d bytes" % _MAX_MSG)
        self._buf[0] = n >> 8
        self._buf[1] = n & 0xFF
        return self._mv[:end]

    def _encode(self, msg, start, mac=None):
        mti = msg.get("t")
        if not isinstance(mti, str) or len(mti) != 4:
            raise ValueError("MTI must be 4 characters")
        nums = []
        for k in msg:
            if k == "t" or k == "p" or k == "1":
                continue  # bitmaps are derived from the fields present
            try:
                n = int(k)
            except ValueError:
                raise ValueError("unknown field %r" % (k,))
            if n not in self.fields:
                raise ValueError("unknown field %r" % (k,))
            if mac is not None and (n == _MAC1 or n == _MAC2):
                raise ValueError("field %d is the codec's when it MACs" % n)
            nums.append(n)
        nums.sort()
        mac_field = 0
        if mac is not None:
            mac_field = _MAC2 if nums and nums[-1] > 64 else _MAC1
            nums.append(mac_field)
        bm = self._bm
        for i in range(2 * _BITMAP_BYTES):
            bm[i] = 0
        secondary = nums and nums[-1] > 64
        if secondary:
            bm[0] = 0x80
        for n in nums:
            bm[(n - 1) >> 3] |= 0x80 >> ((n - 1) & 7)
        self._pos = start
        if self.mti_enc == "n":
            self._put_bcd(mti)
        else:
            self._put(self._ascii(mti, "t"))
        nb = 2 * _BITMAP_BYTES if secondary else _BITMAP_BYTES
        if self.bitmap_enc == "a":
            self._put(_hex(bm[:_BITMAP_BYTES]).encode())
            if secondary:
                self._put(_hex(bm[_BITMAP_BYTES:nb]).encode())
        else:
            self._put(bm[:nb])
        for n in nums:
            if n != mac_field:
                self._field(n, msg[_key(n, msg)])
        if mac is not None and mac_field:
            tag = mac(self._mv[start:self._pos])
            if len(tag) != self.fields[mac_field][1]:
                raise ValueError("MAC of %d bytes" % len(tag))
            self._put(tag)
        return self._pos

    def _put(self, b):
        p = self._pos
        e = p + len(b)
        if e > len(self._buf):
            raise ValueError("message longer than %d bytes" % len(self._buf))
        self._mv[p:e] = b
        self._pos = e
        if e > self._hi:
            self._hi = e

    def _put_bcd(self, digits):
        """Packed BCD of ASCII digits (str or bytearray), left-padded with 0, written in place."""
        n = len(digits)
        nb = (n + 1) >> 1
        p = self._pos
        if p + nb > len(self._buf):
            raise ValueError("message longer than %d bytes" % len(self._buf))
        as_str = isinstance(digits, str)
        buf = self._buf
        k = -(n & 1)  # index of the high nibble of the first byte (-1: pad)
        for i in range(nb):
            hi = 0 if k < 0 else (ord(digits[k]) if as_str else digits[k]) - 48
            lo = (ord(digits[k + 1]) if as_str else digits[k + 1]) - 48
            if not (0 <= hi <= 9 and 0 <= lo <= 9):
                raise ValueError("not BCD digits")
            buf[p + i] = (hi << 4) | lo
            k += 2
        self._pos = p + nb
        if self._pos > self._hi:
            self._hi = self._pos

    @staticmethod
    def _ascii(value, name):
        """Bytes to write for a text field: a str, or a bytearray of ASCII (wipeable card data)."""
        if isinstance(value, bytearray):
            for x in value:
                if x > 127:
                    raise ValueError("field %s is not ASCII" % name)
            return value
        if not isinstance(value, str):
            raise ValueError("field %s must be str" % name)
        b = value.encode()
        if len(b) != len(value):
            raise ValueError("field %s is not ASCII" % name)
        return b

    def _field(self, n, value):
        len_type, max_len, data_enc, len_enc = self.fields[n][:4]
        if data_enc == "a":
            data = self._ascii(value, n)
            size = len(data)
        elif data_enc == "b":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise ValueError("field %d must be bytes" % n)
            data = value
            size = len(data)
        else:  # 'n': digits counted in nibbles
            if not isinstance(value, (str, bytearray)):
                raise ValueError("field %d must be a digit string" % n)
            data = None
            size = len(value)
        if len_type == 0:
            if size != max_len:
                raise ValueError("field %d is %d long, fixed %d" % (n, size, max_len))
        else:
            if size > max_len:
                raise ValueError("field %d is %d long, max %d" % (n, size, max_len))
            self._put_len(size, len_type, len_enc)
        if data is None:
            self._put_bcd(value)
        else:
            self._put(data)

    def _put_len(self, size, len_type, len_enc):
        if len_enc == "a":
            self._put(("%0*d" % (len_type, size)).encode())
        elif len_enc == "n":
            self._put_bcd("%0*d" % (len_type + (len_type & 1), size))
        else:
            nb = (len_type + 1) >> 1
            if size >> (8 * nb):
                raise ValueError("length %d does not fit" % size)
            self._put(size.to_bytes(nb, "big"))

    # ------------------------------------------------------------ decode
    def decode(self, data):
        """Wire bytes -> message dict. Raises Fault HST-02 on anything malformed."""
        mv = memoryview(data)
        end = len(mv)
        msg = {}
        if self.mti_enc == "n":
            if end < 2:
                raise _bad("truncated MTI")
            msg["t"] = _hex(mv[:2])
            pos = 2
        else:
            if end < 4:
                raise _bad("truncated MTI")
            msg["t"] = self._text(mv[:4], "t")
            pos = 4
        bm = self._bm
        pos = self._bitmap(mv, pos, 0)
        msg["p"] = _hex(bm[:_BITMAP_BYTES])
        nbits = 64
        if bm[0] & 0x80:
            pos = self._bitmap(mv, pos, _BITMAP_BYTES)
            msg["1"] = _hex(bm[_BITMAP_BYTES:])
            nbits = 128
            if bm[_BITMAP_BYTES] & 0x80:
                raise _bad("tertiary bitmap not supported")
        fields = self.fields
        for n in range(2, nbits + 1):
            if not bm[(n - 1) >> 3] & (0x80 >> ((n - 1) & 7)):
                continue
            spec = fields.get(n)
            if spec is None:
                raise _bad("unknown field %d" % n)
            len_type, max_len, data_enc, len_enc = spec[:4]
            if len_type == 0:
                size = max_len
            else:
                size, pos = self._len(mv, pos, len_type, len_enc, n)
                if size > max_len:
                    raise _bad("field %d length %d > %d" % (n, size, max_len))
            nbytes = (size + 1) >> 1 if data_enc == "n" else size
            if pos + nbytes > end:
                raise _bad("truncated in field %d" % n)
            raw = mv[pos : pos + nbytes]
            pos += nbytes
            if data_enc == "a":
                msg[str(n)] = self._text(raw, n)
            elif data_enc == "b":
                msg[str(n)] = bytes(raw)
            else:
                msg[str(n)] = self._bcd(raw, size, n)
        if pos != end:
            raise _bad("%d bytes after last field" % (end - pos))
        return msg

    def _bitmap(self, mv, pos, off):
        bm = self._bm
        if self.bitmap_enc == "a":
            e = pos + 2 * _BITMAP_BYTES
            if e > len(mv):
                raise _bad("truncated bitmap")
            for i in range(_BITMAP_BYTES):
                bm[off + i] = (_nib(mv[pos + 2 * i]) << 4) | _nib(mv[pos + 2 * i + 1])
            return e
        e = pos + _BITMAP_BYTES
        if e > len(mv):
            raise _bad("truncated bitmap")
        bm[off : off + _BITMAP_BYTES] = mv[pos:e]
        return e

    @staticmethod
    def _text(raw, name):
        for x in raw:
            if x > 127:
                raise _bad("field %s not ASCII" % name)
        return str(bytes(raw), "ascii")

    @staticmethod
    def _bcd(raw, size, n):
        s = _hex(raw)
        for ch in s:
            if ch > "9":
                raise _bad("field %d not BCD" % n)
        if len(s) != size:
            if s[0] != "0":
                raise _bad("field %d bad BCD pad" % n)
            s = s[1:]
        return s

    @staticmethod
    def _len(mv, pos, len_type, len_enc, n):
        if len_enc == "a":
            e = pos + len_type
            if e > len(mv):
                raise _bad("truncated length of field %d" % n)
            v = 0
            for x in mv[pos:e]:
                if not 48 <= x <= 57:
                    raise _bad("bad length of field %d" % n)
                v = v * 10 + x - 48
            return v, e
        e = pos + ((len_type + 1) >> 1)
        if e > len(mv):
            raise _bad("truncated length of field %d" % n)
        v = 0
        for x in mv[pos:e]:
            if len_enc == "n":
                if (x >> 4) > 9 or (x & 15) > 9:
                    raise _bad("bad BCD length of field %d" % n)
                v = v * 100 + (x >> 4) * 10 + (x & 15)
            else:
                v = (v << 8) | x
        return v, e


def _nib(x):
    if 48 <= x <= 57:
        return x - 48
    if 65 <= x <= 70:
        return x - 55
    if 97 <= x <= 102:
        return x - 87
    raise _bad("bitmap not hex")


def _key(n, msg):
    """The key a field number has in msg (string keys, ints tolerated)."""
    k = str(n)
    return k if k in msg else n


def mac_of(msg):
    """The MAC a decoded message carries as its last field (64, or 128 with a secondary
    bitmap), or None when it has none where one belongs."""
    if "1" in msg:
        return msg.get("128")
    return msg.get("64")


_codec = None


def codec():
    """The shared spec87 codec (one encode buffer for the whole firmware)."""
    global _codec
    if _codec is None:
        _codec = Codec()
    return _codec


def encode(msg, mac=None):
    return codec().encode(msg, mac)


def decode(data):
    return codec().decode(data)


def response_mti(mti):
    """MTI of the answer to a request: 0200 -> 0210, 0401 -> 0410, 0221 -> 0230."""
    # ISO 8583:1987 section 4.1.1: third digit 0/1 request/repeat -> response = class + 10.
    return mti[:2] + str(int(mti[2]) + 1) + "0"

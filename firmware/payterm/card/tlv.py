"""BER-TLV as EMV uses it (EMV 4.4 Book 3, Annex B), strict about bounds.

Card responses are untrusted input: every length is checked against the
enclosing buffer, nesting depth is bounded, and any inconsistency raises
Fault("CRD-13") instead of an IndexError escaping to the reader task.
`items` gives memoryview slices of the response, so parsing a record does
not copy it; `walk` copies values into bytearrays (never bytes) so the
card data a read collected can be overwritten afterwards (`wipe`).
"""
from micropython import const

from payterm.errors import Fault

_TAG_MORE = const(0x1F)  # Annex B1: low 5 bits all set -> subsequent tag bytes
_TAG_CONT = const(0x80)  # Annex B1: b8 set -> another tag byte follows
_CONSTRUCTED = const(0x20)  # Annex B1: b6 of the first tag byte
_LEN_LONG = const(0x80)  # Annex B2: b8 set -> b7..b1 = number of length bytes
_MAX_TAG_BYTES = const(3)  # EMV tags are at most 3 bytes long
_MAX_LEN_BYTES = const(3)  # no card response exceeds 2^24 bytes
_MAX_DEPTH = const(8)
_PAD_00 = const(0x00)  # Book 3 B1: 00 and FF may pad between TLV objects
_PAD_FF = const(0xFF)

_STAGE = "tlv"


def _bad(why):
    return Fault("CRD-13", "TLV: " + why, _STAGE)


def read_tag(buf, i, end):
    """Tag at buf[i] -> (tag as int, next index)."""
    if i >= end:
        raise _bad("truncated tag")
    first = buf[i]
    tag = first
    i += 1
    if first & _TAG_MORE == _TAG_MORE:
        n = 1
        while True:
            if i >= end:
                raise _bad("truncated tag")
            b = buf[i]
            i += 1
            n += 1
            if n > _MAX_TAG_BYTES:
                raise _bad("tag too long")
            tag = (tag << 8) | b
            if not b & _TAG_CONT:
                break
    return tag, i


def read_len(buf, i, end):
    """Length at buf[i] -> (length, next index). Indefinite form is rejected."""
    if i >= end:
        raise _bad("truncated length")
    b = buf[i]
    i += 1
    if b < _LEN_LONG:
        return b, i
    n = b & 0x7F
    if n == 0 or n > _MAX_LEN_BYTES:
        raise _bad("length form %02x" % b)
    if i + n > end:
        raise _bad("truncated length")
    ln = 0
    for k in range(n):
        ln = (ln << 8) | buf[i + k]
    return ln, i + n


def constructed(tag):
    """Whether the tag's first byte has the constructed bit (b6)."""
    while tag > 0xFF:
        tag >>= 8
    return bool(tag & _CONSTRUCTED)


def items(buf, start=0, end=None):
    """Top-level (tag, value memoryview) pairs of buf[start:end], in order."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    if end is None:
        end = len(mv)
    out = []
    i = start
    while i < end:
        if mv[i] == _PAD_00 or mv[i] == _PAD_FF:
            i += 1
            continue
        tag, i = read_tag(mv, i, end)
        ln, i = read_len(mv, i, end)
        if i + ln > end:
            raise _bad("value of %x overruns (%d > %d)" % (tag, ln, end - i))
        out.append((tag, mv[i:i + ln]))
        i += ln
    return out


def walk(buf, into=None, depth=0):
    """Flatten nested templates into {tag: bytearray}; primitive tags only.

    The first occurrence of a tag wins (EMV data objects are unique per
    card; a duplicate later in a record must not override the first).
    Constructed values are validated recursively so malformed nesting is
    caught even in templates the terminal does not use.
    """
    if depth > _MAX_DEPTH:
        raise _bad("nesting too deep")
    if into is None:
        into = {}
    for tag, val in items(buf):
        if constructed(tag):
            walk(val, into, depth + 1)
        elif tag not in into:
            into[tag] = bytearray(val)
    return into


def wipe(d):
    """Zero every value of a `walk` result in place and empty the dict."""
    if d is None:
        return
    for v in d.values():
        if isinstance(v, bytearray):
            for i in range(len(v)):
                v[i] = 0
    d.clear()


def find(buf, path):
    """Value of the first object along a tag path, e.g. (0x6F, 0xA5, 0xBF0C); None if absent."""
    cur = buf
    for tag in path:
        hit = None
        for t, v in items(cur):
            if t == tag:
                hit = v
                break
        if hit is None:
            return None
        cur = hit
    return bytes(cur)


def find_all(buf, tag):
    """Every value with this tag directly inside buf."""
    return [bytes(v) for t, v in items(buf) if t == tag]


def encode(tag, value):
    """One TLV object (tag as int) with the shortest length form."""
    out = bytearray()
    encode_into(out, tag, value)
    return bytes(out)


def encode_into(out, tag, value):
    """Append one TLV object to the bytearray `out` (no intermediate copy of value)."""
    if tag > 0xFFFF:
        out.append(tag >> 16)
    if tag > 0xFF:
        out.append((tag >> 8) & 0xFF)
    out.append(tag & 0xFF)
    n = len(value)
    if n >= 0x80:
        if n <= 0xFF:
            out.append(0x81)
        else:
            out.append(0x82)
            out.append(n >> 8)
    out.append(n & 0xFF)
    out.extend(value)


def parse_dol(buf):
    """Data Object List (Book 3 5.4): tag + length pairs, no values."""
    mv = memoryview(buf)
    end = len(mv)
    out = []
    i = 0
    while i < end:
        tag, i = read_tag(mv, i, end)
        ln, i = read_len(mv, i, end)
        out.append((tag, ln))
    return out

"""Magnetic stripe swipes (ISO/IEC 7811-2, 7813) as reader modules send them.

Reader modules differ: some send `%track1?;track2?` with sentinels and an
LRC character after each end sentinel, some strip the sentinels and put
each track on its own line, most end the swipe with CR and/or LF, and
many report an unreadable track as `%E?` / `;E?`. The decoder accepts all
of these and keeps one verdict per track, so a bad track 1 does not spoil
a good track 2, and the failure code says why a track was unusable the way
reader test reports do (no data, no start sentinel, no end sentinel, bad
LRC, parity/format).

Track data is never copied into str or bytes: tracks are memoryview slices
of the swipe buffer, and the Card gets its own bytearrays, so the reader's
buffer and the Card can both be overwritten once they are done with.
"""
from micropython import const

from payterm.errors import Fault
from payterm.card.card import Card, check_pan, check_expiry, name_text, same_bytes, ENTRY_SWIPE, ENTRY_FALLBACK

# ISO/IEC 7811-2 track 1 (IATA, 6-bit + parity) and ISO/IEC 7811-2 track 2 (ABA, 4-bit + parity)
_SS1 = const(0x25)  # '%' track 1 start sentinel
_SS2 = const(0x3B)  # ';' track 2/3 start sentinel
_ES = const(0x3F)  # '?' end sentinel (both tracks)
_FS1 = const(0x5E)  # '^' track 1 field separator
_FS2 = const(0x3D)  # '=' track 2 field separator
_CR = const(0x0D)
_LF = const(0x0A)
_T1_LO = const(0x20)  # track 1 character set 0x20..0x5F (ISO/IEC 7811-2 table 1)
_T1_HI = const(0x5F)
_T2_LO = const(0x30)  # track 2 character set 0x30..0x3F (ISO/IEC 7811-2 table 2)
_T2_HI = const(0x3F)
_MAX_T1 = const(79)  # ISO/IEC 7813: 79 characters including sentinels and LRC
_MAX_T2 = const(40)
_ERR_CH = const(0x45)  # 'E': reader modules report an unreadable track as %E? / ;E?
_FC_B = const(0x42)  # 'B': ISO/IEC 7813 track 1 format code

_STAGE = "swipe"


def _lrc(data, start, end, base):
    """XOR of the character values from start sentinel to end sentinel inclusive."""
    x = 0
    for i in range(start, end + 1):
        x ^= (data[i] - base) & 0x3F
    return x + base


def _track_of(data, i):
    return 1 if data[i] == _SS1 else 2


def _text(v):
    """Non-card text (expiry, service code, name) of a track slice as str."""
    return str(bytes(v), "ascii")


def _find(v, c, start=0):
    for i in range(start, len(v)):
        if v[i] == c:
            return i
    return -1


def decode(data, lrc_required=False):
    """Split one swipe into {1: memoryview|Fault, 2: memoryview|Fault} (track content, no sentinels).

    data: bytes-like (the reader's buffer); the track values are slices of
    it, valid while it is. A track the swipe does not mention is absent from
    the dict. Track 3 (a second `;` track) is skipped.
    """
    if not isinstance(data, memoryview):
        data = memoryview(data)
    out = {}
    n = len(data)
    i = 0
    seen2 = False
    while i < n:
        c = data[i]
        if c == _CR or c == _LF:
            i += 1
            continue
        if c == _SS1 or c == _SS2:
            trk = _track_of(data, i)
            if trk == 2 and seen2:
                trk = 3
            if trk == 2:
                seen2 = True
            i, res = _sentinel_track(data, i, trk, lrc_required)
        else:
            # A line without a start sentinel: sentinel-stripped output, or a
            # track whose start sentinel was lost (it still has its end).
            j = i
            while j < n and data[j] != _CR and data[j] != _LF and data[j] != _SS1 and data[j] != _SS2:
                j += 1
            trk, res, i = _bare_track(data, i, j)
            if trk == 2 and seen2:
                trk = 3
            if trk == 2:
                seen2 = True
        if trk != 3 and (trk not in out or isinstance(out[trk], Fault)):
            out[trk] = res
    return out


def _sentinel_track(data, s, trk, lrc_required):
    n = len(data)
    lo, hi, base = (_T1_LO, _T1_HI, _T1_LO) if trk == 1 else (_T2_LO, _T2_HI, _T2_LO)
    j = s + 1
    bad = False
    while j < n:
        c = data[j]
        if c == _ES:
            break
        if c == _CR or c == _LF or c == _SS1 or c == _SS2:
            return j, Fault("CRD-04", "track %d: no end sentinel" % trk, _STAGE)
        if c < lo or c > hi:
            bad = True
        j += 1
    else:
        return j, Fault("CRD-04", "track %d: no end sentinel" % trk, _STAGE)
    content = data[s + 1:j]
    nxt = j + 1
    want = _lrc(data, s, j, base)
    # The LRC is optional and may itself equal a sentinel: take it as LRC
    # only if it matches and what follows is a boundary.
    c = data[nxt] if nxt < n else -1
    if c == want and ((c != _SS1 and c != _SS2) or _boundary(data, nxt + 1)):
        nxt += 1
        has_lrc = True
    elif nxt < n and not _boundary(data, nxt):
        return nxt + 1, Fault("CRD-05", "track %d: bad LRC" % trk, _STAGE)
    else:
        has_lrc = False
    if not len(content):
        return nxt, Fault("CRD-02", "track %d: no data" % trk, _STAGE)
    if len(content) == 1 and content[0] == _ERR_CH:
        return nxt, Fault("CRD-06", "track %d: reader reported error" % trk, _STAGE)
    if bad or len(content) + 2 > (_MAX_T1 if trk == 1 else _MAX_T2):
        return nxt, Fault("CRD-06", "track %d: parity/format" % trk, _STAGE)
    if lrc_required and not has_lrc:
        return nxt, Fault("CRD-05", "track %d: LRC missing" % trk, _STAGE)
    return nxt, content


def _boundary(data, i):
    return i >= len(data) or data[i] in (_CR, _LF, _SS1, _SS2)


def _bare_track(data, i, j):
    """Segment data[i:j] has no start sentinel -> (track, content|Fault, end index).

    With an end sentinel inside, the start sentinel was lost (CRD-03) and
    the segment ends after the end sentinel and the LRC it would have had;
    without one, the module strips sentinels and the whole line is a track.
    """
    seg = data[i:j]
    k = _find(seg, _ES)
    body = seg if k < 0 else seg[:k]
    trk = 1 if (len(body) and (body[0] == _FC_B or _find(body, _FS1) >= 0)) else 2
    if k >= 0:
        end = i + k + 1
        base = _T1_LO if trk == 1 else _T2_LO
        x = ((_SS1 if trk == 1 else _SS2) - base) ^ (_ES - base)
        for c in body:
            x ^= (c - base) & 0x3F
        if end < j and data[end] == (x & 0x3F) + base:
            end += 1
        return trk, Fault("CRD-03", "track %d: no start sentinel" % trk, _STAGE), end
    for c in body:
        if c < _T1_LO or c > _T1_HI or c == _ES:
            return trk, Fault("CRD-06", "track %d: parity/format" % trk, _STAGE), j
    if trk == 2:
        for c in body:
            if c < _T2_LO or c > _T2_HI:
                return trk, Fault("CRD-06", "track 2: parity/format", _STAGE), j
    if len(body) == 1 and body[0] == _ERR_CH:
        return trk, Fault("CRD-06", "track %d: reader reported error" % trk, _STAGE), j
    return trk, body, j


def parse_track2(s):
    """`PAN=YYMMSSS...` (ISO/IEC 7813 track 2) -> (pan, expiry, service_code).

    s: track 2 content (bytes-like); pan is a slice of it, expiry and service
    code are str.
    """
    if not isinstance(s, memoryview):
        s = memoryview(s)
    k = _find(s, _FS2)
    if k < 0:
        raise Fault("CRD-06", "track 2: no separator", _STAGE)
    pan = s[:k]
    rest = s[k + 1:]
    if len(rest) < 7 or _find(rest, _FS2) >= 0:
        raise Fault("CRD-06", "track 2: short after separator", _STAGE)
    for c in s:
        if not (0x30 <= c <= 0x39 or c == _FS2):
            raise Fault("CRD-06", "track 2: bad character", _STAGE)
    return pan, _text(rest[:4]), _text(rest[4:7])


def parse_track1(s):
    """`B PAN ^ NAME ^ YYMM SSS ...` (ISO/IEC 7813 format B) -> (pan, name, expiry, service).

    s: track 1 content (bytes-like); pan is a slice of it, the rest are str.
    """
    if not isinstance(s, memoryview):
        s = memoryview(s)
    if not len(s) or s[0] != _FC_B:
        raise Fault("CRD-06", "track 1: format code not B", _STAGE)
    a = _find(s, _FS1)
    b = _find(s, _FS1, a + 1) if a > 0 else -1
    if a < 0 or b < 0:
        raise Fault("CRD-06", "track 1: field separators", _STAGE)
    pan = s[1:a]
    name = name_text(s[a + 1:b])
    rest = s[b + 1:]
    if len(rest) < 7:
        raise Fault("CRD-06", "track 1: short after name", _STAGE)
    for c in rest[:7]:
        if not (0x30 <= c <= 0x39):
            raise Fault("CRD-06", "track 1: expiry/service not numeric", _STAGE)
    return pan, _tidy_name(name), _text(rest[:4]), _text(rest[4:7])


def _tidy_name(name):
    """`SURNAME/GIVEN` as encoded -> `GIVEN SURNAME` for receipts."""
    name = name.strip()
    k = name.find("/")
    if k >= 0:
        given = name[k + 1:].strip()
        sur = name[:k].strip()
        name = (given + " " + sur).strip()
    return name


def _first_fault(tracks):
    """The most informative failure when no track can be used: track 2 first, 'no data' last."""
    best = None
    for t in (2, 1):
        f = tracks.get(t)
        if isinstance(f, Fault) and (best is None or (best.code == "CRD-02" and f.code != "CRD-02")):
            best = f
    return best or Fault("CRD-02", "no track data", _STAGE)


def check_service_code(sc, chip_available, fallback):
    """ISO/IEC 7813 service code rules for a POS goods/services sale.

    Returns the entry mode to report. Digit 1: 2/6 = chip card; a chip
    card must use the chip (or tap) unless the terminal has no chip reader
    or the chip read just failed (fallback). Digits 1 in {0,3,4,8} are not
    assigned; digit 3 = 3 (ATM only) or 4 (cash only) excludes POS sales.
    """
    if len(sc) != 3:
        raise Fault("CRD-06", "service code", _STAGE)
    d1 = sc[0]
    if d1 in "0348":
        raise Fault("CRD-09", "service code %s not supported" % sc, _STAGE)
    if sc[2] in "34":
        raise Fault("CRD-09", "service code %s: not for POS" % sc, _STAGE)
    if d1 in "26":
        if chip_available and not fallback:
            raise Fault("CRD-10", "chip card: insert or tap", _STAGE)
        if chip_available:
            return ENTRY_FALLBACK
    return ENTRY_SWIPE


def card_from_swipe(data, now_epoch, chip_available=True, fallback=False, lrc_required=False):
    """One swipe (bytes-like, terminators included or not) -> Card, or Fault.

    The Card holds copies of the PAN and track 2 in its own bytearrays; the
    caller overwrites `data` afterwards (the reader's buffer).
    """
    tracks = decode(data, lrc_required)
    t1 = tracks.get(1)
    t2 = tracks.get(2)
    name = ""
    p1 = None
    if isinstance(t1, memoryview):
        try:
            p1 = parse_track1(t1)
        except Fault as f:
            tracks[1] = t1 = f
    p2 = None
    if isinstance(t2, memoryview):
        try:
            p2 = parse_track2(t2)
        except Fault as f:
            tracks[2] = t2 = f
    if p2 is not None:
        pan, exp, sc = p2
        if p1 is not None:
            if not same_bytes(p1[0], pan):
                raise Fault("CRD-06", "track 1 and track 2 disagree", _STAGE)
            name = p1[1]
        track2 = t2
    elif p1 is not None:
        pan, name, exp, sc = p1
        track2 = None
    else:
        raise _first_fault(tracks)
    check_pan(pan, _STAGE)
    check_expiry(exp, now_epoch, _STAGE)
    mode = check_service_code(sc, chip_available, fallback)
    return Card("swipe", pan, exp, service_code=sc, name=name, entry_mode=mode, track2=track2)

"""`payterm leakscan`: find full card numbers and track data in files the terminal produced.

A terminal may show, log, store or print a card number only masked (first 6 /
last 4). This scanner looks through files (text or binary: logs, console and
panel captures, the journal, state files, the fault log, diag exports, HTML
reports, receipts) for what must never be there:

- `pan-text`: a Luhn-valid run of 12-19 ASCII digits, also grouped by single
  spaces or dashes the way receipts print numbers (4-4-4-4, 4-6-5);
- `pan-bcd`: the same as packed BCD, in binary data or in a hex dump in text
  (EMV tag 5A, ISO 8583 BCD fields, `bytes.hex()` in a log line);
- `track1`: ISO/IEC 7813 track 1 (`%B<PAN>^<NAME>^<YYMM><SC>`, sentinels optional);
- `track2`: track 2 (`;<PAN>=<YYMM><SC>...`) or its `=` separated equivalent;
- `track2-bcd`: the EMV track 2 equivalent (tag 57: BCD PAN, `D`, YYMM, SC).

Rules that keep ordinary numbers out (documented so a miss is not a surprise):
a card number starts with 1-9 (ISO/IEC 7812: 0 is not issued to cards) and is
not one repeated digit; an ASCII run longer than 19 digits is checked once
with its leading zeros removed (a zero-padded field); a BCD candidate starts
on a byte boundary (or after one left-pad `0` nibble) and ends where the digit
nibbles end (or one nibble before: the next tag's first nibble); a BCD
candidate more than half zeros is taken for binary integers (a run of zeros
inside a number is no reason: issuers' test ranges are full of them); binary
BCD runs made only of printable bytes are text and judged as text, and so
are those ending in an F pad or D separator made of printable bytes and the
NUL bytes that pad fixed-width text fields.

The digest of a provisioned PIN hash (`sha256$<salt>$<hex>`, payterm.config)
and the key of an initial key file (`"ik": "<hex>"`, ikey.json) are not looked
at: random salts and keys make their hex hold a Luhn-valid digit run now and
then, and they are no card data.

Hits carry the file, the byte offset and the masked number only: a report of
a leak must not be a leak.
"""
import argparse
import fnmatch
import json
import os
import re
import sys
import zlib

_MIN, _MAX = 12, 19
_CHUNK = 1 << 24  # files larger than this are read in overlapping chunks
_OVERLAP = 256

_DIGITS = re.compile(rb"[0-9]+")
# Grouped numbers as printed for people: 4-4-4-4(-1..3) and 4-6-5 (15-digit cards), one separator kind.
_GROUPED = re.compile(rb"(?<![0-9])(?:[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{1,3})?|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5})(?![0-9])")
_TRACK1 = re.compile(rb"%?B([0-9]{12,19})\^([ -~]{0,26}?)\^([0-9]{2}(?:0[1-9]|1[0-2]))([0-9]{3})")
_TRACK2 = re.compile(rb"(?<![0-9])([0-9]{12,19})=([0-9]{2}(?:0[1-9]|1[0-2]))([0-9]{3})")
_HEXTEXT = re.compile(rb"[0-9A-Fa-f]{24,}")
_NIBBLE_RUN = re.compile(r"[0-9]{%d,}" % _MIN)
_T2EQ_TAIL = re.compile(r"d[0-9]{2}(?:0[1-9]|1[0-2])[1-9][0-9]{2}")  # D YYMM SC: a real month, service code 1xx-9xx
_TLV = re.compile(rb"\x5a[\x06-\x0a]|\x57[\x07-\x13]")  # EMV Book 3 Annex A: 5A n..19 (cn), 57 b..19
_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
# A PIN hash as provisioned (payterm.config pin_hash: "sha256$<salt>$<64 hex digits of the SHA-256>"): a
# digest with a random salt, no card data; its hex holds Luhn-valid digit runs in a few percent of files.
_PIN_HASH = re.compile(rb"(sha256\$[!-#%-~]{0,64}\$)[0-9a-fA-F]{64}(?![0-9a-fA-F])")
# The key of an initial key file (`payterm provision`, ikey.json: {"ikid": .., "ik": "<32 or 64 hex>",
# "kcv": ..}): random key material, no card data; its hex holds Luhn-valid digit runs now and then too.
_INITIAL_KEY = re.compile(rb'("ik"\s*:\s*")[0-9a-fA-F]{32,64}(?=")')
_NOT_CARD_DATA = (_PIN_HASH, _INITIAL_KEY)
# Text in binary files: printable bytes and the NUL bytes that pad fixed-width text fields (C strings,
# struct "s" fields such as the fault log's stage and context): "selftest\0\0\0comm" is text, not BCD.
_TEXTLIKE = _PRINTABLE | {0x00}


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mask(pan):
    """First 6 / last 4, as the firmware's mask_pan."""
    n = len(pan)
    return "*" * n if n < 13 else pan[:6] + "*" * (n - 10) + pan[-4:]


def card_number(digits):
    """True when a digit string could be a card number: 12-19 digits, Luhn, not 0-led, not one digit repeated."""
    return (_MIN <= len(digits) <= _MAX and digits[0] != "0" and digits.count(digits[0]) != len(digits)
            and luhn_ok(digits))


class Hit:
    __slots__ = ("path", "offset", "kind", "masked")

    def __init__(self, path, offset, kind, masked):
        self.path, self.offset, self.kind, self.masked = path, offset, kind, masked

    def as_dict(self):
        return {"path": self.path, "offset": self.offset, "kind": self.kind, "masked": self.masked}

    def __repr__(self):
        return "%s:%d %s %s" % (self.path, self.offset, self.kind, self.masked)


def _text_hits(data, base, path, out, seen):
    tracks = []  # spans already reported as track data: the PAN and data inside are not reported again

    def add(off, kind, pan, suffix=""):
        key = (base + off, kind)
        if key not in seen:
            seen.add(key)
            out.append(Hit(path, base + off, kind, mask(pan) + suffix))

    def in_track(off):
        return any(a <= off < b for a, b in tracks)

    for m in _TRACK1.finditer(data):
        add(m.start(), "track1", m.group(1).decode(), "^...^" + "*" * 7)
        tracks.append((m.start(), m.end()))
    for m in _TRACK2.finditer(data):
        if not in_track(m.start()):
            add(m.start(), "track2", m.group(1).decode(), "=" + "*" * 7)
            tracks.append((m.start(), m.end()))
    for m in _DIGITS.finditer(data):
        run = m.group().decode()
        start = m.start()
        if len(run) > _MAX:
            stripped = run.lstrip("0")
            start += len(run) - len(stripped)
            run = stripped
        if card_number(run) and not in_track(start):
            add(start, "pan-text", run)
    for m in _GROUPED.finditer(data):
        run = re.sub(rb"[ -]", b"", m.group()).decode()
        if card_number(run) and not in_track(m.start()):
            add(m.start(), "pan-text", run)


def _bcd_spans(nib, a, b, dump):
    """(start, end, why) spans of the digit run nib[a:b] that could be a BCD card number.

    A stored BCD number ends before an F pad nibble ("f"), before a D
    separator followed by a plausible YYMM and service code ("d": a track 2
    equivalent), or where its digits end ("bare"). In binary data, where
    little-endian integers and zero bytes make digit nibbles all the time,
    the number must start where the run starts, on a byte boundary, and a
    bare one must also end on one (exactly the run, no trimming). In a hex
    dump (`dump`) it may also start after leading 00 bytes (right-justified
    in a zero-filled field), one nibble later after a left-pad 0 (odd-length
    n field), or after a length byte at the start of the run (a BCD digit
    count as in ISO 8583 LL, or a byte count as in a TLV), and may end one
    nibble before an F (the number, then a tag such as 5F 24). EMV TLVs (5A,
    57) in binary data are found by their tags (_tlv_hits).
    """
    s0 = a + (a & 1)
    if _T2EQ_TAIL.match(nib, b):
        ends = [(b, "d")]
    elif nib[b:b + 1] == "f":
        ends = [(b, "f")]
        if dump and b & 1:
            ends.append((b - 1, "f"))
    elif s0 == a and not b & 1:
        ends = [(b, "bare")]
    elif dump:
        ends = [(b - (b & 1), "bare")]
    else:
        return
    for e, why in ends:
        if not dump:
            if s0 == a and _MIN <= e - s0 <= _MAX:
                yield s0, e, why
            continue
        starts = [s0]
        if nib[s0] == "0":
            starts.append(s0 + 1)
        z = s0
        while nib[z:z + 2] == "00":
            z += 2
        if z > s0:
            starts += [z, z + 1] if nib[z:z + 1] == "0" else [z]
        n, rest = int(nib[s0:s0 + 2]), e - s0 - 2
        if n == rest or 2 * int(nib[s0:s0 + 2], 16) in (rest, rest + 1):
            starts.append(s0 + 2)
        elif n == rest - 1 and nib[s0 + 2] == "0":
            starts.append(s0 + 3)
        for s in starts:
            if _MIN <= e - s <= _MAX:
                yield s, e, why


def _mostly_binary(chunk):
    """At least half the bytes are not printable text: text next to binary integers is not BCD."""
    return sum(1 for x in chunk if x not in _PRINTABLE) * 2 >= len(chunk)


def _tlv_hits(data, base, path, out, seen):
    """EMV tag 5A (PAN, F padded) and 57 (track 2 equivalent) values in binary data."""
    for m in _TLV.finditer(data):
        tag, n = m.group()[0], m.group()[1]
        v = data[m.end():m.end() + n].hex()
        if len(v) != 2 * n:
            continue
        if tag == 0x5A:
            d, kind, suffix = v.rstrip("f"), "pan-bcd", ""
        else:
            d, kind, suffix = v.partition("d")[0], "track2-bcd", "D*******"
            if "d" not in v:
                continue
        if d.isdigit() and card_number(d):
            key = (base + m.end(), kind)
            if key not in seen:
                seen.add(key)
                out.append(Hit(path, base + m.end(), kind, mask(d) + suffix))


def _bcd_hits(data, base, path, out, seen, hextext=False):
    """BCD in `data` (binary: nibbles of the bytes; hextext: the hex characters themselves)."""
    nib = data.decode("ascii").lower() if hextext else data.hex()
    for m in _NIBBLE_RUN.finditer(nib):
        a, b = m.start(), m.end()
        for s, e, why in _bcd_spans(nib, a, b, hextext):
            d = nib[s:e]
            if not card_number(d) or d.count("0") * 2 > len(d):
                # zero bytes of binary integers make runs that are mostly zeros; stored card numbers are
                # not (a run of zeros inside one is: test cards such as 6799990010000002, 6799998900000060018)
                continue
            if not hextext:
                chunk = data[s // 2:(e + 1) // 2 if why == "bare" else e // 2 + 1]
                if not (_mostly_binary(chunk) if why == "bare" else any(x not in _TEXTLIKE for x in chunk)):
                    # bare digits need mostly binary bytes; a pad or separator is structure enough, unless
                    # the only binary bytes are the NUL padding of text fields (text, then "o" reads as F)
                    continue  # printable bytes are text: the text rules judge them
            off = base + (s // 2 if not hextext else s)
            kind = "track2-bcd" if why == "d" else "pan-bcd"
            key = (off, kind)
            if key not in seen:
                seen.add(key)
                out.append(Hit(path, off, kind, mask(d) + ("D*******" if kind == "track2-bcd" else "")))
            break  # one report per run is enough


def _known_hits(data, base, path, out, seen, known):
    """Exact card numbers the caller knows were used (test cards): also the Luhn-invalid ones."""
    if not known:
        return
    nib = data.hex()
    for pan in known:
        for hay, kind, scale in ((data, "known-pan-text", 1), (nib, "known-pan-bcd", 2)):
            needle = pan.encode() if kind == "known-pan-text" else pan
            i = hay.find(needle)
            while i >= 0:
                off = base + i // scale
                if (off, kind) not in seen and (off, "pan-text") not in seen and (off, "pan-bcd") not in seen:
                    seen.add((off, kind))
                    out.append(Hit(path, off, kind, mask(pan)))
                i = hay.find(needle, i + 1)


# The terminal's own binary flash formats. Their integer fields (sequence numbers, times, counts,
# lengths, CRCs) cannot hold a card number, but their bytes read as BCD digits all the time; in a
# record that checks out they are blanked before the BCD rules run (the text fields stay).
_FAULT_SLOT, _FAULT_MAGIC, _FAULT_BODY = 64, 0xFA, 60  # payterm/diag/faultlog.py: "<BIIIH6s11s28s" + crc32
_FAULT_INTS = ((1, 15), (60, 64))  # seq, first, last, count; crc
_JOURNAL_HDR, _JOURNAL_MAX = 8, 2048  # payterm/txn/journal.py: [len:4 BE][crc32:4 BE][JSON]


def blank_integers(data):
    """`data` with the integer fields of valid fault-log slots and journal record headers blanked (0xAA)."""
    out = None
    n = len(data)
    if n and n % _FAULT_SLOT == 0:
        for k in range(0, n, _FAULT_SLOT):
            slot = data[k:k + _FAULT_SLOT]
            if slot[0] == _FAULT_MAGIC and zlib.crc32(slot[:_FAULT_BODY]) == int.from_bytes(slot[_FAULT_BODY:], "little"):
                out = out or bytearray(data)
                for a, b in _FAULT_INTS:
                    out[k + a:k + b] = b"\xaa" * (b - a)
    pos = 0
    while pos + _JOURNAL_HDR <= n:
        ln = int.from_bytes(data[pos:pos + 4], "big")
        body = data[pos + _JOURNAL_HDR:pos + _JOURNAL_HDR + ln]
        if not 0 < ln <= _JOURNAL_MAX or len(body) != ln or zlib.crc32(body) != int.from_bytes(data[pos + 4:pos + 8], "big"):
            break
        out = out or bytearray(data)
        out[pos:pos + _JOURNAL_HDR] = b"\xaa" * _JOURNAL_HDR
        pos += _JOURNAL_HDR + ln
    return bytes(out) if out is not None else data


def scan_bytes(data, path="<bytes>", base=0, known=()):
    """Hits in one buffer (offsets relative to `base`); `known`: card numbers to find even if not Luhn-valid."""
    out, seen = [], set()
    data = bytes(data)
    for pattern in _NOT_CARD_DATA:  # the secret part blanked, same length: offsets stay
        data = pattern.sub(lambda m: m.group(1) + b"x" * (m.end() - m.end(1)), data)
    _text_hits(data, base, path, out, seen)
    ints_blanked = blank_integers(data)
    _bcd_hits(ints_blanked, base, path, out, seen)
    _tlv_hits(ints_blanked, base, path, out, seen)
    for m in _HEXTEXT.finditer(data):
        if _DIGITS.fullmatch(m.group()):
            continue  # only digits: a number, judged by the text rules
        _bcd_hits(m.group(), base + m.start(), path, out, seen, hextext=True)
    _known_hits(data, base, path, out, seen, known)
    out.sort(key=lambda h: (h.offset, h.kind))
    return out


def scan_file(path, known=()):
    out, seen = [], set()
    with open(path, "rb") as f:
        pos = 0
        tail = b""
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            buf = tail + chunk
            base = pos - len(tail)
            for h in scan_bytes(buf, path, base, known):
                if (h.offset, h.kind) not in seen:  # the overlap is scanned twice
                    seen.add((h.offset, h.kind))
                    out.append(h)
            pos += len(chunk)
            tail = buf[-_OVERLAP:]
    return out


class Report:
    def __init__(self):
        self.files = 0
        self.bytes = 0
        self.hits = []
        self.errors = []

    def as_dict(self):
        return {"files": self.files, "bytes": self.bytes, "hits": [h.as_dict() for h in self.hits],
                "errors": self.errors}


def iter_files(paths, exclude=()):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                if any(fnmatch.fnmatch(full, pat) or fnmatch.fnmatch(name, pat) for pat in exclude):
                    continue
                if os.path.islink(full) or not os.path.isfile(full):
                    continue  # ptys, sockets, dangling links: not files a terminal wrote
                yield full


def scan_paths(paths, exclude=(), known=()):
    """Scan files and directory trees; returns a Report. `known`: exact card numbers to look for too."""
    rep = Report()
    for full in iter_files(paths, exclude):
        try:
            hits = scan_file(full, known)
            rep.bytes += os.path.getsize(full)
        except OSError as e:
            rep.errors.append("%s: %s" % (full, e.strerror or e))
            continue
        rep.files += 1
        rep.hits.extend(hits)
    return rep


def add_arguments(p):
    p.add_argument("paths", nargs="+", metavar="DIR", help="files or directories to scan (recursively)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip files whose path or name matches (repeatable)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args):
    rep = scan_paths(args.paths, args.exclude)
    if args.json:
        print(json.dumps(rep.as_dict(), indent=1))
    else:
        for h in rep.hits:
            print("%s:%d: %s %s" % (h.path, h.offset, h.kind, h.masked))
        for e in rep.errors:
            print("error: " + e, file=sys.stderr)
        print("leakscan: %d files, %d bytes, %d hits" % (rep.files, rep.bytes, len(rep.hits)))
    return 1 if rep.hits else 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="payterm leakscan", description=__doc__.split("\n")[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

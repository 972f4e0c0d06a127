"""Fault log: a bounded ring of fixed-size, CRC-checked slots in one flash file.

Power can fail at any instant, so a slot is written in one write() and
carries its own CRC: a torn slot fails the check and is skipped, every other
slot stays readable. Slot order comes from a sequence number, not from the
slot position, which lets a repeating fault (same code + stage, back to back)
update its count without ever rewriting the only copy of an entry: repeats
alternate between two slots, each write carrying a higher sequence number, and
the reader keeps only the newest of such a chain. A torn repeat write
therefore loses one count, never the entry.
"""
import struct
from binascii import crc32
from micropython import const

from payterm import flash
from payterm.mask import scrub

_SLOT = const(64)
_MAGIC = const(0xFA)
# magic, seq, first seen, last seen, repeat count, code, stage, ctx | crc32
_FMT = "<BIIIH6s11s28s"
_BODY = const(60)
_CODE_N = const(6)
_STAGE_N = const(11)
_CTX_N = const(28)
_MAX_REPEAT = const(65535)


def _pad(s, n):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return b[:n]


def _unpad(b):
    return bytes(b).rstrip(b"\x00").decode()


class FaultLog:
    def __init__(self, path, slots=64):
        self.path = path
        self.slots = slots
        self._buf = bytearray(_SLOT)
        self._head = -1  # slot holding the newest entry
        self._seq = 0
        self._last = None  # (code, stage, count, first, slot)
        self._alt = -1  # slot the next repeat goes to
        self.torn = 0  # slots skipped on load (CRC or magic damage)
        self._open()

    def _open(self):
        try:
            f = open(self.path, "rb")
        except OSError:
            self._format()
            return
        entries = []
        slot = 0
        with f:
            while slot < self.slots:
                n = f.readinto(self._buf)
                if n != _SLOT:
                    break
                e = self._decode(self._buf, n)
                if e is not None:
                    entries.append((e, slot))
                elif self._buf[0] != 0:
                    self.torn += 1
                slot += 1
        if slot < self.slots:
            # file shorter than the ring (format cut by power loss, or a bigger
            # ring): zero from the last whole slot so slots stay aligned
            z = bytes(_SLOT)
            for i in range(slot, self.slots):
                flash.patch(self.path, i * _SLOT, z)
        if entries:
            entries.sort(key=lambda es: es[0][0])
            e, slot = entries[-1]
            self._seq = e[0]
            self._head = slot
            self._last = (e[4], e[5], e[3], e[1], slot)

    def _format(self):
        z = bytes(_SLOT)
        n = self.slots
        flash.write(self.path, lambda: (z for _ in range(n)))
        self._head = -1
        self._seq = 0
        self._last = None
        self._alt = -1

    @staticmethod
    def _decode(buf, n):
        if n != _SLOT or buf[0] != _MAGIC:
            return None
        mv = memoryview(buf)
        if crc32(mv[:_BODY]) & 0xFFFFFFFF != struct.unpack_from("<I", buf, _BODY)[0]:
            return None
        _, seq, first, last, count, code, stage, ctx = struct.unpack_from(_FMT, buf, 0)
        # (seq, first, last, count, code, stage, ctx)
        return (seq, first, last, count, _unpad(code), _unpad(stage), _unpad(ctx))

    def _write(self, slot, seq, first, last, count, code, stage, ctx):
        b = self._buf
        struct.pack_into(_FMT, b, 0, _MAGIC, seq, first, last, count,
                         _pad(code, _CODE_N), _pad(stage, _STAGE_N), _pad(ctx, _CTX_N))
        struct.pack_into("<I", b, _BODY, crc32(memoryview(b)[:_BODY]) & 0xFFFFFFFF)
        flash.patch(self.path, slot * _SLOT, b)

    def add(self, code, stage, ctx, now):
        """Record a fault; returns its repeat count (1 for a new entry)."""
        ctx = scrub(ctx or "")
        stage = stage or ""
        now = int(now) if now and now > 0 else 0  # clock() may be a float, or unset
        last = self._last
        self._seq += 1
        nxt = (self._head + 1) % self.slots
        if last is not None and last[0] == code and last[1] == stage and last[2] < _MAX_REPEAT:
            count = last[2] + 1
            slot = self._alt if self._alt >= 0 else nxt
            self._write(slot, self._seq, last[3], now, count, code, stage, ctx)
            self._alt = last[4]
            self._last = (code, stage, count, last[3], slot)
            if slot == nxt:
                self._head = nxt
            return count
        self._write(nxt, self._seq, now, now, 1, code, stage, ctx)
        self._head = nxt
        self._alt = -1
        self._last = (code, stage, 1, now, nxt)
        return 1

    def entries(self):
        """Entries oldest first as dicts; repeat chains collapsed to their newest."""
        raw = []
        with open(self.path, "rb") as f:
            for _ in range(self.slots):
                n = f.readinto(self._buf)
                if not n:
                    break
                e = self._decode(self._buf, n)
                if e is not None:
                    raw.append(e)
        raw.sort(key=lambda e: e[0])
        out = []
        for i, e in enumerate(raw):
            if i + 1 < len(raw):
                n = raw[i + 1]
                if n[4] == e[4] and n[5] == e[5] and n[3] == e[3] + 1 and n[0] == e[0] + 1:
                    continue
            out.append({"seq": e[0], "first": e[1], "time": e[2], "count": e[3],
                        "code": e[4], "stage": e[5], "ctx": e[6]})
        return out

    def last(self, n):
        """The n newest entries, newest first."""
        es = self.entries()
        es.reverse()
        return es[:n]

    def clear(self):
        self._format()

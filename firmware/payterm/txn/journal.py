"""Append-only, CRC-checked transaction journal that survives power cuts.

Every record is `[len:4][crc32:4][payload]` (big-endian), the payload a small
JSON object naming a transaction by `ref` plus the fields that changed; the
state of a transaction is the merge of its records in file order. A record
is only "committed" once it is wholly on flash, so recovery keeps the longest
valid prefix and drops a torn or corrupt tail (reported as SYS-02).

The file is bounded for flash (max_bytes): when it would grow past it, the
journal is compacted into one merged record per transaction, keeping every
unfinished one and the newest finished ones. Compaction writes a new file and
swaps it in with renames, so a cut at any moment leaves one complete copy.
Full PANs and track data never get here: a run of 13+ digits is refused.
"""
import json
import os
import struct

import binascii
from micropython import const

from payterm.errors import Fault

_HDR = const(8)  # 4-byte length + 4-byte CRC-32
_MAX_RECORD = const(2048)

# States in which nothing more will happen to a transaction.
FINAL = ("approved", "declined", "reversed", "failed", "sent", "voided")


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _sync():
    s = getattr(os, "sync", None)
    if s is not None:
        s()


def _no_pan(text):
    """True when text holds no digit run that may be a card number (12-19 digits, payterm.mask)."""
    from payterm.mask import pan_run

    return pan_run(text) is None


def frame(rec):
    body = json.dumps(rec).encode()
    return struct.pack(">II", len(body), binascii.crc32(body) & 0xFFFFFFFF) + body


class Journal:
    """Transactions by ref: `create`, `update`, `get`, `records`."""

    def __init__(self, root, diag=None, max_bytes=65536, keep=100):
        self.path = root + "/journal.log"
        self._tmp = root + "/journal.tmp"
        self._old = root + "/journal.old"
        self.diag = diag
        self.max_bytes = max_bytes
        self.keep = keep
        self.txns = {}
        self.seq = 0
        self.dropped_bytes = 0  # torn/corrupt tail found at open
        self.compactions = 0
        self._open()

    # ------------------------------------------------------------ recovery
    def _open(self):
        if _size(self.path) < 0:
            # Cut during compaction: the new file is complete once the old one moved away.
            if _size(self._tmp) >= 0:
                os.rename(self._tmp, self.path)
            elif _size(self._old) >= 0:
                os.rename(self._old, self.path)
        _remove(self._tmp)
        _remove(self._old)
        good = self._scan()
        total = _size(self.path)
        if total > good:
            self.dropped_bytes = total - good
            if self.diag is not None:
                self.diag.fault("SYS-02", "txn", "journal tail dropped %d bytes" % self.dropped_bytes)
            self._rewrite()

    def _scan(self):
        """Load records; return the length of the valid prefix."""
        try:
            f = open(self.path, "rb")
        except OSError:
            return 0
        good = 0
        hdr = bytearray(_HDR)
        try:
            while True:
                if f.readinto(hdr) != _HDR:
                    break
                n, crc = struct.unpack(">II", hdr)
                if n == 0 or n > _MAX_RECORD:
                    break
                body = f.read(n)
                if len(body) != n or binascii.crc32(body) & 0xFFFFFFFF != crc:
                    break
                try:
                    rec = json.loads(body)
                except ValueError:
                    break
                if not isinstance(rec, dict) or "ref" not in rec:
                    break
                self._merge(rec)
                good += _HDR + n
        finally:
            f.close()
        return good

    def _merge(self, rec):
        ref = rec["ref"]
        t = self.txns.get(ref)
        if t is None or rec.get("new"):
            t = {}
            self.txns[ref] = t
        for k in rec:
            if k != "new":
                t[k] = rec[k]
        s = t.get("seq", 0)
        if s > self.seq:
            self.seq = s

    # ------------------------------------------------------------ writing
    def _write(self, rec):
        data = frame(rec)
        if len(data) - _HDR > _MAX_RECORD:
            raise Fault("SYS-09", "journal record too large", "txn")
        size = _size(self.path)
        if size + len(data) > self.max_bytes:
            self.compact()
            size = _size(self.path)
            if size + len(data) > self.max_bytes:
                raise Fault("SYS-01", "journal full: %d open transactions" % self.open_count(), "txn")
        try:
            with open(self.path, "ab") as f:
                f.write(data)
        except OSError as e:
            raise Fault("SYS-01", "journal write: %s" % e, "txn")
        _sync()

    def create(self, ref, fields):
        """Start (or restart) transaction `ref`; committed when this returns."""
        self.seq += 1
        rec = {"ref": ref, "seq": self.seq}
        rec.update(fields)
        self._check(rec)
        rec["new"] = 1
        self._write(rec)
        self._merge(rec)
        return self.txns[ref]

    def update(self, ref, fields):
        if ref not in self.txns:
            raise Fault("OPR-04", "no transaction %s" % ref, "txn")
        rec = {"ref": ref}
        rec.update(fields)
        self._check(rec)
        self._write(rec)
        self._merge(rec)
        return self.txns[ref]

    def _check(self, rec):
        if not _no_pan(json.dumps(rec)):
            raise Fault("SYS-09", "refused to journal card data", "txn")

    # ------------------------------------------------------------ reading
    def get(self, ref):
        return self.txns.get(ref)

    def records(self, kind=None, st=None):
        """Transactions in creation order, optionally filtered."""
        out = [t for t in self.txns.values()
               if (kind is None or t.get("kind") == kind) and (st is None or t.get("st") == st)]
        out.sort(key=lambda t: t.get("seq", 0))
        return out

    def open_count(self):
        return sum(1 for t in self.txns.values() if t.get("st") not in FINAL)

    # ------------------------------------------------------------ compaction
    def compact(self):
        """Rewrite as one record per transaction, dropping the oldest finished ones."""
        done = [t for t in self.records() if t.get("st") in FINAL]
        keep = self.keep
        while True:
            drop = done[:max(0, len(done) - keep)]
            for t in drop:
                self.txns.pop(t["ref"], None)
            done = done[len(drop):]
            if self._rewrite() <= self.max_bytes * 3 // 4 or not done:
                break
            keep = len(done) // 2
        self.compactions += 1

    def _rewrite(self):
        size = 0
        try:
            with open(self._tmp, "wb") as f:
                for t in self.records():
                    rec = dict(t)
                    rec["new"] = 1
                    data = frame(rec)
                    f.write(data)
                    size += len(data)
        except OSError as e:
            _remove(self._tmp)
            raise Fault("SYS-01", "journal compaction: %s" % e, "txn")
        _sync()
        if _size(self.path) >= 0:
            os.rename(self.path, self._old)
        os.rename(self._tmp, self.path)
        _remove(self._old)
        _sync()
        return size

"""Append-only, CRC-checked transaction journal that survives power cuts.

Every record is `[len:4][crc32:4][payload]` (big-endian), the payload a small
JSON object naming a transaction by `ref` plus the fields that changed; the
state of a transaction is the merge of its records in file order. A record
is only "committed" once it is wholly on flash, so recovery keeps the longest
valid prefix and drops a torn or corrupt tail (reported as SYS-02). After a
failed append (storage full: the tail may be torn) the next write rewrites
the file from memory first, so no record is ever appended behind a torn one.

A ref is created once: `create` refuses a ref the journal already holds
(SYS-10), so an older record is never silently replaced.

The file is bounded for flash (max_bytes): when it would grow past it, the
journal is compacted into one merged record per transaction, keeping every
unfinished one (and the originals they name) and the newest finished ones.
What compaction drops is summed in one record, ref "~compacted":
`{"ref": "~compacted", "n": <records dropped so far>, "held": <minor units>}`,
cumulative across compactions, where `held` adds what each dropped record
showed the merchant as held (`held()`: approved sales and offline sales not
voided +amt, approved refunds not voided -amt, everything else 0), so an
auditor can still reconcile money. Refs starting with "~" are not
transactions: `records()` never lists them.
Compaction writes a new file and swaps it in with renames, so a cut at any
moment leaves one complete copy. Every flash operation goes through
payterm.flash.
Full PANs and track data never get here: a record holding a digit run that
may be a card number (`payterm.mask.pan_run`: any run of 13+ digits, or a
12-digit run not starting with 0 whose Luhn digit is valid) is refused (SYS-09). The host's
reference (rrn) is written in two halves so a Luhn-valid one is neither refused nor read as a PAN.

RAM holds a bounded part of the journal (`txns`): every unfinished
transaction, the originals unfinished ones name, failed advices (a technician
retries them), records with changes flash refused (`remember`) and the newest
`ram_keep` finished ones. Older finished transactions stay on flash only, with
an index entry each (ref -> seq, STAN, held): `get` reads one back from the
file (with the voids naming it) when a void or a look-up asks for it, the
numbering still skips their refs and STANs (`held_refs`, `held_stans`), and
compaction copies their records from the old file or sums them into
"~compacted". `records()` lists what RAM holds.
"""
import json
import struct

import binascii
from micropython import const

from payterm import flash
from payterm.errors import Fault

_HDR = const(8)  # 4-byte length + 4-byte CRC-32
_MAX_RECORD = const(2048)
_RAM_KEEP = const(8)  # finished transactions kept in RAM beyond those that must stay

# States in which nothing more will happen to a transaction.
FINAL = ("approved", "declined", "reversed", "failed", "sent", "voided")

SUMMARY = "~compacted"


def _remove(path):
    if flash.size(path) >= 0:
        flash.remove(path)


def _size(path):
    return flash.size(path)


def _flash_fault(what, e):
    """The Fault for a flash step that failed with `e`: SYS-01 for an OSError (as the port words it,
    [Errno 28] ENOSPC), SYS-09 for anything else, with its type (MemoryError on a fragmented heap)."""
    if isinstance(e, OSError):
        return Fault("SYS-01", "%s: %s" % (what, e), "txn")
    return Fault("SYS-09", "%s: %r" % (what, e), "txn")


def _sync():
    flash.sync()


def _no_pan(text):
    """True when text holds no digit run that may be a card number (payterm.mask.pan_run)."""
    from payterm.mask import pan_run

    return pan_run(text) is None


def _key(ref):
    """Index key of a ref: the int of a 6-digit ref (no heap object), else the str."""
    return int(ref) if len(ref) == 6 and ref.isdigit() else ref


class _Held:
    """`"000123" in held` for the numbering: RAM records and the flash-only index."""

    def __init__(self, journal, field):
        self._j = journal
        self._f = field

    def __contains__(self, num):
        j = self._j
        if self._f == "ref":
            return num in j.txns or _key(num) in j._flash
        for t in j.txns.values():
            if t.get("stan") == num:
                return True
        k = _key(num)
        for e in j._flash.values():
            if e[1] == k:
                return True
        return False


# Host references (field 37, an 12) go to flash in two halves, ["412312", "000125"]: a
# 12-digit reference is Luhn-valid one time in ten, and whole it would read as a card
# number to the guard (the update would be refused) and to a PAN scanner. In RAM, and to
# every reader, the value stays the string the host sent.
_SPLIT = ("rrn",)
_RRN_LEN = const(12)  # ISO 8583:1987 field 37, an 12


def _stored(rec):
    """The record as written to flash."""
    out = rec
    if not isinstance(rec, dict):
        return rec
    for k in _SPLIT:
        v = rec.get(k)
        # Anything but 12 characters is not a field 37: the guard judges it whole.
        if isinstance(v, str) and len(v) == _RRN_LEN:
            if out is rec:
                out = dict(rec)
            out[k] = [v[:6], v[6:]]
    return out


def _loaded(rec):
    """A record read from flash as the journal's readers see it."""
    for k in _SPLIT:
        v = rec.get(k)
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            rec[k] = "".join(v)
    return rec


def frame(rec):
    body = json.dumps(_stored(rec)).encode()
    return struct.pack(">II", len(body), binascii.crc32(body) & 0xFFFFFFFF) + body


def void_done(v):
    """True when void record `v` took effect: its original is cancelled.

    An online void (0200, processing code 02) holds once approved; a void of an
    uploaded offline sale ("adv": a reversal of the advice) holds once the host
    answered it (approved) or its repeats were acknowledged (reversed).
    """
    st = v.get("st")
    return st == "approved" or (st == "reversed" and bool(v.get("adv")))


def void_open(v):
    """True while void record `v` may still take effect or be undone (in flight)."""
    return v.get("st") in ("pending", "reversing")


class Journal:
    """Transactions by ref: `create`, `update`, `get`, `records`."""

    def __init__(self, root, diag=None, max_bytes=65536, keep=100, ram_keep=_RAM_KEEP):
        self.path = root + "/journal.log"
        self._tmp = root + "/journal.tmp"
        self._old = root + "/journal.old"
        self.diag = diag
        self.max_bytes = max_bytes
        self.keep = keep
        self.ram_keep = max(1, ram_keep)
        self.txns = {}  # in RAM: see the module's docstring
        self._flash = {}  # key(ref) -> (seq, stan key or None, held) of finished transactions on flash only
        self._ram_only = set()  # refs whose RAM record holds changes flash refused
        self._good = 0  # bytes of the file that are whole records
        self.seq = 0
        self.dropped_bytes = 0  # torn/corrupt tail found at open
        self.compactions = 0
        self._torn = False  # an append failed: the tail may be torn
        try:
            self._open()
        except OSError as e:
            raise Fault("SYS-01", "journal open: %s" % e, "txn")

    # ------------------------------------------------------------ recovery
    def _open(self):
        self._settle_files(strict=True)
        good = self._scan()
        for t in list(self.txns.values()):
            if t.get("st") not in FINAL and t.get("orig"):
                self.get(t["orig"])  # an unfinished void keeps its original in RAM
        total = _size(self.path)
        if total > good:
            self.dropped_bytes = total - good
            if self.diag is not None:
                self.diag.fault("SYS-02", "txn", "journal tail dropped %d bytes" % self.dropped_bytes)
            self._rewrite()

    def _settle_files(self, strict=False):
        """After a cut or a failed compaction: one journal file, the newest complete copy.

        The new copy is complete once the old file moved away (the old one moves only after the
        copy was written and synced), so a missing journal takes the copy, else the old file back.
        RAM may hold fewer records than that file after a failed compaction (those summed into
        "~compacted"): the next write or compaction writes them from RAM, and a reboot reads the file.
        """
        try:
            if _size(self.path) < 0:
                if _size(self._tmp) >= 0:
                    flash.rename(self._tmp, self.path)
                elif _size(self._old) >= 0:
                    flash.rename(self._old, self.path)
            _remove(self._tmp)
            _remove(self._old)
        except OSError:
            if strict:
                raise  # at boot: no journal is opened from a half-recovered set of files
            # after a failed compaction: the boot's recovery does the same

    def _frames(self, limit=None):
        """(record, frame bytes) of each whole record from the start of the file.

        Stops at the first torn or corrupt one, or after `limit` bytes.
        """
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        pos = 0
        hdr = bytearray(_HDR)
        try:
            while limit is None or pos < limit:
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
                pos += _HDR + n
                yield _loaded(rec), bytes(hdr) + body
        finally:
            f.close()

    def _scan(self):
        """Load records; return the length of the valid prefix.

        Two passes keep RAM bounded: the first counts each ref's records, the
        second merges them and moves a finished transaction to the flash-only
        index once its last record is merged and RAM holds enough newer ones.
        """
        left = {}
        good = 0
        for rec, fr in self._frames():
            k = _key(rec["ref"])
            left[k] = left.get(k, 0) + 1
            good += len(fr)
        self._good = good
        for rec, _ in self._frames(good):
            self._merge(rec)
            k = _key(rec["ref"])
            n = left[k] - 1
            if n:
                left[k] = n
            else:
                del left[k]
                self._evict(left)
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

    # ------------------------------------------------------------ RAM bound
    def _stays(self, t):
        """True when finished transaction `t` must stay in RAM whatever its age."""
        return (t.get("kind") == "saf" and t.get("st") == "failed") or t.get("ref") in self._ram_only

    def _evict(self, busy=None):
        """Move the oldest finished transactions beyond `ram_keep` to the flash-only index.

        busy: keys of refs with records still to merge (scan); they stay.
        """
        fin = []
        needed = set()
        for r, t in self.txns.items():
            if r[:1] == "~":
                continue
            if t.get("st") not in FINAL:
                if t.get("orig"):
                    needed.add(t["orig"])
            elif not self._stays(t) and not (busy and _key(r) in busy):
                fin.append(t)
        n = len(fin) - self.ram_keep
        if n <= 0:
            return
        fin.sort(key=lambda t: t.get("seq", 0))
        idx = self._void_index()
        for t in fin[:n]:
            ref = t["ref"]
            if ref in needed:
                continue
            st = t.get("stan")
            self._flash[_key(ref)] = (t.get("seq", 0), _key(st) if st else None, self.held(t, idx))
            del self.txns[ref]

    def _load(self, ref):
        """Read flash-only transaction `ref` back into RAM, with the voids naming it."""
        want = {ref: {}}
        for rec, _ in self._frames(self._good):
            r = rec["ref"]
            if r not in want:
                if rec.get("new") and rec.get("orig") == ref and _key(r) in self._flash:
                    want[r] = {}
                else:
                    continue
            t = want[r]
            if rec.get("new"):
                t = want[r] = {}
            for k in rec:
                if k != "new":
                    t[k] = rec[k]
        for r, t in want.items():
            if t:
                self._flash.pop(_key(r), None)
                self.txns[r] = t
        return self.txns.get(ref)

    def held_refs(self):
        """`ref in held_refs()`: the journal holds ref (in RAM or on flash only)."""
        return _Held(self, "ref")

    def held_stans(self):
        """`stan in held_stans()`: a transaction in the journal carries that STAN."""
        return _Held(self, "stan")

    # ------------------------------------------------------------ writing
    def _write(self, rec):
        data = frame(rec)
        if len(data) - _HDR > _MAX_RECORD:
            raise Fault("SYS-09", "journal record too large", "txn")
        if self._torn:
            # The last append failed part-way: never append behind a torn record.
            self._rewrite()
        size = _size(self.path)
        if size + len(data) > self.max_bytes:
            self.compact()
            size = _size(self.path)
            if size + len(data) > self.max_bytes:
                raise Fault("SYS-01", "journal full: %d open transactions" % self.open_count(), "txn")
        try:
            flash.append(self.path, data)
        except Exception as e:  # OSError from flash, or MemoryError part-way: the tail may be torn
            self._torn = True
            raise _flash_fault("journal write", e)
        self._good = size + len(data)
        try:
            flash.sync()
        except Exception as e:
            raise _flash_fault("journal sync", e)

    def create(self, ref, fields):
        """Start transaction `ref`; committed when this returns.

        A ref already in the journal (finished or not) is refused with SYS-10:
        replacing it would lose a record of money, and reusing an unfinished
        one would mix two transactions.
        """
        old = self.get(ref)
        if old is not None or ref.startswith("~"):
            raise Fault("SYS-10", "ref %s already in the journal (%s %s)" % (
                ref, (old or {}).get("kind", "?"), (old or {}).get("st", "?")), "txn")
        rec = {"ref": ref, "seq": self.seq + 1}
        rec.update(fields)
        self._check(rec)
        rec["new"] = 1
        self._write(rec)
        self.seq += 1
        self._merge(rec)
        t = self.txns[ref]
        self._evict()
        return t

    def update(self, ref, fields):
        if self.get(ref) is None:
            raise Fault("OPR-04", "no transaction %s" % ref, "txn")
        rec = {"ref": ref}
        rec.update(fields)
        self._check(rec)
        self._write(rec)
        self._merge(rec)
        t = self.txns[ref]
        self._evict()
        return t

    def remember(self, ref, fields):
        """Apply `fields` to transaction `ref` in RAM only (its flash write failed).

        The next write of this ref, or a compaction, puts it on flash. Returns the
        transaction, or None when the journal does not hold `ref`.
        """
        t = self.get(ref)
        if t is None:
            return None
        for k in fields:
            t[k] = fields[k]
        self._ram_only.add(ref)
        return t

    def _check(self, rec):
        if not _no_pan(json.dumps(_stored(rec))):
            raise Fault("SYS-09", "refused to journal card data", "txn")

    # ------------------------------------------------------------ reading
    def get(self, ref):
        t = self.txns.get(ref)
        if t is None and ref and ref[:1] != "~" and _key(ref) in self._flash:
            t = self._load(ref)
        return t

    def records(self, kind=None, st=None):
        """Transactions in creation order, optionally filtered (never the "~" summary)."""
        out = [t for r, t in self.txns.items()
               if r[:1] != "~" and (kind is None or t.get("kind") == kind) and (st is None or t.get("st") == st)]
        out.sort(key=lambda t: t.get("seq", 0))
        return out

    def open_count(self):
        return sum(1 for t in self.records() if t.get("st") not in FINAL)

    def summary(self):
        """What compaction dropped so far: {"ref": "~compacted", "n": count, "held": minor units}."""
        s = self.txns.get(SUMMARY)
        if s is None:
            return {"ref": SUMMARY, "n": 0, "held": 0}
        return {"ref": SUMMARY, "n": s.get("n", 0), "held": s.get("held", 0)}

    # ------------------------------------------------------------ voids
    def _void_index(self):
        idx = {}
        for t in self.txns.values():
            if t.get("kind") == "void" and t.get("orig"):
                idx.setdefault(t["orig"], []).append(t)
        return idx

    def voids_of(self, ref, idx=None):
        """Void records naming `ref` as their original, oldest first."""
        vs = (idx or self._void_index()).get(ref, [])
        vs.sort(key=lambda t: t.get("seq", 0))
        return vs

    def is_voided(self, t, idx=None):
        """True when transaction `t` is cancelled by a void.

        Derived from the void records naming it (an approved void holds even if
        the original's `voided` mark never reached flash), and from the mark
        itself when the void record is gone (compacted) or the sale was dropped
        from the SAF queue before upload (voided names itself).
        """
        ref = t.get("ref")
        for v in self.voids_of(ref, idx):
            if void_done(v):
                return True
        f = t.get("voided")
        if not f:
            return False
        if f == ref:
            return True
        v = self.get(f)
        return v is None or void_done(v)

    def held(self, t, idx=None):
        """Minor units transaction `t` shows the merchant as held.

        Approved sales and offline sales (queued, uploaded or failed upload) not
        voided: +amt; approved refunds not voided: -amt; everything else 0
        (declined, reversed, voided, in flight, voids themselves).
        """
        kind = t.get("kind")
        st = t.get("st")
        amt = t.get("amt", 0) or 0
        if (kind == "sale" and st == "approved") or (kind == "saf" and st in ("pending", "sent", "failed")):
            return 0 if self.is_voided(t, idx) else amt
        if kind == "refund" and st == "approved":
            return 0 if self.is_voided(t, idx) else -amt
        return 0

    # ------------------------------------------------------------ compaction
    def compact(self):
        """Rewrite as one record per transaction, dropping the oldest finished ones.

        Kept: every unfinished transaction, every original an unfinished one names
        (`orig`), and at least the newest finished one (it carries the highest
        STAN and ref the boot seeds its numbers from). Flash-only transactions
        count among the finished ones by their age.
        """
        recs = self.records()
        needed = set()
        for t in recs:
            if t.get("st") not in FINAL and t.get("orig"):
                needed.add(t["orig"])
        done = [(t.get("seq", 0), t["ref"], None) for t in recs if t.get("st") in FINAL and t["ref"] not in needed]
        for k, e in self._flash.items():
            done.append((e[0], None, k))
        done.sort(key=lambda d: d[0])
        keep = max(1, self.keep)
        while True:
            drop = done[:max(0, len(done) - keep)]
            if drop:
                self._drop(drop)
            done = done[len(drop):]
            if self._rewrite() <= self.max_bytes * 3 // 4 or len(done) <= 1:
                break
            keep = max(1, len(done) // 2)
        self.compactions += 1

    def _drop(self, items):
        """Sum (seq, ref in RAM or None, flash-only key) items into the summary and forget them."""
        idx = self._void_index()
        s = self.summary()
        held = 0
        for _, ref, k in items:
            held += self.held(self.txns[ref], idx) if ref is not None else self._flash[k][2]
        s["n"] += len(items)
        s["held"] += held
        for _, ref, k in items:
            if ref is not None:
                self.txns.pop(ref, None)
            else:
                self._flash.pop(k, None)
        self.txns[SUMMARY] = s

    def _chunks(self):
        s = self.txns.get(SUMMARY)
        if s is not None:
            yield frame(self.summary())
        if self._flash:
            # Flash-only transactions: their records as they are, in file order.
            for rec, fr in self._frames(self._good):
                r = rec["ref"]
                if r[:1] != "~" and r not in self.txns and _key(r) in self._flash:
                    yield fr
        for t in self.records():
            rec = dict(t)
            rec["new"] = 1
            yield frame(rec)

    def _rewrite(self):
        size = [0]

        def chunks():  # run once, or twice under a flash hook (count, write): the size is that of the last run
            size[0] = 0
            for c in self._chunks():
                size[0] += len(c)
                yield c

        try:
            flash.write(self._tmp, chunks)
            flash.sync()
            if _size(self.path) >= 0:
                flash.rename(self.path, self._old)
            flash.rename(self._tmp, self.path)
            _remove(self._old)
            flash.sync()
        except Exception as e:  # OSError from flash, or MemoryError on a fragmented heap
            self._settle_files()
            raise _flash_fault("journal compaction", e)
        self._torn = False
        self._good = size[0]
        self._ram_only.clear()  # every RAM record is on flash now, merged
        return size[0]

"""Reconcile the terminal's journal with the acquirer's ledger: the money, not the journal's shape (CPython).

`read_journal(state_dir)` parses the terminal's flash journal
(firmware/payterm/txn/journal.py: `[len:4 BE][crc32:4 BE][JSON]` records
merged per `ref`, a record with "new" restarting its transaction) and keeps
the longest valid prefix, as the firmware does at boot.

`reconcile(records, ledger, pending_ok=False)` asserts, per original
transaction (terminal kinds sale, refund, saf), that what the host holds
(approved amount, minus reversed, minus each standing void; an advice booked
once; refunds negative) equals what the terminal shows the merchant (approved
online or offline and not voided or reversed: the amount, refunds negative;
otherwise 0), and also that no STAN is reused among the originals the host
received (per TID), no original reached the host twice (other than repeats
and duplicates the host answered 94), an advice the terminal marks sent is
booked exactly once, nothing is left pending (unless pending_ok: then a
pending, reversing or voiding transaction may be held or not), and nothing is held at
the host that the terminal does not know. It returns counts per
"<kind>_<state>" so a test can also check that something happened.

Voids: a transaction is voided when its `voided` mark says so or a void
record naming it (`orig`) took effect, as the firmware derives it
(Journal.is_voided). An offline sale the host may hold is voided by a
reversal of its advice: a void record with "adv": 1 whose `stan` is the
sale's (the host sees a 0400/0401 with orig_stan = that STAN, orig_mti 0220);
it took effect when "approved" (the host answered 00 or 25) or "reversed"
(its repeats were acknowledged), and the sale then has st "reversed" and
`voided` = the void's ref. While that void is in flight the sale is
"voiding": unfinished, and the host may or may not still hold its advice.

Journal compaction: the firmware drops the oldest finished records and keeps
a summary record `{"ref": "~compacted", "n": <records dropped>, "held": <sum
of what they showed as held>}`. Ledger originals the journal no longer knows
are judged together against it (their host-held sum equals `held`, their
count is at most `n`); without a summary each one is a problem.
`Reconciler().observe(records)` after each snapshot remembers records seen
earlier, so a dropped record is still judged on its own.

Ledger entries are AcquirerSim's (tools/payterm_tools/sim/acquirer.py); the
keys read are kind, stan, mti, rc, repeat, orig_stan, and when present tid,
amount, booked (the host's own word on whether the entry changed what it
holds), orig_mti and ts. Missing ones default (tid "", amount 0, booked as
the sim would decide), so hand-written ledgers stay short.
"""
import json
import os
import struct
import zlib

_HDR = struct.Struct(">II")
_MAX_RECORD = 2048

SUMMARY_REF = "~compacted"
FINAL = ("approved", "declined", "reversed", "failed", "sent", "voided")
APPROVED = ("00", "08", "10", "11")
_ORIGINAL_KINDS = ("sale", "refund", "saf")
_HOST_ORIGINALS = ("auth", "refund", "void", "advice")


def read_journal(state_dir):
    """Merged journal records in creation order; each carries `_creates` (times its ref was started)."""
    path = os.path.join(state_dir, "journal.log")
    if not os.path.exists(path):
        for alt in ("journal.tmp", "journal.old"):
            if os.path.exists(os.path.join(state_dir, alt)):
                path = os.path.join(state_dir, alt)
                break
        else:
            return []
    with open(path, "rb") as f:
        data = f.read()
    txns = {}
    pos = 0
    while pos + _HDR.size <= len(data):
        n, crc = _HDR.unpack_from(data, pos)
        body = data[pos + _HDR.size: pos + _HDR.size + n]
        if n == 0 or n > _MAX_RECORD or len(body) != n or zlib.crc32(body) & 0xFFFFFFFF != crc:
            break
        try:
            rec = json.loads(body)
        except ValueError:
            break
        if not isinstance(rec, dict) or "ref" not in rec:
            break
        if isinstance(rec.get("rrn"), list):
            rec["rrn"] = "".join(rec["rrn"])  # written in two halves (payterm.txn.journal)
        t = txns.get(rec["ref"])
        if t is None or rec.get("new"):
            creates = (t or {}).get("_creates", 0)
            t = txns[rec["ref"]] = {"_creates": creates}
            if rec.get("new"):
                t["_creates"] = creates + 1
        t.update({k: v for k, v in rec.items() if k != "new"})
        pos += _HDR.size + n
    return sorted(txns.values(), key=lambda t: t.get("seq", 0))


# ---------------------------------------------------------------- host side
def _fam(mti):
    return mti[:3] + "0" if mti and len(mti) == 4 else ""


class _Booking:
    def __init__(self, e, kind, fam, sign):
        self.e = e
        self.kind = kind
        self.tid = e.get("tid", "")
        self.stan = e.get("stan", "")
        self.fam = fam
        self.sign = sign
        self.amount = int(e.get("amount", 0) or 0)
        self.reversed = False
        self.target = None   # void: the booking it cancels
        self.voids = []


class HostView:
    """What the host holds, from its ledger entries alone (several hosts' ledgers may be joined)."""

    def __init__(self, ledger):
        seen, entries = set(), []
        for e in ledger:
            if id(e) not in seen:  # two sims sharing one book hand in the same entries
                seen.add(id(e))
                entries.append(e)
        if entries and all("ts" in e for e in entries):
            entries.sort(key=lambda e: e["ts"])
        self.entries = entries
        self.bookings = []
        self._by_key = {}  # (tid, stan) -> bookings in order: a soak's ledger has thousands
        for e in entries:
            self._take(e)

    def _book(self, b):
        self.bookings.append(b)
        self._by_key.setdefault((b.tid, b.stan), []).append(b)

    def _find(self, tid, stan, fam=None, voids=False):
        for b in self._by_key.get((tid, stan), ()):
            if (voids or b.kind != "void") and (not fam or b.fam == fam):
                yield b

    def _take(self, e):
        kind, rc = e.get("kind"), e.get("rc", "")
        tid, stan = e.get("tid", ""), e.get("stan", "")
        approved = rc in APPROVED
        if kind in ("auth", "refund", "void"):
            booked = e.get("booked")
            if booked is None:
                booked = approved and rc != "94" and (
                    not e.get("repeat") or not list(self._find(tid, stan, "0200", voids=True)))
            if not booked:
                return
            b = _Booking(e, kind, "0200", -1 if kind == "refund" else 1)
            if kind == "void":
                ofam = _fam(e.get("orig_mti", ""))
                cands = list(self._find(tid, e.get("orig_stan", ""), ofam)) or \
                    list(self._find(tid, e.get("orig_stan", "")))
                if cands:
                    b.target = cands[-1]
                    b.target.voids.append(b)
            self._book(b)
        elif kind == "advice":
            booked = e.get("booked")
            if booked is None:
                booked = approved and not list(self._find(tid, stan, "0220"))
            if booked:
                self._book(_Booking(e, "advice", "0220", 1))
        elif kind == "reversal":
            booked = e.get("booked")
            ofam = _fam(e.get("orig_mti", ""))
            targets = [b for b in self._find(tid, e.get("orig_stan", ""), ofam, voids=True) if not b.reversed]
            if booked is None:
                booked = approved and bool(targets)
            if booked and targets:
                targets[0].reversed = True

    # ------------------------------------------------------------ views
    def holdings(self):
        """{(tid, stan): minor units held} per original (sale, refund, advice) with a booking."""
        out = {}
        for b in self.bookings:
            key = (b.tid, b.stan)
            if b.kind != "void":
                out.setdefault(key, 0)
                if not b.reversed:
                    out[key] += b.sign * b.amount
            elif not b.reversed:
                t = b.target
                tkey = (t.tid, t.stan) if t is not None else (b.tid, b.e.get("orig_stan", ""))
                out[tkey] = out.get(tkey, 0) - (t.sign if t is not None else 1) * b.amount
        return out

    def standing(self):
        """{(tid, stan): bookings that stand: not reversed, not cancelled by a standing void}."""
        out = {}
        for b in self.bookings:
            if b.kind == "void":
                continue
            n = 0 if b.reversed or any(not v.reversed for v in b.voids) else 1
            out[(b.tid, b.stan)] = out.get((b.tid, b.stan), 0) + n
        return out

    def advice_bookings(self):
        out = {}
        for b in self.bookings:
            if b.kind == "advice":
                out[(b.tid, b.stan)] = out.get((b.tid, b.stan), 0) + 1
        return out

    def received_keys(self):
        """(tid, stan) of every original the host received, booked or not (echoes aside)."""
        return {(e.get("tid", ""), e.get("stan", "")) for e in self.entries if e.get("kind") in _HOST_ORIGINALS}


def host_holdings(ledger):
    """{(tid, stan): minor units} the host holds according to `ledger`."""
    return HostView(ledger).holdings()


# ---------------------------------------------------------------- terminal side
def _tid(t):
    return (t.get("req") or {}).get("41")


def _amt(t):
    try:
        return int(t.get("amt", 0) or 0)
    except (TypeError, ValueError):
        return 0


def shown(t):
    """What a journal record shows the merchant as held (minor units; refunds negative)."""
    kind, st = t.get("kind"), t.get("st")
    if t.get("voided") or st == "voided":
        return 0
    if kind == "sale" and st == "approved":
        return _amt(t)
    if kind == "refund" and st == "approved":
        return -_amt(t)
    if kind == "saf" and st in ("pending", "sent", "failed"):
        return _amt(t)
    return 0


def _void_done(v):
    """Void record v took effect (firmware: journal.void_done): an online void once approved; a void
    of an offline sale ("adv": a reversal of its advice) once approved or its repeats reversed."""
    st = v.get("st")
    return st == "approved" or (st == "reversed" and bool(v.get("adv")))


def _voids_done(records):
    """Refs of the originals a void record names that took effect."""
    return {v.get("orig") for v in records if v.get("kind") == "void" and _void_done(v)} - {None}


def _cancelled(t, records, done=None):
    """The terminal shows t as voided (firmware: Journal.is_voided): its mark, or a void record naming
    it that took effect (which holds even when a cut kept the mark from flash). done: _voids_done(records),
    computed when not given."""
    if t.get("voided") or t.get("st") == "voided":
        return True
    return t.get("ref") in (_voids_done(records) if done is None else done)


def _unfinished(t, records, done=None):
    """Still in flight: pending, reversing, or an offline sale whose void is cancelling its advice."""
    st = t.get("st")
    return st in ("pending", "reversing") or (st == "voiding" and not _cancelled(t, records, done))


def _acceptable(t, records, voids_in_flight=None, done=None):
    """(held, standing count) pairs the host may show for record t.

    voids_in_flight: refs of originals a pending or reversing void names (computed from
    `records` when not given)."""
    kind, st = t.get("kind"), t.get("st")
    full = (-_amt(t) if kind == "refund" else _amt(t), 1)
    none = (0, 0)
    if _cancelled(t, records, done):
        ok = {none}
    elif kind in ("sale", "refund"):
        ok = {full} if st == "approved" else {none, full} if st in ("pending", "reversing") else {none}
    elif st == "sent":
        ok = {full}
    elif st in ("pending", "failed"):
        ok = {none, full}  # not uploaded yet / given up on: the technician settles it
    elif st == "voiding":
        ok = {none, full}  # its void (a reversal of the advice) is in flight: the advice may still be held
    else:
        ok = {none}
    if voids_in_flight is None:
        voids_in_flight = _voids_in_flight(records)
    if full in ok and t.get("ref") in voids_in_flight:
        ok.add(none)  # a void still in flight may have reached the host
    return ok


def _voids_in_flight(records):
    return {v.get("orig") for v in records if v.get("kind") == "void" and v.get("st") in ("pending", "reversing")}


def _by_stan(records):
    out = {}
    for t in records:
        out.setdefault(t.get("stan"), []).append(t)
    return out


class Reconciler:
    """Judges journal snapshots against a ledger; remembers records earlier snapshots showed.

    observe(records): feed a snapshot (read_journal); call it after each transaction so a
    record compaction drops later is still judged on its own, with its last state.
    problems(ledger, pending_ok=False): the list of problems; check(ledger, pending_ok=False):
    assert there are none and return the counts (as reconcile does).
    """

    def __init__(self):
        self.seen = {}      # ref -> last record observed
        self.current = []
        self.restarts = []  # refs an observed snapshot showed started again

    def observe(self, records):
        for t in records:
            ref = t.get("ref")
            if ref is None or ref == SUMMARY_REF:
                continue
            old = self.seen.get(ref)
            if old is not None and "seq" in old and "seq" in t and old["seq"] != t["seq"]:
                self.restarts.append("journal: %s %s started again (seq %s, then %s)" % (
                    t.get("kind"), ref, old["seq"], t["seq"]))
            self.seen[ref] = dict(t)
        self.current = list(records)
        return self

    def _split(self):
        cur = [t for t in self.current if t.get("ref") != SUMMARY_REF]
        summary = next((t for t in self.current if t.get("ref") == SUMMARY_REF), None)
        refs = {t.get("ref") for t in cur}
        dropped = [t for ref, t in self.seen.items() if ref not in refs]
        return cur, summary, dropped

    def problems(self, ledger, pending_ok=False):
        cur, summary, dropped = self._split()
        host = HostView(ledger)
        out = list(self.restarts)
        # Records dropped after we saw them finish are judged on their own; ones dropped before
        # (last seen unfinished) are judged with the compaction summary like any unknown one.
        judged = cur + [t for t in dropped if t.get("st") in FINAL]

        for t in cur:
            if t.get("_creates", 1) > 1:
                out.append("journal: %s %s started %d times" % (t.get("kind"), t.get("ref"), t["_creates"]))

        # The host received each original once: no STAN reused, nothing received twice.
        got = {}
        for e in host.entries:
            if e.get("kind") in ("auth", "refund", "void", "echo") and not e.get("repeat") and e.get("rc") != "94":
                got.setdefault((e.get("tid", ""), e.get("stan", "")), []).append(e)
            elif e.get("kind") == "advice" and not e.get("repeat"):
                got.setdefault((e.get("tid", ""), e.get("stan", ""), "advice"), []).append(e)
        for key, es in sorted(got.items()):
            if len(es) > 1:
                out.append("stan reused: STAN %s received %d times as an original at the host (%s)" % (
                    key[1], len(es), ", ".join("%s %s rc=%s" % (e.get("kind"), e.get("mti"), e.get("rc")) for e in es)))

        held, standing, advices = host.holdings(), host.standing(), host.advice_bookings()
        host_keys = {}
        for k in set(held) | set(standing):
            host_keys.setdefault(k[1], []).append(k)
        in_flight = _voids_in_flight(judged)
        done = _voids_done(judged)
        judged_by_stan = _by_stan(judged)

        def host_for(t):
            tid, stan = _tid(t), t.get("stan")
            keys = [k for k in host_keys.get(stan, ()) if tid is None or k[0] == tid]
            return (sum(held.get(k, 0) for k in keys), sum(standing.get(k, 0) for k in keys),
                    sum(advices.get(k, 0) for k in keys), keys)

        known = set()
        for t in judged:
            kind, st, stan = t.get("kind"), t.get("st"), t.get("stan")
            if _unfinished(t, judged, done) and not pending_ok:
                out.append("pending: %s %s still %s" % (kind, stan, st))
            if kind not in _ORIGINAL_KINDS:
                continue
            h, n, adv, keys = host_for(t)
            known.update(keys)
            ok = _acceptable(t, judged, in_flight, done)
            if (h, n) not in ok:
                gone = _cancelled(t, judged, done)
                out.append("money: %s %s (%s%s) shows %d to the merchant; the host holds %d (%d standing)" % (
                    kind, stan, st, ", voided" if gone and st != "voided" else "", 0 if gone else shown(t), h, n))
            if kind == "saf" and st == "sent" and adv != 1:
                out.append("advice: %s marked sent, booked %d times at the host" % (stan, adv))

        # Held at the host under a STAN the terminal knows only as a void (or not at all).
        tids = {_tid(t) for t in judged}
        for key in sorted(set(held) | set(standing)):
            if key in known:
                continue
            rec = [t for t in judged_by_stan.get(key[1], ()) if _tid(t) in (None, key[0])]
            if rec and (held.get(key, 0) or standing.get(key, 0)):
                out.append("money: host holds %d for STAN %s, a %s on the terminal" % (
                    held.get(key, 0), key[1], rec[0].get("kind")))
            if rec:
                known.add(key)
        unknown = sorted(k for k in (host.received_keys() | set(held)) - known
                         if not any(_tid(t) in (None, k[0]) for t in judged_by_stan.get(k[1], ())))
        if summary is None:
            for key in unknown:
                out.append("unknown: host has STAN %s%s (holds %d) that the terminal's journal does not know" % (
                    key[1], " TID %s" % key[0] if key[0] and key[0] not in tids else "", held.get(key, 0)))
        else:
            gone = [t for t in dropped if t.get("st") in FINAL]
            n_left = int(summary.get("n", 0) or 0) - len(gone)
            held_left = int(summary.get("held", 0) or 0) - sum(shown(t) for t in gone)
            got_held = sum(held.get(k, 0) for k in unknown)
            if len(unknown) > n_left:
                out.append("compacted: host has %d originals the journal does not know, the summary accounts "
                           "for %d dropped records" % (len(unknown), n_left))
            if got_held != held_left:
                out.append("compacted: the host holds %d for originals the journal dropped, the summary says %d" % (
                    got_held, held_left))
        return out

    def counts(self):
        cur, _, dropped = self._split()
        by = {}
        for t in cur + dropped:
            key = "%s_%s" % (t.get("kind"), t.get("st"))
            by[key] = by.get(key, 0) + 1
        return by

    def check(self, ledger, pending_ok=False):
        problems = self.problems(ledger, pending_ok)
        assert not problems, "journal/ledger mismatch:\n  " + "\n  ".join(problems)
        return self.counts()


def problems(records, ledger, pending_ok=False):
    """The problems reconcile would raise, as a list (empty when terminal and host agree)."""
    return Reconciler().observe(records).problems(ledger, pending_ok)


def reconcile(records, ledger, pending_ok=False):
    """Assert that the terminal and the host agree on the money; return counts per "<kind>_<state>"."""
    return Reconciler().observe(records).check(list(ledger), pending_ok)

"""Wait analysis: why did the customer wait? Customer time apart from terminal time.

Each transaction is split into stages as they finish, in milliseconds:

- customer time (people at the counter): "amount" (the cashier keys the
  amount), "confirm" (an amount or a refund asked again, no-receipt choice),
  "present" (from PRESENT CARD until a reader starts reading the card the
  customer presented, failed tries included), "pin" (the cardholder enters
  the PIN);
- terminal time (what the terminal and the network do): "read" (reading the
  card once presented), "connect", "host" (waiting for the answer), "retry"
  (pauses between attempts), "reversal", "print".

`txn_done(ref, code)` folds a transaction into bounded per-stage sample rings
(for p50/p95), per-transaction customer and terminal totals, totals per
stage and per failure code of the transaction, and a short history. The
summary ranks the causes of terminal time (stage, and the failure code the
transactions that waited there ended with), so a technician reads
"customers wait most at host; the cause is HST-01; do <its remedy>" (or,
when most of that stage's time ended without a failure, that it is mostly
normal waiting and which failure adds most to it).
"""
from micropython import const
from array import array
import json

from payterm.diag import _store

_SAMPLES = const(64)  # per stage, for percentiles
_HISTORY = const(32)  # transactions kept for the chart
_OPEN_MAX = const(8)  # transactions in progress at once (a leak guard, not a limit in use)
_CAUSES = const(5)  # causes of terminal time in the summary
_NONE = const(0xFFFFFFFF)  # a history slot's stage that did not happen

# "card" is the stage of records from before the split (presenting + reading, mostly the customer).
CUSTOMER = ("amount", "confirm", "present", "pin", "card")
TERMINAL = ("read", "connect", "host", "retry", "reversal", "print")
STAGES = CUSTOMER + TERMINAL  # the slot of each stage in the arrays
SIDES = ("customer", "terminal")
NO_CODE = ""  # the code key of transactions that ended without a failure
_NST = len(STAGES)


def side(stage):
    """"customer" or "terminal" (a stage this table does not know is the terminal's)."""
    return "customer" if stage in CUSTOMER else "terminal"


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending sequence (p in 1..100)."""
    n = len(sorted_vals)
    if not n:
        return 0
    k = (p * n + 99) // 100 - 1
    if k < 0:
        k = 0
    return sorted_vals[k]


class _Rings:
    """`n` rings of _SAMPLES values in one preallocated array, oldest overwritten first."""

    def __init__(self, n):
        self.v = array("I", bytes(4 * n * _SAMPLES))
        self.len = array("H", bytes(2 * n))
        self.head = array("H", bytes(2 * n))  # next slot written

    def push(self, i, ms):
        h = self.head[i]
        self.v[i * _SAMPLES + h] = ms
        self.head[i] = (h + 1) % _SAMPLES
        if self.len[i] < _SAMPLES:
            self.len[i] += 1

    def values(self, i):
        """Ring i, oldest first (a new list: for the summary and the file, not the hot path)."""
        n = self.len[i]
        base = i * _SAMPLES
        first = (self.head[i] - n) % _SAMPLES
        return [self.v[base + (first + k) % _SAMPLES] for k in range(n)]

    def load(self, i, vals):
        for ms in vals[-_SAMPLES:]:
            self.push(i, int(ms) & 0xFFFFFFFF)


class Waits:
    def __init__(self, path, clock):
        self.path = path
        self._clock = clock
        self._open = {}
        self._samples = _Rings(_NST)
        self._sides = _Rings(len(SIDES))
        self._totals = array("Q", bytes(8 * _NST))  # stage -> total ms
        self._counts = array("I", bytes(4 * _NST))  # stage -> transactions that waited there
        self._h_time = array("I", bytes(4 * _HISTORY))
        self._h_ms = array("I", bytes(4 * _HISTORY * _NST))
        self._h_ref = [""] * _HISTORY
        self._h_code = [None] * _HISTORY  # type: list
        data, self.damaged = _store.load(path)
        self._reset(data if isinstance(data, dict) else None)

    def _reset(self, data=None):
        d = data or {}
        self.txns = d.get("txns", 0)
        self.bycode = d.get("bycode", {})  # stage -> {code or "": total ms}
        for a in (self._samples.len, self._samples.head, self._sides.len, self._sides.head, self._totals,
                  self._counts):
            for i in range(len(a)):
                a[i] = 0
        self._h_n = self._h_head = 0
        for i in range(_HISTORY):
            self._h_ref[i] = ""
            self._h_code[i] = None
        for key, dst in (("totals", self._totals), ("counts", self._counts)):
            for st, v in d.get(key, {}).items():
                if st in STAGES:
                    dst[STAGES.index(st)] = int(v)
        for st, vals in d.get("samples", {}).items():
            if st in STAGES:
                self._samples.load(STAGES.index(st), vals)
        for i, sd in enumerate(SIDES):
            self._sides.load(i, d.get("sides", {}).get(sd, ()))
        for h in d.get("history", [])[-_HISTORY:]:
            self._remember(h[0], h[1], h[2], h[3])

    def _remember(self, when, ref, rec, code):
        i = self._h_head
        self._h_time[i] = int(when) & 0xFFFFFFFF
        base = i * _NST
        for k in range(_NST):
            self._h_ms[base + k] = _NONE
        for st, ms in rec.items():
            if st in STAGES:
                self._h_ms[base + STAGES.index(st)] = ms
        self._h_ref[i] = str(ref)
        self._h_code[i] = code or None
        self._h_head = (i + 1) % _HISTORY
        if self._h_n < _HISTORY:
            self._h_n += 1

    def _rows(self):
        """The history, oldest first: (time, ref, {stage: ms}, code) one at a time."""
        first = (self._h_head - self._h_n) % _HISTORY
        for j in range(self._h_n):
            i = (first + j) % _HISTORY
            base = i * _NST
            rec = {}
            for k in range(_NST):
                ms = self._h_ms[base + k]
                if ms != _NONE:
                    rec[STAGES[k]] = ms
            yield [self._h_time[i], self._h_ref[i], rec, self._h_code[i]]

    @property
    def history(self):
        """[[time, ref, {stage: ms}, code]], oldest first (built when asked: export, tests)."""
        return list(self._rows())

    def _by_stage(self, a):
        """{stage: a[slot]} of the stages that happened (totals or counts)."""
        return dict((STAGES[i], a[i]) for i in range(_NST) if self._totals[i] or self._counts[i])

    def _txn(self, ref):
        t = self._open.get(ref)
        if t is None:
            if len(self._open) >= _OPEN_MAX:
                self._open.pop(next(iter(self._open)))
            t = self._open[ref] = {}
        return t

    def wait(self, ref, stage, ms):
        """`ms` more at `stage` for transaction `ref` (a stage outside STAGES is a bug: ignored)."""
        if stage not in STAGES:
            return
        if ms < 0:
            ms = 0
        t = self._txn(ref)
        t[stage] = t.get(stage, 0) + ms

    def move(self, ref, src, dst, ms):
        """Re-attribute up to `ms` of stage `src` to `dst` (the host wait held a connect or a retry pause)."""
        t = self._open.get(ref)
        if t is None or ms <= 0 or dst not in STAGES:
            return
        ms = min(ms, t.get(src, 0))
        if ms <= 0:
            return
        t[src] -= ms
        if not t[src]:
            del t[src]
        t[dst] = t.get(dst, 0) + ms

    def done(self, ref, code=None):
        """Fold the transaction in; returns its record {stage: ms} (None: nothing was recorded for it)."""
        t = self._open.pop(ref, None)
        if not t:
            return None
        key = code or NO_CODE
        self.txns += 1
        cust = term = 0
        for st, ms in t.items():
            i = STAGES.index(st)
            self._totals[i] += ms
            self._counts[i] += 1
            by = self.bycode.get(st)
            if by is None:
                by = self.bycode[st] = {}
            by[key] = by.get(key, 0) + ms
            self._samples.push(i, ms)
            if st in CUSTOMER:
                cust += ms
            else:
                term += ms
        self._sides.push(0, cust)
        self._sides.push(1, term)
        self._remember(self._clock(), ref, t, code)
        self.save()
        return t

    def save(self):
        _store.save(self.path, self._write)

    def _write(self, f):
        """The file, written a section (and a history row) at a time: no copy of the whole state in RAM."""
        f.write('{"txns": %d, "bycode": ' % self.txns)
        json.dump(self.bycode, f)
        f.write(', "totals": ')
        json.dump(self._by_stage(self._totals), f)
        f.write(', "counts": ')
        json.dump(self._by_stage(self._counts), f)
        for key, rings, names in (("samples", self._samples, STAGES), ("sides", self._sides, SIDES)):
            f.write(', "%s": {' % key)
            sep = ""
            for i in range(len(names)):
                if rings.len[i]:
                    f.write('%s"%s": ' % (sep, names[i]))
                    json.dump(rings.values(i), f)
                    sep = ", "
            f.write("}")
        f.write(', "history": [')
        sep = ""
        for row in self._rows():
            f.write(sep)
            json.dump(row, f)
            sep = ", "
        f.write("]}")

    def _top_code(self, stage):
        """(code, ms) of the failure code most of this stage's time ended with; ("", ms) when none failed."""
        by = self.bycode.get(stage) or {}
        best, ms = NO_CODE, 0
        for c, v in by.items():
            if c != NO_CODE and (v > ms or (v == ms and c < best)):
                best, ms = c, v
        return best, ms

    def summary(self):
        stages = {}
        tot = {"customer": 0, "terminal": 0}
        totals = self._by_stage(self._totals)
        for st, ms in totals.items():
            tot[side(st)] += ms
        for i, st in enumerate(STAGES):
            if not self._samples.len[i]:
                continue
            v = sorted(self._samples.values(i))
            stages[st] = {"n": self._counts[i], "p50": percentile(v, 50), "p95": percentile(v, 95),
                          "max": v[-1] if v else 0, "total": self._totals[i], "side": side(st)}
        grand = tot["customer"] + tot["terminal"]
        out = {"txns": self.txns, "stages": stages}
        for i, sd in enumerate(SIDES):
            v = sorted(self._sides.values(i))
            out[sd] = {"total": tot[sd], "share": (tot[sd] * 100 // grand) if grand else 0,
                       "p50": percentile(v, 50), "p95": percentile(v, 95)}
        term = tot["terminal"]
        ranked = sorted([kv for kv in totals.items() if side(kv[0]) == "terminal" and kv[1] > 0],
                        key=lambda kv: -kv[1])
        top = []
        for st, ms in ranked[:_CAUSES]:
            code, cms = self._top_code(st)
            normal = (self.bycode.get(st) or {}).get(NO_CODE, 0)
            if cms * 10 < ms:
                code = NO_CODE  # failures add under a tenth of this stage's time: not its cause
            top.append({"stage": st, "total": ms, "share": (ms * 100 // term) if term else 0, "code": code or None,
                        "code_share": (cms * 100 // term) if term else 0, "normal": normal >= cms})
        out["top"] = top
        causes = []
        for st, by in self.bycode.items():
            if side(st) != "terminal":
                continue
            for c, ms in by.items():
                if ms > 0:
                    causes.append((ms, st, c))
        causes.sort(key=lambda x: -x[0])
        out["causes"] = [{"stage": st, "code": c or None, "total": ms, "share": (ms * 100 // term) if term else 0}
                         for ms, st, c in causes[:_CAUSES]]
        return out

    def clear(self):
        self._reset()
        self._open = {}
        self.save()

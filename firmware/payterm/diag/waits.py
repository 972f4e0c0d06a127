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

from payterm.diag import _store

_SAMPLES = const(64)  # per stage, for percentiles
_HISTORY = const(32)  # transactions kept for the chart
_OPEN_MAX = const(8)  # transactions in progress at once (a leak guard, not a limit in use)
_CAUSES = const(5)  # causes of terminal time in the summary

# "card" is the stage of records from before the split (presenting + reading, mostly the customer).
CUSTOMER = ("amount", "confirm", "present", "pin", "card")
TERMINAL = ("read", "connect", "host", "retry", "reversal", "print")
SIDES = ("customer", "terminal")
NO_CODE = ""  # the code key of transactions that ended without a failure


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


def _push(ring, ms):
    if len(ring) >= _SAMPLES:
        # drop the oldest sample (array has no pop(0) on MicroPython)
        ring[0:_SAMPLES - 1] = ring[1:_SAMPLES]
        ring[_SAMPLES - 1] = ms
    else:
        ring.append(ms)


class Waits:
    def __init__(self, path, clock):
        self.path = path
        self._clock = clock
        self._open = {}
        data, self.damaged = _store.load(path)
        self._reset(data if isinstance(data, dict) else None)

    def _reset(self, data=None):
        d = data or {}
        self.txns = d.get("txns", 0)
        self.totals = d.get("totals", {})  # stage -> total ms
        self.counts = d.get("counts", {})  # stage -> transactions that waited there
        self.bycode = d.get("bycode", {})  # stage -> {code or "": total ms}
        self.history = d.get("history", [])  # [time, ref, {stage: ms}, code]
        self._samples = {}
        for st, vals in d.get("samples", {}).items():
            self._samples[st] = array("I", vals)
        self._sides = {}
        for sd in SIDES:
            self._sides[sd] = array("I", d.get("sides", {}).get(sd, ()))

    def _txn(self, ref):
        t = self._open.get(ref)
        if t is None:
            if len(self._open) >= _OPEN_MAX:
                self._open.pop(next(iter(self._open)))
            t = self._open[ref] = {}
        return t

    def wait(self, ref, stage, ms):
        if ms < 0:
            ms = 0
        t = self._txn(ref)
        t[stage] = t.get(stage, 0) + ms

    def move(self, ref, src, dst, ms):
        """Re-attribute up to `ms` of stage `src` to `dst` (the host wait held a connect or a retry pause)."""
        t = self._open.get(ref)
        if t is None or ms <= 0:
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
        sums = {"customer": 0, "terminal": 0}
        for st, ms in t.items():
            self.totals[st] = self.totals.get(st, 0) + ms
            self.counts[st] = self.counts.get(st, 0) + 1
            by = self.bycode.get(st)
            if by is None:
                by = self.bycode[st] = {}
            by[key] = by.get(key, 0) + ms
            s = self._samples.get(st)
            if s is None:
                s = self._samples[st] = array("I")
            _push(s, ms)
            sums[side(st)] += ms
        for sd in SIDES:
            _push(self._sides[sd], sums[sd])
        self.history.append([int(self._clock()), str(ref), t, code or None])
        if len(self.history) > _HISTORY:
            self.history.pop(0)
        self.save()
        return t

    def save(self):
        _store.save(self.path, {
            "txns": self.txns, "totals": self.totals, "counts": self.counts, "bycode": self.bycode,
            "history": self.history,
            "samples": dict((k, list(v)) for k, v in self._samples.items()),
            "sides": dict((k, list(v)) for k, v in self._sides.items()),
        })

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
        for st, s in self._samples.items():
            v = sorted(s)
            stages[st] = {"n": self.counts.get(st, 0), "p50": percentile(v, 50), "p95": percentile(v, 95),
                          "max": v[-1] if v else 0, "total": self.totals.get(st, 0), "side": side(st)}
        tot = {"customer": 0, "terminal": 0}
        for st, ms in self.totals.items():
            tot[side(st)] += ms
        grand = tot["customer"] + tot["terminal"]
        out = {"txns": self.txns, "stages": stages}
        for sd in SIDES:
            v = sorted(self._sides[sd])
            out[sd] = {"total": tot[sd], "share": (tot[sd] * 100 // grand) if grand else 0,
                       "p50": percentile(v, 50), "p95": percentile(v, 95)}
        term = tot["terminal"]
        ranked = sorted([kv for kv in self.totals.items() if side(kv[0]) == "terminal" and kv[1] > 0],
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

"""Wait analysis: where the customer's time goes, per transaction stage.

Stages ("card", "connect", "host", "retry", "print", ...) report milliseconds
as they finish; txn_done() folds a transaction into bounded per-stage sample
rings (for p50/p95) and a short history (for the over-time chart). The top
causes of waiting are the stages with the largest total time, so a technician
sees "the host is slow" apart from "customers fumble the card".
"""
from micropython import const
from array import array

from payterm.diag import _store

_SAMPLES = const(64)  # per stage, for percentiles
_HISTORY = const(32)  # transactions kept for the chart
_OPEN_MAX = const(8)  # transactions in progress at once (a leak guard, not a limit in use)


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending sequence (p in 1..100)."""
    n = len(sorted_vals)
    if not n:
        return 0
    k = (p * n + 99) // 100 - 1
    if k < 0:
        k = 0
    return sorted_vals[k]


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
        self.history = d.get("history", [])  # [time, ref, {stage: ms}]
        self._samples = {}
        for st, vals in d.get("samples", {}).items():
            self._samples[st] = array("I", vals)

    def wait(self, ref, stage, ms):
        if ms < 0:
            ms = 0
        t = self._open.get(ref)
        if t is None:
            if len(self._open) >= _OPEN_MAX:
                self._open.pop(next(iter(self._open)))
            t = self._open[ref] = {}
        t[stage] = t.get(stage, 0) + ms

    def done(self, ref):
        t = self._open.pop(ref, None)
        if not t:
            return
        self.txns += 1
        for st, ms in t.items():
            self.totals[st] = self.totals.get(st, 0) + ms
            self.counts[st] = self.counts.get(st, 0) + 1
            s = self._samples.get(st)
            if s is None:
                s = self._samples[st] = array("I")
            if len(s) >= _SAMPLES:
                # drop the oldest sample (array has no pop(0) on MicroPython)
                s[0:_SAMPLES - 1] = s[1:_SAMPLES]
                s[_SAMPLES - 1] = ms
            else:
                s.append(ms)
        self.history.append([int(self._clock()), str(ref), t])
        if len(self.history) > _HISTORY:
            self.history.pop(0)
        self.save()

    def save(self):
        _store.save(self.path, {
            "txns": self.txns, "totals": self.totals, "counts": self.counts,
            "history": self.history,
            "samples": dict((k, list(v)) for k, v in self._samples.items()),
        })

    def summary(self):
        stages = {}
        for st, s in self._samples.items():
            v = sorted(s)
            stages[st] = {"n": self.counts.get(st, 0), "p50": percentile(v, 50), "p95": percentile(v, 95),
                          "max": v[-1] if v else 0, "total": self.totals.get(st, 0)}
        grand = 0
        for v in self.totals.values():
            grand += v
        top = sorted(self.totals.items(), key=lambda kv: -kv[1])
        causes = []
        for st, ms in top[:5]:
            causes.append({"stage": st, "total": ms, "share": (ms * 100 // grand) if grand else 0})
        return {"txns": self.txns, "stages": stages, "top": causes}

    def clear(self):
        self._reset()
        self._open = {}
        self.save()

"""On-device diagnostics: what failed, how often, and where customers waited.

Every layer reports here through one small interface (fault, count, wait,
txn_done, boot) so the fault log, statistics and wait analysis stay
consistent, and tests pass NullDiag when they do not care. Storage is plain
files under `storage_dir` (flash on the device).
"""
from payterm.mask import scrub


class Diag:
    def __init__(self, storage_dir, clock, ticks, slots=64):
        from payterm.diag.faultlog import FaultLog
        from payterm.diag.stats import Stats
        from payterm.diag.waits import Waits

        self._clock = clock
        self.log = FaultLog(storage_dir + "/faults.bin", slots)
        self.st = Stats(storage_dir + "/stats.json", ticks, clock)
        self.waits = Waits(storage_dir + "/waits.json", clock)
        if self.log.torn or self.st.damaged or self.waits.damaged:
            # damage found while loading is itself a fault the technician must see
            self.fault("SYS-02", "diag", "torn=%d" % self.log.torn)

    def fault(self, code, stage="", ctx=""):
        """Record a failure; `code` may also be a payterm.errors.Fault."""
        if not isinstance(code, str):
            f = code
            code = f.code
            stage = stage or f.stage
            ctx = ctx or f.detail
        ctx = scrub(str(ctx)) if ctx else ""
        self.log.add(code, stage, ctx, self._clock())
        self.st.on_fault(code, stage)

    def count(self, key, n=1):
        self.st.count(key, n)

    def wait(self, ref, stage, ms):
        self.waits.wait(ref, stage, ms)

    def wait_move(self, ref, src, dst, ms):
        """Re-attribute part of a stage (payterm.diag.waits.Waits.move)."""
        self.waits.move(ref, src, dst, ms)

    def txn_done(self, ref, code=None):
        """The transaction's wait record is complete; `code` is its failure code (None: no failure).
        Returns the record {stage: ms} as folded in (None: nothing recorded)."""
        return self.waits.done(ref, code)

    def boot(self, reason):
        self.st.boot(reason, int(self._clock()))
        if reason == "watchdog":
            self.fault("SYS-06", "boot")

    def flush(self):
        self.st.flush()

    async def autosave(self, period_s=5):
        """Background task: counts reach flash within `period_s` even when no new event comes."""
        import asyncio

        while True:
            await asyncio.sleep(period_s)
            if self.st._dirty:
                self.st.flush()

    def stats(self):
        return self.st.snapshot()

    def faults(self, n=10):
        return self.log.last(n)

    def last_fault(self):
        f = self.log.last(1)
        return f[0] if f else None

    def wait_summary(self):
        return self.waits.summary()

    def wait_history(self):
        return self.waits.history

    def clear(self, what="all"):
        if what in ("faults", "all"):
            self.log.clear()
        if what in ("stats", "all"):
            self.st.clear()
            self.waits.clear()


class NullDiag:
    """Same interface, records nothing."""

    def fault(self, code, stage="", ctx=""):
        pass

    def count(self, key, n=1):
        pass

    def wait(self, ref, stage, ms):
        pass

    def wait_move(self, ref, src, dst, ms):
        pass

    def txn_done(self, ref, code=None):
        return None

    def boot(self, reason):
        pass

    def flush(self):
        pass

    async def autosave(self, period_s=5):
        pass

    def stats(self):
        return {"codes": {}, "categories": {}, "background": {}, "days": {}, "counters": {}, "boots": {},
                "boot_count": 0, "last_boot": None, "uptime_s": 0, "uptime_total_s": 0}

    def faults(self, n=10):
        return []

    def last_fault(self):
        return None

    def wait_summary(self):
        return {"txns": 0, "stages": {}, "top": [], "causes": [],
                "customer": {"total": 0, "share": 0, "p50": 0, "p95": 0},
                "terminal": {"total": 0, "share": 0, "p50": 0, "p95": 0}}

    def wait_history(self):
        return []

    def clear(self, what="all"):
        pass

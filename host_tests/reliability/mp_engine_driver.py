"""MicroPython: the firmware's transaction core against a real acquirer over TCP, driven by a list of ops.

Runs in the unix port (never imported into CPython). It builds what
payterm.app builds for payments, from the same parameters table
(payterm.config.DEFAULTS, with the test's overrides): Link, Supervisor,
Breaker, Backoff, Journal, State, Engine, Worker and the real Diag (fault
log, stats, wait analysis on the state directory), without the panel and
the card readers, so thousands of transactions or hundreds of power cuts
fit in a test run.

    micropython mp_engine_driver.py SPEC.json OPS.jsonl

SPEC: {"state": dir, "hosts": ["127.0.0.1:port", ...], "cfg": {...},
"tls": {"ca": path, "server_hostname": name} or null, "background": bool
(run the supervisor's probes and the worker as tasks, as the app does),
"journal_max": bytes, "journal_keep": n, "audit_drops": print the records a compaction
drops}. OPS: one JSON list per line,
read as it goes (a soak of 10,000 never holds its plan in RAM):

  ["sale"|"refund", amount]       a customer request; prints its Result
  ["void", "last"|"#i"|ref]       void the last sale/refund, the i-th one, or a ref
  ["recover"]                     what the app does at boot
  ["work", n]                     the worker by hand until nothing is left (at most n attempts)
  ["settle", ms]                  background mode: wait until no reversal, no advice is left
  ["echo"]                        an 0800 (opens the connection)
  ["sync", name]                  print {"sync": name}, wait for a line on stdin (the test acts)
  ["mem", info]                   gc.collect(), then mem_free / mem_alloc (info: also micropython.mem_info())
  ["window", name]                p50/p95 per stage since the last window, outcome counts
  ["files"]                       sizes of the files in the state directory
  ["record", ref|"last"]          a journal record's state and status
  ["sleep", ms]

PAYTERM_CUT_AT / PAYTERM_FLASH_LOG (payterm.hal.host.FlashCut): the power
cut at the k-th flash operation, counted from the start of this VM.
Output: JSON lines; nothing here prints card data (the test checks).
"""
import asyncio
import gc
import json
import os
import sys
import time

from payterm import config as _config
from payterm.diag import Diag
from payterm.errors import Fault
from payterm.link.backoff import Backoff
from payterm.link.breaker import Breaker
from payterm.link.link import Link
from payterm.link.supervisor import Supervisor
from payterm.crypto.dukpt import Dukpt
from payterm.txn.cardstore import CardStore
from payterm.mask import scrub
from payterm.txn.engine import Engine
from payterm.txn.journal import Journal
from payterm.txn.state import State
from payterm.txn.worker import Worker


_REFS = 64  # refs kept for "last" / "#i" (a soak must not grow a list)


def out(d):
    print(json.dumps(d))


class Card:
    """A swiped test card (TEST_CARDS "visa"), in bytearrays as the real Card keeps them."""

    masked = "476173******0010"
    entry_mode = "901"
    source = "swipe"

    def __init__(self):
        self._f = {"2": bytearray(b"4761739001010010"), "14": bytearray(b"3012"),
                   "35": bytearray(b"4761739001010010=30122011143804400000")}

    def auth_fields(self):
        return dict(self._f)

    def wipe(self):
        for v in self._f.values():
            for i in range(len(v)):
                v[i] = 0x30


class Window:
    """Latency samples per stage (ms) and outcome counts since the last report."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.stages = {}
        self.outcomes = {}
        self.n = 0

    def add(self, stage, ms):
        self.stages.setdefault(stage, []).append(ms)

    def outcome(self, key):
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        self.n += 1

    def report(self, name):
        st = {}
        for k, v in self.stages.items():
            v.sort()
            n = len(v)
            st[k] = {"n": n, "p50": v[(n - 1) // 2], "p95": v[min(n - 1, (n * 95 + 99) // 100 - 1)], "max": v[-1]}
        d = {"window": name, "n": self.n, "stages": st, "outcomes": self.outcomes}
        self.reset()
        return d


class RecDiag(Diag):
    """The real Diag (files on the state directory), also telling the test each fault and wait."""

    def __init__(self, root, clock, ticks):
        super().__init__(root, clock, ticks)
        self.host_ms = None  # the last customer request's wait for the host (the engine's own measure)

    def fault(self, code, stage="", ctx=""):
        super().fault(code, stage, ctx)
        out({"fault": code if isinstance(code, str) else code.code, "stage": stage, "ctx": scrub(str(ctx))[:200]})

    def wait(self, ref, stage, ms):
        super().wait(ref, stage, ms)
        if stage == "host":
            self.host_ms = ms


def _ms_us(t0):
    return time.ticks_diff(time.ticks_us(), t0) // 1000


class Driver:
    def __init__(self, spec):
        from payterm.hal.host import flash_hook_from_env

        flash_hook_from_env()
        self.spec = spec
        root = spec["state"]
        cfg = dict(_config.DEFAULTS)
        cfg.update(spec.get("cfg") or {})
        self.cfg = cfg
        self.win = Window()
        ticks, clock = time.ticks_ms, lambda: int(time.time())
        self.diag = RecDiag(root, clock, ticks)
        hosts = []
        for h in spec["hosts"]:
            host, _, port = h.rpartition(":")
            hosts.append((host, int(port)))
        tls = spec.get("tls")
        if tls:
            import ssl

            tls = {"ca": tls["ca"], "server_hostname": tls.get("server_hostname"), "ssl": ssl}
        self.link = Link(hosts, asyncio.open_connection, ticks, cfg["connect_timeout_ms"], cfg["read_timeout_ms"],
                         tls=tls)
        self.breaker = Breaker(cfg["breaker_threshold"], cfg["breaker_open_ms"], ticks,
                               max_open_ms=cfg["breaker_open_max_ms"])
        self.sup = Supervisor(self.link, Backoff(cfg["backoff_base_ms"], cfg["backoff_cap_ms"]), self.breaker, ticks,
                              lambda t: None, max_attempts=cfg["max_attempts"], max_wait_ms=cfg["max_wait_ms"],
                              diag=self.diag, min_read_ms=cfg["min_read_ms"], probe_wait_ms=cfg["worker_wait_ms"])
        self.journal = Journal(root, self.diag, max_bytes=spec.get("journal_max", 65536),
                               keep=spec.get("journal_keep", 100))
        if spec.get("audit_drops"):
            self._audit_drops()
        self.state = State(root, diag=self.diag)
        # The DUKPT key registers and the card data at rest, as payterm.app builds them: every request is
        # MACed and an offline sale's advice carries its card data encrypted (the acquirer checks both).
        self.keys = Dukpt(State(root, "keys", diag=self.diag))
        self.keys.install_file(root + "/ikey.json")
        self.cards = CardStore(root, cfg["saf_max_count"], diag=self.diag)
        self.engine = Engine(self.sup, self.journal, self.state, None, cfg, self.diag, clock, ticks, lambda t: None,
                             keys=self.keys, cards=self.cards)
        self.worker = Worker(self.engine, self.sup, ticks)
        self.refs = []  # refs of the newest sales and refunds (at most _REFS), in order
        self.nrefs = 0  # how many were ever added: "#i" names the i-th
        self.root = root

    def _audit_drops(self):
        """Print each record a compaction drops, as it is at that moment (final: it can no longer
        change), so the test's reconciler judges every transaction, not only the sum it leaves."""
        j = self.journal
        drop = j._drop

        def audited(items):
            # items: (seq, ref in RAM or None, flash-only key). A flash-only record is read back from
            # the journal file (one pass for all of them) without touching the journal's own state.
            want = {}
            for _, ref, k in items:
                if ref is None:
                    want[k if isinstance(k, str) else "%06d" % k] = None
            if want:
                for rec, _ in j._frames(j._good):
                    r = rec.get("ref")
                    if r not in want:
                        continue
                    t = want[r]
                    if rec.get("new") or t is None:
                        t = want[r] = {}
                    for key in rec:
                        if key != "new":
                            t[key] = rec[key]
            for _, ref, k in items:
                if ref is not None:
                    t = j.txns.get(ref)
                else:
                    t = want.get(k if isinstance(k, str) else "%06d" % k)
                if t:
                    out({"dropped": t})  # one at a time: no large string on a fragmented heap
            want = None
            drop(items)

        j._drop = audited

    def _ref(self, arg):
        if arg == "last":
            return self.refs[-1] if self.refs else "999999"
        if isinstance(arg, str) and arg[:1] == "#":
            i = int(arg[1:]) - (self.nrefs - len(self.refs))
            return self.refs[i] if 0 <= i < len(self.refs) else "999999"
        return arg

    def _add_ref(self, ref):
        self.refs.append(ref)
        self.nrefs += 1
        if len(self.refs) > _REFS:
            self.refs.pop(0)

    def _result(self, name, r, t0):
        ms = _ms_us(t0)
        key = "approved_offline" if r.approved and r.offline else "approved" if r.approved else (r.code or "?")
        self.win.outcome(name + ":" + key)
        host = self.diag.host_ms
        if key == "approved" and name in ("sale", "refund") and host is not None:
            # Stages of the normal path: waiting for the host, and the terminal's own work around it
            # (numbering, journal, state, flash).
            self.win.add("host", host)
            self.win.add("local", max(0, ms - host))
            self.win.add("total", ms)
        return {"op": name, "approved": r.approved, "code": r.code, "rc": r.rc, "ref": r.ref, "stan": r.stan,
                "offline": r.offline, "ms": ms}

    async def op(self, o):
        name = o[0]
        e = self.engine
        if name in ("sale", "refund"):
            t0 = time.ticks_us()
            self.diag.host_ms = None
            r = await getattr(e, name)(Card(), o[1], self.cfg["currency"])
            if r.ref:
                self._add_ref(r.ref)
            out(self._result(name, r, t0))
        elif name == "void":
            t0 = time.ticks_us()
            r = await e.void(self._ref(o[1]))
            out(self._result("void", r, t0))
        elif name == "recover":
            out({"op": name, "n": await e.recover()})
        elif name == "work":
            w = self.worker
            for _ in range(o[1] if len(o) > 1 else 40):
                if not e.reversals() and not e.saf.pending():
                    break
                if not await w.work_once():
                    await asyncio.sleep_ms(min(w.next_due_ms() or 0, 300))
            out({"op": name, "reversals": len(e.reversals()), "saf": len(e.saf.pending())})
        elif name == "settle":
            end = time.ticks_add(time.ticks_ms(), o[1] if len(o) > 1 else 30000)
            while (e.reversals() or e.saf.pending()) and time.ticks_diff(end, time.ticks_ms()) > 0:
                self.worker.kick()
                await asyncio.sleep_ms(20)
            out({"op": name, "reversals": len(e.reversals()), "saf": len(e.saf.pending()),
                 "online": self.sup.online})
        elif name == "echo":
            try:
                await self.sup.echo(self.cfg["connect_timeout_ms"] + self.cfg["read_timeout_ms"])
                out({"op": name, "ok": True})
            except Fault as f:
                out({"op": name, "ok": False, "code": f.code})
        elif name == "sync":
            out({"sync": o[1]})
            sys.stdin.readline()
        elif name == "mem":
            gc.collect()
            free, alloc = gc.mem_free(), gc.mem_alloc()
            out({"op": name, "free": free, "alloc": alloc})
            if len(o) > 1 and o[1]:
                import micropython

                micropython.mem_info()  # "max free sz": the largest free block (fragmentation)
        elif name == "window":
            out(self.win.report(o[1]))
        elif name == "files":
            sizes = {}
            for n in os.listdir(self.root):
                try:
                    sizes[n] = os.stat(self.root + "/" + n)[6]
                except OSError:
                    pass
            out({"op": name, "sizes": sizes, "journal_max": self.journal.max_bytes,
                 "compactions": self.journal.compactions})
        elif name == "record":
            t = e.journal.get(self._ref(o[1]))
            out({"op": name, "st": t.get("st") if t else None, "status": e.status_of(t) if t else None})
        elif name == "sleep":
            await asyncio.sleep_ms(o[1])
        else:
            raise ValueError("unknown op %r" % (o,))

    async def run(self, ops_path):
        tasks = []
        if self.spec.get("background"):
            tasks = [asyncio.create_task(self.sup.run()), asyncio.create_task(self.worker.run())]
        with open(ops_path) as f:
            while True:
                line = f.readline()
                if not line:
                    break
                line = line.strip()
                if line:
                    await self.op(json.loads(line))
        for t in tasks:
            t.cancel()
        await self.link.close()
        out({"done": 1})


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    asyncio.run(Driver(spec).run(sys.argv[2]))


main()

"""Fakes for the transaction-engine unit tests (MicroPython): card, supervisor, diag, flash faults.

The supervisor fake answers each request from a script and keeps every
request it was given, so a test checks what would have gone on the wire.
Script items: a field-39 code ("00", "51", ...), a Fault (raised, with the
link's `sent` flag), "hang" (never answers), a dict of response fields that
replace the default answer's (a None value removes the field, e.g.
{"39": None} is a response without field 39), or ("gate", event, item): wait
for the asyncio.Event, then answer with item.
Background work (reversals, advices) is the real payterm.txn.worker.Worker:
`work_once(e)` makes one attempt with the worker's clock moved to the next
item's due time (so a retry's backoff pause costs no waiting), `drain(e)`
repeats it while attempts settle.
Journal and state are real files; `FlashFaults` is a payterm.flash hook that
makes chosen operations fail (ENOSPC) or cuts the power (`PowerCut`, a
BaseException nothing in the firmware catches) at a chosen operation.
"""
import asyncio

from payterm.errors import Fault
from payterm.txn.engine import Engine
from payterm.txn.journal import Journal
from payterm.txn.saf import Saf
from payterm.txn.state import State
from payterm.txn.worker import Worker
from mpt import FakeClock

PAN = "4111111111111111"


class FakeCard:
    def __init__(self, pan=PAN):
        self._pan = pan
        self.masked = pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
        self.entry_mode = "901"
        self.wiped = False

    def auth_fields(self):
        if self.wiped:
            raise Fault("SYS-09", "wiped", "card")
        return {"2": self._pan, "14": "3012", "35": self._pan + "=30121010000000000000"}

    def wipe(self):
        self.wiped = True


def response_mti(t):
    return t[:2] + str(int(t[2]) + 1) + "0"


class FakeSup:
    def __init__(self, *script):
        self.script = list(script)
        self.sent = []
        self.background = []  # per request: sent as a background request (the worker's)
        self.preempts = 0  # calls of preempt(): a customer flow took the link from background work
        self._echo_fields = None

    def set_echo_fields(self, fn):
        self._echo_fields = fn

    async def preempt(self):
        self.preempts += 1

    async def request(self, fields, deadline_ms=None, background=False):
        self.sent.append(dict(fields))
        self.background.append(background)
        a = self.script.pop(0) if self.script else "00"
        while isinstance(a, tuple) and a[0] == "gate":
            await a[1].wait()
            a = a[2]
        if isinstance(a, Fault):
            raise a
        if a == "hang":
            await asyncio.sleep(3600)
        resp = {"t": response_mti(fields["t"]), "11": fields["11"], "37": "%012d" % len(self.sent)}
        if "4" in fields:
            resp["4"] = fields["4"]
        over = a if isinstance(a, dict) else {"39": a}
        if over.get("39", "00") == "00":
            resp["38"] = "AB%04d" % len(self.sent)
        resp["39"] = "00"
        for k in over:
            if over[k] is None:
                resp.pop(k, None)
            else:
                resp[k] = over[k]
        return resp

    async def echo(self, deadline_ms=None):
        return await self.request({"t": "0800", "11": "000000", "70": "301"}, deadline_ms)


class RecDiag:
    def __init__(self):
        self.faults = []
        self.details = []
        self.waits = []
        self.done = []

    def fault(self, code, stage="", ctx=""):
        self.faults.append(code)
        self.details.append((code, ctx))
        assert PAN not in ctx

    def wait(self, ref, stage, ms):
        self.waits.append((ref, stage))

    def txn_done(self, ref):
        self.done.append(ref)


def fault(code, sent):
    f = Fault(code, "scripted", "link")
    f.sent = sent
    return f


CFG = {"terminal_id": "TERM0042", "merchant_id": "MERCHANT0000042", "currency": 978,
       "floor_limit": 2000, "saf_max_count": 3, "saf_max_total": 5000}


def engine(d, sup, **cfg):
    j = Journal(d)
    st = State(d)
    c = dict(CFG)
    c.update(cfg)
    return Engine(sup, j, st, Saf(j), c, RecDiag(), lambda: 1700000000, lambda: 0, None)


def worker(e):
    """(Worker, its clock) doing the background work of engine `e` (one per engine)."""
    w = getattr(e, "_test_worker", None)
    if w is None:
        clk = FakeClock(5000)
        w = (Worker(e, e.sup, ticks=clk, rand=lambda lo, hi: hi), clk)
        e._test_worker = w
    return w


async def work_once(e):
    """One background attempt for engine `e`, due now (the clock jumps to the next due item);
    True when the host settled it."""
    w, clk = worker(e)
    w.sync()
    ms = w.next_due_ms()
    if ms is not None:
        clk.advance(ms)
    return await w.work_once()


async def drain(e):
    """Background attempts while they settle something; how many did."""
    n = 0
    while await work_once(e):
        n += 1
    return n


class PowerCut(BaseException):
    """The power went: nothing after this runs (the firmware catches only Exception)."""


class FlashFaults:
    """payterm.flash hook: fail or cut chosen flash operations.

    `fail(pred)`: operations for which pred(op, path) is true raise OSError ENOSPC
    (pred returning "torn": half the bytes are written, then it raises).
    `cut_at(k, mode)`: PowerCut at write operation k counted from now ("before",
    "after" or "partial": half the bytes written). `ops` lists (op, path) of
    every write operation seen.
    """

    def __init__(self):
        self.ops = []
        self.pred = None
        self.k = 0
        self.mode = "before"
        self._tear = False

    def install(self):
        from payterm import flash

        self._writes = flash.WRITES
        flash.set_hook(self)
        return self

    def remove(self):
        from payterm import flash

        flash.set_hook(None)

    def fail(self, pred):
        self.pred = pred

    def cut_at(self, k, mode="before"):
        self.k = len(self.ops) + k
        self.mode = mode

    def before(self, op, path, n):
        if op not in self._writes:
            return n
        self.ops.append((op, path))
        got = self.pred(op, path) if self.pred is not None else False
        if got == "torn":
            self._tear = True  # half the bytes reach flash, then the write fails
            return n // 2
        if got:
            raise OSError(28)  # ENOSPC
        if len(self.ops) == self.k:
            if self.mode == "before" or (self.mode == "partial" and not n):
                raise PowerCut(op)
            if self.mode == "partial":
                return n // 2
        return n

    def after(self, op, path):
        if self._tear:
            self._tear = False
            raise OSError(28)
        if op in self._writes and len(self.ops) == self.k and self.mode != "before":
            raise PowerCut(op)


def journal_bytes(d):
    with open(d + "/journal.log", "rb") as f:
        return f.read()

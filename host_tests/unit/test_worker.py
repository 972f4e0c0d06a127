"""Background worker: reversals and advices on per-item schedules, the money rules, customer first.

Most tests drive the worker against a scripted supervisor (each request
answered from a script: a field-39 code, "no_rc" for an answer without field
39, "wrong_mti", "hang", or a Fault with the link's `sent` flag) with a clock
the test moves to each due time; journal and state are real files. The
priority tests use the real Supervisor over the fake link of linkfake.py.
"""
import asyncio

from linkfake import FakeLink, fault
from mpt import eq, tmpdir, FakeClock

from payterm.errors import Fault
from payterm.link.backoff import Backoff
from payterm.link.breaker import Breaker
from payterm.link.iso8583 import response_mti
from payterm.link.supervisor import Supervisor
from payterm.txn.engine import Engine
from payterm.txn.journal import Journal
from payterm.txn.saf import Saf
from payterm.txn.state import State
from payterm.txn.worker import Worker

PAN = "4111111111111111"


class FakeCard:
    def __init__(self, pan=PAN):
        self._pan = pan
        self.masked = pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
        self.entry_mode = "901"

    def auth_fields(self):
        return {"2": self._pan, "14": "3012", "35": self._pan + "=30121010000000000000"}

    def wipe(self):
        pass


class FakeSup:
    def __init__(self, *script):
        self.script = list(script)
        self.sent = []
        self.background = []
        self.budgets = []
        self.online = True
        self.watchers = []

    def set_echo_fields(self, fn):
        self._echo_fields = fn

    def watch(self, fn):
        self.watchers.append(fn)

    async def preempt(self):
        pass

    async def wait_online(self):
        while not self.online:
            await asyncio.sleep_ms(1)

    async def request(self, fields, deadline_ms=None, background=False):
        self.sent.append(dict(fields))
        self.background.append(background)
        self.budgets.append(deadline_ms)
        a = self.script.pop(0) if self.script else "00"
        if isinstance(a, Fault):
            raise a
        if a == "hang":
            await asyncio.sleep(3600)
        resp = {"t": response_mti(fields["t"]), "11": fields["11"], "37": "%012d" % len(self.sent)}
        if a == "wrong_mti":
            resp["t"] = "0810"
            resp["39"] = "00"
        elif a != "no_rc":
            resp["39"] = a
        if a == "00":
            resp["38"] = "AB%04d" % len(self.sent)
        return resp


class RecDiag:
    def __init__(self):
        self.faults = []
        self.log = []

    def fault(self, code, stage="", ctx=""):
        self.faults.append(code)
        self.log.append((code, stage, ctx))
        assert PAN not in ctx

    def wait(self, ref, stage, ms):
        pass

    def txn_done(self, ref):
        pass

    def count(self, key, n=1):
        pass


def _engine(d, sup, clk=None, **cfg):
    j = Journal(d)
    c = {"terminal_id": "TERM0042", "merchant_id": "MERCHANT0000042", "currency": 978,
         "floor_limit": 2000, "saf_max_count": 3, "saf_max_total": 5000, "retry_base_ms": 1000,
         "retry_cap_ms": 8000}
    c.update(cfg)
    return Engine(sup, j, State(d), Saf(j), c, RecDiag(), lambda: 1700000000, clk or FakeClock(5000), None)


def _worker(e, sup, **kw):
    kw.setdefault("rand", lambda lo, hi: hi)
    return Worker(e, sup, **kw)


async def _step(w, clk):
    """One attempt: the clock jumps to the next due time."""
    w.sync()
    ms = w.next_due_ms()
    if ms is not None:
        clk.advance(ms)
    return await w.work_once()


async def _drain(w, clk, limit=60):
    """Attempts as they fall due, the clock jumping to each due time; the pauses waited, in order."""
    waits = []
    for _ in range(limit):
        w.sync()
        ms = w.next_due_ms()
        if ms is None:
            return waits
        clk.advance(ms)
        waits.append(ms)
        await w.work_once()
    raise AssertionError("still busy after %d attempts" % limit)


def _ambiguous():
    return fault("HST-01", True)


def _never():
    return fault("NET-03", False)


# ---------------------------------------------------------------- reversals
async def test_ambiguous_outcome_is_reversed_with_repeats_until_acknowledged():
    d = tmpdir("wk_rev")
    clk = FakeClock(5000)
    sup = FakeSup(_ambiguous(), _never(), _ambiguous(), "00")
    e = _engine(d, sup, clk)
    w = _worker(e, sup)
    r = await e.sale(FakeCard(), 1500)
    eq((r.approved, r.code), (False, "HST-01"))
    eq(await w.work_once(), False)  # connect failure: the 0400 never left
    await _drain(w, clk)
    revs = sup.sent[1:]
    eq([m["t"] for m in revs], ["0400", "0400", "0401"])
    eq(sup.background[1:], [True, True, True], "background requests")
    eq(sup.budgets[1:], [e.cfg["worker_wait_ms"]] * 3)
    for m in revs:
        eq(m["11"], r.stan)
        eq(m["90"][:10], "0200" + r.stan)
        eq(m["4"], "000000001500")
        eq("2" in m or "35" in m, False)
    t = Journal(d).get(r.ref)
    eq((t["st"], t["rv"], t["rv_out"], t["rv_rc"]), ("reversed", 3, 2, "00"))


async def test_reversal_answered_96_keeps_repeating_until_00():
    d = tmpdir("wk_rev96")
    clk = FakeClock(5000)
    sup = FakeSup(_ambiguous(), "96", "96", "96", "00")
    e = _engine(d, sup, clk)
    w = _worker(e, sup)
    r = await e.sale(FakeCard(), 900)
    await w.work_once()
    eq(e.lookup(r.ref)["st"], "reversing", "a 96 is no acknowledgement: the host may hold the charge")
    eq(e.lookup(r.ref)["rv_rc"], "96")
    waits = await _drain(w, clk)
    eq([m["t"] for m in sup.sent[1:]], ["0400", "0401", "0401", "0401"])
    eq(waits, [1000, 2000, 4000], "exponential pause per item, never a fixed loop")
    t = Journal(d).get(r.ref)
    eq((t["st"], t["rv_rc"]), ("reversed", "00"))
    eq(e.diag.faults.count("ISS-96"), 3, "each refusal logged")


async def test_reversal_of_unknown_original_25_is_done():
    d = tmpdir("wk_rev25")
    clk = FakeClock(5000)
    sup = FakeSup(_ambiguous(), "25")
    e = _engine(d, sup, clk)
    w = _worker(e, sup)
    r = await e.sale(FakeCard(), 100)
    eq(await w.work_once(), True)
    eq((e.lookup(r.ref)["st"], e.lookup(r.ref)["rv_rc"]), ("reversed", "25"))


async def test_reversal_answer_without_rc_or_wrong_type_repeats():
    d = tmpdir("wk_rev_norc")
    clk = FakeClock(5000)
    sup = FakeSup(_ambiguous(), "no_rc", "wrong_mti", "00")
    e = _engine(d, sup, clk)
    w = _worker(e, sup)
    r = await e.sale(FakeCard(), 100)
    await _drain(w, clk)
    eq([m["t"] for m in sup.sent[1:]], ["0400", "0401", "0401"])
    eq(e.lookup(r.ref)["st"], "reversed")


async def test_reversal_repeat_flag_survives_reboot():
    d = tmpdir("wk_rev_boot")
    sup = FakeSup(fault("NET-05", True), _ambiguous())
    e = _engine(d, sup)
    r = await e.sale(FakeCard(), 100)
    await _worker(e, sup).work_once()
    sup2 = FakeSup("00")
    e2 = _engine(d, sup2)
    await e2.recover()
    eq(await _worker(e2, sup2).work_once(), True)
    eq(sup2.sent[0]["t"], "0401")
    eq(e2.lookup(r.ref)["st"], "reversed")


async def test_power_cut_in_flight_is_reversed_at_boot():
    d = tmpdir("wk_cut")
    sup = FakeSup("hang")
    e = _engine(d, sup)
    task = asyncio.create_task(e.sale(FakeCard(), 800))
    await asyncio.sleep_ms(10)
    task.cancel()  # power gone: nothing after the send reached the journal
    await asyncio.sleep_ms(0)
    stan = sup.sent[0]["11"]
    sup2 = FakeSup("00")
    e2 = _engine(d, sup2)
    eq(e2.lookup(stan)["st"], "pending")
    eq(await e2.recover(), 1)
    eq(e2.diag.faults, ["HST-05"])
    await _worker(e2, sup2).work_once()
    eq((sup2.sent[0]["t"], sup2.sent[0]["11"]), ("0400", stan))
    eq(e2.lookup(stan)["st"], "reversed")
    r = await e2.sale(FakeCard(), 10)
    eq(int(r.stan) > int(stan), True, "the next sale gets a fresh STAN")


async def test_ambiguous_refund_reads_reversed_once_acknowledged():
    d = tmpdir("wk_refund")
    sup = FakeSup(_ambiguous(), "00")
    e = _engine(d, sup)
    amb = await e.refund(FakeCard(), 902)
    eq(e.status_of(e.lookup(amb.ref)), "pending")
    await _worker(e, sup).work_once()
    eq(e.status_of(e.lookup(amb.ref)), "reversed")


# ---------------------------------------------------------------- store and forward
async def test_offline_under_floor_goes_to_saf_and_uploads_in_order_once():
    d = tmpdir("wk_saf")
    clk = FakeClock(5000)
    sup = FakeSup(*[fault("HST-04", False) for _ in range(6)])
    e = _engine(d, sup, clk)
    w = _worker(e, sup)
    a = await e.sale(FakeCard(), 1000)
    b = await e.sale(FakeCard(), 2000)
    eq((a.approved, a.offline, b.approved, b.offline), (True, True, True, True))
    c = await e.sale(FakeCard(), 2001)
    eq((c.approved, c.code), (False, "SYS-08"))
    d2 = await e.sale(FakeCard(), 1500)
    eq([t["ref"] for t in e.saf.pending()], [a.ref, b.ref, d2.ref])
    # link back: the first upload is refused locally, then times out and is repeated; the rest go once each
    sup.script = [fault("HST-04", False), _ambiguous(), "00", "00", "05"]
    n = len(sup.sent)
    await _drain(w, clk)
    adv = sup.sent[n:]
    eq([(m["t"], m["11"]) for m in adv],
       [("0220", a.stan), ("0220", a.stan), ("0221", a.stan), ("0220", b.stan), ("0220", d2.stan)])
    eq(adv[0]["38"], a.auth_code)
    eq("2" in adv[0], False)
    eq([e.lookup(x.ref)["st"] for x in (a, b, d2)], ["sent", "sent", "declined"])
    eq(e.lookup(d2.ref)["code"], "ISS-05")
    eq("ISS-05" in e.diag.faults, True, "a clean decline is a fault with its code")
    eq(e.saf.summary()["sent"], 2)
    eq(e.lookup(a.ref)["tries"], 2, "the local refusal never counted")


async def test_advice_answer_without_field_39_is_ambiguous_and_repeated():
    d = tmpdir("wk_adv_norc")
    clk = FakeClock(5000)
    sup = FakeSup(fault("NET-03", False), "no_rc", "00")
    e = _engine(d, sup, clk)
    w = _worker(e, sup)
    s = await e.sale(FakeCard(), 700)
    eq(s.offline, True)
    eq(await w.work_once(), False)
    t = e.lookup(s.ref)
    eq(t["st"], "pending", "a 0230 without field 39 is not a decline: the host may have booked it")
    await _drain(w, clk)
    eq([m["t"] for m in sup.sent[1:]], ["0220", "0221"])
    eq(e.lookup(s.ref)["st"], "sent")


async def test_never_sent_attempts_do_not_count_and_max_tries_fails_visibly():
    d = tmpdir("wk_adv_tries")
    clk = FakeClock(5000)
    sup = FakeSup(fault("NET-03", False))
    e = _engine(d, sup, clk, saf_max_tries=3)
    changes = []
    w = _worker(e, sup, on_change=lambda: changes.append(1))
    s = await e.sale(FakeCard(), 500)
    # A long outage: every attempt refused before it left the terminal.
    sup.script = [fault("HST-04", False), fault("NET-03", False)] * 10
    for _ in range(20):
        await _step(w, clk)
    t = e.lookup(s.ref)
    eq((t["st"], t.get("tries", 0), t.get("out", 0)), ("pending", 0, 0), "nothing left: nothing counted")
    eq(w.next_due_ms() <= e.cfg["retry_base_ms"], True, "no pause grew either")
    # Host reachable but never answers: three delivered attempts, then failed.
    sup.script = [_ambiguous(), _ambiguous(), _ambiguous()]
    n = len(sup.sent)
    await _drain(w, clk)
    eq([m["t"] for m in sup.sent[n:]], ["0220", "0221", "0221"])
    t = e.lookup(s.ref)
    eq((t["st"], t["code"], t["tries"]), ("failed", "HST-07", 3))
    eq(e.diag.faults[-1], "HST-07", "giving up is a fault with a code")
    eq([x["ref"] for x in w.failed()], [s.ref])
    eq(e.saf.summary()["failed"], 1)
    eq(len(changes) >= 1, True, "the idle screen is told")
    # The technician retries: the upload goes again, as a repeat, and is booked once.
    sup.script = ["00"]
    eq(await w.retry(str(int(s.ref))), s.ref)
    eq(e.lookup(s.ref)["st"], "pending")
    await _drain(w, clk)
    eq(sup.sent[-1]["t"], "0221")
    eq(e.lookup(s.ref)["st"], "sent")
    try:
        await w.retry(s.ref)
        raise AssertionError("a sent advice cannot be retried")
    except Fault as f:
        eq(f.code, "OPR-04")


async def test_worker_waits_for_the_link_instead_of_burning_attempts():
    d = tmpdir("wk_online")
    sup = FakeSup(fault("NET-03", False))
    e = _engine(d, sup, retry_base_ms=2, retry_cap_ms=4, worker_scan_ms=50, saf_max_tries=2)
    import time

    e.ticks = time.ticks_ms
    w = _worker(e, sup, ticks=time.ticks_ms)
    s = await e.sale(FakeCard(), 500)
    sup.online = False
    task = asyncio.create_task(w.run())
    await asyncio.sleep_ms(100)
    eq(len(sup.sent), 1, "no attempt while offline")
    sup.online = True
    for _ in range(100):
        await asyncio.sleep_ms(5)
        if e.lookup(s.ref)["st"] != "pending":
            break
    task.cancel()
    eq(e.lookup(s.ref)["st"], "sent")
    eq([m["t"] for m in sup.sent[1:]], ["0220"])


async def test_void_between_attempts_drops_the_advice():
    d = tmpdir("wk_void")
    clk = FakeClock(5000)
    sup = FakeSup(fault("NET-03", False), fault("NET-03", False))
    e = _engine(d, sup, clk)
    w = _worker(e, sup)
    s = await e.sale(FakeCard(), 500)
    await w.work_once()
    eq((sup.sent[-1]["t"], e.lookup(s.ref).get("out", 0)), ("0220", 0), "that attempt never left")
    v = await e.void(s.ref)
    eq(v.approved, True, "never uploaded: the void drops it from the queue")
    n = len(sup.sent)
    await _drain(w, clk)
    eq(len(sup.sent), n, "the worker re-reads after claiming: nothing more is sent")


async def test_reversal_goes_before_saf_upload():
    d = tmpdir("wk_order")
    sup = FakeSup(fault("NET-03", False), _ambiguous())
    e = _engine(d, sup)
    w = _worker(e, sup)
    s1 = await e.sale(FakeCard(), 100)
    s2 = await e.sale(FakeCard(), 200)
    eq((s1.offline, s2.code), (True, "HST-01"))
    await w.work_once()
    await w.work_once()
    eq([m["t"] for m in sup.sent[2:]], ["0400", "0220"])


async def test_worker_loop_drains_queue():
    import time

    d = tmpdir("wk_loop")
    sup = FakeSup(fault("NET-03", False), _ambiguous())
    e = _engine(d, sup, retry_base_ms=2, retry_cap_ms=8, worker_scan_ms=20)
    e.ticks = time.ticks_ms
    w = _worker(e, sup, ticks=time.ticks_ms)
    await e.sale(FakeCard(), 100)
    await e.sale(FakeCard(), 100)
    task = asyncio.create_task(w.run())
    for _ in range(100):
        await asyncio.sleep_ms(2)
        if not e.reversals() and not e.saf.pending():
            break
    task.cancel()
    eq((e.reversals(), e.saf.pending()), ([], []))


async def test_items_list_for_the_technician():
    d = tmpdir("wk_items")
    clk = FakeClock(5000)
    sup = FakeSup(_ambiguous(), fault("NET-03", False), _ambiguous())
    e = _engine(d, sup, clk)
    w = _worker(e, sup)
    r = await e.sale(FakeCard(), 100)
    s = await e.sale(FakeCard(), 200)
    await w.work_once()
    got = [(k, t["ref"], due) for k, t, due in w.items()]
    eq(got, [("reversal", r.ref, 1000), ("advice", s.ref, 0)])


# ---------------------------------------------------------------- customer first (real supervisor)
def _real(d, outcomes, **cfg):
    import time

    class Clock:
        """Real time: the fake link's costs are not simulated here."""

        def __call__(self):
            return time.ticks_ms()

        def advance(self, ms):
            pass

    link = FakeLink(Clock(), outcomes)
    sup = Supervisor(link, Backoff(50, 200, lambda lo, hi: hi), Breaker(3, 1000, time.ticks_ms), time.ticks_ms,
                     lambda text: None, max_attempts=1, max_wait_ms=3000, min_read_ms=100)
    e = _engine(d, sup, **cfg)
    e.ticks = time.ticks_ms
    return e, sup, link


async def test_customer_sale_preempts_an_advice_in_flight():
    import time

    d = tmpdir("wk_preempt")
    e, sup, link = _real(d, [fault("NET-03", False), "hang", {"38": "CUST01"}, {}],
                         retry_base_ms=20, retry_cap_ms=40, worker_scan_ms=50)
    w = _worker(e, sup, ticks=time.ticks_ms)
    off = await e.sale(FakeCard(), 500)
    eq(off.offline, True)
    task = asyncio.create_task(w.run())
    while not link.hanging:
        await asyncio.sleep_ms(1)
    eq(link.sent[-1]["t"], "0220", "the advice is out, its answer never comes")
    t0 = time.ticks_ms()
    r = await e.sale(FakeCard(), 1200)
    took = time.ticks_diff(time.ticks_ms(), t0)
    eq((r.approved, r.offline, r.auth_code), (True, False, "CUST01"))
    assert took < 200, "the customer waited %d ms behind background work" % took
    for _ in range(100):
        await asyncio.sleep_ms(5)
        if e.lookup(off.ref)["st"] == "sent":
            break
    task.cancel()
    eq([m["t"] for m in link.sent], ["0220", "0200", "0221"], "the cut-short advice repeats as 0221")
    t = e.lookup(off.ref)
    eq((t["st"], t["tries"]), ("sent", 1), "the preempted attempt did not count")
    eq(sup.preemptions, 1)


async def test_customer_void_preempts_the_upload_of_the_sale_it_voids():
    import time

    d = tmpdir("wk_void_preempt")
    e, sup, link = _real(d, [fault("NET-03", False), "hang", {}],
                         retry_base_ms=20, retry_cap_ms=40, worker_scan_ms=50, worker_wait_ms=3000)
    w = _worker(e, sup, ticks=time.ticks_ms)
    off = await e.sale(FakeCard(), 500)
    eq(off.offline, True)
    task = asyncio.create_task(w.run())
    while not link.hanging:
        await asyncio.sleep_ms(1)
    eq(link.sent[-1]["t"], "0220", "the worker holds the sale's claim: its advice is out, no answer comes")
    t0 = time.ticks_ms()
    try:
        v = await asyncio.wait_for_ms(e.void(off.ref), 1000)
    except asyncio.TimeoutError:
        raise AssertionError("the void waited behind the worker's upload of the sale")
    took = time.ticks_diff(time.ticks_ms(), t0)
    eq((v.approved, v.kind), (True, "void"))
    assert took < 200, "the customer waited %d ms behind background work" % took
    # The cut-short advice may have reached the host: the void cancels it with a reversal of the 0220.
    eq([m["t"] for m in link.sent], ["0220", "0400"])
    eq((link.sent[1]["11"], link.sent[1]["90"][:10]), (off.stan, "0220" + off.stan))
    for _ in range(10):
        await asyncio.sleep_ms(5)
    task.cancel()
    eq(len(link.sent), 2, "never uploaded after its void")
    t = e.lookup(off.ref)
    eq((t["st"], e.status_of(t)), ("reversed", "voided"))
    eq(sup.preemptions, 1)


# ---------------------------------------------------------------- technician console
async def test_console_saf_lists_and_retry_resends_a_failed_advice():
    from payterm.diag import NullDiag
    from payterm.diag.console import Console

    d = tmpdir("wk_console")
    clk = FakeClock(5000)
    sup = FakeSup(fault("NET-03", False), _ambiguous(), _ambiguous())
    e = _engine(d, sup, clk, saf_max_tries=2)
    w = _worker(e, sup)
    s = await e.sale(FakeCard(), 300)
    await _drain(w, clk)
    eq(e.lookup(s.ref)["st"], "failed")
    c = Console(NullDiag(), None, None, lambda: 1700000000,
                info=lambda: {"saf_failed": len(w.failed()), "saf_failed_refs": " ".join(x["ref"] for x in w.failed())})
    c.queue = w
    out = await c.handle("saf")
    eq(out, ["advice %s failed tries=2 amt=300 code=HST-07 next=-" % s.ref, "OK"])
    st = dict(l.split(": ", 1) for l in (await c.handle("status"))[:-1])
    eq((st["saf_failed"], st["saf_failed_refs"]), ("1", s.ref))
    eq(await c.handle("retry 999999"), ["ERR OPR-04 REF NOT FOUND"])
    eq((await c.handle("retry"))[0].startswith("ERR USAGE"), True)
    sup.script = ["00"]
    eq(await c.handle("retry " + s.ref), ["retry %s queued" % s.ref, "OK"])
    out = await c.handle("saf")
    eq(out[0], "advice %s pending tries=0 amt=300 next=0ms" % s.ref)
    await _drain(w, clk)
    eq((sup.sent[-1]["t"], e.lookup(s.ref)["st"]), ("0221", "sent"))
    eq(await c.handle("saf"), ["nothing queued", "OK"])
    assert any("retry <ref>" in l for l in await c.handle("help"))

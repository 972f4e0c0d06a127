"""Voids: once per sale, atomic with the sale's mark, online for an offline sale the host may hold.

Invariant checked throughout: a sale is voided at most once at the host (void
approvals naming it, less those reversed), the terminal calls it voided exactly
when the host holds that one void, and an offline sale whose void cancelled
its advice is never uploaded afterwards. The supervisor is the scripted fake
(txnfakes.FakeSup); journal and state are real files; power cuts are
txnfakes.PowerCut raised from the payterm.flash hook at a chosen operation.
"""
import asyncio

from mpt import eq, read_bytes, tmpdir, write_bytes

from payterm.link import messages
from payterm.txn.journal import Journal
from txnfakes import FakeCard, FakeSup, FlashFaults, PowerCut, drain, engine, fault, work_once


async def _offline_sale(e, amount=1000):
    """A sale approved offline, then one upload attempt that timed out (out > 0, still pending)."""
    s = await e.sale(FakeCard(), amount)
    eq((s.approved, s.offline), (True, True))
    eq(await work_once(e), False)
    o = e.lookup(s.ref)
    eq((o["kind"], o["st"], o["out"]), ("saf", "pending", 1))
    return s


def _advice_reversal(m, s, amount):
    eq((m["t"], m["11"], m["90"][:10], m["4"]), ("0400", s.stan, "0220" + s.stan, "%012d" % amount))
    eq("2" in m or "35" in m, False)


async def test_claim_has_one_holder_per_ref():
    e = engine(tmpdir("void_claim"), FakeSup())
    order = []

    async def holder(ref, tag, ms):
        async with e.claim(ref):
            order.append(tag + "+")
            await asyncio.sleep_ms(ms)
            order.append(tag + "-")

    await asyncio.gather(holder("000001", "a", 30), holder("000001", "b", 1), holder("000002", "c", 1))
    eq(order.index("b+") > order.index("a-"), True, repr(order))  # b waited for a
    eq(order.index("c-") < order.index("a-"), True, repr(order))  # another ref did not
    eq(e._claims, {})


async def test_void_of_attempted_offline_sale_reverses_its_advice():
    for rc in ("00", "25"):  # 00: the host had booked it; 25: it never got it
        d = tmpdir("void_adv_" + rc)
        sup = FakeSup(fault("NET-03", False), fault("HST-01", True), rc)
        e = engine(d, sup)
        s = await _offline_sale(e)
        v = await e.void(s.ref)
        eq((v.approved, v.kind, v.code), (True, "void", None), repr(v))
        eq(len(sup.sent), 3)
        _advice_reversal(sup.sent[2], s, 1000)
        o = e.lookup(s.ref)
        eq((o["st"], o["voided"]), ("reversed", v.ref))
        eq(e.status_of(o), "voided")
        eq(await drain(e), 0)
        eq(len(sup.sent), 3)  # the advice is never uploaded afterwards
        eq(e.saf.pending(), [])
        eq((await e.void(s.ref)).code, "OPR-06")
        e2 = engine(d, FakeSup())
        await e2.recover()
        eq(await drain(e2), 0)
        eq(e2.sup.sent, [])
        eq((await e2.void(s.ref)).code, "OPR-06")


async def test_void_of_uploaded_offline_sale_reverses_its_advice():
    d = tmpdir("void_sent")
    sup = FakeSup(fault("NET-03", False), "00", "00")
    e = engine(d, sup)
    s = await e.sale(FakeCard(), 800)
    eq(await work_once(e), True)
    eq(e.lookup(s.ref)["st"], "sent")
    v = await e.void(s.ref)
    eq(v.approved, True)
    _advice_reversal(sup.sent[2], s, 800)
    eq(e.status_of(e.lookup(s.ref)), "voided")


async def test_void_of_offline_sale_when_host_unreachable_is_declined_and_sale_stands():
    d = tmpdir("void_adv_down")
    sup = FakeSup(fault("NET-03", False), fault("HST-01", True), fault("NET-03", False), "00", "00")
    e = engine(d, sup)
    s = await _offline_sale(e)
    v = await e.void(s.ref)
    eq((v.approved, v.code), (False, "NET-03"))
    o = e.lookup(s.ref)
    eq((o["st"], o.get("voided")), ("pending", None))
    eq(e.status_of(o), "pending")
    eq(await work_once(e), True)  # the advice goes up later, as a repeat
    eq((sup.sent[3]["t"], sup.sent[3]["11"]), ("0221", s.stan))
    eq(e.lookup(s.ref)["st"], "sent")
    v2 = await e.void(s.ref)  # the merchant can void again
    eq(v2.approved, True)
    _advice_reversal(sup.sent[4], s, 1000)


async def test_void_of_offline_sale_with_no_answer_repeats_the_reversal_and_never_uploads():
    d = tmpdir("void_adv_amb")
    sup = FakeSup(fault("NET-03", False), fault("HST-01", True), fault("HST-01", True), "00")
    e = engine(d, sup)
    s = await _offline_sale(e)
    v = await e.void(s.ref)
    eq((v.approved, v.code), (False, "HST-05"))  # the cancellation is on its way
    eq(e.status_of(e.lookup(s.ref)), "void pending")
    eq((await e.void(s.ref)).code, "OPR-06")
    eq(await work_once(e), True)  # the reversal repeats (0401) until acknowledged
    m = sup.sent[3]
    eq((m["t"], m["11"], m["90"][:10]), ("0401", s.stan, "0220" + s.stan))
    eq(e.status_of(e.lookup(s.ref)), "voided")
    eq(await drain(e), 0)
    eq(len(sup.sent), 4)
    e2 = engine(d, FakeSup())
    await e2.recover()
    eq(e2.lookup(s.ref)["st"], "reversed")  # boot completes the sale's mark from the void
    eq(await drain(e2), 0)
    eq((await e2.void(s.ref)).code, "OPR-06")


async def test_never_attempted_offline_sale_is_dropped_without_sending():
    d = tmpdir("void_drop")
    sup = FakeSup(fault("NET-03", False))
    e = engine(d, sup)
    s = await e.sale(FakeCard(), 300)
    v = await e.void(s.ref)
    eq((v.approved, v.offline), (True, True))
    eq(len(sup.sent), 1)
    eq(e.lookup(s.ref)["st"], "voided")
    eq(await drain(e), 0)
    eq((await e.void(s.ref)).code, "OPR-06")


async def test_void_waits_for_an_upload_in_flight_then_reverses_it():
    d = tmpdir("void_race")
    gate = asyncio.Event()
    sup = FakeSup(fault("NET-03", False), ("gate", gate, "00"), "00")
    e = engine(d, sup)
    s = await e.sale(FakeCard(), 600)

    async def uploader():
        # The background worker's contract: claim, re-read, act only on what is still true.
        async with e.claim(s.ref):
            t = e.lookup(s.ref)
            if t["st"] != "pending" or t.get("voided"):
                return
            e.mark(s.ref, {"tries": 1, "out": 1})
            await sup.request(messages.advice(t["req"], t.get("auth")), 1000)
            e.mark(s.ref, {"st": "sent"})

    up = asyncio.create_task(uploader())
    await asyncio.sleep_ms(5)
    eq(len(sup.sent), 2)  # the advice is out, no answer yet
    vt = asyncio.create_task(e.void(s.ref))
    await asyncio.sleep_ms(20)
    eq((vt.done(), len(sup.sent)), (False, 2))  # the void waits for the claim
    gate.set()
    v = await vt
    await up
    eq(v.approved, True)
    eq([m["t"] for m in sup.sent], ["0200", "0220", "0400"])
    _advice_reversal(sup.sent[2], s, 600)
    eq(e.lookup(s.ref)["st"], "reversed")


async def test_void_declined_for_unvoidable_and_in_progress():
    d = tmpdir("void_refused")
    sup = FakeSup("05", "00", fault("HST-01", True))
    e = engine(d, sup)
    no = await e.sale(FakeCard(), 100)
    eq((await e.void(no.ref)).code, "OPR-04")  # a declined sale
    ok = await e.sale(FakeCard(), 200)
    v = await e.void(ok.ref)  # the void times out: it is reversed, the sale stands
    eq((v.approved, v.code), (False, "HST-01"))
    eq(e.status_of(e.lookup(ok.ref)), "approved")
    eq((await e.void(ok.ref)).code, "HST-05")  # not again until that reversal is acknowledged
    eq(await work_once(e), True)
    eq((sup.sent[-1]["t"], sup.sent[-1]["11"]), ("0400", v.stan))
    v2 = await e.void(ok.ref)
    eq(v2.approved, True)
    eq((await e.void(ok.ref)).code, "OPR-06")


async def test_storage_full_after_void_approval_reverses_the_void():
    d = tmpdir("void_enospc")
    sup = FakeSup("00", "00", "00")
    e = engine(d, sup)
    s = await e.sale(FakeCard(), 700)
    ff = FlashFaults().install()
    try:
        ff.fail(lambda op, path: len(sup.sent) > 1 and "journal" in path)
        v = await e.void(s.ref)
        eq((v.approved, v.code), (False, "SYS-01"))
        eq([t["ref"] for t in e.reversals()], [v.ref])
        eq(e.status_of(e.lookup(s.ref)), "approved")  # the sale stands
        ff.fail(None)
        eq(await work_once(e), True)
    finally:
        ff.remove()
    eq((sup.sent[2]["t"], sup.sent[2]["11"]), ("0400", v.stan))  # the void is undone, not the sale
    eq(Journal(d).get(v.ref)["st"], "reversed")


async def test_cut_between_void_approval_and_mark_cannot_void_again():
    d = tmpdir("void_cut_mark")
    sup = FakeSup("00", "00")
    e = engine(d, sup)
    s = await e.sale(FakeCard(), 900)
    ff = FlashFaults().install()
    try:
        appends = []

        def at_third_append(op, path):
            if op == "append":
                appends.append(path)
                if len(appends) == 3:  # 1: void created, 2: void approved, 3: the sale's mark
                    raise PowerCut("mark")
            return False

        ff.fail(at_third_append)
        try:
            await e.void(s.ref)
            raise AssertionError("no power cut")
        except PowerCut:
            pass
    finally:
        ff.remove()
    j = Journal(d)
    [vrec] = j.records("void")
    eq((vrec["st"], j.get(s.ref).get("voided")), ("approved", None))  # the cut fell in the gap
    sup2 = FakeSup()
    e2 = engine(d, sup2)
    eq((await e2.void(s.ref)).code, "OPR-06")  # derived from the void record, before any repair
    await e2.recover()
    eq(e2.lookup(s.ref)["voided"], vrec["ref"])  # boot wrote the missing mark
    for _ in range(3):
        eq((await e2.void(s.ref)).code, "OPR-06")
    eq(sup2.sent, [])


# ---------------------------------------------------------------- power cut at every flash operation
def _snapshot(d):
    import os

    return {n: read_bytes(d + "/" + n) for n in os.listdir(d)}


def _restore(snap, name):
    d = tmpdir(name)
    for n in snap:
        write_bytes(d + "/" + n, snap[n])
    return d


def _net_voids(sent, stan):
    """Void approvals at the (always approving) fake host naming `stan`, less those reversed."""
    voids = [m["11"] for m in sent if m["t"] == "0200" and m.get("3") == "020000" and m["90"][4:10] == stan]
    undone = {m["11"] for m in sent if m["t"] in ("0400", "0401")}
    return [v for v in voids if v not in undone]


async def _cut_runs(snap, flow, check):
    """Run `flow` on a copy of `snap` with a cut at each write operation in turn; reboot; check."""
    n = None
    k = 1
    while n is None or k <= n:
        for mode in ("before", "after", "partial"):
            d = _restore(snap, "cut_run")
            sup = FakeSup()
            e = engine(d, sup)
            ff = FlashFaults().install()
            ff.cut_at(k, mode)
            cut = False
            try:
                await flow(e)
            except PowerCut:
                cut = True
            finally:
                ff.remove()
            if not cut:
                n = k - 1  # the flow has fewer operations than k
                break
            e2 = engine(d, FakeSup())
            await e2.recover()
            await drain(e2)
            await check(e2, sup.sent, k, mode)
        k += 1
    return n


async def test_power_cut_at_every_flash_operation_of_an_online_void():
    d = tmpdir("cut_void_base")
    e = engine(d, FakeSup("00"))
    s = await e.sale(FakeCard(), 1500)
    snap = _snapshot(d)

    async def flow(e):
        await e.void(s.ref)

    async def check(e2, sent, k, mode):
        # the merchant tries three more times after the reboot
        for _ in range(3):
            await e2.void(s.ref)
        await drain(e2)
        net = _net_voids(sent + e2.sup.sent, s.stan)
        eq(len(net), 1, "cut %d %s: host voids %r" % (k, mode, net))
        eq(e2.status_of(e2.lookup(s.ref)), "voided", "cut %d %s" % (k, mode))
        [v] = [t for t in e2.journal.records("void") if t["st"] == "approved"]
        eq(v["stan"], net[0])

    n = await _cut_runs(snap, flow, check)
    eq(n >= 8, True, "only %r flash operations in a void" % n)


async def test_power_cut_at_every_flash_operation_of_an_advice_void():
    d = tmpdir("cut_adv_base")
    e = engine(d, FakeSup(fault("NET-03", False), fault("HST-01", True)))
    s = await _offline_sale(e, 1200)
    snap = _snapshot(d)

    async def flow(e):
        await e.void(s.ref)

    async def check(e2, sent, k, mode):
        for _ in range(3):
            await e2.void(s.ref)
        await drain(e2)
        allsent = sent + e2.sup.sent
        revs = [m for m in allsent if m["t"] in ("0400", "0401") and m["90"][:10] == "0220" + s.stan]
        uploads = [m for m in allsent if m["t"] in ("0220", "0221")]
        what = "cut %d %s: %r" % (k, mode, [m["t"] for m in allsent])
        eq(len(revs) >= 1, True, what)  # cancelled at the host in the end
        eq(e2.status_of(e2.lookup(s.ref)), "voided", what)
        e3 = engine(e2.journal.path.rsplit("/", 1)[0], FakeSup())
        await e3.recover()  # the sale's own mark is complete at the latest after the next boot
        eq(e3.lookup(s.ref)["st"], "reversed", what)
        eq(await drain(e3), 0, what)
        # never uploaded after the first reversal of its advice left
        first = allsent.index(revs[0])
        eq([m for m in uploads if allsent.index(m) > first], [], what)
        eq(e2.saf.pending(), [], what)

    n = await _cut_runs(snap, flow, check)
    eq(n >= 8, True, "only %r flash operations in a void" % n)


async def test_power_cut_at_every_flash_operation_of_an_approved_sale():
    d = tmpdir("cut_sale_base")
    e = engine(d, FakeSup("00"))
    first = await e.sale(FakeCard(), 100)
    snap = _snapshot(d)

    async def flow(e):
        await e.sale(FakeCard(), 2500)

    async def check(e2, sent, k, mode):
        what = "cut %d %s" % (k, mode)
        auths = [m for m in sent if m["t"] == "0200"]
        charged = [m["11"] for m in auths if m["11"] not in {r["11"] for r in e2.sup.sent}]
        mine = [t["stan"] for t in e2.journal.records("sale") if t["st"] == "approved" and t["stan"] != first.stan]
        eq(charged, mine, what)  # every approval the terminal keeps stands at the host, nothing else does
        eq(e2.reversals(), [], what)
        r = await e2.sale(FakeCard(), 10)
        used = {first.stan} | {m["11"] for m in sent}
        eq(r.stan in used, False, what + ": STAN %s reused" % r.stan)
        refs = [t["ref"] for t in e2.journal.records()]
        eq(len(refs), len(set(refs)), what)

    n = await _cut_runs(snap, flow, check)
    eq(n >= 6, True, "only %r flash operations in a sale" % n)


async def test_void_of_offline_sale_whose_upload_gave_up():
    d = tmpdir("void_failed")
    sup = FakeSup(fault("NET-03", False), fault("HST-01", True), fault("HST-01", True), "25")
    e = engine(d, sup, saf_max_tries=2)
    s = await e.sale(FakeCard(), 450)
    await work_once(e)
    await work_once(e)
    eq(e.lookup(s.ref)["st"], "failed")  # the technician would settle it by hand; the merchant can void it
    v = await e.void(s.ref)
    eq(v.approved, True)
    _advice_reversal(sup.sent[3], s, 450)
    eq(e.status_of(e.lookup(s.ref)), "voided")

"""Supervisor: what is retried, what is never resent, breaker and wait budget.

The link here is a fake with Link's interface whose outcomes the test lists
(linkfake.py); the clock only moves when the supervisor sleeps or the fake
link "waits", except in the priority tests, where a background exchange
really waits (asyncio) until a customer request cancels it.
"""
import asyncio

from linkfake import CountDiag, FakeLink, fault
from mpt import eq, FakeClock

from payterm.errors import Fault
from payterm.link.backoff import Backoff
from payterm.link.breaker import Breaker
from payterm.link.supervisor import Supervisor


_fault = fault


def _make(outcomes, threshold=5, open_ms=10000, max_wait_ms=30000, attempts=4, min_read_ms=100, breaker=None,
          link_kw=None, **kw):
    clk = FakeClock(1000)
    link = FakeLink(clk, outcomes, **(link_kw or {}))
    status = []
    diag = CountDiag()

    async def sleep_ms(ms):
        clk.advance(ms)

    sup = Supervisor(link, Backoff(200, 2000, lambda lo, hi: hi), breaker or Breaker(threshold, open_ms, clk), clk,
                     status.append, sleep_ms=sleep_ms, max_attempts=attempts, max_wait_ms=max_wait_ms, diag=diag,
                     min_read_ms=min_read_ms, **kw)
    return sup, link, clk, status, diag


SALE = {"t": "0200", "3": "000000", "4": "000000001000", "11": "000042", "41": "TERM0001"}


async def test_connect_failures_are_retried_with_status():
    sup, link, clk, status, diag = _make([_fault("NET-03", False), _fault("NET-03", False), {}])
    resp = await sup.request(SALE)
    eq(resp["39"], "00")
    eq(len(link.sent), 1, "request sent once")
    eq(status, ["CONNECTING", "RETRY 2/4", "RETRY 3/4", "WAITING FOR HOST"], "display")
    eq(sup.retries, 2)
    eq(diag.counts, {"retry": 2, "host_switch": 2}, "diag counters")
    eq(sup.counters()["host_switches"], 2)


async def test_ambiguous_timeout_is_never_resent():
    sup, link, clk, status, diag = _make([_fault("HST-01", True), {}])
    e = await _raises(sup.request(SALE))
    eq(e.code, "HST-01")
    assert e.sent, "caller must reverse"
    eq(len(link.sent), 1, "no second send")
    eq(sup.retries, 0)
    eq(sup.counters()["ambiguous"], 1)


async def test_closed_mid_exchange_is_not_resent():
    sup, link, clk, status, diag = _make([_fault("NET-05", True), {}])
    e = await _raises(sup.request(SALE))
    eq(e.code, "NET-05")
    eq(len(link.sent), 1)


async def test_gives_up_after_max_attempts():
    sup, link, clk, status, diag = _make([_fault("NET-03", False)] * 6, attempts=4)
    e = await _raises(sup.request(SALE))
    eq(e.code, "NET-03")
    assert not e.sent
    eq(sup.retries, 3)
    eq(status[-1], "RETRY 4/4")


async def test_answer_within_max_wait():
    # Backoff ceilings 200, 400, 800 ...: with 700 ms budget the third retry no longer fits.
    sup, link, clk, status, diag = _make([_fault("NET-03", False)] * 10, attempts=10, max_wait_ms=700, min_read_ms=50)
    t0 = clk()
    e = await _raises(sup.request(SALE))
    eq(e.code, "NET-03")
    assert clk() - t0 <= 700, "answered within budget (%d ms)" % (clk() - t0)
    eq(sup.retries, 2)


async def test_read_wait_is_cut_to_the_deadline():
    sup, link, clk, status, diag = _make([{}])
    await sup.request(SALE, deadline_ms=1200)
    assert link.read_timeouts[0] <= 1200 - link.cost_ms, link.read_timeouts


async def test_breaker_fails_fast_then_probes_with_echo():
    sup, link, clk, status, diag = _make([_fault("NET-03", False)] * 2 + [{}, {"38": "A1B2C3"}], threshold=2, open_ms=5000)
    e = await _raises(sup.request(SALE))
    eq(e.code, "NET-03", "the failure that trips is reported as itself")
    eq(sup.breaker.state, "open")
    eq(diag.counts.get("breaker_trip"), 1)
    e = await _raises(sup.request(SALE))
    eq(e.code, "HST-04", "open: fail fast")
    assert not e.sent
    eq(len(link.sent), 0)
    clk.advance(5000)
    resp = await sup.request(SALE)
    eq(resp["38"], "A1B2C3")
    eq([m["t"] for m in link.sent], ["0800", "0200"], "echo probe first")
    eq(link.sent[0]["70"], "301")
    eq(sup.breaker.state, "closed")


async def test_failed_probe_reopens():
    sup, link, clk, status, diag = _make([_fault("NET-03", False), _fault("NET-03", False)], threshold=1, open_ms=1000)
    await _raises(sup.request(SALE))
    clk.advance(1000)
    e = await _raises(sup.request(SALE))
    eq(e.code, "HST-04")
    eq(sup.breaker.state, "open")
    eq(sup.breaker_trips, 2)


async def test_echo_and_logon_fields():
    stans = iter(("000101", "000102"))
    sup, link, clk, status, diag = _make([{}, {}])
    sup._echo_fields = lambda: {"11": next(stans), "41": "TERM0001"}
    await sup.echo()
    await sup.logon()
    eq([(m["t"], m["11"], m["70"]) for m in link.sent], [("0800", "000101", "301"), ("0800", "000102", "001")])


async def _raises(coro):
    try:
        await coro
    except Fault as e:
        return e
    raise AssertionError("no Fault raised")


# ---------------------------------------------------------------- wait budget
async def test_no_send_when_connecting_used_up_the_budget():
    # Connecting took 1150 of 1200 ms: a 50 ms read would be a sure HST-01 and a needless reversal.
    sup, link, clk, status, diag = _make([{}], max_wait_ms=1200, min_read_ms=500, link_kw={"connect_cost_ms": 1150})
    e = await _raises(sup.request(SALE))
    eq(e.code, "HST-06")
    eq(e.sent, False, "never sent: the engine approves offline or declines, no reversal")
    eq(link.sent, [], "nothing on the wire")
    eq(link.connect_timeouts, [700], "connect may use only what leaves time to read")
    eq((sup.breaker.failures, sup.ambiguous), (0, 0), "the host did nothing wrong")


async def test_no_connect_when_the_budget_cannot_cover_a_read():
    sup, link, clk, status, diag = _make([{}], min_read_ms=500)
    e = await _raises(sup.request(SALE, deadline_ms=400))
    eq((e.code, e.sent), ("HST-06", False))
    eq((link.connect_timeouts, link.sent), ([], []))


async def test_no_retry_pause_that_leaves_no_time_to_read():
    # Backoff 200 then 400: after the second failure 400 + 300 ms of reading no longer fit in 900.
    sup, link, clk, status, diag = _make([_fault("NET-03", False)] * 5, attempts=5, max_wait_ms=900, min_read_ms=300)
    e = await _raises(sup.request(SALE))
    eq(e.code, "NET-03")
    eq(sup.retries, 1)
    assert link.sent == []


async def test_link_test_reports_the_link_failure_while_the_breaker_is_open():
    # The comm self-test while the breaker is open: not HST-04 (that says nothing about the network), but the
    # link's own failure, and a success brings the link back at once.
    sup, link, clk, status, diag = _make([_fault("NET-04", False), _fault("NET-04", False), {}], threshold=1,
                                         open_ms=60000)
    await _raises(sup.request(SALE))
    eq(sup.breaker.state, "open")
    e = await _raises(sup.echo(5000))
    eq(e.code, "HST-04", "an ordinary echo is refused while open")
    e = await _raises(sup.link_test(5000))
    eq(e.code, "NET-04", "the link test says why the host is unreachable")
    assert not e.sent
    eq((sup.breaker.state, sup.breaker.trips, sup.retries), ("open", 2, 0), "a failed test reopens; not retried")
    woken = []
    sup.watch(lambda: woken.append(1))
    resp = await sup.link_test(5000)
    eq(resp["39"], "00")
    eq([m["t"] for m in link.sent], ["0800"])
    eq((sup.breaker.state, sup.online), ("closed", True), "a successful test closes the breaker")
    eq(len(woken) >= 1, True, "workers told the link is back")


async def test_link_test_preempts_the_background_probe():
    sup, link, clk, status, diag = _make([_fault("NET-03", False), "hang", {}], threshold=1, open_ms=1000)
    await _raises(sup.request(SALE))
    clk.advance(1000)
    bg = asyncio.create_task(sup.echo(5000, background=True))
    for _ in range(20):
        await asyncio.sleep_ms(1)
        if link.hanging:
            break
    eq((link.hanging, sup.breaker.probing), (1, True), "the background probe is out and waits")
    resp = await sup.link_test(5000)
    eq(resp["39"], "00")
    e = await _raises(bg)
    eq(e.code, "HST-08")
    eq(sup.breaker.state, "closed")


# ---------------------------------------------------------------- breaker probe ends on any exit
async def _tripped(outcomes, **kw):
    sup, link, clk, status, diag = _make([_fault("NET-03", False)] + outcomes, threshold=1, open_ms=1000, **kw)
    await _raises(sup.request(SALE))
    eq(sup.breaker.state, "open")
    clk.advance(1000)
    return sup, link, clk


async def test_cancelled_probe_releases_the_breaker():
    sup, link, clk = await _tripped(["hang", {}, {"38": "OK0001"}])
    task = asyncio.create_task(sup.request(SALE))
    while not link.hanging:
        await asyncio.sleep_ms(1)
    eq(link.sent[-1]["t"], "0800", "the probe is out")
    task.cancel()
    await asyncio.sleep_ms(5)
    eq(link.closes, 1, "a cancelled read never leaves its stream for reuse")
    eq(sup.breaker.probing, False, "probe flag released")
    resp = await sup.request(SALE)
    eq(resp["38"], "OK0001", "next caller probes and goes through")
    eq([m["t"] for m in link.sent], ["0800", "0800", "0200"])
    eq(sup.online, True)


async def test_non_fault_exception_in_probe_releases_the_breaker():
    sup, link, clk = await _tripped([ValueError("bug in a codec"), {}, {}])
    try:
        await sup.request(SALE)
        raise AssertionError("the bug was swallowed")
    except ValueError:
        pass
    eq(sup.breaker.state, "half-open", "nothing was learned about the host")
    eq((await sup.request(SALE))["39"], "00")
    eq(sup.breaker.state, "closed")


# ---------------------------------------------------------------- customer first
ADVICE = {"t": "0220", "11": "000007", "41": "TERM0001", "4": "000000000500"}


async def test_customer_request_preempts_background_exchange():
    sup, link, clk, status, diag = _make(["hang", {"38": "CUST01"}])
    bg = asyncio.create_task(sup.request(ADVICE, 5000, background=True))
    while not link.hanging:
        await asyncio.sleep_ms(1)
    eq(status, [], "background work leaves the display alone")
    t0 = clk()
    resp = await sup.request(SALE, deadline_ms=3000)
    eq(resp["38"], "CUST01")
    eq(clk() - t0 <= 3 * link.cost_ms, True, "no wait for the background answer")
    try:
        await bg
        raise AssertionError("background exchange was not cut short")
    except Fault as f:
        eq((f.code, f.sent), ("HST-08", True), "it had left: the item repeats as a repeat")
    eq(link.closes, 1, "the half-read stream is dropped")
    eq([m["t"] for m in link.sent], ["0220", "0200"])
    eq(status, ["CONNECTING", "WAITING FOR HOST"])
    eq((sup.preemptions, diag.counts.get("preempted")), (1, 1))
    eq(sup.breaker.failures, 0, "a preemption is not a link failure")


async def test_background_waits_for_the_customer_then_gets_its_own_budget():
    sup, link, clk, status, diag = _make([{}, {}], max_wait_ms=6000)
    link.read_timeout_ms = 10000
    gate = asyncio.Event()
    real = link.exchange

    async def slow(fields, read_timeout_ms=None):
        if fields["t"] == "0200":
            await gate.wait()
            clk.advance(2500)
        return await real(fields, read_timeout_ms)

    link.exchange = slow
    fg = asyncio.create_task(sup.request(SALE))
    await asyncio.sleep_ms(1)
    bg = asyncio.create_task(sup.request(ADVICE, 4000, background=True))
    await asyncio.sleep_ms(5)
    eq(link.sent, [], "background does not go while a customer request is pending")
    gate.set()
    await fg
    await bg
    eq([m["t"] for m in link.sent], ["0200", "0220"])
    eq(link.read_timeouts[1], 4000, "its budget starts when it gets the link")


async def test_customer_budget_counts_from_the_ask_not_from_the_link():
    sup, link, clk, status, diag = _make([{}, {}])
    gate = asyncio.Event()
    real = link.exchange

    async def first_slow(fields, read_timeout_ms=None):
        if fields["11"] == "000001":
            await gate.wait()
            clk.advance(2000)
        return await real(fields, read_timeout_ms)

    link.exchange = first_slow
    a = dict(SALE)
    a["11"] = "000001"
    ta = asyncio.create_task(sup.request(a, deadline_ms=2500))
    await asyncio.sleep_ms(1)
    tb = asyncio.create_task(sup.request(SALE, deadline_ms=3000))
    await asyncio.sleep_ms(1)
    gate.set()
    await ta
    await tb
    assert link.read_timeouts[1] <= 3000 - 2000, link.read_timeouts


# ---------------------------------------------------------------- link health
class _Stop(Exception):
    pass


async def test_offline_then_probe_brings_it_online_and_wakes_waiters():
    sup, link, clk, status, diag = _make([_fault("NET-03", False), _fault("NET-03", False), {}], threshold=1,
                                         open_ms=1000)
    woken = []
    sup.watch(lambda: woken.append(clk()))
    await _raises(sup.request(SALE))
    eq(sup.online, False)
    waiter = asyncio.create_task(sup.wait_online())
    probe = asyncio.create_task(sup.run())
    for _ in range(50):
        await asyncio.sleep_ms(1)
        if waiter.done():
            break
    probe.cancel()
    eq(waiter.done(), True, "wait_online returned")
    eq(sup.online, True)
    eq([m["t"] for m in link.sent], ["0800"], "one echo after the failed one (connect refused)")
    eq(sup.probes, 2)
    eq(len(woken) >= 1, True, "watchers told the link is back")
    eq(status, ["CONNECTING"], "probes do not touch the display")


async def test_probes_back_off_exponentially_while_the_host_stays_down():
    br_sleeps = []
    sup, link, clk, status, diag = _make([_fault("NET-03", False)] * 20, attempts=1)
    sup.breaker = Breaker(1, 1000, clk, max_open_ms=8000, rand=lambda lo, hi: hi)

    async def sleep_ms(ms):
        br_sleeps.append(ms)
        clk.advance(ms)
        if len(br_sleeps) >= 6:
            raise _Stop()

    sup._sleep_ms = sleep_ms
    await _raises(sup.request(SALE))
    try:
        await sup.run()
    except _Stop:
        pass
    eq(br_sleeps, [1000, 2000, 4000, 8000, 8000, 8000], "open period doubles per failed probe, capped")
    eq(link.sent, [])
    eq(sup.breaker.trips, 6)

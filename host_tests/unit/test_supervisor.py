"""Supervisor: what is retried, what is never resent, breaker and wait budget.

The link here is a fake with Link's interface whose outcomes the test lists;
the clock only moves when the supervisor sleeps or the fake link "waits".
"""
from mpt import eq, FakeClock

from payterm.errors import Fault
from payterm.link.backoff import Backoff
from payterm.link.breaker import Breaker
from payterm.link.supervisor import Supervisor


def _fault(code, sent):
    f = Fault(code, "scripted", "link")
    f.sent = sent
    return f


class FakeLink:
    """Outcomes: a dict = response, a Fault = raised (from connect if not sent)."""

    def __init__(self, clock, outcomes, cost_ms=10):
        self.clock = clock
        self.outcomes = list(outcomes)
        self.cost_ms = cost_ms
        self.sent = []
        self.connected = False
        self.read_timeout_ms = 3000
        self.hosts = [("10.0.0.1", 5000), ("10.0.0.2", 5000)]
        self.current = 0
        self.host_switches = 0
        self.ignored = 0
        self.stale = 0
        self.count = None
        self.on_sent = None
        self.read_timeouts = []

    def ready(self):
        return self.connected

    @property
    def host(self):
        return self.hosts[self.current]

    async def connect(self, timeout_ms=None):
        self.clock.advance(self.cost_ms)
        nxt = self.outcomes[0]
        if isinstance(nxt, Fault) and not nxt.sent:
            self.outcomes.pop(0)
            self.current ^= 1
            self.host_switches += 1
            self.count("host_switch", 1)
            raise nxt
        self.connected = True

    async def exchange(self, fields, read_timeout_ms=None):
        self.read_timeouts.append(read_timeout_ms)
        self.sent.append(dict(fields))
        self.on_sent()
        nxt = self.outcomes.pop(0)
        if isinstance(nxt, Fault):
            self.clock.advance(read_timeout_ms if nxt.code == "HST-01" else self.cost_ms)
            self.connected = False
            raise nxt
        self.clock.advance(self.cost_ms)
        resp = {"t": fields["t"][:2] + "10", "11": fields.get("11"), "39": "00"}
        resp.update(nxt)
        return resp


class Diag:
    def __init__(self):
        self.counts = {}

    def count(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n


def _make(outcomes, threshold=5, open_ms=10000, max_wait_ms=30000, attempts=4):
    clk = FakeClock(1000)
    link = FakeLink(clk, outcomes)
    status = []
    diag = Diag()

    async def sleep_ms(ms):
        clk.advance(ms)

    sup = Supervisor(link, Backoff(200, 2000, lambda lo, hi: hi), Breaker(threshold, open_ms, clk), clk,
                     status.append, sleep_ms=sleep_ms, max_attempts=attempts, max_wait_ms=max_wait_ms, diag=diag)
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
    sup, link, clk, status, diag = _make([_fault("NET-03", False)] * 10, attempts=10, max_wait_ms=700)
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

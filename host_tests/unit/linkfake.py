"""A fake with the acquirer Link's interface whose outcomes a test lists (shared by unit tests).

Outcomes, consumed in order: a dict = the response (merged into an approval of
the request), a Fault = raised (from connect when not sent, else from the
exchange after the request "left"), "hang" = the request leaves and no answer
ever comes (the exchange waits until cancelled), an Exception = raised from
the exchange (a bug). The clock only moves by `cost_ms` per step, by
`connect_cost_ms` per connect, and by the read timeout on HST-01.
"""
import asyncio

from payterm.errors import Fault
from payterm.link.iso8583 import response_mti


def fault(code, sent):
    f = Fault(code, "scripted", "link")
    f.sent = sent
    return f


class FakeLink:
    def __init__(self, clock, outcomes, cost_ms=10, connect_cost_ms=None):
        self.clock = clock
        self.outcomes = list(outcomes)
        self.cost_ms = cost_ms
        self.connect_cost_ms = cost_ms if connect_cost_ms is None else connect_cost_ms
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
        self.connect_timeouts = []
        self.closes = 0
        self.hanging = 0  # exchanges waiting for an answer that never comes

    def ready(self):
        return self.connected

    @property
    def host(self):
        return self.hosts[self.current]

    async def connect(self, timeout_ms=None):
        self.connect_timeouts.append(timeout_ms)
        self.clock.advance(self.connect_cost_ms)
        nxt = self.outcomes[0] if self.outcomes else {}
        if isinstance(nxt, Fault) and not nxt.sent:
            self.outcomes.pop(0)
            self.current ^= 1
            self.host_switches += 1
            if self.count:
                self.count("host_switch", 1)
            raise nxt
        self.connected = True

    async def close(self):
        self.closes += 1
        self.connected = False

    async def exchange(self, fields, read_timeout_ms=None):
        self.read_timeouts.append(read_timeout_ms)
        nxt = self.outcomes.pop(0) if self.outcomes else {}
        if isinstance(nxt, Exception) and not isinstance(nxt, Fault):
            raise nxt
        self.sent.append(dict(fields))
        if self.on_sent:
            self.on_sent()
        if nxt == "hang":
            self.hanging += 1
            try:
                await asyncio.sleep_ms(3600000)
            finally:
                self.hanging -= 1
        if isinstance(nxt, Fault):
            self.clock.advance(read_timeout_ms if nxt.code == "HST-01" else self.cost_ms)
            self.connected = False
            raise nxt
        self.clock.advance(self.cost_ms)
        resp = {"t": response_mti(fields["t"]), "11": fields.get("11"), "39": "00"}
        resp.update(nxt)
        return resp


class CountDiag:
    def __init__(self):
        self.counts = {}

    def count(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n

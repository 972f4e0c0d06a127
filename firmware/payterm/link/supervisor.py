"""Retry, breaker and display status around the acquirer Link.

The rule that keeps money safe: only a request that provably never reached
the host (Fault.sent is False: connect refused/timed out, TLS failure,
breaker open) is tried again. A request that went out and got no usable
answer is ambiguous; it is never resent here, the Fault goes up so the
engine can reverse it. Everything happens within one wait budget
(max_wait_ms or the caller's deadline) so the customer always gets an answer.
"""
import time

import asyncio

from payterm.errors import Fault
from payterm.link.breaker import HALF_OPEN, OPEN
from payterm.link.messages import NMI_ECHO as _NMI_ECHO, NMI_LOGON as _NMI_LOGON


class Supervisor:
    """The engine's one door to the acquirer.

    status(text) drives the display ("CONNECTING", "RETRY 2/4", "WAITING FOR HOST");
    diag.count(key) gets "retry", "breaker_trip", "host_switch", "ignored_frame",
    "stale_connection"; echo_fields() -> {"11": stan, "41": tid, ...} numbers the
    0800 echo/logon/probe messages (a private STAN sequence is used without it).
    """

    def __init__(self, link, backoff, breaker, ticks, status, sleep_ms=None, max_attempts=4,
                 max_wait_ms=30000, diag=None, echo_fields=None):
        self.link = link
        self.backoff = backoff
        self.breaker = breaker
        self._ticks = ticks
        self._status = status
        self._sleep_ms = sleep_ms or asyncio.sleep_ms
        self.max_attempts = max_attempts
        self.max_wait_ms = max_wait_ms
        self.diag = diag
        self._echo_fields = echo_fields
        self._stan = 0
        self.retries = 0
        self.requests = 0
        self.ambiguous = 0
        link.count = self._count
        link.on_sent = self._sent

    def set_echo_fields(self, fn):
        """Number echo/logon/probe messages from the terminal's persisted STAN sequence."""
        if self._echo_fields is None:
            self._echo_fields = fn

    # ------------------------------------------------------------ counters
    def _count(self, key, n=1):
        if self.diag is not None:
            self.diag.count(key, n)

    @property
    def breaker_trips(self):
        return self.breaker.trips

    @property
    def host_switches(self):
        return self.link.host_switches

    @property
    def ignored_frames(self):
        return self.link.ignored

    def counters(self):
        """Link quality numbers for the technician menu / `payterm diag`."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "ambiguous": self.ambiguous,
            "breaker_trips": self.breaker.trips,
            "breaker": self.breaker.state,
            "host_switches": self.link.host_switches,
            "ignored_frames": self.link.ignored,
            "stale_connections": self.link.stale,
            "host": "%s:%d" % tuple(self.link.host),
        }

    def _sent(self):
        self._status("WAITING FOR HOST")

    def _failed(self):
        if self.breaker.failure():
            self._count("breaker_trip")

    # ------------------------------------------------------------ requests
    async def request(self, fields, deadline_ms=None):
        """Send `fields` and return the host's response dict, or raise Fault."""
        self.requests += 1
        budget = self.max_wait_ms if deadline_ms is None else deadline_ms
        deadline = time.ticks_add(self._ticks(), budget)
        self.backoff.reset()
        is_probe = fields.get("t") == "0800"
        attempt = 1
        while True:
            if not self.breaker.allow():
                f = Fault("HST-04", "breaker open %d ms more" % self.breaker.remaining_ms(), "link")
                f.sent = False
                raise f
            if self.breaker.state == HALF_OPEN and not is_probe:
                await self._probe(deadline)
            remaining = time.ticks_diff(deadline, self._ticks())
            try:
                if not self.link.ready():
                    if attempt == 1:
                        self._status("CONNECTING")
                    await self.link.connect(max(remaining, 1))
                remaining = time.ticks_diff(deadline, self._ticks())
                resp = await self.link.exchange(fields, max(1, min(self.link.read_timeout_ms, remaining)))
            except Fault as f:
                sent = getattr(f, "sent", True)
                self._failed()
                if sent:
                    self.ambiguous += 1
                    raise
                if self.breaker.state == OPEN or attempt >= self.max_attempts:
                    raise
                delay = self.backoff.next()
                if delay >= time.ticks_diff(deadline, self._ticks()):
                    raise
                self.retries += 1
                self._count("retry")
                self._status("RETRY %d/%d" % (attempt + 1, self.max_attempts))
                await self._sleep_ms(delay)
                attempt += 1
                continue
            self.breaker.success()
            return resp

    async def _probe(self, deadline):
        """Half-open: one echo decides whether the real request may go."""
        self._status("CONNECTING")
        try:
            if not self.link.ready():
                await self.link.connect(max(1, time.ticks_diff(deadline, self._ticks())))
            remaining = time.ticks_diff(deadline, self._ticks())
            await self.link.exchange(self._echo(_NMI_ECHO), max(1, min(self.link.read_timeout_ms, remaining)))
        except Fault as e:
            self._failed()
            f = Fault("HST-04", "probe failed: %s" % e, "link")
            f.sent = False
            raise f
        self.breaker.success()

    def _echo(self, nmi):
        if self._echo_fields is not None:
            fields = self._echo_fields()
        else:
            self._stan = self._stan % 999999 + 1
            fields = {"11": "%06d" % self._stan}
        fields["t"] = "0800"
        fields["70"] = nmi
        return fields

    async def echo(self, deadline_ms=None):
        """0800 echo test (also the breaker's probe when half-open)."""
        return await self.request(self._echo(_NMI_ECHO), deadline_ms)

    async def logon(self, deadline_ms=None):
        """0800 sign-on (field 70 = 001)."""
        return await self.request(self._echo(_NMI_LOGON), deadline_ms)

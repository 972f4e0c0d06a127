"""The one owner of the acquirer link: retry, wait budget, breaker, echo probes, priority.

The rule that keeps money safe: only a request that provably never reached
the host (Fault.sent is False: connect refused/timed out, TLS failure,
breaker open, no time left to wait for an answer) is tried again. A request
that went out and got no usable answer is ambiguous; it is never resent
here, the Fault goes up so the engine can reverse it.

Priority: there is one connection, so exchanges are serialized here. A
customer request (background=False) goes first: its wait budget starts when
it is asked, and a background exchange (reversal, advice, probe) in flight
is cancelled (HST-08, carrying `sent`) so the customer never waits for it;
the background item stays queued and its next attempt is a repeat.
A background request waits until no customer request is pending and then
gets its own budget.

Link health: the breaker lives here. `online` is True while it is closed;
workers `await wait_online()` instead of spending attempts on a dead link,
and `run()` probes with an 0800 echo whenever the breaker lets one through
(its open period grows with each failed probe, with jitter).
"""
import time

import asyncio

from payterm.errors import Fault
from payterm.link.breaker import CLOSED, HALF_OPEN, OPEN
from payterm.link.messages import NMI_ECHO as _NMI_ECHO, NMI_LOGON as _NMI_LOGON


def _never_sent(code, detail):
    f = Fault(code, detail, "link")
    f.sent = False
    return f


def _quiet(text):
    pass


class Supervisor:
    """The engine's and the workers' one door to the acquirer.

    status(text) drives the display for customer requests ("CONNECTING",
    "RETRY 2/4", "WAITING FOR HOST"); background requests leave it alone.
    diag.count(key) gets "retry", "breaker_trip", "host_switch", "ignored_frame",
    "stale_connection", "preempted"; echo_fields() -> {"11": stan, "41": tid, ...}
    numbers the 0800 echo/logon/probe messages (a private STAN sequence is used
    without it). min_read_ms: a request is sent only when at least this long
    (or the link's read timeout, if shorter) is left of its budget to wait for
    the answer; otherwise HST-06, never sent. probe_wait_ms: budget of one probe.
    """

    def __init__(self, link, backoff, breaker, ticks, status, sleep_ms=None, max_attempts=4,
                 max_wait_ms=30000, diag=None, echo_fields=None, min_read_ms=1000, probe_wait_ms=None):
        self.link = link
        self.backoff = backoff
        self.breaker = breaker
        self._ticks = ticks
        self._status = status
        self._sleep_ms = sleep_ms or asyncio.sleep_ms
        self.max_attempts = max_attempts
        self.max_wait_ms = max_wait_ms
        self.min_read_ms = min_read_ms
        self.probe_wait_ms = probe_wait_ms or max_wait_ms
        self.diag = diag
        self._echo_fields = echo_fields
        self._stan = 0
        self.retries = 0
        self.requests = 0
        self.last_echo = None  # (ticks, ms, code or None) of the last echo (see echo())
        self.ambiguous = 0
        self.preemptions = 0
        self.probes = 0
        # Scheduling of the one connection.
        self._fg = 0  # customer requests asked and not yet answered
        self._fg_lock = asyncio.Lock()
        self._bg_lock = asyncio.Lock()
        self._bg_task = None  # the background exchange in flight
        self._bg = False
        self._preempting = False
        self._went_out = False  # the current exchange's request was handed to the network
        self._bg_out = False  # ... and for the background exchange that was cut short
        self._no_fg = asyncio.Event()
        self._no_fg.set()
        # Link health.
        self._online_ev = asyncio.Event()
        self._offline_ev = asyncio.Event()
        self._was_online = None
        self._watchers = []
        self._sync()
        link.count = self._count
        link.on_sent = self._sent

    def set_echo_fields(self, fn):
        """Number echo/logon/probe messages from the terminal's persisted STAN sequence."""
        if self._echo_fields is None:
            self._echo_fields = fn

    def watch(self, fn):
        """fn() is called when the link comes online and when a customer request has ended."""
        self._watchers.append(fn)

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
            "preemptions": self.preemptions,
            "probes": self.probes,
            "online": self.online,
            "breaker_trips": self.breaker.trips,
            "breaker": self.breaker.state,
            "host_switches": self.link.host_switches,
            "ignored_frames": self.link.ignored,
            "stale_connections": self.link.stale,
            "host": "%s:%d" % tuple(self.link.host),
        }

    def _sent(self):
        self._went_out = True
        if not self._bg:
            self._status("WAITING FOR HOST")

    def _failed(self):
        if self.breaker.failure():
            self._count("breaker_trip")

    # ------------------------------------------------------------ link health
    @property
    def online(self):
        """True while the breaker is closed: requests go out."""
        return self.breaker.state == CLOSED

    async def wait_online(self):
        while not self.online:
            await self._online_ev.wait()

    def _sync(self):
        on = self.online
        if on:
            self._online_ev.set()
            self._offline_ev.clear()
        else:
            self._offline_ev.set()
            self._online_ev.clear()
        if on != self._was_online:
            back = on and self._was_online is not None
            self._was_online = on
            if back:
                self._notify()

    def _notify(self):
        for fn in self._watchers:
            fn()

    async def run(self):
        """Probe while offline: an echo each time the breaker lets one through."""
        while True:
            if self.online:
                await self._offline_ev.wait()
                continue
            ms = self.breaker.remaining_ms()
            if ms > 0:
                await self._sleep_ms(ms)
                continue
            self.probes += 1
            try:
                await self.echo(self.probe_wait_ms, background=True)
            except Fault:
                pass
            if not self.online and self.breaker.remaining_ms() == 0:
                # Neither closed nor reopened (a customer took the link, or no time): not a busy loop.
                await self._sleep_ms(self.breaker.open_ms)

    # ------------------------------------------------------------ requests
    async def request(self, fields, deadline_ms=None, background=False, sec=None):
        """Send `fields` and return the host's response dict, or raise Fault.

        Customer requests (the default) count their budget from this call and
        cancel a background exchange in flight; background requests wait for
        the customer and are cancelled by one (HST-08). sec: the request's
        message keys, handed to Link.exchange (MAC out, host MAC checked).
        """
        self.requests += 1
        if background:
            return await self._background(fields, deadline_ms, sec)
        return await self._customer(fields, deadline_ms, False, sec)

    async def _customer(self, fields, deadline_ms, now, sec=None):
        deadline = time.ticks_add(self._ticks(), self.max_wait_ms if deadline_ms is None else deadline_ms)
        self._fg += 1
        self._no_fg.clear()
        try:
            await self.preempt()
            async with self._fg_lock:
                return await self._attempts(fields, deadline, self._status, sec, now)
        finally:
            self._fg -= 1
            if not self._fg:
                self._no_fg.set()
                self._notify()

    async def preempt(self):
        """Cancel the background exchange in flight (if any) and wait until it has let go of the link."""
        t = self._bg_task
        if t is None or t.done():
            return
        self._preempting = True
        self.preemptions += 1
        self._count("preempted")
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            if not t.done():
                raise  # this caller was cancelled itself
        except Exception:
            pass
        self._bg = False  # the link is the customer's from here (status shows again)

    async def _background(self, fields, deadline_ms, sec=None):
        async with self._bg_lock:
            while self._fg:
                await self._no_fg.wait()
            deadline = time.ticks_add(self._ticks(), self.max_wait_ms if deadline_ms is None else deadline_ms)
            self._bg = True
            self._bg_out = False
            self._preempting = False
            t = asyncio.create_task(self._attempts(fields, deadline, _quiet, sec))
            self._bg_task = t
            try:
                return await t
            except asyncio.CancelledError:
                if not (self._preempting and t.done()):
                    t.cancel()  # the caller itself was cancelled: take the exchange down with it
                    raise
                f = Fault("HST-08", "%s cut short by a customer request" % fields.get("t"), "link")
                f.sent = self._bg_out
                raise f
            finally:
                self._bg_task = None
                self._bg = False
                self._preempting = False

    async def _attempts(self, fields, deadline, say, sec=None, now=False):
        self.backoff.reset()
        is_probe = fields.get("t") == "0800"
        attempt = 1
        while True:
            if not self.breaker.allow(now and attempt == 1):
                raise _never_sent("HST-04", "breaker open %d ms more" % self.breaker.remaining_ms())
            probing = self.breaker.state == HALF_OPEN
            try:
                if probing and not is_probe:
                    await self._probe(deadline, say)
                resp = await self._once(fields, deadline, say, attempt, sec)
                self.breaker.success()
                return resp
            except Fault as f:
                delay = self._after(f, attempt, deadline)
            finally:
                if probing:
                    self.breaker.release()  # whatever ended the probe, the next caller may probe
                self._sync()
            self.retries += 1
            self._count("retry")
            say("RETRY %d/%d" % (attempt + 1, self.max_attempts))
            await self._sleep_ms(delay)
            attempt += 1

    def _after(self, f, attempt, deadline):
        """Delay before the next attempt after Fault f, or raise it."""
        if f.code == "HST-06":
            raise f  # our budget ran out, the host did nothing wrong
        self._failed()
        if getattr(f, "sent", True):
            self.ambiguous += 1
            raise f
        if self.breaker.state == OPEN or attempt >= self.max_attempts:
            raise f
        delay = self.backoff.next()
        if delay + self._need() >= time.ticks_diff(deadline, self._ticks()):
            raise f  # no time left after the pause to connect and wait for an answer
        return delay

    def _need(self):
        return max(1, min(self.min_read_ms, self.link.read_timeout_ms))

    async def _once(self, fields, deadline, say, attempt, sec=None):
        """Connect if needed, then one exchange, only if the answer can still be waited for."""
        need = self._need()
        remaining = time.ticks_diff(deadline, self._ticks())
        if not self.link.ready():
            if remaining <= need:
                raise _never_sent("HST-06", "%d ms left: no time to connect and wait %d ms" % (remaining, need))
            if attempt == 1:
                say("CONNECTING")
            await self.link.connect(remaining - need)
            remaining = time.ticks_diff(deadline, self._ticks())
        if remaining < need:
            raise _never_sent("HST-06", "%d ms left after connecting, %d ms needed" % (remaining, need))
        self._went_out = False
        try:
            timeout = min(self.link.read_timeout_ms, remaining)
            if sec is None:
                return await self.link.exchange(fields, timeout)
            return await self.link.exchange(fields, timeout, sec=sec)
        except asyncio.CancelledError:
            if self._bg:
                self._bg_out = self._went_out
            # A cancelled read may leave half a frame in the stream: never reuse it.
            await self.link.close()
            raise

    async def _probe(self, deadline, say):
        """Half-open: one echo decides whether the real request may go."""
        try:
            await self._once(self._echo(_NMI_ECHO), deadline, say, 1)
        except Fault as e:
            if e.code == "HST-06":
                raise
            raise _never_sent("HST-04", "probe failed: %s" % e)
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

    async def echo(self, deadline_ms=None, background=False):
        """0800 echo test (also the breaker's probe when half-open).

        `last_echo` keeps the outcome for the technician: (ticks when it ended, ms it took,
        None or the failure code).
        """
        t0 = self._ticks()
        try:
            r = await self.request(self._echo(_NMI_ECHO), deadline_ms, background)
        except Fault as f:
            self.last_echo = (self._ticks(), time.ticks_diff(self._ticks(), t0), f.code)
            raise
        self.last_echo = (self._ticks(), time.ticks_diff(self._ticks(), t0), None)
        return r

    async def link_test(self, deadline_ms):
        """The technician's comm self-test: one 0800 echo now, at customer priority.

        An open breaker lets it through at once as its probe (refused, the test
        could only ever say HST-04, whatever the network does): it reports the
        link's own failure (NET-*, HST-*), and its outcome closes or reopens the
        breaker like any probe's.
        """
        self.requests += 1
        return await self._customer(self._echo(_NMI_ECHO), deadline_ms, True)

    async def logon(self, deadline_ms=None):
        """0800 sign-on (field 70 = 001)."""
        return await self.request(self._echo(_NMI_LOGON), deadline_ms)

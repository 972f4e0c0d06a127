"""Circuit breaker for the acquirer link (closed / open / half-open).

After `threshold` consecutive failures to reach the host the terminal stops
trying for an open period: every request fails fast with HST-04 so the
customer gets an answer (or offline/SAF handling) at once instead of a full
timeout per attempt. When the period is up one probe (an 0800 echo) is let
through; its success closes the breaker, its failure opens it again.

With `max_open_ms` each failed probe doubles the open period (from
`open_ms` up to `max_open_ms`, equal jitter), so a long outage is probed
ever more rarely and a fleet of terminals does not probe in lockstep.
Whoever is let through as the probe must end it: `success()`, `failure()`,
or `release()` when it ended any other way (cancelled, a bug), which lets
the next caller probe instead of leaving the breaker half-open for good.
"""
import time

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class Breaker:
    def __init__(self, threshold, open_ms, ticks, max_open_ms=None, rand=None):
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.threshold = threshold
        self.open_ms = open_ms
        self._ticks = ticks
        self._periods = None
        if max_open_ms is not None and max_open_ms > open_ms:
            from payterm.link.backoff import Backoff

            self._periods = Backoff(open_ms, max_open_ms, rand)
        self._reopens = 0  # failed probes since the last success
        self.period_ms = open_ms  # length of the current (or last) open period
        self.state = CLOSED
        self.failures = 0
        self.trips = 0
        self._opened_at = 0
        self._probing = False

    def allow(self, now=False):
        """May a request go out now? In half-open only the single probe may.

        now=True (a technician's link test): an open breaker lets this caller
        through at once as its probe, whatever is left of the open period.
        """
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if not now and time.ticks_diff(self._ticks(), self._opened_at) < self.period_ms:
                return False
            self.state = HALF_OPEN
            self._probing = False
        if self._probing and not now:
            return False
        self._probing = True
        return True

    @property
    def probing(self):
        return self._probing

    def remaining_ms(self):
        """How long an open breaker still refuses (0 when not open)."""
        if self.state != OPEN:
            return 0
        return max(0, self.period_ms - time.ticks_diff(self._ticks(), self._opened_at))

    def success(self):
        self.state = CLOSED
        self.failures = 0
        self._reopens = 0
        self._probing = False

    def failure(self):
        """Returns True when this failure tripped the breaker open."""
        self._probing = False
        if self.state == HALF_OPEN:
            self._reopens += 1
            self._open()
            return True
        if self.state == OPEN:
            return False
        self.failures += 1
        if self.failures >= self.threshold:
            self._open()
            return True
        return False

    def release(self):
        """End a probe that neither succeeded nor failed: the next caller may probe."""
        self._probing = False

    def _open(self):
        self.state = OPEN
        self._opened_at = self._ticks()
        self.trips += 1
        if self._periods is not None:
            self.period_ms = self._periods.equal(self._reopens)

    def __repr__(self):
        return "<Breaker %s failures=%d trips=%d>" % (self.state, self.failures, self.trips)

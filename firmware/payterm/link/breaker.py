"""Circuit breaker for the acquirer link (closed / open / half-open).

After `threshold` consecutive failures to reach the host the terminal stops
trying for `open_ms`: every request fails fast with HST-04 so the customer
gets an answer (or offline/SAF handling) at once instead of a full timeout
per attempt. When the time is up one probe (an 0800 echo) is let through;
its success closes the breaker, its failure opens it again.
"""
import time

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class Breaker:
    def __init__(self, threshold, open_ms, ticks):
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.threshold = threshold
        self.open_ms = open_ms
        self._ticks = ticks
        self.state = CLOSED
        self.failures = 0
        self.trips = 0
        self._opened_at = 0
        self._probing = False

    def allow(self):
        """May a request go out now? In half-open only the single probe may."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if time.ticks_diff(self._ticks(), self._opened_at) < self.open_ms:
                return False
            self.state = HALF_OPEN
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def remaining_ms(self):
        """How long an open breaker still refuses (0 when not open)."""
        if self.state != OPEN:
            return 0
        return max(0, self.open_ms - time.ticks_diff(self._ticks(), self._opened_at))

    def success(self):
        self.state = CLOSED
        self.failures = 0
        self._probing = False

    def failure(self):
        """Returns True when this failure tripped the breaker open."""
        self._probing = False
        if self.state == HALF_OPEN:
            self._open()
            return True
        if self.state == OPEN:
            return False
        self.failures += 1
        if self.failures >= self.threshold:
            self._open()
            return True
        return False

    def _open(self):
        self.state = OPEN
        self._opened_at = self._ticks()
        self.trips += 1

    def __repr__(self):
        return "<Breaker %s failures=%d trips=%d>" % (self.state, self.failures, self.trips)

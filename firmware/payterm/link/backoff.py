"""Exponential backoff with jitter for reconnects, probes and background retries.

Full jitter (delay drawn uniformly from 0..min(cap, base * 2**n)) spreads a
fleet of terminals that lost the host at the same moment, so they do not
all reconnect in lockstep when it comes back. Equal jitter (uniform in
ceiling/2..ceiling) spreads them as well but never waits less than half the
step: used where a zero delay would be a busy loop (breaker open periods,
reversal and advice repeats).
"""


def _default_rand(lo, hi):
    import random

    return random.randint(lo, hi) if hi > lo else lo


class Backoff:
    def __init__(self, base_ms, cap_ms, rand=None):
        if base_ms <= 0 or cap_ms < base_ms:
            raise ValueError("need 0 < base_ms <= cap_ms")
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.rand = rand or _default_rand
        self.attempt = 0

    def ceiling(self, n):
        """Upper bound of the n-th delay (n = 0 for the first retry)."""
        # Shift only as far as needed: 2**n for large n would be a bignum.
        c = self.base_ms
        while n > 0 and c < self.cap_ms:
            c <<= 1
            n -= 1
        return min(c, self.cap_ms)

    def delay(self, n):
        """Delay in ms before retry n: uniform in 0..ceiling(n)."""
        return self.rand(0, self.ceiling(n))

    def equal(self, n):
        """Delay in ms for step n with equal jitter: uniform in ceiling(n)/2..ceiling(n)."""
        c = self.ceiling(n)
        half = c // 2
        return half + self.rand(0, c - half)

    def next(self):
        d = self.delay(self.attempt)
        self.attempt += 1
        return d

    def reset(self):
        self.attempt = 0

"""System trace audit number (ISO 8583 field 11): unique across reboots.

The next number is persisted before it is handed out (write-ahead), so a
power cut between the save and the send only skips a number; it can never
hand the same STAN to two messages the host might both have seen.
"""
from micropython import const

# ISO 8583:1987 field 11: n6, 000001..999999 (000000 is not used).
_STAN_MAX = const(999999)


class Stan:
    def __init__(self, state, key="stan"):
        self._state = state
        self._key = key

    def peek(self):
        """Last STAN handed out (0 when none yet)."""
        return self._state.get(self._key, 0)

    def next(self):
        """Reserve and return the next STAN as a 6-digit string."""
        n = self.peek() % _STAN_MAX + 1
        self._state.set(self._key, n)
        return "%06d" % n

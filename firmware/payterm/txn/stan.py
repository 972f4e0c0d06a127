"""Six-digit sequence numbers that are never handed out twice: STANs and refs.

The STAN (ISO 8583 field 11) numbers every message the terminal originates;
the ref numbers every journal transaction (what the merchant types to void).
Both are persisted before they are handed out (write-ahead), so a power cut
between the save and the use only skips a number. Two more rules keep them
unique when the state file alone cannot:
- `seed(last, gap)` at boot moves the sequence past the newest number in the
  journal (the state may be lost or rolled back to its backup), plus a gap
  when the state copy was lost (numbers used without a journal record, such
  as echo STANs, may be missing from both);
- `next(skip)` passes over numbers still in use: after the wrap from 999999
  to 000001 a STAN or ref of a transaction still in the journal is skipped.
Order is cyclic: `after(a, b)` says whether `a` comes after `b` within half a
cycle, so the numbers just past the wrap count as newer than 999xxx.
"""
from micropython import const

# ISO 8583:1987 field 11: n6, 000001..999999 (000000 is not used).
_MAX = const(999999)
_HALF = const(499999)


def after(a, b):
    """True when sequence number a comes after b (cyclic, within half the range)."""
    return 0 < (a - b) % _MAX <= _HALF


def _wrap(n):
    return (n - 1) % _MAX + 1


class Stan:
    def __init__(self, state, key="stan"):
        self._state = state
        self.key = key

    def peek(self):
        """Last number handed out (0 when none yet)."""
        return self._state.get(self.key, 0)

    def propose(self, skip=None):
        """The number `next` would hand out, not yet saved."""
        n = self.peek()
        for _ in range(_MAX):
            n = n % _MAX + 1
            if not skip or ("%06d" % n) not in skip:
                return n
        raise ValueError("every number in use")

    def next(self, skip=None):
        """Reserve and return the next number as a 6-digit string (skipping those in `skip`)."""
        n = self.propose(skip)
        self._state.set(self.key, n)
        return "%06d" % n

    def seed(self, last, gap=0):
        """Make the sequence continue after `last` (+ `gap`) unless it already is past it.

        Returns the new high-water mark when it was moved (the caller saves the
        state), else None.
        """
        cur = self.peek()
        base = cur
        if last and (not cur or after(last, cur)):
            base = last
        if gap:
            base = _wrap(base + gap)
        return base if base != cur else None

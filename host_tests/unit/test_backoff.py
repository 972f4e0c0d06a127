"""Exponential backoff with full jitter."""
from mpt import raises, eq

from payterm.link.backoff import Backoff


def test_ceiling_doubles_up_to_cap():
    seen = []

    def top(lo, hi):
        seen.append((lo, hi))
        return hi

    b = Backoff(100, 1000, top)
    eq([b.next() for _ in range(6)], [100, 200, 400, 800, 1000, 1000], "upper bounds")
    eq(set(lo for lo, _ in seen), {0}, "full jitter starts at zero")
    b.reset()
    eq(b.next(), 100, "after reset")


def test_jitter_stays_in_range_and_varies():
    b = Backoff(50, 400)
    for n in range(8):
        hi = min(400, 50 << n)
        vals = [b.delay(n) for _ in range(40)]
        assert min(vals) >= 0 and max(vals) <= hi, (n, vals)
    vals = set(b.delay(5) for _ in range(40))
    assert len(vals) > 5, "jitter spreads retries: %r" % (vals,)


def test_huge_attempt_number_is_capped():
    b = Backoff(10, 30000, lambda lo, hi: hi)
    eq(b.delay(10000), 30000, "no overflow or bignum")


def test_bad_parameters():
    raises(ValueError, Backoff, 0, 100)
    raises(ValueError, Backoff, 200, 100)


def test_equal_jitter_never_below_half_the_step():
    b = Backoff(100, 1000)
    for n in range(6):
        c = min(1000, 100 << n)
        vals = [b.equal(n) for _ in range(40)]
        assert min(vals) >= c // 2 and max(vals) <= c, (n, vals)
    assert len(set(b.equal(3) for _ in range(40))) > 5, "still spread"
    lo = Backoff(100, 1000, lambda lo, hi: lo)
    eq([lo.equal(n) for n in range(5)], [50, 100, 200, 400, 500], "lower bounds")

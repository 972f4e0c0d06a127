# runtimes: unix core core-asan
"""Circuit breaker: closed -> open -> half-open (one probe) -> closed/open."""
from mpt import raises, eq, FakeClock

from payterm.link.breaker import Breaker


def test_trips_after_consecutive_failures_only():
    clk = FakeClock()
    b = Breaker(3, 5000, clk)
    b.failure()
    b.failure()
    b.success()  # a success in between resets the streak
    b.failure()
    b.failure()
    eq(b.state, "closed")
    assert b.allow()
    assert b.failure() is True, "third consecutive failure trips"
    eq(b.state, "open")
    eq(b.trips, 1)
    assert not b.allow()


def test_half_open_lets_exactly_one_probe():
    clk = FakeClock()
    b = Breaker(1, 5000, clk)
    b.failure()
    clk.advance(4999)
    assert not b.allow()
    eq(b.remaining_ms(), 1)
    clk.advance(1)
    assert b.allow(), "probe allowed once open_ms elapsed"
    eq(b.state, "half-open")
    assert not b.allow(), "second caller waits for the probe"
    b.success()
    eq(b.state, "closed")
    assert b.allow() and b.allow()


def test_failed_probe_reopens_for_full_period():
    clk = FakeClock()
    b = Breaker(2, 1000, clk)
    b.failure()
    b.failure()
    clk.advance(1500)
    assert b.allow()
    assert b.failure() is True
    eq(b.state, "open")
    eq(b.trips, 2)
    clk.advance(999)
    assert not b.allow()
    clk.advance(1)
    assert b.allow()


def test_link_test_probes_at_once_while_open():
    clk = FakeClock()
    b = Breaker(1, 5000, clk)
    b.failure()
    assert not b.allow(), "open: requests fail fast"
    assert b.allow(now=True), "the technician's link test goes through as the probe"
    eq(b.state, "half-open")
    assert not b.allow(), "no second caller while it probes"
    assert b.failure() is True, "a failed test reopens the breaker"
    eq((b.state, b.trips, b.remaining_ms()), ("open", 2, 5000))
    assert b.allow(now=True)
    b.success()
    eq(b.state, "closed")


class _WrapClock:
    """Starts 256 ms before this port's ticks period ends (2**30 on ESP32)."""

    def __init__(self):
        import time

        self._t = time
        self.now = time.ticks_add(0, -256)

    def __call__(self):
        return self.now

    def advance(self, ms):
        self.now = self._t.ticks_add(self.now, ms)


def test_open_period_across_ticks_wraparound():
    clk = _WrapClock()
    b = Breaker(1, 1000, clk)
    b.failure()
    clk.advance(0x200)  # wraps past the end of the ticks period
    assert clk.now < 0x200, "clock wrapped"
    assert not b.allow(), "only 512 ms elapsed"
    clk.advance(600)
    assert b.allow()


def test_threshold_must_be_positive():
    raises(ValueError, Breaker, 0, 100, FakeClock())


def test_release_lets_the_next_caller_probe():
    clk = FakeClock()
    b = Breaker(1, 1000, clk)
    b.failure()
    clk.advance(1000)
    assert b.allow(), "probe"
    assert b.probing
    assert not b.allow(), "one probe at a time"
    b.release()  # the probe was cancelled or died of a bug: nothing learned
    eq((b.state, b.probing), ("half-open", False))
    assert b.allow(), "a new probe may go"
    b.success()
    eq(b.state, "closed")


def test_open_period_grows_per_failed_probe_with_jitter_and_resets():
    clk = FakeClock()
    picks = []

    def rand(lo, hi):
        picks.append((lo, hi))
        return hi

    b = Breaker(2, 1000, clk, max_open_ms=5000, rand=rand)
    b.failure()
    b.failure()
    periods = [b.period_ms]
    for _ in range(4):
        clk.advance(b.period_ms)
        assert b.allow()
        b.failure()
        periods.append(b.period_ms)
    eq(periods, [1000, 2000, 4000, 5000, 5000])
    eq(picks[:3], [(0, 500), (0, 1000), (0, 2000)], "equal jitter: half fixed, half random")
    clk.advance(5000)
    assert b.allow()
    b.success()
    b.failure()
    b.failure()
    eq(b.period_ms, 1000, "a success starts the growth again")


def test_fixed_open_period_without_max():
    clk = FakeClock()
    b = Breaker(1, 700, clk)
    for _ in range(3):
        b.failure()
        eq(b.remaining_ms(), 700)
        clk.advance(700)
        assert b.allow()

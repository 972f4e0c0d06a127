"""The unit-test runner itself: a passing, an async and a raising check."""
from mpt import raises, FakeClock, eq


def test_raises_returns_exception():
    e = raises(ValueError, int, "x")
    assert isinstance(e, ValueError)


def test_raises_fails_when_nothing_raised():
    e = raises(AssertionError, raises, ValueError, int, "1")
    assert "not raised" in str(e)


def test_fake_clock_follows_ticks_arithmetic():
    import time

    c = FakeClock(time.ticks_add(0, -16))
    start = c()
    c.advance(32)
    eq(time.ticks_diff(c(), start), 32, "ticks across the wrap")
    eq(c(), 16, "wrapped ticks")


async def test_async_runs():
    import asyncio

    await asyncio.sleep_ms(1)
    assert True

# runtimes: unix
"""Keypad matrix driver: scan, debounce, stuck keys, and an IRQ path that never allocates.

The fake matrix models the wiring (a column is low when a closed switch
joins it to a low row) and fires column IRQs at once with the heap locked,
as a hard IRQ runs on the ESP32.
"""
import asyncio
import time

import micropython

from fakepins import FakeMatrix
from mpt import FakeClock, eq

from payterm.drivers.keymatrix import KeyMatrix


def _km(m, clock=None, **kw):
    keys = []
    faults = []
    kw.setdefault("debounce_ms", 20)
    kw.setdefault("stuck_ms", 1000)
    km = KeyMatrix(m.rows, m.cols, clock or time.ticks_ms, keys.append, on_fault=faults.append,
                   disable_irq=m.disable_irq, enable_irq=m.enable_irq, **kw)
    return km, keys, faults


def _text(keys):
    return "".join(chr(k) for k in keys)


def test_pins_are_set_up_as_the_wiring_needs():
    m = FakeMatrix()
    km, _, _ = _km(m)
    for p in m.rows:
        eq((p.mode, p.out), (p.OUT, 0), "rows: outputs, low at rest")
    for p in m.cols:
        eq((p.mode, p.pull, p.trigger, p.hard), (p.IN, p.PULL_UP, p.IRQ_FALLING, True), "columns")


def test_scan_reads_each_switch_at_its_position():
    m = FakeMatrix()
    km, _, _ = _km(m)
    for k in "123C456B789E*0#F":
        m.closed = set()
        m.press(k)
        i = b"123C456B789E*0#F".index(k.encode())
        eq(km.scan(), 1 << i, k)
    m.press("1")
    assert km.scan() & 1, "two keys at once both read"


def test_debounce_needs_a_stable_reading():
    m = FakeMatrix()
    c = FakeClock(1000)
    km, keys, _ = _km(m, c)
    km.step(km.scan(), c())  # first scan: nothing closed
    # a bouncing contact: closed, open, closed within the window
    m.press("5")
    km.step(km.scan(), c.advance(5))
    m.release("5")
    km.step(km.scan(), c.advance(5))
    m.press("5")
    km.step(km.scan(), c.advance(5))
    km.step(km.scan(), c.advance(10))
    eq(keys, [], "not yet stable for 20 ms")
    km.step(km.scan(), c.advance(10))
    eq(_text(keys), "5")
    for _ in range(5):
        km.step(km.scan(), c.advance(5))
    eq(_text(keys), "5", "held: reported once")
    m.release("5")
    for _ in range(6):
        km.step(km.scan(), c.advance(5))
    assert km.idle()
    m.press("5")
    for _ in range(6):
        km.step(km.scan(), c.advance(5))
    eq(_text(keys), "55", "pressed again after a release")


def test_stuck_key_is_hw05_once_and_other_keys_still_work():
    m = FakeMatrix()
    c = FakeClock(0)
    km, keys, faults = _km(m, c, stuck_ms=500)
    km.step(km.scan(), c())
    m.press("5")
    for _ in range(120):  # 600 ms held
        km.step(km.scan(), c.advance(5))
    eq(_text(keys), "5")
    eq([f.code for f in faults], ["HW-05"])
    assert "5" in faults[0].detail
    eq(km.stuck(), "5")
    # same row (4), same column (2), and elsewhere (9)
    for k in "429":
        m.press(k)
        for _ in range(6):
            km.step(km.scan(), c.advance(5))
        m.release(k)
        for _ in range(6):
            km.step(km.scan(), c.advance(5))
    eq(_text(keys), "5429")
    eq(len(faults), 1, "reported once while it stays stuck")
    m.release("5")
    for _ in range(6):
        km.step(km.scan(), c.advance(5))
    eq(km.stuck(), "")
    assert km.idle()


def test_key_closed_at_power_on_gives_no_phantom_press():
    m = FakeMatrix()
    m.press("E")
    c = FakeClock(0)
    km, keys, faults = _km(m, c, stuck_ms=300)
    km.step(km.scan(), c())
    for _ in range(80):
        km.step(km.scan(), c.advance(5))
    eq(keys, [], "a key down since boot is no press")
    eq([f.code for f in faults], ["HW-05"])
    m.release("E")
    for _ in range(6):
        km.step(km.scan(), c.advance(5))
    m.press("E")
    for _ in range(6):
        km.step(km.scan(), c.advance(5))
    eq(_text(keys), "E", "works once released")


def test_irq_handler_allocates_nothing():
    m = FakeMatrix()
    km, _, _ = _km(m, depth=4)
    col = m.cols[2]
    micropython.heap_lock()
    try:
        for _ in range(10):  # more than the queue holds: drops, still no allocation
            km._irq(col)
    finally:
        micropython.heap_unlock()
    eq(len(km._q), 4)
    eq(km._q.stats()[2], 6, "drops counted")
    eq(km._out[8] if km._q.peek_into(km._out) else None, 2, "column index recorded")
    assert km._flag.state, "flag set for the task"


def test_edge_timestamp_and_column_reach_the_task():
    m = FakeMatrix()
    c = FakeClock(123456789)
    km, _, _ = _km(m, c)
    m.press("0")  # column 1: the fake fires the IRQ with the heap locked
    eq(m.irqs, 1)
    eq(km._q.peek_into(km._out) and km._out[8], 1)
    c.advance(7)
    eq(km._edges(), 123456789, "ticks of the edge")
    assert m.disable_calls >= 2, "queue read with IRQs disabled"


def test_irq_while_disabled_is_delivered_on_enable():
    m = FakeMatrix()
    km, _, _ = _km(m)
    st = m.disable_irq()
    m.press("1")
    eq(len(km._q), 0, "pending while disabled")
    m.enable_irq(st)
    eq(len(km._q), 1)


def test_scan_edges_are_ignored_by_the_handler():
    m = FakeMatrix()
    km, _, _ = _km(m)
    km.step(km.scan(), 0)
    m.press("8")
    km._edges()
    km.scan()  # a held key's column falls each time its row goes low again
    eq(len(km._q), 0)


async def test_task_reports_presses_and_stuck_key():
    m = FakeMatrix()
    km, keys, faults = _km(m, scan_ms=2, debounce_ms=10, stuck_ms=250)
    t = asyncio.create_task(km.run())
    await asyncio.sleep_ms(20)

    async def tap(k, hold=60):
        m.press(k)
        await asyncio.sleep_ms(hold)
        m.release(k)
        await asyncio.sleep_ms(30)

    await tap("1")
    await tap("2")
    # bounce on press and release
    for _ in range(3):
        m.press("3")
        await asyncio.sleep_ms(1)
        m.release("3")
        await asyncio.sleep_ms(1)
    await tap("3")
    eq(_text(keys), "123")
    m.press("C")  # stuck
    await asyncio.sleep_ms(450)
    eq([f.code for f in faults], ["HW-05"])
    await tap("9")
    await tap("E")
    eq(_text(keys), "123C9E")
    t.cancel()
    assert m.irqs >= 4

# runtimes: unix core core-asan
"""The keypad IRQ path with the recqueue C module (core runtimes) and the Python twin (unix).

The handler runs with the heap locked, as a hard IRQ on the ESP32; the
core runtimes have no asyncio, so the task's flag is a stand-in here.
"""
import micropython
import time

from fakepins import FakeMatrix
from mpt import eq

from payterm.drivers.keymatrix import KeyMatrix


class Flag:
    def __init__(self):
        self.n = 0

    def set(self):
        self.n += 1


def _km(m, depth=8):
    keys = []
    flag = Flag()
    km = KeyMatrix(m.rows, m.cols, time.ticks_ms, keys.append, flag=flag, depth=depth,
                   disable_irq=m.disable_irq, enable_irq=m.enable_irq)
    return km, flag, keys


def test_handler_pushes_and_flags_with_the_heap_locked():
    m = FakeMatrix()
    km, flag, _ = _km(m, depth=4)
    t0 = time.ticks_ms()
    micropython.heap_lock()
    try:
        for c in (0, 1, 2, 3, 3, 3):
            km._irq(m.cols[c])
    finally:
        micropython.heap_unlock()
    eq(flag.n, 6)
    eq(len(km._q), 4)
    eq(km._q.stats(), (4, 4, 2), "(high water, pushes, drops)")
    last = km._edges()
    assert last is not None and time.ticks_diff(last, t0) >= 0, (last, t0)
    eq(len(km._q), 0)


def test_presses_through_the_fake_wiring_raise_locked_irqs():
    m = FakeMatrix()
    km, flag, _ = _km(m)
    for k in "147*":  # column 0: a second press on a held column makes no edge
        m.press(k)
        m.release(k)
    m.press("2")
    m.press("3")
    eq(m.irqs, 6)
    eq(flag.n, 6)
    cols = []
    while km._q.pop_into(km._out):
        cols.append(km._out[8])
    eq(cols, [0, 0, 0, 0, 1, 2])


def test_queue_is_the_c_module_where_built_in():
    import recqueue

    m = FakeMatrix()
    km, _, _ = _km(m)
    eq(type(km._q), recqueue.RecordQueue)
    eq(recqueue.IMPL, "py" if hasattr(recqueue, "__file__") else "c")

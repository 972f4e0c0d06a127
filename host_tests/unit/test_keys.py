# runtimes: unix core core-asan
"""Keypad queue on recqueue: only keys get in, order kept, a stuck key cannot grow memory."""
import micropython

from mpt import eq

from payterm.ui.keys import KeyQueue


def test_keys_come_out_in_order_and_noise_is_refused():
    q = KeyQueue()
    for b in b"12\x00X3E":
        q.push(b)
    eq("".join(q.pop() for _ in range(len(q))), "123E")
    eq(q.pop(), None)


def test_full_queue_drops_and_counts():
    q = KeyQueue(depth=4)
    results = [q.push(ord("5")) for _ in range(6)]
    eq(results, [True] * 4 + [False] * 2)
    eq(q.dropped, 2)
    eq(len(q), 4)
    q.clear()
    eq(len(q), 0)
    eq(q.dropped, 2, "clear keeps the count for the technician")


def test_push_and_pop_do_not_allocate():
    # what an IRQ handler and the cashier task do must work with the heap locked
    q = KeyQueue()
    micropython.heap_lock()
    try:
        ok = q.push(ord("7"))
        n = len(q)
        raw = q._q.pop_into(q._out)
    finally:
        micropython.heap_unlock()
    eq((ok, n, raw, q._out[0]), (True, 1, True, ord("7")))


def test_uses_the_c_queue_where_built_in():
    import recqueue

    q = KeyQueue()
    eq(type(q._q), recqueue.RecordQueue)
    # a built-in module has no __file__: then it must be the C implementation
    eq(recqueue.IMPL, "py" if hasattr(recqueue, "__file__") else "c")

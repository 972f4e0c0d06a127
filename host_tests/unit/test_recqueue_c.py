# runtimes: core core-asan
"""Properties only the C module promises: it is the `recqueue` the core
runtimes import, no operation allocates after construction, and nothing
writes outside the queue's storage (guard bytes, which ASan cannot watch
inside the GC heap).
"""
import gc
import micropython
import time

import recqueue
from mpt import eq, raises


def test_builtin_c_module_shadows_fallback():
    eq(recqueue.IMPL, "c")
    eq(hasattr(recqueue, "__file__"), False, "builtin module, not firmware/recqueue.py")


def test_no_operation_allocates_record_queue():
    q = recqueue.RecordQueue(16, 8, overwrite=True)
    rec = bytearray(b"ABCDEFGH")
    many = bytearray(8 * 20)
    for i in range(len(many)):
        many[i] = i & 0xFF
    out = bytearray(8)
    outs = bytearray(8 * 16)
    snap = bytearray(16 + 10 * 8 + 4)  # exactly the snapshot restore() will read
    key = b"CD"
    res = [None] * 8  # results go here: building a tuple would allocate
    _ring_ops(q, rec, out, many, outs, snap, key, res)
    eq(res, [16, -1, 0, 10, 6, 16 + 80 + 4, True, 10])
    eq(bytes(outs[:8]), bytes(many[4 * 8:5 * 8]), "overwrite kept the newest 16 of 20")
    eq(q._guard_ok(), True)


def _ring_ops(q, rec, out, many, outs, snap, key, res):
    # Plain function with its state as arguments: a closure over this many
    # variables, or a *args call, would allocate by itself.
    micropython.heap_lock()
    try:
        for _ in range(50):
            q.push(rec)
            q.peek_into(out)
            q.pop_into(out)
        q.push_many(many, 20)
        res[0] = q.pop_many_into(outs, 16)
        q.push_many(many, 10)
        res[1] = q.find(2, key)
        res[2] = q.find(0, b"\x00\x01")
        res[3] = len(q)
        res[4] = q.free()
        res[5] = q.snapshot_into(snap)
        q.clear()
        q.restore(snap)
        res[6] = bool(q)
        res[7] = len(q)
    finally:
        micropython.heap_unlock()


def test_no_operation_allocates_deadline_queue():
    d = recqueue.DeadlineQueue(32, 6)
    recs = [("rec%03d" % i).encode() for i in range(32)]
    out = bytearray(6)
    snap = bytearray(16 + 32 * 14 + 4)
    base = time.ticks_add(0, -100)  # straddle the wrap-around point
    res = [None] * 7
    _deadline_ops(d, recs, out, snap, base, res)
    eq(res, [False, base, 16 + 32 * 14 + 4, 32, 0, 32, None])
    eq(d._guard_ok(), True)


def _deadline_ops(d, recs, out, snap, base, res):
    # Plain function with its state as arguments: a closure over this many
    # variables, or a *args call, would allocate by itself.
    micropython.heap_lock()
    try:
        for i in range(32):
            d.push(time.ticks_add(base, (i * 37) % 200), recs[i])
        res[0] = d.push(base, recs[0])
        res[1] = d.next_due()
        res[2] = d.snapshot_into(snap)
        d.clear()
        d.restore(snap)
        popped = 0
        now = base
        for _ in range(210):
            while d.pop_due_into(now, out):
                popped += 1
            now = time.ticks_add(now, 1)
        res[3] = popped
        res[4] = len(d)
        res[5] = d.free()
        res[6] = d.next_due()
    finally:
        micropython.heap_unlock()


def test_guards_hold_at_storage_edges():
    for isz in (1, 3, 8, 33):
        q = recqueue.RecordQueue(5, isz)
        full = bytes([0xFF]) * isz
        for _ in range(3):
            q.push_many(full * 5, 5)
            q.pop_many_into(bytearray(isz * 5), 5)
            q.push(full)
        s = bytearray(q.snapshot_size())
        q.snapshot_into(s)
        q.restore(s)
        eq(q._guard_ok(), True, "ring item_size %d" % isz)
        d = recqueue.DeadlineQueue(4, isz)
        for i in range(4):
            d.push(4 - i, full)
        s = bytearray(d.snapshot_size())
        d.snapshot_into(s)
        d.clear()
        d.restore(s)
        eq(d._guard_ok(), True, "deadline item_size %d" % isz)


def test_storage_survives_garbage_collection():
    qs = [recqueue.RecordQueue(64, 16) for _ in range(8)]
    for k, q in enumerate(qs):
        for i in range(64):
            q.push(bytes([k, i]) * 8)
    for _ in range(30):
        junk = [bytearray(500) for _ in range(50)]  # churn the heap
        del junk
        gc.collect()
    out = bytearray(16)
    for k, q in enumerate(qs):
        for i in range(64):
            q.pop_into(out)
            eq(bytes(out), bytes([k, i]) * 8, "queue %d record %d" % (k, i))
        eq(q._guard_ok(), True)


def test_errors_under_heap_lock_do_not_corrupt():
    q = recqueue.RecordQueue(2, 2)
    q.push(b"ok")
    micropython.heap_lock()
    try:
        try:
            q.push(b"bad size")
        except Exception as e:  # MemoryError or ValueError: either way no corruption
            err = type(e)
    finally:
        micropython.heap_unlock()
    eq(err in (ValueError, MemoryError), True)
    out = bytearray(2)
    eq(q.pop_into(out), True)
    eq(bytes(out), b"ok")
    raises(ValueError, q.push, b"bad size")
    eq(q._guard_ok(), True)

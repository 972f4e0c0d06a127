# runtimes: unix core core-asan
"""recqueue conformance suite: every test runs against each implementation the
runtime has. On `core`/`core-asan` that is the C module (builtin `recqueue`)
and the pure-Python fallback (firmware/recqueue.py, loaded from source since
the builtin shadows it); on `unix` it is the fallback alone.
"""
import time

from mpt import eq, raises, recqueue_fallback


def _fallback():
    return recqueue_fallback()


class _Impl:
    def __init__(self, name, rq, dq):
        self.name = name
        self.RecordQueue = rq
        self.DeadlineQueue = dq


def impls():
    import recqueue

    out = [_Impl(recqueue.IMPL, recqueue.RecordQueue, recqueue.DeadlineQueue)]
    if recqueue.IMPL == "c":
        ns = _fallback()
        eq(ns["IMPL"], "py", "fallback IMPL")
        out.append(_Impl("py", ns["RecordQueue"], ns["DeadlineQueue"]))
    return out


def _rec(i, size=4):
    """A distinct record per index so order mistakes show up."""
    b = bytearray(size)
    for k in range(size):
        b[k] = (i * 7 + k) & 0xFF
    return bytes(b)


def _drain(q, size):
    out = []
    b = bytearray(size)
    while q.pop_into(b):
        out.append(bytes(b))
    return out


def _guards(q):
    g = getattr(q, "_guard_ok", None)
    if g is not None and not g():
        raise AssertionError("guard bytes around queue storage were overwritten")


def test_fifo_order_across_wraparound():
    for m in impls():
        q = m.RecordQueue(5, 4)
        want = []
        n = 0
        for rnd in range(7):
            for _ in range(3):
                eq(q.push(_rec(n)), True, m.name)
                want.append(_rec(n))
                n += 1
            b = bytearray(4)
            for _ in range(3):
                eq(q.pop_into(b), True, m.name)
                eq(bytes(b), want.pop(0), m.name + " fifo order")
        eq(len(q), 0, m.name)
        _guards(q)


def test_reject_when_full_counts_drops():
    for m in impls():
        q = m.RecordQueue(3, 2)
        for i in range(3):
            eq(q.push(_rec(i, 2)), True, m.name)
        eq(q.push(_rec(9, 2)), False, m.name + " push on full")
        eq(q.push(_rec(10, 2)), False, m.name)
        eq(q.stats(), (3, 3, 2), m.name + " stats (hw, pushes, drops)")
        eq(_drain(q, 2), [_rec(0, 2), _rec(1, 2), _rec(2, 2)], m.name + " contents kept")


def test_overwrite_drops_oldest():
    for m in impls():
        q = m.RecordQueue(3, 2, overwrite=True)
        for i in range(5):
            eq(q.push(_rec(i, 2)), True, m.name)
        eq(q.stats(), (3, 5, 2), m.name)
        eq(_drain(q, 2), [_rec(2, 2), _rec(3, 2), _rec(4, 2)], m.name + " newest kept")
        eq(q.stats()[0], 3, m.name + " high-water survives draining")


def test_peek_does_not_remove():
    for m in impls():
        q = m.RecordQueue(2, 3)
        b = bytearray(3)
        eq(q.peek_into(b), False, m.name + " peek empty")
        q.push(b"abc")
        q.push(b"def")
        eq(q.peek_into(b), True, m.name)
        eq(bytes(b), b"abc", m.name)
        eq(len(q), 2, m.name)
        eq(q.pop_into(b), True, m.name)
        eq(bytes(b), b"abc", m.name)


def test_pop_into_empty_leaves_buffer():
    for m in impls():
        q = m.RecordQueue(1, 2)
        b = bytearray(b"zz")
        eq(q.pop_into(b), False, m.name)
        eq(b, bytearray(b"zz"), m.name)


def test_push_many_pop_many_wrap():
    for m in impls():
        q = m.RecordQueue(5, 2)
        q.push(_rec(100, 2))
        q.push(_rec(101, 2))
        b = bytearray(2)
        q.pop_into(b)
        q.pop_into(b)
        src = b"".join(_rec(i, 2) for i in range(4))
        eq(q.push_many(src, 4), 4, m.name)  # head=2: wraps after 3 records
        out = bytearray(10)
        eq(q.pop_many_into(out, 5), 4, m.name + " pops what is there")
        eq(bytes(out[:8]), src, m.name + " order across wrap")
        eq(q.pop_many_into(out, 5), 0, m.name)
        eq(q.push_many(b"", 0), 0, m.name + " zero records")
        _guards(q)


def test_push_many_reject_accepts_what_fits():
    for m in impls():
        q = m.RecordQueue(4, 1)
        q.push(b"a")
        eq(q.push_many(b"bcdef", 5), 3, m.name)
        eq(q.stats(), (4, 4, 2), m.name)
        eq(_drain(q, 1), [b"a", b"b", b"c", b"d"], m.name)


def test_push_many_overwrite_keeps_newest():
    for m in impls():
        q = m.RecordQueue(3, 1, True)
        q.push(b"a")
        q.push(b"b")
        eq(q.push_many(b"cdefg", 5), 5, m.name)
        eq(_drain(q, 1), [b"e", b"f", b"g"], m.name)
        eq(q.stats(), (3, 7, 4), m.name)
        # a longer burst than the capacity behaves like that many push() calls
        q2 = m.RecordQueue(2, 1, True)
        eq(q2.push_many(b"123456", 6), 6, m.name)
        eq(_drain(q2, 1), [b"5", b"6"], m.name)
        eq(q2.stats(), (2, 6, 4), m.name)


def test_push_many_uses_prefix_of_larger_buffer():
    for m in impls():
        q = m.RecordQueue(4, 2)
        eq(q.push_many(bytearray(b"aabbccdd"), 2), 2, m.name)
        eq(_drain(q, 2), [b"aa", b"bb"], m.name)


def test_find():
    for m in impls():
        q = m.RecordQueue(4, 4)
        for r in (b"AB01", b"CD02", b"AB03"):
            q.push(r)
        eq(q.find(0, b"AB"), 0, m.name)
        eq(q.find(2, b"02"), 1, m.name)
        eq(q.find(2, b"03"), 2, m.name)
        eq(q.find(1, b"X"), -1, m.name)
        eq(q.find(4, b""), 0, m.name + " empty key at end")
        b = bytearray(4)
        q.pop_into(b)
        eq(q.find(0, b"AB"), 1, m.name + " index counts from oldest")
        raises(ValueError, q.find, 3, b"01")
        raises(ValueError, q.find, -1, b"A")
        raises(ValueError, q.find, 5, b"")
        raises(TypeError, q.find, 0, 5)
        raises(TypeError, q.find, "0", b"A")


def test_len_free_clear_bool():
    for m in impls():
        q = m.RecordQueue(3, 1)
        eq((len(q), q.free(), bool(q)), (0, 3, False), m.name)
        q.push(b"x")
        eq((len(q), q.free(), bool(q)), (1, 2, True), m.name)
        q.clear()
        eq((len(q), q.free(), bool(q)), (0, 3, False), m.name)
        eq(q.stats(), (1, 1, 0), m.name + " clear keeps counters")
        q.push(b"y")
        eq(_drain(q, 1), [b"y"], m.name)


def test_accepts_any_byte_buffer():
    import array

    for m in impls():
        q = m.RecordQueue(4, 2)
        q.push(b"ab")
        q.push(bytearray(b"cd"))
        q.push(memoryview(b"xxefxx")[2:4])
        q.push(array.array("B", [0x67, 0x68]))
        out = array.array("B", [0, 0])
        eq(q.pop_into(out), True, m.name)
        eq(bytes(out), b"ab", m.name)
        mv = memoryview(bytearray(6))
        eq(q.pop_into(mv[2:4]), True, m.name)
        eq(bytes(mv), b"\x00\x00cd\x00\x00", m.name)
        eq(_drain(q, 2), [b"ef", b"gh"], m.name)


def test_bad_constructor_args():
    for m in impls():
        eq(str(raises(ValueError, m.RecordQueue, 0, 4)), "capacity must be > 0", m.name)
        eq(str(raises(ValueError, m.RecordQueue, -3, 4)), "capacity must be > 0", m.name)
        eq(str(raises(ValueError, m.RecordQueue, 4, 0)), "item_size must be > 0", m.name)
        raises(ValueError, m.RecordQueue, 1 << 20, 1 << 20)
        raises(TypeError, m.RecordQueue, "4", 4)
        raises(TypeError, m.RecordQueue, 4, 2.0)
        raises(ValueError, m.DeadlineQueue, 0, 4)
        raises(ValueError, m.DeadlineQueue, 4, -1)
        raises(TypeError, m.DeadlineQueue, None, 4)


def test_bad_args_leave_queue_unchanged():
    for m in impls():
        q = m.RecordQueue(3, 2)
        q.push(b"aa")
        q.push(b"bb")
        before = q.stats()
        eq(str(raises(ValueError, q.push, b"a")), "record size mismatch", m.name)
        raises(ValueError, q.push, b"abc")
        raises(TypeError, q.push, 12)
        raises(TypeError, q.push, None)
        eq(str(raises(TypeError, q.pop_into, b"xx")), "buffer is read-only", m.name)
        raises(TypeError, q.pop_into, memoryview(b"xx"))
        raises(ValueError, q.pop_into, bytearray(3))
        raises(TypeError, q.peek_into, b"xx")
        raises(ValueError, q.peek_into, bytearray(1))
        eq(str(raises(ValueError, q.push_many, b"aabb", -1)), "n must be >= 0", m.name)
        eq(str(raises(ValueError, q.push_many, b"aabb", 3)), "buffer too small", m.name)
        raises(TypeError, q.push_many, b"aabb", 1.0)
        raises(ValueError, q.pop_many_into, bytearray(4), -2)
        raises(ValueError, q.pop_many_into, bytearray(3), 2)
        raises(TypeError, q.pop_many_into, b"xxxx", 2)
        raises(TypeError, q.snapshot_into, b"x" * 64)
        raises(TypeError, q.restore, 5)
        eq(q.stats(), before, m.name + " stats untouched")
        eq(_drain(q, 2), [b"aa", b"bb"], m.name + " contents untouched")
        _guards(q)


def test_deadline_orders_by_due_fifo_among_equals():
    for m in impls():
        d = m.DeadlineQueue(8, 1)
        for due, r in ((50, b"a"), (10, b"b"), (50, b"c"), (30, b"d"), (10, b"e")):
            eq(d.push(due, r), True, m.name)
        eq(d.next_due(), 10, m.name)
        b = bytearray(1)
        eq(d.pop_due_into(9, b), False, m.name + " nothing due yet")
        got = []
        for now in (10, 10, 29, 30, 60, 60, 60):
            if d.pop_due_into(now, b):
                got.append((now, bytes(b)))
        eq(got, [(10, b"b"), (10, b"e"), (30, b"d"), (60, b"a"), (60, b"c")], m.name)
        eq(d.next_due(), None, m.name)
        eq(len(d), 0, m.name)
        _guards(d)


def test_deadline_wraps_like_ticks_diff():
    for m in impls():
        d = m.DeadlineQueue(4, 1)
        top = time.ticks_add(0, -1)  # the largest tick value on this port
        near_end = time.ticks_add(0, -5)
        after_wrap = time.ticks_add(near_end, 10)  # small number, but later
        d.push(after_wrap, b"L")
        d.push(near_end, b"E")
        eq(d.next_due(), near_end, m.name + " earlier despite larger value")
        b = bytearray(1)
        eq(d.pop_due_into(time.ticks_add(near_end, 1), b), True, m.name)
        eq(bytes(b), b"E", m.name)
        eq(d.pop_due_into(top, b), False, m.name + " not yet due before wrap")
        eq(d.pop_due_into(after_wrap, b), True, m.name)
        eq(bytes(b), b"L", m.name)
        d.push(-1, b"x")
        eq(d.next_due(), top, m.name + " due is masked to the ticks period")


def test_deadline_full_and_bad_args():
    for m in impls():
        d = m.DeadlineQueue(2, 2)
        d.push(5, b"aa")
        d.push(1, b"bb")
        eq(d.push(3, b"cc"), False, m.name)
        eq(d.stats(), (2, 2, 1), m.name)
        eq(d.free(), 0, m.name)
        eq(str(raises(TypeError, d.push, "5", b"aa")), "due must be an int", m.name)
        raises(TypeError, d.push, 1.5, b"aa")
        raises(ValueError, d.push, 5, b"a")
        eq(str(raises(TypeError, d.pop_due_into, None, bytearray(2))), "now must be an int", m.name)
        raises(TypeError, d.pop_due_into, 10, b"xx")
        raises(ValueError, d.pop_due_into, 10, bytearray(3))
        eq(d.stats(), (2, 2, 1), m.name)
        b = bytearray(2)
        eq(d.pop_due_into(10, b), True, m.name)
        eq(bytes(b), b"bb", m.name)
        d.clear()
        eq((len(d), d.next_due(), bool(d)), (0, None, False), m.name)


def _crc32_ref(data):
    # Bitwise CRC-32 (reflected 0xEDB88320), independent of the table-driven code.
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_snapshot_format_and_crc():
    for m in impls():
        q = m.RecordQueue(4, 3)
        q.push(b"one")
        q.push(b"two")
        buf = bytearray(64)
        n = q.snapshot_into(buf)
        eq(n, 16 + 2 * 3 + 4, m.name)
        eq(n, q.snapshot_size(), m.name)
        s = bytes(buf[:n])
        eq(s[:4], b"RQ\x01\x00", m.name + " magic, version, kind")
        eq(s[4:16], bytes([3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0]), m.name + " item_size, count, capacity")
        eq(s[16:22], b"onetwo", m.name)
        crc = s[-4] | (s[-3] << 8) | (s[-2] << 16) | (s[-1] << 24)
        eq(crc, _crc32_ref(s[:-4]), m.name + " CRC-32")
        eq(str(raises(ValueError, q.snapshot_into, bytearray(n - 1))), "buffer too small", m.name)


def test_snapshot_restore_roundtrip():
    for m in impls():
        q = m.RecordQueue(4, 2)
        for i in range(6):  # wrap the ring before saving
            q.push(_rec(i, 2))
            if i % 2:
                q.pop_into(bytearray(2))
        s = bytearray(q.snapshot_size())
        q.snapshot_into(s)
        want = _drain(q, 2)
        r = m.RecordQueue(5, 2)
        r.push(b"zz")
        r.restore(s)
        eq(_drain(r, 2), want, m.name + " restored contents replace old ones")
        small = m.RecordQueue(len(want) - 1, 2)
        eq(str(raises(ValueError, small.restore, s)), "snapshot larger than queue", m.name)
        other = m.RecordQueue(4, 3)
        eq(str(raises(ValueError, other.restore, s)), "snapshot item_size mismatch", m.name)
        dq = m.DeadlineQueue(4, 2)
        eq(str(raises(ValueError, dq.restore, s)), "not a recqueue snapshot", m.name)

        d = m.DeadlineQueue(5, 1)
        for due, r_ in ((40, b"a"), (20, b"b"), (40, b"c"), (-3, b"d")):
            d.push(due, r_)
        s = bytearray(d.snapshot_size())
        d.snapshot_into(s)
        d2 = m.DeadlineQueue(4, 1)
        d2.restore(s)
        b = bytearray(1)
        got = []
        while d2.pop_due_into(100, b):
            got.append(bytes(b))
        eq(got, [b"d", b"b", b"a", b"c"], m.name + " deadline order after restore")


def test_corrupt_or_truncated_snapshot_leaves_queue_unchanged():
    for m in impls():
        q = m.RecordQueue(3, 2)
        q.push(b"ab")
        q.push(b"cd")
        s = bytearray(q.snapshot_size())
        q.snapshot_into(s)
        t = m.RecordQueue(3, 2)
        t.push(b"zz")
        for i in range(len(s)):
            bad = bytearray(s)
            bad[i] ^= 0x40
            raises(ValueError, t.restore, bad)
        for n in range(len(s)):
            raises(ValueError, t.restore, s[:n])
        raises(ValueError, t.restore, bytes(s) + b"\x00")
        eq(_drain(t, 2), [b"zz"], m.name + " queue untouched by failed restores")
        d = m.DeadlineQueue(2, 1)
        d.push(7, b"k")
        ds = bytearray(d.snapshot_size())
        d.snapshot_into(ds)
        ds[-1] ^= 1
        eq(str(raises(ValueError, d.restore, ds)), "snapshot CRC mismatch", m.name)
        eq(d.next_due(), 7, m.name)


def test_hot_operations_do_not_allocate():
    import micropython

    for m in impls():
        q = m.RecordQueue(8, 4)
        rec = b"abcd"
        out = bytearray(4)
        micropython.heap_lock()
        try:
            for _ in range(20):
                q.push(rec)
                q.peek_into(out)
                q.pop_into(out)
            n = len(q)
        finally:
            micropython.heap_unlock()
        eq(n, 0, m.name)
        eq(bytes(out), rec, m.name)

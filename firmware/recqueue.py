"""Pure-Python twin of the `recqueue` C module (firmware/cmodules/recqueue).

Firmware does `import recqueue`: where the C module is built in, the import
finds it first and this file is never loaded; elsewhere (stock MicroPython,
the emulator) this file gives the same API, the same errors with the same
messages and the same results, so code and tests do not care which one runs.
docs/recqueue.md is the specification both follow; every branch below mirrors
rq_core.c / recqueue.c in the same order, including the order in which
arguments are checked, so the differential test can compare error messages.

Records are byte buffers (bytes, bytearray, memoryview, array('B')).
"""
import time
from micropython import const

IMPL = "py"

# Largest storage a queue may ask for, so capacity * item_size stays small.
_MAX_BYTES = const(16777216)

# Snapshot layout, docs/recqueue.md "Snapshot format".
_SNAP_HEADER = const(16)
_SNAP_TRAILER = const(4)
_SNAP_VERSION = const(1)
_KIND_RING = const(0)
_KIND_DEADLINE = const(1)
_DUE_BYTES = const(8)

# ticks period - 1, the same mask time.ticks_* use on this port.
# The ESP32 stub types ticks as opaque _TicksMs/_TicksUs values, so it refuses a literal 0; on every
# port a ticks value is a small int and ticks_add(0, -1) is the period's mask (the stub is too strict).
_TICKS_MASK = time.ticks_add(0, -1)  # pyright: ignore[reportArgumentType]

_CRC_TAB = (
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC,
    0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
    0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C,
    0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
)


def _crc32(buf, n):
    """CRC-32 as zlib.crc32 over buf[0:n] (nibble table, like rq_core.c)."""
    crc = 0xFFFFFFFF
    tab = _CRC_TAB
    for i in range(n):
        crc ^= buf[i]
        crc = (crc >> 4) ^ tab[crc & 15]
        crc = (crc >> 4) ^ tab[crc & 15]
    return crc ^ 0xFFFFFFFF


def _put_u32(buf, off, v):
    buf[off] = v & 0xFF
    buf[off + 1] = (v >> 8) & 0xFF
    buf[off + 2] = (v >> 16) & 0xFF
    buf[off + 3] = (v >> 24) & 0xFF


def _get_u32(buf, off):
    return buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)


def _int(x, msg):
    # type() rather than isinstance(): the C side accepts exactly int, not
    # bool or int subclasses.
    if type(x) is not int:
        raise TypeError(msg)
    return x


def _count(n):
    n = _int(n, "n must be an int")
    if n < 0:
        raise ValueError("n must be >= 0")
    return n


def _rbuf(buf):
    """A readable buffer whose len() is its size in bytes."""
    t = type(buf)
    if t is bytes or t is bytearray or t is memoryview:
        return buf
    try:
        return memoryview(buf)
    except TypeError:
        raise TypeError("object with buffer protocol required")


def _wbuf(buf):
    """A writable buffer; read-only ones fail like the C module's check."""
    if type(buf) is bytearray:
        return buf
    try:
        mv = memoryview(buf)
    except TypeError:
        raise TypeError("object with buffer protocol required")
    try:
        mv[0:0] = b""
    except TypeError:
        raise TypeError("buffer is read-only")
    return mv


def _exact(buf, isz):
    if len(buf) != isz:
        raise ValueError("record size mismatch")


def _at_least(buf, n, isz):
    if n > len(buf) // isz:
        raise ValueError("buffer too small")


def _shape(capacity, item_size):
    c = _int(capacity, "capacity must be an int")
    s = _int(item_size, "item_size must be an int")
    if c <= 0:
        raise ValueError("capacity must be > 0")
    if s <= 0:
        raise ValueError("item_size must be > 0")
    if c > _MAX_BYTES // s:
        raise ValueError("queue too large")
    return c, s


def _snap_header(out, kind, isz, count, cap):
    out[0] = 0x52  # 'R'
    out[1] = 0x51  # 'Q'
    out[2] = _SNAP_VERSION
    out[3] = kind
    _put_u32(out, 4, isz)
    _put_u32(out, 8, count)
    _put_u32(out, 12, cap)


def _snap_check(buf, kind, isz, rec, cap):
    """Validates a snapshot without touching any queue; returns its count."""
    n = len(buf)
    if n < _SNAP_HEADER + _SNAP_TRAILER:
        raise ValueError("snapshot truncated")
    if _crc32(buf, n - _SNAP_TRAILER) != _get_u32(buf, n - _SNAP_TRAILER):
        raise ValueError("snapshot CRC mismatch")
    if buf[0] != 0x52 or buf[1] != 0x51 or buf[2] != _SNAP_VERSION or buf[3] != kind:
        raise ValueError("not a recqueue snapshot")
    if _get_u32(buf, 4) != isz:
        raise ValueError("snapshot item_size mismatch")
    count = _get_u32(buf, 8)
    body = n - _SNAP_HEADER - _SNAP_TRAILER
    if body // rec != count or body % rec != 0:
        raise ValueError("snapshot length mismatch")
    if count > cap:
        raise ValueError("snapshot larger than queue")
    return count


class RecordQueue:
    """FIFO of fixed-size records in one bytearray allocated up front."""

    def __init__(self, capacity, item_size, overwrite=False):
        cap, isz = _shape(capacity, item_size)
        self._cap = cap
        self._isz = isz
        self._buf = bytearray(cap * isz)
        self._mv = memoryview(self._buf)
        # One view per slot, made now, so pop/peek copy out without
        # allocating a slice object per call.
        self._slots = [self._mv[i * isz:(i + 1) * isz] for i in range(cap)]
        self._ow = bool(overwrite)
        self._head = 0
        self._count = 0
        self._hw = 0
        self._pushes = 0
        self._drops = 0

    def __len__(self):
        return self._count

    def _slot(self, i):
        s = self._head + i
        return s - self._cap if s >= self._cap else s

    def push(self, buf):
        buf = _rbuf(buf)
        isz = self._isz
        _exact(buf, isz)
        if self._count == self._cap:
            self._drops += 1
            if not self._ow:
                return False
            self._head = self._slot(1)
            self._count -= 1
        o = self._slot(self._count) * isz
        self._mv[o:o + isz] = buf
        self._count += 1
        self._pushes += 1
        if self._count > self._hw:
            self._hw = self._count
        return True

    def peek_into(self, buf):
        buf = _wbuf(buf)
        isz = self._isz
        _exact(buf, isz)
        if not self._count:
            return False
        buf[0:isz] = self._slots[self._head]
        return True

    def pop_into(self, buf):
        buf = _wbuf(buf)
        isz = self._isz
        _exact(buf, isz)
        if not self._count:
            return False
        buf[0:isz] = self._slots[self._head]
        self._head = self._slot(1)
        self._count -= 1
        return True

    def push_many(self, buf, n):
        buf = _rbuf(buf)
        n = _count(n)
        isz = self._isz
        cap = self._cap
        _at_least(buf, n, isz)
        src = memoryview(buf)
        pos = 0
        done = 0
        if self._ow and n > cap:
            skip = n - cap
            self._drops += skip
            self._pushes += skip
            pos = skip * isz
            done = skip
            n = cap
        while n:
            if self._count == cap:
                if not self._ow:
                    self._drops += n
                    break
                k = n if n < self._count else self._count
                self._head = self._slot(k)
                self._count -= k
                self._drops += k
            tail = self._slot(self._count)
            k = n
            room = cap - self._count
            run = cap - tail
            if k > room:
                k = room
            if k > run:
                k = run
            o = tail * isz
            self._mv[o:o + k * isz] = src[pos:pos + k * isz]
            pos += k * isz
            self._count += k
            self._pushes += k
            done += k
            n -= k
        if self._count > self._hw:
            self._hw = self._count
        return done

    def pop_many_into(self, buf, max_n):
        buf = _wbuf(buf)
        max_n = _count(max_n)
        isz = self._isz
        _at_least(buf, max_n, isz)
        n = max_n if max_n < self._count else self._count
        first = self._cap - self._head
        if first > n:
            first = n
        o = self._head * isz
        buf[0:first * isz] = self._mv[o:o + first * isz]
        buf[first * isz:n * isz] = self._mv[0:(n - first) * isz]
        self._head = self._slot(n)
        self._count -= n
        return n

    def find(self, offset, key):
        off = _int(offset, "offset must be an int")
        key = _rbuf(key)
        isz = self._isz
        kl = len(key)
        if off < 0 or off > isz or kl > isz - off:
            raise ValueError("key outside record")
        for i in range(self._count):
            o = self._slot(i) * isz + off
            if self._buf[o:o + kl] == key:
                return i
        return -1

    def free(self):
        return self._cap - self._count

    def clear(self):
        self._head = 0
        self._count = 0

    def stats(self):
        return (self._hw, self._pushes, self._drops)

    def snapshot_size(self):
        return _SNAP_HEADER + self._count * self._isz + _SNAP_TRAILER

    def snapshot_into(self, buf):
        out = _wbuf(buf)
        n = self.snapshot_size()
        if len(out) < n:
            raise ValueError("buffer too small")
        _snap_header(out, _KIND_RING, self._isz, self._count, self._cap)
        isz = self._isz
        p = _SNAP_HEADER
        for i in range(self._count):
            o = self._slot(i) * isz
            out[p:p + isz] = self._mv[o:o + isz]
            p += isz
        _put_u32(out, p, _crc32(out, p))
        return n

    def restore(self, buf):
        buf = _rbuf(buf)
        isz = self._isz
        n = _snap_check(buf, _KIND_RING, isz, isz, self._cap)
        self._mv[0:n * isz] = memoryview(buf)[_SNAP_HEADER:_SNAP_HEADER + n * isz]
        self._head = 0
        self._count = n
        if n > self._hw:
            self._hw = n


class DeadlineQueue:
    """Records ordered by due time (ticks, wrap-around aware), FIFO among equals.

    Kept latest-first in one bytearray so the next record due is always at
    the end: popping moves nothing, pushing shifts the later entries up one.
    """

    def __init__(self, capacity, item_size):
        cap, isz = _shape(capacity, item_size)
        self._cap = cap
        self._isz = isz
        self._buf = bytearray(cap * isz)
        self._mv = memoryview(self._buf)
        self._slots = [self._mv[i * isz:(i + 1) * isz] for i in range(cap)]
        self._due = [0] * cap
        self._count = 0
        self._hw = 0
        self._pushes = 0
        self._drops = 0

    def __len__(self):
        return self._count

    def _insert(self, due, src):
        due_l = self._due
        lo = 0
        hi = self._count
        diff = time.ticks_diff
        while lo < hi:
            mid = (lo + hi) >> 1
            if diff(due_l[mid], due) > 0:
                lo = mid + 1
            else:
                hi = mid
        isz = self._isz
        n = self._count
        mv = self._mv
        mv[(lo + 1) * isz:(n + 1) * isz] = mv[lo * isz:n * isz]
        for i in range(n, lo, -1):
            due_l[i] = due_l[i - 1]
        mv[lo * isz:(lo + 1) * isz] = src
        due_l[lo] = due
        self._count = n + 1

    def push(self, due_ticks, buf):
        due = _int(due_ticks, "due must be an int") & _TICKS_MASK
        buf = _rbuf(buf)
        _exact(buf, self._isz)
        if self._count == self._cap:
            self._drops += 1
            return False
        self._insert(due, buf)
        self._pushes += 1
        if self._count > self._hw:
            self._hw = self._count
        return True

    def pop_due_into(self, now_ticks, buf):
        now = _int(now_ticks, "now must be an int") & _TICKS_MASK
        buf = _wbuf(buf)
        isz = self._isz
        _exact(buf, isz)
        if not self._count:
            return False
        last = self._count - 1
        if time.ticks_diff(self._due[last], now) > 0:
            return False
        buf[0:isz] = self._slots[last]
        self._count = last
        return True

    def next_due(self):
        if not self._count:
            return None
        return self._due[self._count - 1]

    def free(self):
        return self._cap - self._count

    def clear(self):
        self._count = 0

    def stats(self):
        return (self._hw, self._pushes, self._drops)

    def snapshot_size(self):
        return _SNAP_HEADER + self._count * (_DUE_BYTES + self._isz) + _SNAP_TRAILER

    def snapshot_into(self, buf):
        out = _wbuf(buf)
        n = self.snapshot_size()
        if len(out) < n:
            raise ValueError("buffer too small")
        isz = self._isz
        _snap_header(out, _KIND_DEADLINE, isz, self._count, self._cap)
        p = _SNAP_HEADER
        for i in range(self._count - 1, -1, -1):
            d = self._due[i]
            for k in range(_DUE_BYTES):
                out[p + k] = (d >> (8 * k)) & 0xFF
            o = i * isz
            out[p + _DUE_BYTES:p + _DUE_BYTES + isz] = self._mv[o:o + isz]
            p += _DUE_BYTES + isz
        _put_u32(out, p, _crc32(out, p))
        return n

    def restore(self, buf):
        buf = _rbuf(buf)
        isz = self._isz
        rec = _DUE_BYTES + isz
        n = _snap_check(buf, _KIND_DEADLINE, isz, rec, self._cap)
        src = memoryview(buf)
        self._count = 0
        p = _SNAP_HEADER
        for _ in range(n):
            d = 0
            for k in range(_DUE_BYTES - 1, -1, -1):
                d = (d << 8) | src[p + k]
            self._insert(d & _TICKS_MASK, src[p + _DUE_BYTES:p + rec])
            p += rec
        if self._count > self._hw:
            self._hw = self._count

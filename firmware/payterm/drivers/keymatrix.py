"""Keypad: a switch matrix on GPIOs, woken by a column interrupt, scanned by one task.

Wiring: rows are outputs, columns are inputs with pull-ups. At rest every
row is driven low, so closing a switch pulls its column low and the
falling edge raises the column pin's IRQ. The IRQ handler only stores
(ticks, column) in a preallocated recqueue.RecordQueue and sets an
asyncio.ThreadSafeFlag: it allocates nothing, so it may run as a hard IRQ
(heap locked) on the ESP32. The task then scans (one row low at a time,
every column read) every scan_ms while any switch is closed:

- debounce: a change counts once the whole matrix has read the same for
  debounce_ms, counted from the last edge the IRQ saw (or the scan that
  first saw the change); a bouncing contact keeps restarting the window;
- each key press is reported once, as a byte of the panel key alphabet
  (`0-9 E C B F * #`, payterm.ui.keys.KEYS) through on_key(byte);
- a key held longer than stuck_ms is stuck: HW-05 goes to on_fault once,
  the key is ignored until it is released, and the other keys keep
  working (the task keeps scanning while the stuck key holds its column
  low, since that column can raise no more edges);
- a key already closed at the first scan is not a press: it must be
  released first (a key stuck at power-on gives no phantom key, only HW-05).

The queue is read with IRQs disabled (disable_irq/enable_irq from the
HAL: machine.disable_irq on the device), since a hard IRQ may interrupt
the pop half-way.
"""
from micropython import const
import time

import recqueue

from payterm.errors import Fault

_STAGE = "keypad"

# Default layout, row-major for a 4x4 membrane keypad: row 0 is "1 2 3 C".
KEYMAP = b"123C456B789E*0#F"

_REC = const(9)  # record: ticks (8 bytes, little-endian) + column index
_NO_COL = const(0xFF)
_MAX_KEYS = const(30)  # bitmask of closed switches stays a small int on a 32-bit port


def _nop():
    return 0


def _nop1(state):
    pass


class KeyDebounce:
    """Debounced presses and stuck keys from successive reads of a switch matrix.

    The scanning part (KeyMatrix on GPIOs, pcf8574_keys.Pcf8574Keys on an
    I2C expander) feeds `step(raw, now)` with a bitmask of closed switches
    (bit r*ncols+c, keymap row-major); this reports each press once through
    on_key(byte) and a key held longer than stuck_ms once through
    on_fault(Fault("HW-05")).
    """

    def __init__(self, ticks, keymap=KEYMAP, on_key=None, on_fault=None, debounce_ms=20, stuck_ms=8000):
        self._ticks = ticks
        self.on_key = on_key
        self.on_fault = on_fault
        self.keymap = bytes(keymap)
        self.debounce_ms = debounce_ms
        self.stuck_ms = stuck_ms
        self._stable = 0  # debounced closed switches
        self._cand = 0  # what the last scan read
        self._since = 0  # when the matrix started reading `_cand`
        self._down_at = [0] * len(keymap)
        self._stuck = 0  # keys ignored until released
        self._reported = 0  # stuck keys already reported
        self._first = True
        self.presses = 0

    def step(self, raw, now, edge=None):
        """Feed one scan taken at `now`; emits debounced presses and stuck-key faults."""
        if self._first:
            self._first = False
            self._stable = self._cand = raw
            self._stuck = raw  # closed at power-on: not a press, ignored until released
            self._since = now
            for i in range(len(self.keymap)):
                if raw >> i & 1:
                    self._down_at[i] = now
            return
        if raw != self._cand:
            self._cand = raw
            self._since = now
            if edge is not None and raw & ~self._stable and _diff(now, edge) > 0:
                self._since = edge  # the contact settled at its last edge, not when the task woke
        elif raw != self._stable and _diff(now, self._since) >= self.debounce_ms:
            pressed = raw & ~self._stable
            released = self._stable & ~raw
            self._stable = raw
            self._stuck &= ~released
            self._reported &= ~released
            for i in range(len(self.keymap)):
                if pressed >> i & 1:
                    self._down_at[i] = now
                    self.presses += 1
                    if self.on_key is not None:
                        self.on_key(self.keymap[i])
        held = self._stable
        if not held:
            return
        for i in range(len(self.keymap)):
            bit = 1 << i
            if held & bit and not self._reported & bit and _diff(now, self._down_at[i]) >= self.stuck_ms:
                self._stuck |= bit
                self._reported |= bit
                if self.on_fault is not None:
                    self.on_fault(Fault("HW-05", "key %s stuck" % chr(self.keymap[i]), _STAGE))

    def stuck(self):
        """Keys held too long (or closed at power-on), as a string of key characters."""
        return "".join(chr(self.keymap[i]) for i in range(len(self.keymap)) if self._stuck >> i & 1)

    def idle(self):
        """Nothing closed, nothing pending: the task may sleep until the next IRQ."""
        return not self._stable and not self._cand


class KeyMatrix(KeyDebounce):
    """rows/cols: Pin objects (machine.Pin on the device); ticks: time.ticks_ms-style callable;
    on_key(byte) and on_fault(Fault) may be set later (ui.localpanel.LocalPanel sets them)."""

    def __init__(self, rows, cols, ticks, on_key=None, keymap=KEYMAP, debounce_ms=20, scan_ms=5,
                 stuck_ms=8000, on_fault=None, disable_irq=None, enable_irq=None, flag=None, depth=16):
        if len(rows) * len(cols) > _MAX_KEYS or len(keymap) != len(rows) * len(cols):
            raise ValueError("keymap must name rows*cols keys (at most 30)")
        KeyDebounce.__init__(self, ticks, keymap, on_key, on_fault, debounce_ms, stuck_ms)
        self._rows = list(rows)
        self._cols = list(cols)
        self._nc = len(cols)
        self.scan_ms = scan_ms
        self._dis = disable_irq or _nop
        self._en = enable_irq or _nop1
        if flag is None:
            import asyncio

            flag = asyncio.ThreadSafeFlag()
        self._flag = flag
        # Everything the IRQ handler touches exists before the first IRQ.
        self._q = recqueue.RecordQueue(depth, _REC)
        self._rec = bytearray(_REC)
        self._out = bytearray(_REC)
        self._scanning = False
        self.edges = 0
        for p in self._rows:
            p.init(p.OUT, value=0)
        for p in self._cols:
            p.init(p.IN, p.PULL_UP)
            p.irq(handler=self._irq, trigger=p.IRQ_FALLING, hard=True)

    # ------------------------------------------------------------ IRQ (no allocation)
    def _irq(self, pin):
        if self._scanning:
            return  # edges the scan itself makes
        r = self._rec
        t = self._ticks()
        for i in range(8):
            r[i] = t & 0xFF
            t >>= 8
        c = _NO_COL
        cols = self._cols
        for i in range(self._nc):
            if cols[i] is pin:
                c = i
                break
        r[8] = c
        self._q.push(r)
        self._flag.set()

    # ------------------------------------------------------------ task
    def _edges(self):
        """Pop the IRQ records; ticks of the last edge (the contact's last bounce), or None."""
        last = None
        out = self._out
        while True:
            st = self._dis()
            ok = self._q.pop_into(out)
            self._en(st)
            if not ok:
                return last
            self.edges += 1
            t = 0
            for i in range(7, -1, -1):
                t = (t << 8) | out[i]
            last = t

    def _any_closed(self):
        """At rest (all rows low): is any column pulled low?"""
        for p in self._cols:
            if not p.value():
                return True
        return False

    def scan(self):
        """Read the matrix once: bitmask of closed switches, bit r*ncols+c."""
        self._scanning = True
        rows, cols, nc = self._rows, self._cols, self._nc
        for p in rows:
            p.value(1)
        raw = 0
        for r in range(len(rows)):
            rows[r].value(0)
            # A column settles within microseconds (internal pull-up ~45 kOhm, a few pF):
            # less than the interpreter takes to get to the read.
            for c in range(nc):
                if not cols[c].value():
                    raw |= 1 << (r * nc + c)
            rows[r].value(1)
        for p in rows:
            p.value(0)
        self._scanning = False
        return raw

    async def run(self):
        import asyncio

        self.step(self.scan(), self._ticks())  # what is closed before the first IRQ is no press
        while True:
            if not self._any_closed():
                self._flag.clear()
                if not self._any_closed():  # a press between the two reads raised the flag
                    await self._flag.wait()
            edge = self._edges()
            while True:
                raw = self.scan()
                self.step(raw, self._ticks(), edge)
                edge = None
                self._edges()  # edges between scans are the scan's own or bounce: the scan sees them
                if self.idle() and not raw:
                    break
                # only stuck keys down: no need to look 200 times a second
                slow = self._cand == self._stable and not self._stable & ~self._stuck
                await asyncio.sleep_ms(self.scan_ms * 4 if slow else self.scan_ms)


def _diff(a, b):
    return time.ticks_diff(a, b)


def make(bus, spec, pins, hal):
    """Driver factory (payterm.hal.drivers): bus is the (rows, cols) Pin lists of a "matrix" entry.

    spec "keys" is the keycap layout, row-major (default KEYMAP); the IRQs are
    disabled around the queue pops with the HAL's disable_irq/enable_irq.
    """
    rows, cols = bus
    keys = spec.get("keys")
    return KeyMatrix(rows, cols, hal.ticks, keymap=keys.encode() if keys else KEYMAP,
                     disable_irq=hal.disable_irq, enable_irq=hal.enable_irq)

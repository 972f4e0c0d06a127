"""Fake pins, a switch matrix, PWM and an I2C bus for driver unit tests (run in MicroPython).

They speak the machine.Pin / PWM / I2C method names the drivers use. The
matrix delivers column IRQs the way a hard IRQ runs on the ESP32: at once,
with the heap locked, so a handler that allocates fails the test; while the
code under test has IRQs disabled, an edge stays pending until enable_irq.
"""
import micropython


class FakePin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, name, bank=None):
        self.name = name
        self.bank = bank
        self.mode = None
        self.pull = None
        self.out = 1
        self.handler = None
        self.trigger = 0
        self.hard = False
        self.log = []

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self.mode == self.IN and self.bank is not None:
                return self.bank.level(self)
            return self.out
        self.out = 1 if v else 0
        self.log.append(self.out)
        if self.bank is not None:
            self.bank.changed()

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, hard=False):
        self.handler = handler
        self.trigger = trigger
        self.hard = hard


class FakeMatrix:
    """rows x cols switches; a column reads low when a closed switch joins it to a low row."""

    def __init__(self, nrows=4, ncols=4, keymap=b"123C456B789E*0#F"):
        self.rows = [FakePin("R%d" % i, self) for i in range(nrows)]
        self.cols = [FakePin("C%d" % i, self) for i in range(ncols)]
        self.keymap = keymap
        self.closed = set()
        self._levels = [1] * ncols
        self.irqs = 0
        self.disabled = 0
        self.disable_calls = 0
        self._pending = []

    def pos(self, key):
        i = self.keymap.index(key.encode() if isinstance(key, str) else key)
        return i // len(self.cols), i % len(self.cols)

    def level(self, pin):
        c = self.cols.index(pin)
        for (r, cc) in self.closed:
            if cc == c and self.rows[r].out == 0:
                return 0
        return 1

    def changed(self):
        for c, pin in enumerate(self.cols):
            lv = self.level(pin)
            if self._levels[c] == 1 and lv == 0 and pin.handler and pin.trigger & FakePin.IRQ_FALLING:
                if self.disabled:
                    self._pending.append(pin)
                else:
                    self.fire(pin)
            self._levels[c] = lv

    def fire(self, pin):
        self.irqs += 1
        h = pin.handler
        micropython.heap_lock()
        try:
            h(pin)
        finally:
            micropython.heap_unlock()

    def press(self, key):
        self.closed.add(self.pos(key))
        self.changed()

    def release(self, key):
        self.closed.discard(self.pos(key))
        self.changed()

    # machine.disable_irq / enable_irq stand-ins
    def disable_irq(self):
        self.disable_calls += 1
        self.disabled += 1
        return self.disabled - 1

    def enable_irq(self, state):
        self.disabled = state
        if not self.disabled:
            while self._pending:
                self.fire(self._pending.pop(0))


class FakePWM:
    def __init__(self):
        self.f = 0
        self.duty = 0
        self.log = []

    def freq(self, f=None):
        if f is None:
            return self.f
        self.f = f

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        self.duty = d
        self.log.append((self.f, d))


class FakeI2C:
    """machine.I2C stand-in: records each write; an absent address raises OSError(ENODEV) as on the ESP32."""

    ENODEV = 19

    def __init__(self, present=(0x27, 0x3C)):
        self.present = set(present)
        self.writes = []  # (addr, bytes)
        self.fail_after = None  # raise after this many more writes (a cable pulled mid-way)

    def _check(self, addr):
        if self.fail_after is not None:
            if self.fail_after <= 0:
                raise OSError(self.ENODEV)
            self.fail_after -= 1
        if addr not in self.present:
            raise OSError(self.ENODEV)

    def writeto(self, addr, buf, stop=True):
        self._check(addr)
        self.writes.append((addr, bytes(buf)))
        return len(buf)

    def writevto(self, addr, bufs, stop=True):
        self._check(addr)
        data = b"".join(bytes(b) for b in bufs)
        self.writes.append((addr, data))
        return len(data)

    def data(self, addr):
        return b"".join(d for a, d in self.writes if a == addr)

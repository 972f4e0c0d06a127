# runtimes: unix
"""Keypad behind a PCF8574 I2C expander: the port protocol, debounce, stuck keys, a missing expander.

The fake bus plays a PCF8574 with a 4x4 switch matrix on its pins as the
datasheet describes the quasi-bidirectional port: a bit written 1 is a weak
pull-up that reads the pin, a bit written 0 pulls low, and a closed switch
joins a row pin to a column pin.
"""
from mpt import FakeClock, eq

from payterm.drivers.pcf8574_keys import Pcf8574Keys, make


class FakePcf8574Bus:
    """machine.I2C calls on a bus holding one PCF8574 at `addr` with a switch matrix (P0-3 rows, P4-7 cols)."""

    def __init__(self, addr=0x20, keymap=b"123C456B789E*0#F"):
        self.addr = addr
        self.keymap = keymap
        self.port = 0xFF  # outputs high after power-on
        self.closed = set()
        self.present = True
        self.writes = []
        self.reads = 0

    def _check(self, addr):
        if addr != self.addr or not self.present:
            raise OSError(19)  # ENODEV: no acknowledge

    def writeto(self, addr, buf, stop=True):
        self._check(addr)
        for b in buf:
            self.port = b
            self.writes.append(b)
        return len(buf)

    def _pins(self):
        v = self.port
        for (r, c) in self.closed:
            row, col = 1 << r, 1 << (4 + c)
            if not self.port & row or not self.port & col:  # one side driven low pulls the other
                v &= ~(row | col)
        return v

    def readfrom_into(self, addr, buf, stop=True):
        self._check(addr)
        self.reads += 1
        for i in range(len(buf)):
            buf[i] = self._pins()

    def press(self, key):
        i = self.keymap.index(key.encode())
        self.closed.add((i // 4, i % 4))

    def release(self, key):
        i = self.keymap.index(key.encode())
        self.closed.discard((i // 4, i % 4))


def _keys(bus, clock, **kw):
    got = []
    faults = []
    kw.setdefault("stuck_ms", 1000)
    k = Pcf8574Keys(bus, 0x20, clock, on_key=got.append, on_fault=faults.append, **kw)
    return k, got, faults


def _run(k, clock, ms):
    """Poll as the task would for `ms` of hand-moved time."""
    end = clock.now + ms
    while clock.now < end:
        clock.advance(k.poll(clock()))


def _text(got):
    return "".join(chr(b) for b in got)


def test_idle_poll_is_one_write_with_rows_low_and_one_read():
    bus = FakePcf8574Bus()
    c = FakeClock(1000)
    k, got, _ = _keys(bus, c)
    eq(k.poll(c()), 20, "the first poll scans the matrix, then every scan_ms")
    del bus.writes[:]
    bus.reads = 0
    eq(k.poll(c.advance(20)), 20)
    eq((bus.writes, bus.reads), ([0xF0], 1), "rows P0-P3 low, columns P4-P7 weak pull-ups")


def test_each_key_reads_at_its_position_one_row_low_at_a_time():
    bus = FakePcf8574Bus()
    k, _, _ = _keys(bus, FakeClock())
    for i, key in enumerate("123C456B789E*0#F"):
        bus.closed = set()
        bus.press(key)
        del bus.writes[:]
        eq(k.scan(), 1 << i, key)
        eq(bus.writes, [0xFE, 0xFD, 0xFB, 0xF7], "one row low per read, the others pulled up")


def test_presses_debounced_and_reported_once_each():
    bus = FakePcf8574Bus()
    c = FakeClock(1000)
    k, got, faults = _keys(bus, c)
    _run(k, c, 100)
    for key in "1250E":
        bus.press(key)
        _run(k, c, 10)  # shorter than the debounce window: a bounce, if released now
        _run(k, c, 80)
        bus.release(key)
        _run(k, c, 80)
    eq(_text(got), "1250E")
    bus.press("9")
    _run(k, c, 10)
    bus.release("9")
    _run(k, c, 100)
    eq(_text(got), "1250E", "a 10 ms contact is a bounce, no key")
    eq(faults, [])


def test_stuck_key_is_hw05_once_and_the_other_keys_still_work():
    bus = FakePcf8574Bus()
    c = FakeClock(1000)
    k, got, faults = _keys(bus, c)
    _run(k, c, 100)
    bus.press("5")
    _run(k, c, 1500)
    eq([(f.code, f.detail) for f in faults], [("HW-05", "key 5 stuck")])
    eq(_text(got), "5", "the press itself counted once")
    for key in "13":
        bus.press(key)
        _run(k, c, 80)
        bus.release(key)
        _run(k, c, 80)
    eq(_text(got), "513", "keys on other rows and columns are read while 5 is stuck")
    _run(k, c, 3000)
    eq(len(faults), 1, "reported once per episode")
    bus.release("5")
    _run(k, c, 100)
    bus.press("5")
    _run(k, c, 80)
    eq(_text(got), "5135", "released, the key works again")


def test_missing_expander_is_hw05_once_then_keys_work_when_it_answers():
    bus = FakePcf8574Bus()
    bus.present = False
    c = FakeClock(1000)
    k, got, faults = _keys(bus, c)
    eq(k.poll(c()), 1000, "not answering: try again after retry_ms, not every scan")
    _run(k, c, 5000)
    eq([f.code for f in faults], ["HW-05"])
    assert "0x20" in faults[0].detail, faults[0].detail
    bus.present = True
    _run(k, c, 1100)
    bus.press("7")
    _run(k, c, 80)
    eq(_text(got), "7")
    bus.present = False
    _run(k, c, 100)
    eq(len(faults), 2, "a new episode is reported again")


def test_make_takes_the_address_and_keycaps_from_the_hardware_map():
    class Hal:
        def ticks(self):
            return 0

    bus = FakePcf8574Bus(addr=0x21, keymap=b"123F456B789C*0#E")
    k = make(bus, {"bus": "i2c", "i2c": "panel", "addr": 0x21, "driver": "pcf8574_keys",
                   "keys": "123F456B789C*0#E"}, {}, Hal())
    got = []
    k.on_key = got.append
    c = FakeClock(0)
    k._ticks = c
    _run(k, c, 50)
    bus.press("F")
    _run(k, c, 80)
    eq(_text(got), "F", "the board's keycaps: F at row 0, column 3")

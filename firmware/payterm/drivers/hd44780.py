"""20x4 character LCD: an HD44780 in 4-bit mode behind a PCF8574 I2C backpack.

References: Hitachi HD44780U datasheet (ADE-207-272): Table 6 instructions,
Figure 24 initialising by instruction (4-bit interface), bus timing
characteristics (write); NXP PCF8574 datasheet: each data byte of a write
sets the eight quasi-bidirectional outputs at its acknowledge.

Backpack wiring (the common one; `pins` changes it): P0 RS, P1 RW, P2 E,
P3 backlight, P4..P7 = D4..D7. RW stays low: the busy flag is never read,
so the driver keeps to the execution times instead.

Each 4-bit transfer is two port writes: data with E high, then data with
E low (the HD44780 latches on E falling). At 100 kHz (the PCF8574's
limit) a port write takes about 90 us, so E high lasts ~90 us (PWEH >= 230 ns),
an E cycle ~180 us (tcycE >= 500 ns), and the next instruction's latch comes
~180 us after the last (37 us execution time). RS must settle before E rises
(tAS >= 40 ns): when RS changes, one port write with E low and the new RS
goes first. A whole row (set DDRAM address + 20 characters) is one I2C
write from a preallocated buffer.

20x4 DDRAM layout (2-line mode, 40 characters a line): rows start at
0x00, 0x40, 0x14, 0x54. No acknowledge from the backpack is HW-06.
"""
from micropython import const
import time

from payterm.errors import Fault

_STAGE = "display"

# Table 6 instructions
_CLEAR = const(0x01)  # clear display: 1.52 ms
_ENTRY = const(0x04)  # entry mode set
_ENTRY_INC = const(0x02)  # I/D = 1: increment, S = 0: no display shift
_CONTROL = const(0x08)  # display on/off control
_CONTROL_ON = const(0x04)  # D = 1 (C = 0 cursor off, B = 0 blink off)
_FUNCTION = const(0x20)  # function set
_FUNC_2LINE = const(0x08)  # N = 1 (DL = 0: 4-bit, F = 0: 5x8 dots)
_DDRAM = const(0x80)  # set DDRAM address
_INIT_8BIT = const(0x3)  # Figure 24: function set, DL = 1, sent as one 4-bit transfer
_INIT_4BIT = const(0x2)  # function set, DL = 0
# execution times (fosc = 270 kHz) and Figure 24 waits, with margin
_POWER_ON_MS = const(50)  # > 40 ms after Vcc rises to 2.7 V
_WAIT1_US = const(4500)  # > 4.1 ms
_WAIT2_US = const(150)  # > 100 us
_EXEC_US = const(50)  # 37 us
_CLEAR_US = const(2000)  # 1.52 ms

ROW_OFFSETS = (0x00, 0x40, 0x14, 0x54)


class HD44780:
    def __init__(self, i2c, addr=0x27, rows=4, cols=20, pins=(0, 1, 2, 3, 4, 5, 6, 7),
                 sleep_ms=None, sleep_us=None, backlight=True):
        self.i2c = i2c
        self.addr = addr
        self.nrows = rows
        self.cols = cols
        self._sleep_ms = sleep_ms or time.sleep_ms
        self._sleep_us = sleep_us or time.sleep_us
        rs, rw, en, bl, d4, d5, d6, d7 = pins
        self._rs = 1 << rs
        self._e = 1 << en
        self._bl_bit = 1 << bl
        self._bl = self._bl_bit if backlight else 0
        del rw  # held low: writes only
        # nibble -> port bits, so any backpack wiring costs one table lookup
        self._nib = bytearray(16)
        for n in range(16):
            v = 0
            for i, p in enumerate((d4, d5, d6, d7)):
                if n >> i & 1:
                    v |= 1 << p
            self._nib[n] = v
        # one row: [RS=0 setup][address: 2 nibbles x 2][RS=1 setup][cols x 2 nibbles x 2]
        self._row = bytearray(2 + 4 + 4 * cols)
        self._two = bytearray(2)
        self._one = bytearray(1)
        # what the LCD shows; None: unknown
        self.shadow = [None] * rows  # type: list[str | None]
        self.ready = False

    # ------------------------------------------------------------ port writes
    def _write(self, buf):
        try:
            n = self.i2c.writeto(self.addr, buf)
        except OSError as e:
            self._lost()
            raise Fault("HW-06", "no ACK from LCD backpack 0x%02x (%s)" % (self.addr, e), _STAGE)
        if n is not None and n < len(buf):
            self._lost()
            raise Fault("HW-06", "LCD backpack 0x%02x acknowledged %d of %d bytes" % (self.addr, n, len(buf)), _STAGE)

    def _lost(self):
        self.ready = False
        for i in range(self.nrows):
            self.shadow[i] = None

    def _put_nibble(self, buf, k, n, rs):
        v = self._nib[n] | rs | self._bl
        buf[k] = v | self._e
        buf[k + 1] = v
        return k + 2

    def _nibble(self, n):
        self._put_nibble(self._two, 0, n, 0)
        self._write(self._two)

    def _command(self, c):
        b = self._row
        k = self._put_nibble(b, 0, c >> 4, 0)
        self._put_nibble(b, k, c & 0x0F, 0)
        self._write(memoryview(b)[:4])

    # ------------------------------------------------------------ API
    def init(self):
        """Figure 24: initialise by instruction for the 4-bit interface, then clear."""
        self.ready = False
        self._one[0] = self._bl  # E low, RS low: also checks the backpack answers
        self._write(self._one)
        self._sleep_ms(_POWER_ON_MS)
        self._nibble(_INIT_8BIT)
        self._sleep_us(_WAIT1_US)
        self._nibble(_INIT_8BIT)
        self._sleep_us(_WAIT2_US)
        self._nibble(_INIT_8BIT)
        self._sleep_us(_WAIT2_US)
        self._nibble(_INIT_4BIT)
        self._sleep_us(_WAIT2_US)
        self._command(_FUNCTION | _FUNC_2LINE)
        self._command(_CONTROL)  # display off
        self._command(_CLEAR)
        self._sleep_us(_CLEAR_US)
        self._command(_ENTRY | _ENTRY_INC)
        self._command(_CONTROL | _CONTROL_ON)
        for i in range(self.nrows):
            self.shadow[i] = " " * self.cols
        self.ready = True

    def show(self, rows):
        """Show up to 4 rows of at most 20 characters; only rows that changed are written."""
        if not self.ready:
            self.init()
        for i in range(self.nrows):
            text = rows[i] if i < len(rows) else ""
            text = str(text)[: self.cols]
            if len(text) < self.cols:
                text = text + " " * (self.cols - len(text))
            if text != self.shadow[i]:
                self._write_row(i, text)
                self.shadow[i] = text

    def _write_row(self, i, text):
        b = self._row
        rs = self._rs
        b[0] = self._bl  # RS = 0 settles before E rises
        addr = _DDRAM | ROW_OFFSETS[i]
        k = self._put_nibble(b, 1, addr >> 4, 0)
        k = self._put_nibble(b, k, addr & 0x0F, 0)
        b[k] = rs | self._bl  # RS = 1 settles before the first character
        k += 1
        for ch in text:
            c = ord(ch)
            if c < 0x20 or c > 0x7D:
                c = 0x3F  # outside the ASCII part of character ROM A00
            k = self._put_nibble(b, k, c >> 4, rs)
            k = self._put_nibble(b, k, c & 0x0F, rs)
        self._write(b)

    def backlight(self, on):
        self._bl = self._bl_bit if on else 0
        self._one[0] = self._bl
        self._write(self._one)


def make(bus, spec, pins, hal):
    """Driver factory (payterm.hal.drivers): bus is the machine.I2C the entry names (100 kHz: the PCF8574's limit)."""
    return HD44780(bus, spec.get("addr", 0x27), rows=spec.get("rows", 4), cols=spec.get("cols", 20))

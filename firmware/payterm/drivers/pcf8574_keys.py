"""Keypad: a 4x4 switch matrix behind a PCF8574 I2C port expander, polled by one task.

Reference: NXP PCF8574/PCF8574A datasheet, "quasi-bidirectional I/Os": a port
bit written 1 is a weak pull-up that a switch can pull low, and reads back the
pin's level; a bit written 0 sinks current. Each data byte written sets the
port at its acknowledge; a read returns the levels of the eight pins.

Wiring (spec "row_bits"/"col_bits" for others): P0..P3 rows, P4..P7 columns. At rest
every row bit is 0 and every other bit 1, so a closed switch pulls its column
low. Each poll (every scan_ms) is one write and one read; while a column is
low the matrix is scanned one row low at a time (4 writes + 4 reads, about
2 ms at 100 kHz). Debounce and stuck keys as for the GPIO matrix
(keymatrix.KeyDebounce: each press once through on_key, HW-05 for a key held
longer than stuck_ms, the other keys keep working).

The expander's INT output is not wired on these boards (it would need a pin
the boards have not got to spare), hence the polling. No acknowledge from the
expander is HW-05, reported once per episode; the task tries again every
retry_ms and carries on when it answers.
"""
from micropython import const

from payterm.drivers.keymatrix import KEYMAP, KeyDebounce
from payterm.errors import Fault

_STAGE = "keypad"
_SCAN_MS = const(20)  # poll period: a press lasts 50 ms or more
_RETRY_MS = const(1000)  # expander not answering: try again this often


class Pcf8574Keys(KeyDebounce):
    """i2c: machine.I2C; ticks: time.ticks_ms-style callable; on_key(byte), on_fault(Fault) set by LocalPanel."""

    def __init__(self, i2c, addr, ticks, keymap=KEYMAP, rows=(0, 1, 2, 3), cols=(4, 5, 6, 7),
                 on_key=None, on_fault=None, debounce_ms=20, stuck_ms=8000, scan_ms=_SCAN_MS, retry_ms=_RETRY_MS):
        if len(keymap) != len(rows) * len(cols):
            raise ValueError("keymap must name rows*cols keys")
        KeyDebounce.__init__(self, ticks, keymap, on_key, on_fault, debounce_ms, stuck_ms)
        self.i2c = i2c
        self.addr = addr
        self.scan_ms = scan_ms
        self.retry_ms = retry_ms
        self._rowbits = [1 << r for r in rows]
        self._colbits = [1 << c for c in cols]
        self._nc = len(cols)
        rest = 0xFF
        for b in self._rowbits:
            rest &= ~b
        self._rest = rest  # every row low, every other pin a weak pull-up
        self._w = bytearray(1)
        self._r = bytearray(1)
        self.bus_ok = True
        self.bus_errors = 0

    # ------------------------------------------------------------ expander
    def _xfer(self, port):
        """Set the port, read the pins back; OSError when the expander does not acknowledge."""
        self._w[0] = port
        if self.i2c.writeto(self.addr, self._w) != 1:
            raise OSError(19)  # data byte not acknowledged: ENODEV, as a missing address
        self.i2c.readfrom_into(self.addr, self._r)
        return self._r[0]

    def _any_closed(self):
        v = self._xfer(self._rest)
        for b in self._colbits:
            if not v & b:
                return True
        return False

    def scan(self):
        """Read the matrix once: bitmask of closed switches, bit r*ncols+c."""
        raw = 0
        nc = self._nc
        for r in range(len(self._rowbits)):
            v = self._xfer(0xFF & ~self._rowbits[r])
            for c in range(nc):
                if not v & self._colbits[c]:
                    raw |= 1 << (r * nc + c)
        return raw

    # ------------------------------------------------------------ task
    def poll(self, now):
        """One round at time `now`: read, debounce, report; returns ms until the next round."""
        try:
            if self._first or not self.idle() or self._any_closed():
                raw = self.scan()
            else:
                raw = 0
        except OSError as e:
            self.bus_errors += 1
            if self.bus_ok:
                self.bus_ok = False
                if self.on_fault is not None:
                    self.on_fault(Fault("HW-05", "no ACK from key expander 0x%02x (%s)" % (self.addr, e), _STAGE))
            return self.retry_ms
        self.bus_ok = True
        self.step(raw, now)
        return self.scan_ms

    async def run(self):
        import asyncio

        while True:
            await asyncio.sleep_ms(self.poll(self._ticks()))


def make(bus, spec, pins, hal):
    """Driver factory (payterm.hal.drivers): bus is the machine.I2C the entry names, spec "addr", "keys"."""
    keys = spec.get("keys")
    return Pcf8574Keys(bus, spec.get("addr", 0x20), hal.ticks, keymap=keys.encode() if keys else KEYMAP,
                       rows=tuple(spec.get("row_bits", (0, 1, 2, 3))), cols=tuple(spec.get("col_bits", (4, 5, 6, 7))))

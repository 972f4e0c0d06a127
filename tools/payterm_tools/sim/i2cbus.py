"""An I2C bus on a pty and the display modules on it: an HD44780 LCD behind a PCF8574, an SSD1306 OLED.

The emulator has no I2C, so the firmware's host HAL (payterm.hal.host_buses.PtyI2C)
sends one frame per transaction and waits for the answer:

    write  'W' addr len_hi len_lo data...  ->  'A' n_hi n_lo   (n data bytes acknowledged)  |  'N' (no device)
    read   'R' addr len_hi len_lo          ->  'A' n_hi n_lo data...                        |  'N'
    anything else                          ->  'E'

Devices decode what they are sent as the real chips would and keep what a
person would see: `screen()` gives the 4 rows of 20 characters. Both are
strict: a write the chip would not understand, or a display driven out of
spec (RS changing as E rises, instructions before initialisation, text on a
dark OLED), is recorded in `errors` and leaves the picture as the chip would.
"""
import os
import select
import threading
import time

from payterm_tools.sim import glyphs

ROW_OFFSETS = (0x00, 0x40, 0x14, 0x54)


class Hd44780Backpack:
    """PCF8574 port -> HD44780U in 4-bit mode (RS P0, RW P1, E P2, backlight P3, D4..D7 P4..P7)."""

    def __init__(self, rows=4, cols=20):
        self.nrows = rows
        self.cols = cols
        self.present = True
        self.port = 0xFF  # PCF8574 outputs are high after power-on
        self.reset()

    def reset(self):
        """Power-on reset: 8-bit interface, display off, DDRAM unknown (spaces here)."""
        self.eight = True
        self.half = None
        self.ddram = bytearray(b" " * 0x80)
        self.cgram = bytearray(64)
        self.ac = 0
        self.to_cgram = False
        self.increment = True
        self.shift = False
        self.display_on = False
        self.cursor = False
        self.blink = False
        self.lines2 = False
        self.init_nibbles = []  # 8-bit-mode transfers, in order
        self.nibbles = []  # the last four instruction nibbles latched, in any mode
        self.initialised = False
        self.commands = []
        self.errors = []
        self.preinit = []  # what happened before initialisation (harmless, for the curious)
        self.writes = 0

    # ------------------------------------------------------------ I2C device
    def write(self, data):
        self.writes += 1
        for v in data:
            self._port(v)
        return len(data)

    def read(self, n):
        return bytes([self.port]) * n  # quasi-bidirectional pins read back their latch

    @property
    def backlight(self):
        return bool(self.port & 0x08)

    # ------------------------------------------------------------ HD44780
    def _port(self, v):
        prev = self.port
        self.port = v
        # Before initialisation the controller's state is undefined anyway (the PCF8574 powers up
        # with every output high, E included); Figure 24 recovers from that, so only check after it.
        note = self.errors.append if self.initialised else self.preinit.append
        if v & 0x02:
            note("RW high: the LCD would drive the bus")
        if v & 0x04 and not prev & 0x04 and (v ^ prev) & 0x01:
            note("RS changed as E rose (tAS)")
        if prev & 0x04 and not v & 0x04:
            if (v ^ prev) & 0x01:
                note("RS changed as E fell (tH)")
            self._latch(prev & 0x01, prev >> 4)  # the data present while E was high

    def _latch(self, rs, nibble):
        if not rs:
            self.nibbles = (self.nibbles + [nibble])[-4:]
        if self.eight:
            if rs:
                (self.errors if self.initialised else self.preinit).append("data in 8-bit mode")
                return
            self.init_nibbles.append(nibble)
            self._instruction(nibble << 4)  # D3..D0 are not wired: read as 0
            return
        if self.half is None:
            self.half = (rs, nibble)
            return
        rs0, hi = self.half
        self.half = None
        if rs0 != rs:
            self.errors.append("RS differs between the two halves of a byte")
        b = hi << 4 | nibble
        if rs:
            self._data(b)
        else:
            self._instruction(b)

    def _instruction(self, b):
        self.commands.append(b)
        if b & 0xE0 == 0x20:  # function set: 001 DL N F - -
            eight = bool(b & 0x10)
            if self.eight and not eight:
                # Figure 24: three function sets with DL = 1, then DL = 0, whatever state the chip was in
                self.initialised = self.nibbles == [0x3, 0x3, 0x3, 0x2]
                if not self.initialised:
                    self.errors.append("4-bit mode without the 3 x 0x3 initialisation (Figure 24): %r" % self.nibbles)
            self.eight = eight
            self.half = None
            if not self.eight:
                self.lines2 = bool(b & 0x08)
            return
        if not self.initialised:
            self.errors.append("instruction 0x%02x before initialisation" % b)
            return
        if b & 0x80:  # set DDRAM address
            self.ac = b & 0x7F
            self.to_cgram = False
        elif b & 0x40:  # set CGRAM address
            self.ac = b & 0x3F
            self.to_cgram = True
        elif b & 0x10:  # cursor or display shift: not used by payterm
            pass
        elif b & 0x08:  # display on/off control
            self.display_on = bool(b & 0x04)
            self.cursor = bool(b & 0x02)
            self.blink = bool(b & 0x01)
        elif b & 0x04:  # entry mode set
            self.increment = bool(b & 0x02)
            self.shift = bool(b & 0x01)
        elif b & 0x02:  # return home
            self.ac = 0
            self.to_cgram = False
        elif b == 0x01:  # clear display
            for i in range(0x80):
                self.ddram[i] = 0x20
            self.ac = 0
            self.increment = True
            self.to_cgram = False

    def _data(self, b):
        if not self.initialised:
            self.errors.append("data before initialisation")
            return
        if self.to_cgram:
            self.cgram[self.ac] = b
            self.ac = (self.ac + (1 if self.increment else -1)) & 0x3F
            return
        self.ddram[self.ac] = b
        if self.lines2:  # two 40-character lines: 0x00..0x27 and 0x40..0x67
            if self.increment:
                self.ac = {0x27: 0x40, 0x67: 0x00}.get(self.ac, self.ac + 1)
            else:
                self.ac = {0x40: 0x27, 0x00: 0x67}.get(self.ac, self.ac - 1)
        else:
            self.ac = (self.ac + (1 if self.increment else -1)) % 80

    def screen(self):
        """What the LCD shows: 4 rows of 20 (blank while the display is off)."""
        if not (self.initialised and self.display_on):
            return [" " * self.cols] * self.nrows
        out = []
        for o in ROW_OFFSETS[: self.nrows]:
            out.append("".join(chr(c) if 0x20 <= c < 0x7E else "?" for c in self.ddram[o:o + self.cols]))
        return out


_SSD_ARGS = {0x81: 1, 0x8D: 1, 0x20: 1, 0x21: 2, 0x22: 2, 0xA8: 1, 0xD3: 1, 0xDA: 1, 0xD5: 1, 0xD9: 1,
             0xDB: 1, 0xA3: 2, 0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5}
_SSD_NOARG = {0xAE, 0xAF, 0xA0, 0xA1, 0xA4, 0xA5, 0xA6, 0xA7, 0xC0, 0xC8, 0x2E, 0x2F, 0xE3}


class Ssd1306:
    """SSD1306 128x64: I2C control bytes, the command set, GDDRAM, and the text it shows."""

    def __init__(self, width=128, height=64):
        self.width = width
        self.height = height
        self.present = True
        self.reset()

    def reset(self):
        self.ram = bytearray(self.width * self.height // 8)
        self.on = False
        self.pump = False
        self.seg_remap = False
        self.com_remap = False
        self.inverse = False
        self.entire_on = False
        self.mode = 2  # page addressing after reset
        self.col = (0, self.width - 1)
        self.page = (0, self.height // 8 - 1)
        self.c = 0
        self.p = 0
        self.commands = []
        self.errors = []
        self.writes = 0

    def write(self, data):
        self.writes += 1
        i = 0
        n = len(data)
        while i < n:
            ctrl = data[i]
            i += 1
            if ctrl & 0x3F:
                self.errors.append("control byte 0x%02x: bits 5..0 must be 0" % ctrl)
                return n  # the chip acknowledges every byte, understood or not
            co, dc = ctrl & 0x80, ctrl & 0x40
            end = i + 1 if co else n  # Co = 1: one byte, then another control byte
            body = data[i:end]
            i = end
            if dc:
                for b in body:
                    self._ram(b)
            elif not self._commands(body):
                return n
        return n

    def read(self, n):
        return bytes([0x43 if self.on else 0x03]) * n  # status: display off bit 6 (SH1106 style), id 3

    def _commands(self, body):
        i = 0
        while i < len(body):
            op = body[i]
            if op in _SSD_ARGS:
                k = _SSD_ARGS[op]
                args = tuple(body[i + 1:i + 1 + k])
                if len(args) != k:
                    self.errors.append("command 0x%02x cut off" % op)
                    return False
            elif op in _SSD_NOARG or 0x40 <= op <= 0x7F or 0xB0 <= op <= 0xB7 or op <= 0x1F:
                k, args = 0, ()
            else:
                self.errors.append("unknown command 0x%02x" % op)
                return False
            self.commands.append((op,) + args)
            self._apply(op, args)
            i += 1 + k
        return True

    def _apply(self, op, a):
        if op in (0xAE, 0xAF):
            self.on = op == 0xAF
        elif op == 0x8D:
            self.pump = bool(a[0] & 0x04)
        elif op == 0x20:
            self.mode = a[0] & 0x03
        elif op == 0x21:
            self.col = (a[0] & 0x7F, a[1] & 0x7F)
            self.c = self.col[0]
        elif op == 0x22:
            self.page = (a[0] & 0x07, a[1] & 0x07)
            self.p = self.page[0]
        elif op in (0xA0, 0xA1):
            self.seg_remap = op == 0xA1
        elif op in (0xC0, 0xC8):
            self.com_remap = op == 0xC8
        elif op in (0xA6, 0xA7):
            self.inverse = op == 0xA7
        elif op in (0xA4, 0xA5):
            self.entire_on = op == 0xA5
        elif 0xB0 <= op <= 0xB7:
            self.p = op & 0x07
        elif op <= 0x0F:
            self.c = (self.c & 0xF0) | op
        elif op <= 0x1F:
            self.c = (self.c & 0x0F) | (op & 0x0F) << 4

    def _ram(self, b):
        self.ram[self.p * self.width + self.c] = b
        if self.mode == 0:  # horizontal: column, then page, within the window
            self.c += 1
            if self.c > self.col[1]:
                self.c = self.col[0]
                self.p = self.p + 1 if self.p < self.page[1] else self.page[0]
        elif self.mode == 1:  # vertical
            self.p += 1
            if self.p > self.page[1]:
                self.p = self.page[0]
                self.c = self.c + 1 if self.c < self.col[1] else self.col[0]
        else:  # page addressing: the column wraps within the page
            self.c = (self.c + 1) % self.width

    def lit(self, x, y):
        """Is the pixel at (x, y) of the glass lit, as a person facing the module sees it?"""
        if not (self.on and self.pump):
            return False  # no charge pump: the panel stays dark
        if self.entire_on:
            return True
        # the usual module is mounted so that A1 (segment remap) and C8 (COM remap) give an upright picture
        cx = x if self.seg_remap else self.width - 1 - x
        cy = y if self.com_remap else self.height - 1 - y
        v = self.ram[(cy // 8) * self.width + cx] >> (cy % 8) & 1
        return bool(v) != self.inverse

    def screen(self, rows=4, cols=20, x0=4, y0=4, cell=6, pitch=16):
        """The glass read back as text: 5x8 glyphs in 6x16 cells from (4, 4) (docs/drivers.md)."""
        out = []
        for r in range(rows):
            line = ""
            for k in range(cols):
                gl = bytes(sum(self.lit(x0 + cell * k + j, y0 + pitch * r + b) << b for b in range(8))
                           for j in range(5))
                ch = glyphs.read_glyph(gl)
                line += ch if ch is not None else "?"
            out.append(line)
        return out

    def ascii_art(self):
        return "\n".join("".join("#" if self.lit(x, y) else "." for x in range(self.width))
                         for y in range(self.height))


class I2CBusSim:
    """The bus: frames from the firmware's PtyI2C, answered by the device at each address."""

    def __init__(self, fd, devices=None):
        self.fd = fd
        self.devices = dict(devices or {})
        self.log = []  # ("W"|"R", addr, n, answer)
        self.errors = []
        self.responding = True
        self.on_write = None  # called with the address after each acknowledged write (bus lock held)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._buf = b""
        self.changed = threading.Condition(self._lock)

    def start(self):
        self._thread = threading.Thread(target=self._run, name="i2c-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(2)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.fd], [], [], 0.05)
                if not r:
                    continue
                data = os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
                continue
            if not data:
                continue
            with self._lock:
                self._buf += data
                out = self._frames()
                self.changed.notify_all()
            if out:
                try:
                    os.write(self.fd, out)
                except OSError:
                    pass

    def _frames(self):
        out = b""
        while self._buf:
            op = self._buf[:1]
            if op not in (b"W", b"R"):
                self.errors.append("bad frame byte 0x%02x" % self._buf[0])
                self._buf = self._buf[1:]
                out += b"E"
                continue
            if len(self._buf) < 4:
                break
            addr, n = self._buf[1], self._buf[2] << 8 | self._buf[3]
            if op == b"W":
                if len(self._buf) < 4 + n:
                    break
                data = self._buf[4:4 + n]
                self._buf = self._buf[4 + n:]
                out += self._write(addr, data)
            else:
                self._buf = self._buf[4:]
                out += self._read(addr, n)
        return out if self.responding else b""

    def _write(self, addr, data):
        dev = self.devices.get(addr)
        if not self.responding or dev is None or not dev.present:
            self.log.append(("W", addr, len(data), "N"))
            return b"N"
        n = dev.write(data)
        self.log.append(("W", addr, len(data), "A"))
        if self.on_write is not None:
            self.on_write(addr)
        return b"A" + n.to_bytes(2, "big")

    def _read(self, addr, n):
        dev = self.devices.get(addr)
        if not self.responding or dev is None or not dev.present:
            self.log.append(("R", addr, n, "N"))
            return b"N"
        data = dev.read(n)
        self.log.append(("R", addr, n, "A"))
        return b"A" + len(data).to_bytes(2, "big") + data

    def set_present(self, addr, on):
        """Unplug (False) or plug back (True) the device at addr: it stops acknowledging."""
        with self._lock:
            self.devices[addr].present = on

    def wait(self, pred, timeout=5.0):
        """Wait until pred() holds (checked after each frame); returns its last value."""
        end = time.monotonic() + timeout
        with self._lock:
            while True:
                v = pred()
                if v or time.monotonic() >= end:
                    return v
                self.changed.wait(min(0.1, max(0.0, end - time.monotonic())))

"""Host stand-ins for the buses the emulator has no hardware for: I2C and GPIO, each on a pty.

The simulators at the other end (tools/payterm_tools/sim/i2cbus.py and
sim/keypad.py) play the devices; docs/drivers.md specifies both framings.

I2C (`PtyI2C`): one frame per transaction, answered before the next:

    write  'W' addr len_hi len_lo data...  ->  'A' n_hi n_lo  (n data bytes acknowledged)
                                               'N'            (address not acknowledged)
    read   'R' addr len_hi len_lo          ->  'A' n_hi n_lo data...  |  'N'
    a malformed frame                      ->  'E'

It offers the machine.I2C calls the drivers use (writeto, writevto,
readfrom_into, readfrom, scan) and fails the same way: OSError(ENODEV)
for an address nobody acknowledges, OSError(ETIMEDOUT) when nothing
answers, OSError(EIO) for a rejected frame.

GPIO (`PtyGpio`): the keypad's switches and the panel's outputs.

    simulator -> firmware   'D' row col   switch closed      'U' row col   switch opened
                            'S' 0 0       end of the switch state asked for
    firmware -> simulator   'S' 0 0       which switches are closed? (at boot: opening a pty drops its input)
                            'O' id level  output pin level   'T' id f_hi f_lo d_hi d_lo  PWM freq and duty_u16

The switch matrix is wired here as on the board: a column input reads
low when a closed switch joins it to a row driven low, and its IRQ runs at
once on a falling edge, with the heap locked when registered hard=True,
as on the ESP32. `run()` is the task that reads the simulator's switch
changes; the panel runs it (LocalPanel(tasks=(gpio.run,))).
"""
import asyncio
import select

import micropython
import termios

_ENODEV = 19
_EIO = 5
_ETIMEDOUT = 110


def open_raw(path):
    """A pty slave opened raw, reads returning what is there (VMIN = VTIME = 0)."""
    f = open(path, "r+b", buffering=0)
    fd = f.fileno()
    termios.setraw(fd)
    attr = termios.tcgetattr(fd)
    attr[6][6] = 0  # VMIN
    attr[6][5] = 0  # VTIME
    termios.tcsetattr(fd, termios.TCSANOW, attr)
    return f


class PtyI2C:
    def __init__(self, path, timeout_ms=200):
        self.f = open_raw(path)
        self.timeout_ms = timeout_ms
        self._poll = select.poll()
        self._poll.register(self.f, select.POLLIN)
        self._hdr = bytearray(4)
        self.transactions = 0

    def _send(self, op, addr, n, data=None):
        while self._poll.poll(0):  # an answer that came after its timeout
            if not self.f.read(64):
                break
        h = self._hdr
        h[0] = op
        h[1] = addr & 0x7F
        h[2] = n >> 8
        h[3] = n & 0xFF
        self.f.write(h)
        if data:
            self.f.write(data)
        self.transactions += 1

    def _read(self, n):
        out = b""
        while len(out) < n:
            if not self._poll.poll(self.timeout_ms):
                raise OSError(_ETIMEDOUT)
            chunk = self.f.read(n - len(out))
            if chunk:
                out += chunk
        return out

    def _answer(self):
        a = self._read(1)
        if a == b"N":
            raise OSError(_ENODEV)
        if a != b"A":
            raise OSError(_EIO)
        c = self._read(2)
        return c[0] << 8 | c[1]

    def writeto(self, addr, buf, stop=True):
        """Number of data bytes acknowledged, as machine.I2C.writeto."""
        self._send(0x57, addr, len(buf), buf)  # 'W'
        return self._answer()

    def writevto(self, addr, bufs, stop=True):
        n = 0
        for b in bufs:
            n += len(b)
        self._send(0x57, addr, n)
        for b in bufs:
            self.f.write(b)
        return self._answer()

    def readfrom_into(self, addr, buf, stop=True):
        self._send(0x52, addr, len(buf))  # 'R'
        n = self._answer()
        data = self._read(n)
        buf[:n] = data
        if n < len(buf):
            raise OSError(_EIO)

    def readfrom(self, addr, n, stop=True):
        b = bytearray(n)
        self.readfrom_into(addr, b)
        return bytes(b)

    def scan(self):
        found = []
        for a in range(0x08, 0x78):
            try:
                self.writeto(a, b"")
                found.append(a)
            except OSError:
                pass
        return found


class _Pin:
    """A machine.Pin look-alike on the GPIO pty."""

    IN = 1
    OUT = 3
    PULL_UP = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, gpio, ident, kind):
        self.gpio = gpio
        self.id = ident
        self.kind = kind  # "row", "col", "out"
        self.mode = self.OUT if kind != "col" else self.IN
        self.out = 1
        self.handler = None
        self.trigger = 0
        self.hard = False

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self.kind == "col":
                return self.gpio._level(self.id)
            return self.out
        v = 1 if v else 0
        if v == self.out and self.kind != "out":
            return
        self.out = v
        if self.kind == "row":
            self.gpio._edges()
        elif self.kind == "out":
            self.gpio._tell(b"O", self.id, v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, hard=False):
        self.handler = handler
        self.trigger = trigger
        self.hard = hard


class _PWM:
    def __init__(self, gpio, ident):
        self.gpio = gpio
        self.id = ident
        self.f = 0
        self.d = 0

    def freq(self, f=None):
        if f is None:
            return self.f
        self.f = f
        self._tell()

    def duty_u16(self, d=None):
        if d is None:
            return self.d
        self.d = d
        self._tell()

    def _tell(self):
        self.gpio.f.write(bytes((0x54, self.id, self.f >> 8 & 0xFF, self.f & 0xFF, self.d >> 8, self.d & 0xFF)))


class PtyGpio:
    def __init__(self, path, sync_ms=300):
        self.f = open_raw(path)
        self.rows = []
        self.cols = []
        self.closed = set()  # (row, col) switches the simulator holds closed
        self._levels = []
        self._disabled = 0
        self._pending = []
        self._buf = b""
        self.irqs = 0
        self.synced = self._sync(sync_ms)

    def _sync(self, ms):
        """Ask which switches are held now (a key stuck since power-on is closed at boot)."""
        self.f.write(b"S\x00\x00")
        p = select.poll()
        p.register(self.f, select.POLLIN)
        while p.poll(ms):
            data = self.f.read(64)
            if not data:
                continue
            if self._apply(data):
                return True
        return False  # no simulator answered: nothing held

    def _apply(self, data):
        """Switch messages; True once the end of a state answer ('S') was seen."""
        buf = self._buf + data
        done = False
        while len(buf) >= 3:
            op, r, c = buf[0], buf[1], buf[2]
            buf = buf[3:]
            if op == 0x44:  # 'D'
                self.closed.add((r, c))
            elif op == 0x55:  # 'U'
                self.closed.discard((r, c))
            elif op == 0x53:  # 'S'
                done = True
            else:
                buf = b""  # out of step: drop, the next message starts clean
        self._buf = buf
        return done

    def matrix(self, nrows, ncols):
        """(rows, cols) pins of the keypad matrix: rows are outputs, columns inputs."""
        self.rows = [_Pin(self, r, "row") for r in range(nrows)]
        self.cols = [_Pin(self, c, "col") for c in range(ncols)]
        self._levels = [1] * ncols
        return self.rows, self.cols

    def pin(self, ident):
        """An output pin (status LED) whose level the simulator sees."""
        return _Pin(self, ident, "out")

    def pwm(self, ident):
        """A PWM output (buzzer) whose frequency and duty the simulator sees."""
        return _PWM(self, ident)

    def _tell(self, op, ident, level):
        self.f.write(op + bytes((ident, level)))

    # ------------------------------------------------------------ matrix wiring
    def _level(self, c):
        """Column c: low when a path of closed switches joins it to a row driven low."""
        nrows = len(self.rows)
        seen_rows = set()
        seen_cols = {c}
        todo = [("c", c)]
        while todo:
            kind, i = todo.pop()
            for (r, cc) in self.closed:
                if r >= nrows:
                    continue
                if kind == "c" and cc == i and r not in seen_rows:
                    if self.rows[r].out == 0:
                        return 0
                    seen_rows.add(r)
                    todo.append(("r", r))
                elif kind == "r" and r == i and cc not in seen_cols:
                    seen_cols.add(cc)
                    todo.append(("c", cc))
        return 1

    def _edges(self):
        for c, pin in enumerate(self.cols):
            lv = self._level(c)
            if self._levels[c] == 1 and lv == 0 and pin.handler is not None and pin.trigger & _Pin.IRQ_FALLING:
                if self._disabled:
                    self._pending.append(pin)
                else:
                    self._fire(pin)
            self._levels[c] = lv

    def _fire(self, pin):
        self.irqs += 1
        if pin.hard:
            micropython.heap_lock()
            try:
                pin.handler(pin)
            finally:
                micropython.heap_unlock()
        else:
            pin.handler(pin)

    def disable_irq(self):
        self._disabled += 1
        return self._disabled - 1

    def enable_irq(self, state):
        self._disabled = state
        if not state:
            while self._pending:
                self._fire(self._pending.pop(0))

    async def run(self):
        """Apply the simulator's switch changes as they come."""
        s = asyncio.StreamReader(self.f)
        while True:
            data = await s.read(64)
            if not data:
                await asyncio.sleep_ms(10)
                continue
            self._apply(data)
            self._edges()


def local_panel(i2c_path, gpio_path, ticks, display="hd44780", i2c_addr=None):
    """A LocalPanel on the emulator's I2C and GPIO ptys: LCD or OLED, 4x4 keypad, buzzer, LED."""
    from payterm.drivers.buzzer import Buzzer
    from payterm.drivers.keymatrix import KeyMatrix
    from payterm.drivers.led import StatusLed
    from payterm.ui.localpanel import LocalPanel

    i2c = PtyI2C(i2c_path)
    if display == "ssd1306":
        from payterm.drivers.ssd1306 import SSD1306

        disp = SSD1306(i2c, i2c_addr or 0x3C)
    else:
        from payterm.drivers.hd44780 import HD44780

        disp = HD44780(i2c, i2c_addr or 0x27)
    gpio = PtyGpio(gpio_path)
    rows, cols = gpio.matrix(4, 4)
    # Not asyncio.ThreadSafeFlag here: in the unix port (1.28) a poller holding that non-fd object
    # corrupts it when registering more fds moves its pollfd array (extmod/modselect.c,
    # poll_set_add_fd rebases every entry's pollfd pointer, NULL ones too), and the VM segfaults
    # at the next ipoll. The emulated IRQ runs inside the GPIO task on the loop's own thread, where
    # an Event may be set; the ESP32 port's poller has no pollfd array and keeps ThreadSafeFlag.
    km = KeyMatrix(rows, cols, ticks, disable_irq=gpio.disable_irq, enable_irq=gpio.enable_irq,
                   flag=asyncio.Event())
    return LocalPanel(disp, km, Buzzer(gpio.pwm(0), ticks), StatusLed(gpio.pin(1), ticks), tasks=(gpio.run,),
                      ticks=ticks, retry_ms=500)

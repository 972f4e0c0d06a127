"""The terminal's own display and keypad as the emulator sees them, with the panel channel's interface.

For a board whose display is on I2C and whose keypad is a GPIO matrix, the
emulator puts an I2CBusSim (HD44780 backpack at 0x27, or SSD1306 at 0x3C)
on one pty and a KeypadSim on another, and offers the same calls as
payterm_tools.emulator.PanelChannel: `press(keys)`, `display()`,
`screen()`, `wait_screen(pattern)`, `expect(pattern)`, `skip()`, `text()`,
`close()`, plus the device faults a test injects (`unplug_display()`,
`stick(key)`). Every change of a row is logged as the panel UART would have
carried it (`D<row> <text>`), so `expect` sees screens that did not last.
"""
import re
import time

from payterm_tools.sim.i2cbus import Hd44780Backpack, I2CBusSim, Ssd1306
from payterm_tools.sim.keypad import KeypadSim


class LocalPanelSim:
    def __init__(self, i2c_fd, gpio_fd, display="hd44780", addr=None):
        if display == "ssd1306":
            self.addr = addr or 0x3C
            self.device = Ssd1306()
        else:
            self.addr = addr or 0x27
            self.device = Hd44780Backpack()
        self.bus = I2CBusSim(i2c_fd, {self.addr: self.device})
        self.bus.on_write = self._written
        self.keypad = KeypadSim(gpio_fd)
        self.rows = [""] * 4
        self.buf = ""
        self.pos = 0

    def _written(self, addr):
        rows = [r.rstrip() for r in self.device.screen()]
        for i, r in enumerate(rows):
            if r != self.rows[i]:
                self.rows[i] = r
                self.buf += "D%d %s\n" % (i, r)

    def start(self):
        self.bus.start()
        self.keypad.start()
        return self

    def close(self):
        self.bus.stop()
        self.keypad.stop()

    stop = close

    # ------------------------------------------------------------ PanelChannel calls
    def press(self, keys, gap=0.08, hold=0.15):
        """A cashier's presses: each key held `hold` s (people hold 100-200 ms), `gap` s apart.

        The firmware blocks its loop while it writes the display over I2C (as machine.I2C does),
        and on a loaded laptop the emulated bus is much slower than the real one: a key held
        only as long as the 60 ms a test may press the bare keypad can come and go unseen.
        """
        self.keypad.press(keys, hold=hold, gap=gap)

    def display(self):
        with self.bus._lock:
            return list(self.rows)

    def screen(self):
        return " | ".join(self.display())

    def wait_screen(self, pattern, timeout=10.0):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            s = self.screen()
            if rx.search(s):
                return s
            if time.monotonic() >= end:
                raise AssertionError("panel: screen never matched %r within %.1fs; screen now: %s"
                                     % (pattern, timeout, s))
            self.bus.wait(lambda: False, min(0.2, max(0.01, end - time.monotonic())))

    def expect(self, pattern, timeout=10.0):
        """Wait for regex `pattern` in the row changes after the previous match (as PanelChannel.expect)."""
        rx = re.compile(pattern, re.M)
        end = time.monotonic() + timeout
        while True:
            with self.bus._lock:
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                seen = self.buf[max(self.pos - 200, 0):]
            if time.monotonic() >= end:
                raise AssertionError("panel: %r not seen within %.1fs; since last match:\n%s"
                                     % (pattern, timeout, seen[-3000:]))
            self.bus.wait(lambda: False, min(0.2, max(0.01, end - time.monotonic())))

    def text(self):
        return self.buf

    def skip(self):
        with self.bus._lock:
            self.pos = len(self.buf)

    # ------------------------------------------------------------ what a person would notice
    @property
    def beeps(self):
        return self.keypad.beeps

    def led(self):
        return self.keypad.outputs.get(1)

    def unplug_display(self, unplugged=True):
        self.bus.set_present(self.addr, not unplugged)

    def stick(self, key):
        self.keypad.stick(key)

    def release(self, key):
        self.keypad.release(key)

    def errors(self):
        return self.device.errors + self.bus.errors + self.keypad.errors

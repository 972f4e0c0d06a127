"""The terminal's own display, keypad, buzzer and LED behind the interface of ui.panel.Panel.

A board whose display is on I2C (HD44780 backpack or SSD1306) and whose
keypad is a GPIO matrix composes its drivers here, so the cashier flows,
the technician menu and the app use it exactly as the panel UART:
show(rows), status(text), beep(), key(timeout_ms), run(), clear_keys(),
push(b), dropped, rows.

Device faults never reach the cashier flow as exceptions: a display that
stops acknowledging (HW-06) or a stuck key (HW-05) goes to on_fault(fault)
once per episode, the screen contents are kept in `rows` (the console and
`info()` still show them) and the next show() tries the display again.
"""
import asyncio
import time

from micropython import const

from payterm.errors import Fault
from payterm.ui.keys import KeyQueue

_ROWS = const(4)  # panel protocol: rows 0..3
_COLS = const(20)  # panel protocol: at most 20 characters a row


class LocalPanel:
    def __init__(self, display, keypad=None, buzzer=None, led=None, rows=_ROWS, cols=_COLS,
                 on_fault=None, tasks=(), ticks=None, retry_ms=1000):
        """display: .show(rows); keypad: KeyMatrix-like (.run(), on_key, on_fault);
        buzzer: .beep() (+ .run()); led: .set(name) (+ .run());
        tasks: extra coroutine functions to run with the panel (host bus pumps);
        ticks: with it, a failed display is tried again at most every retry_ms
        (a bus that times out must not stall every screen change), and run()
        redraws it within retry_ms of coming back."""
        self.display = display
        self.keypad = keypad
        self.buzzer = buzzer
        self.led = led
        self.nrows = rows
        self.cols = cols
        self.rows = [""] * rows
        self.on_fault = on_fault
        self.last_fault = None
        self.display_ok = True
        self.stuck_keys = 0
        self.ticks = ticks
        self.retry_ms = retry_ms
        self._failed_at = 0
        self._keys = KeyQueue()
        self._ev = asyncio.Event()
        self._tasks = list(tasks)
        if keypad is not None:
            keypad.on_key = self.push
            keypad.on_fault = self._keypad_fault

    # ------------------------------------------------------------ faults
    def _report(self, f):
        self.last_fault = f
        if self.led is not None:
            self.led.set("fault")  # double blink: a device fault was reported (until the next boot)
        if self.on_fault is not None:
            self.on_fault(f)

    def _keypad_fault(self, f):
        self.stuck_keys += 1
        self._report(f)

    # ------------------------------------------------------------ display
    def _refresh(self):
        if not self.display_ok and self.ticks is not None:
            if time.ticks_diff(self.ticks(), self._failed_at) < self.retry_ms:
                return  # `rows` keeps the screen; a later show() draws it
        try:
            self.display.show(self.rows)
        except Fault as f:
            if self.ticks is not None:
                self._failed_at = self.ticks()
            if self.display_ok:  # once per episode, not once per screen
                self.display_ok = False
                self._report(f)
            return
        self.display_ok = True

    def show(self, rows):
        """Replace the whole screen; rows beyond 4 are dropped, long ones cut to 20."""
        rows = list(rows)[: self.nrows]
        for i in range(self.nrows):
            self.rows[i] = str(rows[i])[: self.cols] if i < len(rows) else ""
        self._refresh()

    def status(self, text):
        """Row 2 says what the terminal is waiting for (connecting, retry 2/4, waiting for host)."""
        self.rows[2] = str(text)[: self.cols]
        self._refresh()

    def beep(self):
        if self.buzzer is not None:
            self.buzzer.beep()

    # ------------------------------------------------------------ keypad
    def push(self, b):
        """One key byte from the keypad driver; anything that is not a key is refused."""
        if self._keys.push(b):
            self._ev.set()

    @property
    def dropped(self):
        """Key presses lost: queue full, plus keys reported stuck (the keypad self-test fails on either)."""
        return self._keys.dropped + self.stuck_keys

    def clear_keys(self):
        self._keys.clear()
        self._ev.clear()

    async def key(self, timeout_ms=None):
        """Next key as a 1-char string, or None after timeout_ms."""
        while not len(self._keys):
            self._ev.clear()
            if timeout_ms is None:
                await self._ev.wait()
            else:
                try:
                    await asyncio.wait_for_ms(self._ev.wait(), timeout_ms)
                except asyncio.TimeoutError:
                    return None
        return self._keys.pop()

    # ------------------------------------------------------------ tasks
    async def _keep_display(self):
        """While the display is failed, try it again every retry_ms, so it shows `rows` once back."""
        while True:
            await asyncio.sleep_ms(self.retry_ms)
            if not self.display_ok:
                self._refresh()

    async def run(self):
        """The panel's task: the keypad scan, with the buzzer, LED and bus pumps beside it."""
        if self.led is not None and self.last_fault is None:
            self.led.set("ready")
        side = [asyncio.create_task(fn()) for fn in self._tasks]
        if self.ticks is not None:
            side.append(asyncio.create_task(self._keep_display()))
        for dev in (self.buzzer, self.led):
            if dev is not None and hasattr(dev, "run"):
                side.append(asyncio.create_task(dev.run()))
        try:
            if self.keypad is not None:
                await self.keypad.run()
            else:
                while True:
                    await asyncio.sleep_ms(60000)
        finally:
            for t in side:
                t.cancel()

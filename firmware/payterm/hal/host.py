"""Host HAL for the emulator: ptys for UARTs, a directory for flash, sockets for the link.

Configuration comes from environment variables set by `payterm emulate` or the
test harness (see boards/EMULATOR/README.md), so a test can wire each UART to
its own simulator and keep flash in a temporary directory:

- the printer: the ESC/POS driver on the `printer` pty (PAYTERM_UART_PRINTER),
  else HostPrinter, a file (PAYTERM_PRINTER) for running main.py by hand;
- the panel: the panel protocol on the `panel` pty (PAYTERM_UART_PANEL), or the
  terminal's own display and keypad drivers on an I2C and a GPIO pty
  (PAYTERM_I2C, PAYTERM_GPIO, PAYTERM_DISPLAY hd44780|ssd1306: `panel()`).
"""
import asyncio
import os
import time

import termios

from payterm.hal.base import BaseHAL

_REASON_FILE = "/.reset_reason"


class HostPrinter:
    """Receipt printer writing to a file; `<file>.status` injects paper-out or jam."""

    def __init__(self, path):
        self.path = path

    def status(self):
        """None when ready, else the failure code the printer reports."""
        if not self.path:
            return None
        try:
            with open(self.path + ".status") as f:
                s = f.read().strip()
        except OSError:
            return None
        return {"paper_out": "HW-03", "jam": "HW-04"}.get(s)

    async def poll(self):
        return self.status()

    async def print_lines(self, lines):
        from payterm.errors import Fault

        code = self.status()
        if code:
            raise Fault(code, "printer reports " + code, "print")
        if self.path:
            with open(self.path, "a") as f:
                for line in lines:
                    f.write(line + "\n")
                f.write("-" * 24 + "\n")
        await asyncio.sleep_ms(0)


class FlashCut:
    """Power cut at the k-th flash write operation (payterm.flash hook), for reliability tests.

    PAYTERM_CUT_AT=k[:before|after|partial] counts the operations that change
    flash (append, write, rename, remove, sync; payterm.flash.WRITES) from boot
    and stops the VM at number k: before it runs, after it ran, or (partial)
    after writing only the first half of its bytes (a rename/remove/sync cannot
    be partial: it is cut before). The VM is killed (SIGKILL), so nothing after
    the cut runs, as on a real power loss. PAYTERM_FLASH_LOG=file appends one
    line per operation ("k op path", path "-" for a sync) so a test can see them.
    """

    def __init__(self, k=0, mode="before", log=None):
        self.k = k
        self.mode = mode
        self.log = log
        self.n = 0

    def before(self, op, path, nbytes):
        from payterm import flash

        if op not in flash.WRITES:
            return nbytes
        self.n += 1
        if self.log:
            with open(self.log, "a") as f:
                f.write("%d %s %s\n" % (self.n, op, path or "-"))
        if self.n == self.k:
            if self.mode == "before" or (self.mode == "partial" and not nbytes):
                self.cut()
            if self.mode == "partial":
                return nbytes // 2
        return nbytes

    def after(self, op, path):
        from payterm import flash

        if op in flash.WRITES and self.n == self.k and self.mode in ("after", "partial"):
            self.cut()

    def cut(self):
        # The unix port has no os._exit or kill: the shell kills its parent, this VM.
        os.system("kill -9 $PPID")
        while True:  # never return into the firmware, even if the signal is late
            time.sleep(1)


def flash_hook_from_env():
    """Install the FlashCut hook when PAYTERM_CUT_AT or PAYTERM_FLASH_LOG asks for it; returns it."""
    at = os.getenv("PAYTERM_CUT_AT")
    log = os.getenv("PAYTERM_FLASH_LOG")
    if not at and not log:
        return None
    k, mode = 0, "before"
    if at:
        k, _, m = at.partition(":")
        k = int(k)
        mode = m or "before"
        if mode not in ("before", "after", "partial"):
            raise ValueError("PAYTERM_CUT_AT mode %r" % mode)
    from payterm import flash

    hook = FlashCut(k, mode, log)
    flash.set_hook(hook)
    return hook


class HostHAL(BaseHAL):
    name = "host"

    def __init__(self, board):
        self.board = board
        self.storage = os.getenv("PAYTERM_STATE") or "state"
        _mkdirs(self.storage)
        # Emulator only: power cuts at a chosen flash operation for the reliability tests.
        self.flash_cut = flash_hook_from_env()
        self.printer = self._printer()
        self._panel = None
        self._reason = self._read_reset_reason()

    def _printer(self):
        if os.getenv("PAYTERM_UART_PRINTER"):
            from payterm.drivers.escpos import EscPosPrinter

            # A real printer answers DLE EOT within milliseconds; the simulator is a thread on a
            # loaded laptop, so it gets a second before an answer counts as missing (HW-09).
            return EscPosPrinter(self.stream("printer"), timeout_ms=1000)
        return HostPrinter(os.getenv("PAYTERM_PRINTER") or (self.storage + "/printer.out"))

    def panel(self, on_fault=None):
        """The local panel (display + keypad drivers) on the I2C and GPIO ptys, when the emulator wires them."""
        i2c, gpio = os.getenv("PAYTERM_I2C"), os.getenv("PAYTERM_GPIO")
        if not (i2c and gpio):
            return None
        if self._panel is None:
            from payterm.hal.host_buses import local_panel

            self._panel = local_panel(i2c, gpio, self.ticks, display=os.getenv("PAYTERM_DISPLAY") or "hd44780")
        self._panel.on_fault = on_fault
        return self._panel

    # ---------------------------------------------------------------- time
    def ticks(self):
        return time.ticks_ms()

    def clock(self):
        return int(time.time())  # whole seconds, as the device's RTC gives

    def clock_set(self):
        return time.time() > 1600000000

    # ---------------------------------------------------------------- UARTs
    def stream(self, name):
        """asyncio stream on the pty named PAYTERM_UART_<NAME>, or None if not wired."""
        path = os.getenv("PAYTERM_UART_" + name.upper())
        if not path:
            return None
        f = open(path, "r+b", buffering=0)
        # Raw, non-blocking: VMIN=0/VTIME=0 so a read returns what is there.
        fd = f.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        cc = attr[6]
        cc[6] = 0  # VMIN
        cc[5] = 0  # VTIME
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        return asyncio.StreamReader(f)

    # ---------------------------------------------------------------- network
    # ---------------------------------------------------------------- system
    def _read_reset_reason(self):
        try:
            with open(self.storage + _REASON_FILE) as f:
                r = f.read().strip()
            os.remove(self.storage + _REASON_FILE)
            return r or "power_on"
        except OSError:
            return "power_on"

    def reset_cause(self):
        """Why we booted: the emulator has no reset register, so a clean reboot leaves a note."""
        return self._reason

    def reboot(self, reason="soft"):
        with open(self.storage + _REASON_FILE, "w") as f:
            f.write(reason)
        raise SystemExit(3)

    def wdt_feed(self):
        pass



def _mkdirs(path):
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if (not cur or cur.endswith("/")) else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # already there

"""Host HAL for the emulator: ptys for UARTs, a directory for flash, sockets for the link.

Configuration comes from environment variables set by `payterm emulate` or the
test harness (see boards/EMULATOR/README.md), so a test can wire each UART to
its own simulator and keep flash in a temporary directory.
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


class HostHAL(BaseHAL):
    name = "host"

    def __init__(self, board):
        self.board = board
        self.storage = os.getenv("PAYTERM_STATE") or "state"
        _mkdirs(self.storage)
        self.printer = HostPrinter(os.getenv("PAYTERM_PRINTER") or (self.storage + "/printer.out"))
        self._reason = self._read_reset_reason()

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

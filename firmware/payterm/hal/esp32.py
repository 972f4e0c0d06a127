"""ESP32 HAL: machine.UART, Pin, WDT, the flash filesystem and the WLAN link.

The board map (boards/<NAME>/board.json, deployed as /board.json) names the
UART ids, baud rates and pins, so a new terminal model is a new board folder,
not new code. UART reads go through asyncio streams: the UART's own ring
buffer (sized by `rxbuf`) absorbs bytes between polls, so no Python runs in
an interrupt.
"""
import asyncio
import time

import machine

from payterm.hal.base import BaseHAL

# machine.reset_cause() values -> names the fault statistics use
_CAUSES = {
    getattr(machine, "PWRON_RESET", 1): "power_on",
    getattr(machine, "HARD_RESET", 2): "hard_reset",
    getattr(machine, "WDT_RESET", 3): "watchdog",
    getattr(machine, "DEEPSLEEP_RESET", 4): "deepsleep",
    getattr(machine, "SOFT_RESET", 5): "soft",
}


class EscPosPrinter:
    """Thermal printer on a UART speaking ESC/POS; paper sensor on a pin."""

    _STATUS = b"\x10\x04\x04"  # DLE EOT 4: paper roll sensor status

    def __init__(self, uart, paper_pin=None):
        self.uart = uart
        self.paper = machine.Pin(paper_pin, machine.Pin.IN) if paper_pin is not None else None

    def status(self):
        if self.paper is not None and self.paper.value() == 0:
            return "HW-03"
        return None

    async def print_lines(self, lines):
        from payterm.errors import Fault

        code = self.status()
        if code:
            raise Fault(code, "paper sensor", "print")
        w = asyncio.StreamWriter(self.uart, {})
        w.write(b"\x1b@")  # ESC @ initialise
        for line in lines:
            w.write(line.encode() + b"\n")
            await w.drain()
        w.write(b"\n\n\x1dV\x01")  # GS V 1: partial cut
        await w.drain()


class Esp32HAL(BaseHAL):
    name = "esp32"

    def __init__(self, board):
        self.board = board
        self.storage = board.get("storage", {}).get("root", "")
        self._uarts = {}
        self._wdt = None
        ms = board.get("watchdog_ms")
        if ms:
            self._wdt = machine.WDT(timeout=ms)
        pins = board.get("pins", {})
        pu = self._uart("printer")
        self.printer = EscPosPrinter(pu, pins.get("printer_paper")) if pu else None
        self._wlan = None

    def ticks(self):
        return time.ticks_ms()

    def clock(self):
        # MicroPython's epoch on ESP32 is 2000-01-01; the journal and expiry checks use Unix time.
        return int(time.time()) + 946684800

    def clock_set(self):
        return time.localtime()[0] >= 2024

    def _uart(self, name):
        u = self.board.get("uarts", {}).get(name)
        if not u or u.get("soft"):
            return None
        if name not in self._uarts:
            self._uarts[name] = machine.UART(u["id"], baudrate=u["baud"], tx=u["tx"], rx=u["rx"],
                                             rxbuf=u.get("rxbuf", 256), timeout=0)
        return self._uarts[name]

    def stream(self, name):
        u = self._uart(name)
        return asyncio.StreamReader(u) if u is not None else None

    def config_overrides(self):
        return {}

    def link_up(self):
        import network

        if self._wlan is None:
            self._wlan = network.WLAN(network.STA_IF)
        return self._wlan.isconnected()

    def reset_cause(self):
        return _CAUSES.get(machine.reset_cause(), "unknown")

    def reboot(self, reason="soft"):
        machine.reset()

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

"""The ESP32 HAL against a recorded `machine`: the board map decides UARTs, pins and watchdog."""
import sys

sys.path.insert(0, sys.path[0] + "/fakes" if sys.path[0] else "fakes")

import machine  # noqa: E402  (the fake from host_tests/unit/fakes)
from mpt import eq  # noqa: E402

from payterm import hal  # noqa: E402


def _board():
    return hal.read_board(_repo() + "/boards/PAYTERM_S3/board.json")


def _repo():
    for p in sys.path:
        if p.endswith("/firmware"):
            return p[: -len("/firmware")]
    raise AssertionError("firmware not on MICROPYPATH")


def test_board_map_selects_esp32_hal_and_opens_its_uarts():
    b = _board()
    h = hal.load(b)
    eq(type(h).__name__, "Esp32HAL")
    s = h.stream("nfc")
    assert s is not None
    u = [x for x in machine.uarts if x.id == b["uarts"]["nfc"]["id"]][0]
    eq(u.kw["baudrate"], 115200, "PN532 HSU baud rate")
    eq(u.kw["rxbuf"], 512)
    # software UARTs (panel MCU) are not machine.UARTs
    eq(h.stream("panel"), None)


def test_watchdog_fed_and_reset_cause_named():
    machine.reset_cause_value = machine.WDT_RESET
    h = hal.load(_board())
    eq(h.reset_cause(), "watchdog")
    h.wdt_feed()
    h.wdt_feed()
    eq(machine.wdts[-1].feeds, 2)
    eq(machine.wdts[-1].timeout, 8000)


def test_clock_is_unix_epoch_and_paper_sensor_reports_hw03():
    import time

    h = hal.load(_board())
    eq(h.clock() - int(time.time()), 946684800, "ESP32 epoch 2000 -> Unix epoch")
    b = _board()
    h2 = hal.load(b)
    eq(h2.printer, None)  # the printer UART is a soft UART on this board
    from payterm.hal.esp32 import EscPosPrinter

    p = EscPosPrinter(machine.UART(9), b["pins"]["printer_paper"])
    eq(p.status(), None)
    machine.pins[b["pins"]["printer_paper"]] = 0
    eq(p.status(), "HW-03")


async def test_link_down_is_net01_and_never_sent():
    import network

    from payterm.errors import Fault

    h = hal.load(_board())
    network.connected = False
    try:
        f = None
        try:
            await h.open_connection("127.0.0.1", 9)
        except Fault as e:
            f = e
        assert f is not None, "no fault with the WLAN down"
        eq((f.code, f.sent), ("NET-01", False))
    finally:
        network.connected = True
    eq(h.link_up(), True)

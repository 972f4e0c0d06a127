"""The ESP32 HAL on each board's hardware map, against fakes of machine, network and esp32.

The fakes (host_tests/unit/fakes) accept only what micropython-esp32-stubs says
the real modules accept (host_tests/tools/test_hal_fakes.py).
"""
import sys

sys.path.insert(0, sys.path[0] + "/fakes" if sys.path[0] else "fakes")

import esp32  # noqa: E402  (the fakes from host_tests/unit/fakes)
import machine  # noqa: E402
import network  # noqa: E402
from mpt import FakeClock, eq  # noqa: E402

from payterm import hal  # noqa: E402
from payterm.errors import Fault  # noqa: E402
from payterm.hal import drivers  # noqa: E402


def _repo():
    for p in sys.path:
        if p.endswith("/firmware"):
            return p[: -len("/firmware")]
    raise AssertionError("firmware not on MICROPYPATH")


def _map(name):
    return hal.read_hardware(_repo() + "/boards/" + name + "/hardware.json")


def _fault(fn, *args):
    try:
        fn(*args)
    except Fault as f:
        return f
    raise AssertionError("no Fault from %r" % (fn,))


class FakeDisplay:
    def __init__(self, bus, spec, pins):
        self.bus, self.spec, self.pins = bus, spec, pins
        self.rows = {}
        self.clears = 0

    def show(self, row, text):
        self.rows[row] = text

    def clear(self):
        self.clears += 1


class FakeKeys:
    def __init__(self, bus, spec, pins):
        self.bus, self.spec = bus, spec
        self.pending = []

    def scan(self):
        return self.pending.pop(0) if self.pending else None


def _with_panel_drivers(board):
    made = {}

    def disp(bus, spec, pins):
        made["display"] = FakeDisplay(bus, spec, pins)
        return made["display"]

    def keys(bus, spec, pins):
        made["keypad"] = FakeKeys(bus, spec, pins)
        return made["keypad"]

    drivers.register(board["devices"]["display"]["driver"], disp)
    drivers.register(board["devices"]["keypad"]["driver"], keys)
    return made


# ---------------------------------------------------------------- boards, buses, devices
def test_s3_map_gives_each_reader_its_own_uart_and_the_console_the_usb_port():
    b = _map("TERMINAL_ESP32S3")
    h = hal.load(b)
    eq(type(h).__name__, "Esp32HAL")
    eq(h.storage, "/", "LittleFS is mounted at / on the ESP32 port")
    from payterm.hal.esp32 import StdioStream

    assert isinstance(h.stream("console"), StdioStream), "console is the REPL's USB serial/JTAG port"
    assert h.stream("nfc") is not None and h.stream("mag") is not None
    by_id = {u.id: u.kw for u in machine.uarts}
    eq(sorted(by_id), [0, 1, 2], "mag, nfc and printer on the S3's three UARTs")
    eq(by_id[1], {"baudrate": 115200, "tx": 17, "rx": 18, "rxbuf": 512, "timeout": 0}, "PN532 HSU")
    eq(by_id[0]["rx"], 16)
    eq(by_id[0]["tx"], None, "the magstripe module only sends: no TX pin taken")
    eq(machine.pins[21], 1, "PN532 RSTPDN held high (out of reset)")
    eq(machine.pin_modes[21][0], machine.Pin.OUT)


async def test_s3_printer_is_escpos_on_uart2_and_its_paper_sensor_reports_hw03():
    b = _map("TERMINAL_ESP32S3")
    h = hal.load(b)
    u = [x for x in machine.uarts if x.id == 2][0]
    eq((u.kw["baudrate"], u.kw["tx"]), (19200, 10))
    eq(h.printer.status(), None)
    await h.printer.print_lines(["PAYTERM", "APPROVED"])
    eq(bytes(u.written), b"\x1b@PAYTERM\nAPPROVED\n\n\n\x1dV\x01")
    paper = b["devices"]["printer"]["in"]["paper"]
    eq(machine.pin_modes[paper], (machine.Pin.IN, machine.Pin.PULL_UP))
    machine.pins[paper] = 0
    eq(h.printer.status(), "HW-03")
    f = None
    try:
        await h.printer.print_lines(["X"])
    except Fault as e:
        f = e
    eq(f.code if f else None, "HW-03")


def _decode_8n1(durations, bit):
    """Bytes back from RMT level durations starting low (the receiving UART's view)."""
    levels = []
    level = 0
    for d in durations:
        assert d % bit == 0, "durations are whole bits"
        levels += [level] * (d // bit)
        level ^= 1
    out = bytearray()
    i = 0
    while i < len(levels):
        if levels[i] == 1:  # idle between frames
            i += 1
            continue
        frame = levels[i:i + 10]
        assert len(frame) == 10 and frame[9] == 1, "stop bit"
        out.append(sum(frame[1 + k] << k for k in range(8)))
        i += 10
    return bytes(out)


async def test_esp32_printer_is_an_rmt_serial_line_a_uart_receiver_decodes():
    b = _map("TERMINAL_ESP32")
    h = hal.load(b)
    h.stream("mag")
    h.stream("nfc")
    eq(sorted(u.id for u in machine.uarts), [1, 2], "UART0 stays the REPL/console's")
    r = esp32.rmts[-1]
    eq((r.pin, r.idle_level), (b["devices"]["printer"]["tx"], True), "idle high like a UART line")
    r.busy = 3  # the channel is still sending: the printer waits, it does not overwrite
    await h.printer.print_lines(["TID EMU00001", "AMOUNT EUR 12.50"])
    bit = r.resolution_hz // 19200
    sent = b""
    for durations, start in r.sent:
        eq(start, False, "each burst starts with a start bit")
        sent += _decode_8n1(durations, bit)
    eq(sent, b"\x1b@TID EMU00001\nAMOUNT EUR 12.50\n\n\n\x1dV\x01")


def test_rmt_pulses_merge_equal_bits_and_end_high():
    from payterm.hal.esp32 import rmt_pulses

    # 0x00: start + 8 zeros = 9 bits low, stop high; 0xFF: start low, 8 ones + stop high
    eq(rmt_pulses(b"\x00", 10), [90, 10])
    eq(rmt_pulses(b"\xff", 10), [10, 90])
    eq(rmt_pulses(b"\x55", 1), [1] * 10)


def test_panel_without_drivers_is_hw06_not_none():
    b = _map("TERMINAL_ESP32S3")
    h = hal.load(b)
    f = _fault(h.stream, "panel")
    eq(f.code, "HW-06")
    assert "hd44780_i2c" in f.detail, f.detail


def test_display_gets_its_i2c_bus_and_keypad_its_matrix():
    b = _map("TERMINAL_ESP32S3")
    made = _with_panel_drivers(b)
    h = hal.load(b)
    p = h.stream("panel")
    d, k = made["display"], made["keypad"]
    eq(type(d.bus).__name__, "I2C")
    eq((d.bus.id, d.bus.scl, d.bus.sda, d.bus.freq), (0, 9, 8, 100000))
    eq(d.spec["addr"], 39)
    rows, cols = k.bus
    eq([x.id for x in rows], b["devices"]["keypad"]["rows"])
    for x in rows:
        eq((machine.pin_modes[x.id][0], machine.pins[x.id]), (machine.Pin.OUT, 1), "row %d driven high" % x.id)
    for x in cols:
        eq(machine.pin_modes[x.id], (machine.Pin.IN, machine.Pin.PULL_UP), "col %d" % x.id)
    assert p is not None


async def test_panel_port_speaks_the_panel_protocol_to_the_drivers():
    b = _map("TERMINAL_ESP32C3")
    made = _with_panel_drivers(b)
    h = hal.load(b)
    from payterm.ui.panel import Panel

    port = h.stream("panel")
    eq(made["keypad"].bus, made["display"].bus, "C3: display and key expander share the panel I2C bus")
    eq(made["keypad"].spec["addr"], 32)
    panel = Panel(port)
    panel.show(["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU"])
    eq(made["display"].rows, {0: "PAYTERM", 1: "READY", 2: "ENTER AMOUNT (EUR)", 3: "F:MENU"})
    port.write(b"CLR\n")
    eq(made["display"].clears, 1)
    made["keypad"].pending = [ord("1"), ord("E")]
    eq(await port.read(16), b"1")
    eq(await port.read(16), b"E")


def test_shared_i2c_bus_is_built_once():
    b = _map("TERMINAL_ESP32")
    _with_panel_drivers(b)
    h = hal.load(b)
    h.stream("panel")
    eq(len(machine.i2cs), 1)
    eq((machine.i2cs[0].scl, machine.i2cs[0].sda), (22, 21))


async def test_printer_that_cannot_be_built_reports_hw04():
    b = _map("TERMINAL_ESP32S3")
    b["devices"]["printer"]["driver"] = "nonesuch"
    h = hal.load(b)
    eq(h.printer.status(), "HW-04")
    f = None
    try:
        await h.printer.print_lines(["X"])
    except Fault as e:
        f = e
    assert f is not None and f.code == "HW-04" and "nonesuch" in f.detail, f


def test_reader_on_a_bus_that_fails_is_hw01():
    b = _map("TERMINAL_ESP32S3")
    b["devices"]["nfc"]["bus"] = "i2c"
    b["devices"]["nfc"]["i2c"] = "nope"
    h = hal.load(b)
    f = _fault(h.stream, "nfc")
    eq(f.code, "HW-01")
    assert "nope" in f.detail, f.detail


def test_device_the_board_lacks_is_none():
    b = _map("TERMINAL_ESP32S3")
    del b["devices"]["mag"]
    eq(hal.load(b).stream("mag"), None)


# ---------------------------------------------------------------- WLAN
def _wlan_hal():
    h = hal.load(_map("TERMINAL_ESP32S3"))
    clk = FakeClock(1000)
    h.wlan.ticks = clk
    return h, clk, network.interfaces[-1]


def test_wlan_is_down_until_started_and_joined():
    network.ap("shop", "correct horse")
    h, clk, w = _wlan_hal()
    eq(h.link_up(), False, "nothing is connected before the HAL joins")
    eq(w.active(), False)
    h.start({"wlan": {"ssid": "shop", "password": "correct horse"}})
    eq(w.active(), True)
    eq(w.settings.get("reconnects"), 0, "the driver does not retry behind the backoff")
    eq(w.connects, ["shop"])
    eq(h.link_up(), False, "connecting is not up")
    eq(h.link_state(), "wlan connecting")
    network.settle()
    eq(h.link_up(), True)


def test_wlan_wrong_password_retries_with_growing_backoff():
    network.ap("shop", "correct horse")
    h, clk, w = _wlan_hal()
    h.start({"wlan": {"ssid": "shop", "password": "wrong"}})
    network.settle()
    eq(h.link_up(), False)
    eq(h.link_state(), "wlan wrong_password")
    joins = [clk.now]
    for _ in range(200):  # 20 s of link checks, 100 ms apart
        clk.advance(100)
        before = len(w.connects)
        h.link_up()
        if len(w.connects) > before:
            joins.append(clk.now)
            network.settle()
    gaps = [b - a for a, b in zip(joins, joins[1:])]
    eq(gaps[:4], [1000, 2000, 4000, 8000], "joins spaced by the doubling backoff")


def test_wlan_drop_is_noticed_and_rejoined():
    network.ap("shop", "correct horse")
    h, clk, w = _wlan_hal()
    h.start({"wlan": {"ssid": "shop", "password": "correct horse"}})
    network.settle()
    eq(h.link_up(), True)
    network.drop()
    eq(h.link_up(), False)
    eq(h.link_state(), "wlan beacon_timeout")
    clk.advance(1000)
    h.link_up()
    eq(w.connects, ["shop", "shop"])
    network.settle()
    eq(h.link_up(), True)


async def test_link_down_is_net01_never_sent_and_says_why():
    h, clk, w = _wlan_hal()
    h.start({"wlan": {"ssid": "gone", "password": "whatever1"}})
    network.settle()
    f = None
    try:
        await h.open_connection("127.0.0.1", 9)
    except Fault as e:
        f = e
    assert f is not None, "no fault with the WLAN down"
    eq((f.code, f.sent), ("NET-01", False))
    assert "no_ap_found" in f.detail, f.detail


# ---------------------------------------------------------------- system
def test_watchdog_fed_held_for_the_repl_and_reset_cause_named():
    machine.reset_cause_value = machine.WDT_RESET
    h = hal.load(_map("TERMINAL_ESP32C3"))
    eq(h.reset_cause(), "watchdog")
    h.wdt_feed()
    h.wdt_feed()
    eq(machine.wdts[-1].feeds, 2)
    eq(machine.wdts[-1].timeout, 8000)
    h.hold_watchdog()
    eq(machine.wdts[-1].timeout, 600000, "a technician at the REPL gets 10 minutes")
    h.reboot()
    eq(machine.resets, [1])


def test_clock_is_unix_epoch():
    import time

    h = hal.load(_map("TERMINAL_ESP32"))
    eq(h.clock() - int(time.time()), 946684800, "ESP32 epoch 2000 -> Unix epoch")

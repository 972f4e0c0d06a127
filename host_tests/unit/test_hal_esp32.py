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


def _lcd(written):
    """The 4 rows an HD44780 behind a PCF8574 (P0 RS, P2 E, P4-P7 D4-D7) shows after these port writes."""
    ddram = bytearray(b" " * 128)
    ac = 0
    half = None
    four = False  # Figure 24: single nibbles 3, 3, 3, then 2 switches to the 4-bit interface
    prev = 0xFF
    for v in written:
        if prev & 0x04 and not v & 0x04:  # E falling edge latches D4..D7
            nib, rs = prev >> 4, prev & 0x01
            if not four:
                four = nib == 0x2
            elif half is None:
                half = nib
            else:
                b, half = half << 4 | nib, None
                if rs:
                    ddram[ac & 0x7F] = b
                    ac += 1
                elif b & 0x80:
                    ac = b & 0x7F
                elif b == 0x01:
                    ddram[:] = b" " * 128
                    ac = 0
        prev = v
    return [bytes(ddram[o:o + 20]).decode().rstrip() for o in (0x00, 0x40, 0x14, 0x54)]


class Expander:
    """A PCF8574 with a 4x4 switch matrix on P0-P3 (rows) and P4-P7 (columns), on a fake I2C bus."""

    def __init__(self, keymap):
        self.keymap = keymap
        self.port = 0xFF
        self.closed = set()

    def write(self, buf):
        if len(buf):
            self.port = buf[-1]

    def read(self, n):
        v = self.port
        for (r, c) in self.closed:
            if not self.port & (1 << r) or not self.port & (1 << (4 + c)):
                v &= ~((1 << r) | (1 << (4 + c)))
        return bytes((v,)) * n

    def press(self, key):
        i = self.keymap.index(key)
        self.closed.add((i // 4, i % 4))

    def release(self, key):
        i = self.keymap.index(key)
        self.closed.discard((i // 4, i % 4))


class EscPos:
    """The printer end of a UART: answers DLE EOT n with its status, GS r 1 with 0 (job done)."""

    def __init__(self):
        self.offline = 0  # DLE EOT 2 cause bits: 0x04 cover open, 0x20 paper end
        self.paper = 0  # DLE EOT 4 bits: 0x60 paper end
        self.queries = []

    def __call__(self, data):
        out = bytearray()
        i = 0
        while i < len(data):
            if data[i:i + 2] == b"\x10\x04" and i + 2 < len(data):
                n = data[i + 2]
                self.queries.append(n)
                out.append(0x12 | ({1: 0x08 if self.offline else 0, 2: self.offline, 3: 0, 4: self.paper}[n]))
                i += 3
            elif data[i:i + 3] == b"\x1dr\x01":
                out.append(0)
                i += 3
            else:
                i += 1
        return bytes(out)


def _no_queries(written):
    """What the printer was sent, without the DLE EOT status queries."""
    out = bytearray()
    i = 0
    while i < len(written):
        if written[i:i + 2] == b"\x10\x04":
            i += 3
        else:
            out.append(written[i])
            i += 1
    return bytes(out)


async def _code(coro):
    try:
        await coro
    except Fault as f:
        return f.code
    return None


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


async def test_s3_printer_is_escpos_on_uart2_and_answers_dle_eot():
    from payterm.drivers.escpos import receipt_bytes

    b = _map("TERMINAL_ESP32S3")
    h = hal.load(b)
    u = [x for x in machine.uarts if x.id == 2][0]
    eq((u.kw["baudrate"], u.kw["tx"], u.kw["rx"]), (19200, 10, 11))
    printer = EscPos()
    u.peer = printer
    eq(await h.printer.poll(), None, "asked over the UART: ready")
    eq(printer.queries, [1, 4], "printer status, then the roll paper sensor")
    lines = ["PAYTERM", "TID TERM0042", "SALE", "AMOUNT EUR 12.50", "APPROVED"]
    eq(await _code(h.printer.print_lines(lines)), None)
    eq(_no_queries(bytes(u.written)), receipt_bytes(lines) + b"\x1dr\x01", "the receipt, then GS r 1 (end of job)")
    printer.offline = 0x20
    printer.paper = 0x60
    eq(await h.printer.poll(), "HW-03", "paper end, from the printer itself")
    eq(h.printer.status(), "HW-03")
    eq(await _code(h.printer.print_lines(lines)), "HW-03")
    printer.offline, printer.paper = 0x04, 0
    eq(await h.printer.poll(), "HW-07", "cover open")


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


async def test_rmt_printer_sends_the_receipt_and_takes_its_status_from_the_paper_sensor():
    from payterm.drivers.escpos import receipt_bytes

    for name in ("TERMINAL_ESP32", "TERMINAL_ESP32C3"):
        machine.clear()
        esp32.clear()
        b = _map(name)
        h = hal.load(b)
        h.stream("mag")
        h.stream("nfc")
        if name == "TERMINAL_ESP32":
            eq(sorted(u.id for u in machine.uarts), [1, 2], "UART0 stays the REPL/console's")
        r = esp32.rmts[-1]
        eq((r.pin, r.idle_level), (b["devices"]["printer"]["tx"], True), "idle high like a UART line")
        r.busy = 3  # the channel is still sending: the printer waits, it does not overwrite
        lines = ["PAYTERM", "TID EMU00001", "AMOUNT EUR 12.50"]
        eq(await h.printer.poll(), None, name)
        eq(await _code(h.printer.print_lines(lines)), None)
        bit = r.resolution_hz // 19200
        sent = b""
        for durations, start in r.sent:
            eq(start, False, "each burst starts with a start bit")
            sent += _decode_8n1(durations, bit)
        eq(sent, receipt_bytes(lines), "%s: the ESC/POS receipt, no status queries (nothing answers)" % name)
        paper = b["devices"]["printer"]["in"]["paper"]
        eq(machine.pin_modes[paper], (machine.Pin.IN, machine.Pin.PULL_UP))
        machine.pins[paper] = 0  # the printer's paper-out output pulls the sensor line low
        eq(await h.printer.poll(), "HW-03")
        n = len(r.sent)
        eq(await _code(h.printer.print_lines(lines)), "HW-03")
        eq(len(r.sent), n, "nothing sent to a printer without paper")


def test_rmt_pulses_merge_equal_bits_and_end_high():
    from payterm.hal.esp32 import rmt_pulses

    # 0x00: start + 8 zeros = 9 bits low, stop high; 0xFF: start low, 8 ones + stop high
    eq(rmt_pulses(b"\x00", 10), [90, 10])
    eq(rmt_pulses(b"\xff", 10), [10, 90])
    eq(rmt_pulses(b"\x55", 1), [1] * 10)


async def _key(panel, timeout_ms=500):
    return await panel.key(timeout_ms)


async def test_s3_panel_is_lcd_on_i2c_key_matrix_pwm_buzzer_and_led():
    import asyncio

    from payterm.ui.localpanel import LocalPanel

    b = _map("TERMINAL_ESP32S3")
    h = hal.load(b)
    eq(h.stream("panel"), None, "no panel UART on this board")
    faults = []
    p = h.panel(on_fault=faults.append)
    assert isinstance(p, LocalPanel), p
    [i2c] = machine.i2cs
    eq((i2c.id, i2c.scl, i2c.sda, i2c.freq), (0, 9, 8, 100000), "the PCF8574 backpack's 100 kHz")
    i2c.devices[0x27] = bytearray()  # the backpack acknowledges
    p.show(["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU"])
    eq(_lcd(i2c.devices[0x27]), ["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU"], "what the LCD shows")
    # key matrix: rows driven low at rest, columns pull-up inputs with hard falling-edge IRQs
    kp = b["devices"]["keypad"]
    for n in kp["rows"]:
        eq((machine.pin_modes[n][0], machine.pins[n]), (machine.Pin.OUT, 0), "row GPIO%d" % n)
    for n in kp["cols"]:
        eq(machine.pin_modes[n], (machine.Pin.IN, machine.Pin.PULL_UP), "col GPIO%d" % n)
        pin = machine.irq_pins[n]
        eq((pin.trigger, pin.hard), (machine.Pin.IRQ_FALLING, True))
    task = asyncio.create_task(p.run())
    await asyncio.sleep_ms(20)
    for key in "1F9E":
        i = kp["keys"].index(key)
        sw = (kp["rows"][i // 4], kp["cols"][i % 4])
        machine.close_switch(*sw)
        eq(await _key(p), key, "key %s through the pin IRQ and the scan" % key)
        machine.open_switch(*sw)
        await asyncio.sleep_ms(60)
    eq(faults, [])
    # buzzer: PWM on its pin, silent until a beep; LED on its pin, blinking "ready"
    [pwm] = machine.pwms
    eq((pwm.pin, pwm.d), (b["devices"]["buzzer"]["pin"], 0))
    p.beep()
    eq((pwm.f, pwm.d), (2700, 32768), "a beep: 2.7 kHz at 50 %")
    led = b["devices"]["led"]["pin"]
    eq(machine.pin_modes[led][0], machine.Pin.OUT)
    eq(p.led.name, "ready")
    task.cancel()


async def test_esp32_and_c3_panels_share_the_i2c_bus_between_lcd_and_key_expander():
    import asyncio

    for name in ("TERMINAL_ESP32", "TERMINAL_ESP32C3"):
        machine.clear()
        b = _map(name)
        h = hal.load(b)
        p = h.panel(on_fault=print)
        eq(len(machine.i2cs), 1, "%s: one I2C bus for display and keypad" % name)
        i2c = machine.i2cs[0]
        bus = b["buses"]["i2c"]["panel"]
        eq((i2c.scl, i2c.sda, i2c.freq), (bus["scl"], bus["sda"], 100000))
        kp = b["devices"]["keypad"]
        ex = Expander(kp["keys"])
        i2c.devices[kp["addr"]] = bytearray()
        i2c.peers[kp["addr"]] = ex
        i2c.devices[0x27] = bytearray()
        p.show(["SALE EUR 12.50", "PRESENT CARD"])
        eq(_lcd(i2c.devices[0x27])[:2], ["SALE EUR 12.50", "PRESENT CARD"], name)
        task = asyncio.create_task(p.run())
        await asyncio.sleep_ms(50)
        for key in "C5#":
            ex.press(key)
            eq(await _key(p), key, "%s: key %s through the expander" % (name, key))
            ex.release(key)
            await asyncio.sleep_ms(60)
        [pwm] = machine.pwms
        eq((pwm.pin, pwm.d), (b["devices"]["buzzer"]["pin"], 0))
        p.beep()
        eq(pwm.d, 32768, "%s: the buzzer sounds" % name)
        led = b["devices"]["led"]["pin"]
        eq((machine.pin_modes[led][0], p.led.name), (machine.Pin.OUT, "ready"), "%s: status LED" % name)
        task.cancel()


def test_display_that_does_not_answer_is_hw06_through_on_fault():
    h = hal.load(_map("TERMINAL_ESP32S3"))
    faults = []
    p = h.panel(on_fault=faults.append)
    p.show(["PAYTERM", "READY"])  # nothing at 0x27: no acknowledge
    eq([f.code for f in faults], ["HW-06"])
    eq(p.rows[:2], ["PAYTERM", "READY"], "the screen is kept for the console")


def test_each_device_that_cannot_be_built_gives_its_code():
    want = {"display": "HW-06", "keypad": "HW-05", "buzzer": "HW-20", "led": "HW-21", "printer": "HW-04",
            "mag": "HW-01", "nfc": "HW-01"}
    for board in ("TERMINAL_ESP32S3", "TERMINAL_ESP32", "TERMINAL_ESP32C3"):
        for dev, code in want.items():
            machine.clear()
            esp32.clear()
            b = _map(board)
            b["devices"][dev]["driver"] = "nonesuch"
            h = hal.load(b)
            faults = []
            what = "%s %s" % (board, dev)
            if dev == "printer":
                eq(h.printer.status(), code, what)
                continue
            if dev in ("mag", "nfc"):
                eq(_fault(h.stream, dev).code, code, what)
                continue
            if dev == "display":
                f = _fault(h.panel, faults.append)
                eq(f.code, code, what)
                assert "nonesuch" in f.detail, f.detail
                continue
            p = h.panel(on_fault=faults.append)
            eq([f.code for f in faults], [code], what)
            assert "nonesuch" in faults[0].detail, faults[0].detail
            eq(getattr(p, dev), None, "%s: the panel works without it" % what)


def test_shared_i2c_bus_is_built_once():
    b = _map("TERMINAL_ESP32")
    h = hal.load(b)
    h.panel()
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

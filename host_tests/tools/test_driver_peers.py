"""Device drivers in MicroPython against their peers over real ptys, and the peers on their own.

The peers (tools/payterm_tools/sim: printer.py, i2cbus.py, keypad.py) are
first held to the chips' specs with bytes written here by hand; then the
firmware drivers run in the MicroPython unix port on the pty slaves, as the
emulator runs them, and the failure codes they raise are checked.
"""
import json
import os
import queue
import subprocess
import textwrap
import threading
import time
import tty

import pytest

import mpy_runtimes
from payterm_tools.sim import glyphs
from payterm_tools.sim.i2cbus import Hd44780Backpack, I2CBusSim, Ssd1306
from payterm_tools.sim.keypad import KeypadSim
from payterm_tools.sim.localpanel import LocalPanelSim
from payterm_tools.sim.printer import EscPosPrinterSim


def openpty():
    m, s = os.openpty()
    tty.setraw(m)
    tty.setraw(s)
    return m, s


def read_for(fd, n, timeout=2.0):
    import select

    out = b""
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            out += os.read(fd, 4096)
    return out


class Vm:
    """A MicroPython script on the pty slaves; its stdout lines in a queue, commands on stdin."""

    def __init__(self, tmp_path, src, *args):
        script = tmp_path / ("vm%d.py" % id(self))
        script.write_text(textwrap.dedent(src))
        self.p = subprocess.Popen([mpy_runtimes.binary("unix"), str(script)] + [str(a) for a in args],
                                  env=mpy_runtimes.env_for("unix"), cwd=mpy_runtimes.REPO, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("READY", 10)

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=10.0):
        try:
            out = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output from MicroPython in %.1fs; so far: %r" % (timeout, self.seen[-20:]))
        if out is None:
            raise AssertionError("MicroPython exited %r; output: %r" % (self.p.wait(), self.seen[-20:]))
        self.seen.append(out)
        return out

    def expect(self, prefix, timeout=10.0):
        end = time.monotonic() + timeout
        while True:
            out = self.line(max(0.1, end - time.monotonic()))
            if out.startswith(prefix):
                return out
            if out.startswith("Traceback") or time.monotonic() > end:
                rest = []
                while not self.lines.empty():
                    rest.append(self.lines.get())
                raise AssertionError("wanted %r, got %r\n%s" % (prefix, out, "\n".join(str(r) for r in rest)))

    def cmd(self, text, prefix, timeout=10.0):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()
        return self.expect(prefix, timeout)

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


@pytest.fixture
def vms(tmp_path):
    started = []

    def start(src, *args):
        v = Vm(tmp_path, src, *args)
        started.append(v)
        return v

    yield start
    for v in started:
        v.close()


# ================================================================ printer peer on its own


@pytest.fixture
def printer():
    m, s = openpty()
    sim = EscPosPrinterSim(m, line_ms=2, cut_ms=5).start()
    yield sim, m, s
    sim.stop()
    os.close(m)
    os.close(s)


def test_printer_answers_dle_eot_per_the_reference(printer):
    sim, _, s = printer
    os.write(s, b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04")
    got = read_for(s, 4)
    assert got == bytes([0x12, 0x12, 0x12, 0x12]), got.hex()
    sim.set_cover_open()
    os.write(s, b"\x10\x04\x01\x10\x04\x02")
    assert read_for(s, 2) == bytes([0x1A, 0x16]), "offline; cover open (bit 2)"
    sim.clear()
    sim.set_paper_out()
    os.write(s, b"\x10\x04\x01\x10\x04\x02\x10\x04\x04")
    assert read_for(s, 3) == bytes([0x1A, 0x32, 0x72]), "offline; paper-end stop (bit 5); sensor bits 5,6"
    sim.clear()
    sim.set_mech_error()
    os.write(s, b"\x10\x04\x01\x10\x04\x02\x10\x04\x03")
    assert read_for(s, 3) == bytes([0x1A, 0x52, 0x16]), "offline; error occurred (bit 6); mechanical error (bit 2)"
    sim.clear()
    sim.set_near_end()
    os.write(s, b"\x10\x04\x01\x10\x04\x04")
    assert read_for(s, 2) == bytes([0x12, 0x1E]), "near end is no reason to go offline"
    sim.set_responding(False)
    os.write(s, b"\x10\x04\x01")
    assert read_for(s, 1, 0.3) == b""


def test_printer_prints_in_order_and_answers_gs_r_after_the_cut(printer):
    sim, _, s = printer
    os.write(s, b"\x1b@\x1ba\x01\x1bE\x01\x1d!\x11SHOP\n\x1d!\x00\x1bE\x00\x1ba\x00")
    os.write(s, b"LINE ONE\n" + b"\x10\x04\x01" + b"LINE TWO\n\x1bd\x02\x1dV\x01\x1dr\x01")
    got = read_for(s, 2)
    assert got == b"\x12\x00", "DLE EOT answered at once, GS r only when its turn came: %r" % got
    assert sim.wait(lambda: sim.receipts)
    assert sim.receipts == [["SHOP", "LINE ONE", "LINE TWO", "", ""]]
    assert sim.styled[0] == ("SHOP", "center", True, (2, 2))
    assert sim.errors == []


def test_printer_stops_at_paper_end_and_carries_on_when_loaded(printer):
    sim, _, s = printer
    sim.paper_lines = 2
    os.write(s, b"\x1b@A\nB\nC\nD\n\x1dV\x01\x1dr\x01")
    assert sim.wait(lambda: sim.paper_out)
    assert sim.current == ["A", "B"]
    os.write(s, b"\x10\x04\x01")
    assert read_for(s, 1) == b"\x1a", "offline, GS r not answered"
    sim.clear()
    assert read_for(s, 1) == b"\x00", "the rest printed after loading paper"
    assert sim.receipts == [["A", "B", "C", "D"]]


def test_printer_is_strict_about_what_it_gets(printer):
    sim, _, s = printer
    os.write(s, b"\x1bZ\x01\x1d\x99\x00\x07X\n")
    assert sim.wait(lambda: len(sim.errors) >= 3), sim.errors
    assert any("ESC 0x5a" in e for e in sim.errors)


# ================================================================ I2C peers on their own


def lcd_nibble(n, rs=0, bl=0x08):
    v = n << 4 | rs | bl
    return bytes([v | 0x04, v])  # E high, E low: latched on the falling edge


def lcd_byte(b, rs=0):
    return lcd_nibble(b >> 4, rs) + lcd_nibble(b & 0x0F, rs)


LCD_INIT = (bytes([0x08]) + lcd_nibble(3) * 3 + lcd_nibble(2)
            + b"".join(lcd_byte(c) for c in (0x28, 0x08, 0x01, 0x06, 0x0C)))


def test_lcd_peer_decodes_the_hd44780_4bit_protocol():
    lcd = Hd44780Backpack()
    lcd.write(LCD_INIT)
    assert lcd.initialised and lcd.display_on and lcd.backlight
    for off, text in ((0x00, "ROW ZERO"), (0x40, "ROW ONE"), (0x14, "ROW TWO"), (0x54, "ROW THREE")):
        lcd.write(bytes([0x08]) + lcd_byte(0x80 | off) + bytes([0x09])
                  + b"".join(lcd_byte(ord(ch), 1) for ch in text))
    assert [r.rstrip() for r in lcd.screen()] == ["ROW ZERO", "ROW ONE", "ROW TWO", "ROW THREE"]
    assert lcd.errors == []
    # 20 characters from 0x00 then more: the address counter runs on into row 2 (0x14)
    lcd.write(bytes([0x08]) + lcd_byte(0x80) + bytes([0x09]) + b"".join(lcd_byte(ord("x"), 1) for _ in range(22)))
    assert lcd.screen()[0] == "x" * 20 and lcd.screen()[2].startswith("xx")


def test_lcd_peer_is_strict():
    lcd = Hd44780Backpack()
    lcd.write(lcd_nibble(2) + b"".join(lcd_byte(c) for c in (0x28, 0x0C)))
    assert not lcd.initialised and lcd.errors, "4-bit mode without the 3 x 0x3 sequence"
    assert lcd.screen() == [" " * 20] * 4
    lcd = Hd44780Backpack()
    lcd.write(LCD_INIT + bytes([0x08, 0x08 | 0x04 | 0x01]))  # RS and E rise together
    assert any("tAS" in e for e in lcd.errors)


def test_lcd_peer_recovers_from_any_nibble_phase():
    # a firmware restart finds the LCD in 4-bit mode, maybe between two nibbles
    for junk in (b"", lcd_nibble(0x5)):
        lcd = Hd44780Backpack()
        lcd.write(LCD_INIT + junk + LCD_INIT[1:] + bytes([0x08]) + lcd_byte(0x80) + bytes([0x09]) + lcd_byte(0x41, 1))
        assert lcd.initialised and lcd.screen()[0][0] == "A", (junk, lcd.errors)


def test_oled_peer_reads_text_back_only_from_a_lit_upright_panel():
    oled = Ssd1306()
    init = bytes([0x00, 0xAE, 0xA8, 0x3F, 0x20, 0x00, 0xA1, 0xC8, 0x8D, 0x14, 0xAF])
    oled.write(init)
    glyph = glyphs.FONT5[(ord("H") - 0x20) * 5:(ord("H") - 0x20) * 5 + 5]
    # row 0 of text lives at y = 4..11: pages 0 and 1, bits shifted by 4
    oled.write(bytes([0x00, 0x21, 4, 8, 0x22, 0, 1]))
    oled.write(bytes([0x40]) + bytes((g << 4) & 0xFF for g in glyph) + bytes(g >> 4 for g in glyph))
    assert oled.screen()[0] == "H" + " " * 19
    assert oled.errors == []
    oled.write(bytes([0x00, 0xA0]))  # mirrored: no longer readable
    assert oled.screen()[0] != "H" + " " * 19
    oled.write(bytes([0x00, 0xA1, 0x8D, 0x10]))  # charge pump off: dark
    assert oled.screen()[0] == " " * 20
    oled.write(bytes([0x00, 0xFE]))
    assert oled.errors == ["unknown command 0xfe"]


def test_i2c_bus_frames_ack_nack_and_errors():
    m, s = openpty()
    lcd = Hd44780Backpack()
    bus = I2CBusSim(m, {0x27: lcd}).start()
    try:
        os.write(s, b"W\x27\x00\x02\x08\x0c")
        assert read_for(s, 3) == b"A\x00\x02"
        os.write(s, b"W\x3c\x00\x01\x00")
        assert read_for(s, 1) == b"N", "nobody at 0x3c"
        os.write(s, b"R\x27\x00\x01")
        assert read_for(s, 4) == b"A\x00\x01\x0c", "PCF8574 reads back its latch (last byte written)"
        os.write(s, b"Q")
        assert read_for(s, 1) == b"E"
        bus.set_present(0x27, False)
        os.write(s, b"W\x27\x00\x01\x08")
        assert read_for(s, 1) == b"N"
        bus.responding = False
        os.write(s, b"W\x27\x00\x01\x08")
        assert read_for(s, 1, 0.3) == b""
    finally:
        bus.stop()
        os.close(m)
        os.close(s)


def test_glyph_tables_match_framebuf_and_the_firmware():
    src = """
import framebuf
from payterm.drivers import font5
b = bytearray(8)
f = framebuf.FrameBuffer(b, 8, 8, framebuf.MONO_VLSB)
out = bytearray()
for c in range(32, 127):
    f.fill(0)
    f.text(chr(c), 0, 0, 1)
    out += b
print(bytes(out).hex())
print(bytes(font5.FONT).hex())
"""
    res = mpy_runtimes.run("unix", ["-c", src])
    assert res.returncode == 0, res.stdout
    font8, firmware5 = res.stdout.split()
    assert bytes.fromhex(font8) == glyphs.FONT8, "framebuf's font changed: regenerate sim/glyphs.py FONT8"
    assert bytes.fromhex(firmware5) == glyphs.derive(), "firmware/payterm/drivers/font5.py is not derive()"
    assert len(set(glyphs.FONT5[i:i + 5] for i in range(0, len(glyphs.FONT5), 5))) == 95, "every glyph unique"


# ================================================================ firmware drivers against the peers

PRINTER_VM = """
import sys, asyncio, json
from payterm.hal.host_buses import open_raw
from payterm.drivers.escpos import EscPosPrinter
from payterm.errors import Fault
from payterm.printer import receipt
from payterm.txn.result import Result

async def main():
    p = EscPosPrinter(asyncio.StreamReader(open_raw(sys.argv[1])), timeout_ms=150, job_ms=3000, poll_ms=40)
    r = Result(True, auth_code="A1B2C3", rrn="123456789012", stan="000042", ref="000007", amount=1250,
               currency=978, kind="sale", masked="476173******0010")
    lines = receipt(r, {"terminal_id": "EMU00001"}, (2025, 3, 4, 10, 11, 12, 0, 0))
    print("READY")
    while True:
        cmd = sys.stdin.readline().strip()
        if cmd == "poll":
            print("POLL", await p.poll(), p.near_end)
        elif cmd == "print":
            print("LINES", json.dumps(lines))
            try:
                await p.print_lines(lines)
                print("PRINTED", p.status(), p.near_end)
            except Fault as f:
                print("FAULT", f.code, f.detail)
        else:
            break

asyncio.run(main())
"""


@pytest.fixture
def printer_vm(vms):
    m, s = openpty()
    sim = EscPosPrinterSim(m, line_ms=3, cut_ms=10).start()
    vm = vms(PRINTER_VM, os.ttyname(s))
    yield sim, vm
    sim.stop()
    os.close(m)
    os.close(s)


def test_receipt_prints_and_the_printer_text_matches(printer_vm):
    sim, vm = printer_vm
    assert vm.cmd("poll", "POLL") == "POLL None False"
    out = vm.cmd("print", "LINES")
    lines = json.loads(out[len("LINES "):])
    assert vm.expect("PRINTED") == "PRINTED None False"
    assert len(sim.receipts) == 1
    printed = sim.receipts[0]
    assert printed[:len(lines)] == lines, printed
    assert printed[len(lines):] == [""] * 4, "fed past the cutter"
    assert "CARD 476173******0010" in printed and not any("4761739001010010" in l for l in printed)
    assert sim.styled[0][1:] == ("center", True, (2, 2))
    assert sim.errors == []
    assert 1 in sim.queries and 4 in sim.queries


@pytest.mark.parametrize("fault,code", [
    ("paper_out", "HW-03"),
    ("cover_open", "HW-07"),
    ("fatal", "HW-04"),
    ("mech", "HW-04"),
    ("silent", "HW-09"),
])
def test_printer_faults_before_printing(printer_vm, fault, code):
    sim, vm = printer_vm
    {"paper_out": sim.set_paper_out, "cover_open": sim.set_cover_open, "fatal": sim.set_fatal,
     "mech": sim.set_mech_error, "silent": lambda: sim.set_responding(False)}[fault]()
    assert vm.cmd("poll", "POLL").startswith("POLL %s" % code)
    vm.cmd("print", "LINES")
    assert vm.expect("FAULT").startswith("FAULT %s" % code)
    assert sim.receipts == [] and sim.current == []
    sim.clear()
    sim.set_responding(True)
    assert vm.cmd("poll", "POLL") == "POLL None False", "fault cleared: ready again"
    vm.cmd("print", "LINES")
    vm.expect("PRINTED")
    assert len(sim.receipts) == 1


def test_paper_running_out_mid_receipt_is_hw03(printer_vm):
    sim, vm = printer_vm
    sim.paper_lines = 4
    vm.cmd("print", "LINES")
    assert vm.expect("FAULT").startswith("FAULT HW-03")
    assert sim.receipts == [], "no cut"
    assert len(sim.current) == 4


def test_cutter_jam_is_hw08(printer_vm):
    sim, vm = printer_vm
    sim.jam_next_cut()
    vm.cmd("print", "LINES")
    assert vm.expect("FAULT").startswith("FAULT HW-08")
    assert sim.receipts == [] and sim.current, "printed, not cut"
    assert vm.cmd("poll", "POLL").startswith("POLL HW-08")


def test_near_end_is_reported_and_printing_goes_on(printer_vm):
    sim, vm = printer_vm
    sim.set_near_end()
    vm.cmd("print", "LINES")
    assert vm.expect("PRINTED") == "PRINTED None True"


DISPLAY_VM = """
import sys, json
from payterm.hal.host_buses import PtyI2C
from payterm.errors import Fault

bus = PtyI2C(sys.argv[1], timeout_ms=150)
if sys.argv[2] == "ssd1306":
    from payterm.drivers.ssd1306 import SSD1306
    d = SSD1306(bus, 0x3C)
else:
    from payterm.drivers.hd44780 import HD44780
    d = HD44780(bus, 0x27)
print("READY")
while True:
    line = sys.stdin.readline()
    if not line.strip():
        break
    try:
        d.show(json.loads(line))
        print("SHOWN", bus.transactions)
    except Fault as f:
        print("FAULT", f.code, f.detail)
"""

SCREENS = [
    ["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU"],
    ["SALE EUR 12.50", "PRESENT CARD", "SWIPE OR TAP", "C:CANCEL"],
    ["INSUFFICIENT FUNDS", "ISS-51", "Insufficient", "balance. Please use"],
]


@pytest.mark.parametrize("kind,addr", [("hd44780", 0x27), ("ssd1306", 0x3C)])
def test_display_shows_what_show_was_given_and_nack_is_hw06(vms, kind, addr):
    m, s = openpty()
    dev = Hd44780Backpack() if kind == "hd44780" else Ssd1306()
    bus = I2CBusSim(m, {addr: dev}).start()
    try:
        vm = vms(DISPLAY_VM, os.ttyname(s), kind)
        for rows in SCREENS:
            vm.cmd(json.dumps(rows), "SHOWN")
            assert [r.rstrip() for r in dev.screen()] == rows
        assert dev.errors == [] and bus.errors == []
        before = len(bus.log)
        vm.cmd(json.dumps(SCREENS[-1][:3] + ["x"]), "SHOWN")
        assert len(bus.log) - before <= 2, "one changed row: one row write (and its window on the OLED)"
        bus.set_present(addr, False)
        out = vm.cmd(json.dumps(SCREENS[0]), "FAULT")
        assert out.startswith("FAULT HW-06") and ("0x%02x" % addr) in out, out
        bus.set_present(addr, True)
        vm.cmd(json.dumps(SCREENS[1]), "SHOWN")
        assert [r.rstrip() for r in dev.screen()] == SCREENS[1], "re-initialised and redrawn"
        bus.responding = False
        assert vm.cmd(json.dumps(SCREENS[0]), "FAULT").startswith("FAULT HW-06"), "no answer at all"
    finally:
        bus.stop()
        os.close(m)
        os.close(s)


KEYPAD_VM = """
import sys, asyncio, time
from payterm.hal.host_buses import PtyGpio
from payterm.drivers.keymatrix import KeyMatrix

def key(b):
    print("KEY", chr(b))

def fault(f):
    print("FAULT", f.code, f.detail)

async def main():
    g = PtyGpio(sys.argv[1])
    rows, cols = g.matrix(4, 4)
    km = KeyMatrix(rows, cols, time.ticks_ms, key, on_fault=fault, debounce_ms=15, stuck_ms=int(sys.argv[2]),
                   disable_irq=g.disable_irq, enable_irq=g.enable_irq)
    asyncio.create_task(g.run())
    t = asyncio.create_task(km.run())
    print("READY", cols[0].hard)
    await t

asyncio.run(main())
"""


@pytest.fixture
def keypad(vms):
    m, s = openpty()
    sim = KeypadSim(m).start()

    def start(stuck_ms=600):
        return vms(KEYPAD_VM, os.ttyname(s), stuck_ms)

    yield sim, start
    sim.stop()
    os.close(m)
    os.close(s)


def test_keypad_keys_arrive_once_each_even_when_bouncing(keypad):
    sim, start = keypad
    vm = start()
    sim.press("1250E")
    sim.press("C", bounce=3)
    sim.press("*#0F")
    got = "".join(vm.line(5).split()[1] for _ in range(10))
    assert got == "1250EC*#0F"
    time.sleep(0.2)
    assert vm.lines.empty(), "nothing extra: %r" % vm.lines.get()


def test_stuck_key_is_hw05_and_other_keys_still_work(keypad):
    sim, start = keypad
    vm = start(stuck_ms=400)
    sim.stick("5")
    assert vm.line() == "KEY 5"
    assert vm.line(3).startswith("FAULT HW-05 key 5 stuck")
    sim.press("46")  # same row as 5
    sim.press("28")  # same column as 5
    sim.press("9E")
    got = "".join(vm.line(5).split()[1] for _ in range(6))
    assert got == "46289E"
    sim.release("5")
    time.sleep(0.1)
    sim.press("5")
    assert vm.line() == "KEY 5", "works again once released"


def test_key_stuck_since_power_on_gives_hw05_and_no_key(keypad):
    sim, start = keypad
    sim.stick("E")
    time.sleep(0.1)
    vm = start(stuck_ms=300)
    assert vm.line(3).startswith("FAULT HW-05 key E stuck")
    sim.press("1")
    assert vm.line() == "KEY 1"


PANEL_VM = """
import sys, asyncio, time
from payterm.hal.host_buses import local_panel

async def main():
    p = local_panel(sys.argv[1], sys.argv[2], time.ticks_ms, display=sys.argv[3])
    p.on_fault = lambda f: print("FAULT", f.code)
    t = asyncio.create_task(p.run())
    p.led.set("busy")
    p.show(["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU"])
    print("READY")
    amount = ""
    while True:
        k = await p.key()
        p.beep()
        if k == "E":
            p.show(["SALE EUR %s" % amount, "PRESENT CARD", "SWIPE OR TAP", "C:CANCEL"])
            print("SALE", amount)
        else:
            amount += k
            p.status(amount)

asyncio.run(main())
"""


@pytest.mark.parametrize("kind", ["hd44780", "ssd1306"])
def test_local_panel_on_the_emulator_buses(vms, kind):
    im, is_ = openpty()
    gm, gs = openpty()
    panel = LocalPanelSim(im, gm, kind).start()
    try:
        vm = vms(PANEL_VM, os.ttyname(is_), os.ttyname(gs), kind)
        assert panel.display() == ["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU"]
        pad = panel.keypad

        def key(k, n):
            # Each key beeps, and the beep ends. The next key only after that: a key the VM takes while the
            # last beep still sounds restarts the tone, and two beeps without a gap are one to the ear (and
            # to the peer's count), which a loaded host's scheduling would otherwise decide.
            panel.press(k)
            assert pad.wait(lambda: pad.beeps >= n and pad.pwm.get(0, (0, 0))[1] == 0), (k, pad.beeps, pad.pwm)

        for n, k in enumerate("1250", 1):
            key(k, n)
        panel.wait_screen(r"^PAYTERM \| READY \| 1250 \| F:MENU$")
        key("E", 5)
        assert vm.expect("SALE") == "SALE 1250"
        panel.wait_screen(r"^SALE EUR 1250 \| PRESENT CARD")
        assert panel.expect(r"^D2 125$", 1) and panel.expect(r"^D0 SALE EUR 1250$", 1), panel.text()
        assert pad.beeps == 5, "one beep a key: %d" % pad.beeps
        assert pad.wait(lambda: panel.led() is not None), "the status LED blinks"
        panel.unplug_display()
        panel.press("7")
        assert vm.expect("FAULT") == "FAULT HW-06"
        panel.unplug_display(False)
        panel.press("E")
        panel.wait_screen(r"^SALE EUR 12507 \| PRESENT CARD")
        assert panel.errors() == []
    finally:
        panel.close()
        for fd in (im, is_, gm, gs):
            os.close(fd)

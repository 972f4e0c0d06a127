# runtimes: unix
"""HD44780 over a PCF8574 backpack: the port writes replayed as the LCD controller sees them.

LcdModel below follows the HD44780U datasheet, not the driver: it latches
on E falling edges, starts in 8-bit mode (one transfer per instruction)
until function set DL=0, then pairs nibbles, and keeps DDRAM with the
2-line address counter (0x27 -> 0x40, 0x67 -> 0x00).
"""
from fakepins import FakeI2C
from mpt import eq, raises

from payterm.drivers.hd44780 import HD44780
from payterm.errors import Fault

RS, E = 0x01, 0x04


class LcdModel:
    def __init__(self):
        self.prev = 0
        self.eight = True
        self.half = None
        self.init_nibbles = []
        self.commands = []
        self.ddram = bytearray(b" " * 128)
        self.ac = 0
        self.errors = []

    def feed(self, data):
        for v in data:
            if v & E and not self.prev & E and (v & RS) != (self.prev & RS):
                self.errors.append("RS changed as E rose")
            if self.prev & E and not v & E:
                if (v & RS) != (self.prev & RS):
                    self.errors.append("RS changed as E fell")
                self._latch(v & RS, v >> 4)
            self.prev = v

    def _latch(self, rs, n):
        if self.eight:
            self.init_nibbles.append(n)
            if not rs and n == 0x2:
                self.eight = False
            return
        if self.half is None:
            self.half = (rs, n)
            return
        r0, hi = self.half
        self.half = None
        if r0 != rs:
            self.errors.append("nibbles of one byte with different RS")
        b = hi << 4 | n
        if rs:
            self.ddram[self.ac] = b
            self.ac = {0x27: 0x40, 0x67: 0x00}.get(self.ac, self.ac + 1)
        else:
            self.commands.append(b)
            if b & 0x80:
                self.ac = b & 0x7F
            elif b == 0x01:
                for i in range(128):
                    self.ddram[i] = 0x20
                self.ac = 0

    def screen(self):
        return [bytes(self.ddram[o:o + 20]).decode() for o in (0x00, 0x40, 0x14, 0x54)]


class Sleeps:
    def __init__(self):
        self.log = []

    def ms(self, n):
        self.log.append(n * 1000)

    def us(self, n):
        self.log.append(n)


def _lcd(i2c=None):
    i2c = i2c or FakeI2C()
    s = Sleeps()
    return HD44780(i2c, 0x27, sleep_ms=s.ms, sleep_us=s.us), i2c, s


def test_init_follows_the_datasheet_4bit_sequence():
    lcd, i2c, s = _lcd()
    lcd.init()
    m = LcdModel()
    m.feed(i2c.data(0x27))
    eq(m.init_nibbles, [0x3, 0x3, 0x3, 0x2], "Figure 24: 3 x function set 8-bit, then 4-bit")
    eq(m.commands, [0x28, 0x08, 0x01, 0x06, 0x0C], "function set 2-line, off, clear, entry, on")
    eq(m.errors, [])
    # waits: > 40 ms power-on, > 4.1 ms, > 100 us, > 100 us, and 1.52 ms after clear
    assert s.log[0] >= 40000 and s.log[1] > 4100 and s.log[2] > 100 and s.log[3] > 100, s.log
    assert max(s.log[4:]) >= 1520, s.log
    assert all(b & 0x08 for b in i2c.data(0x27)), "backlight kept on"


def test_show_puts_each_row_at_its_ddram_offset():
    lcd, i2c, _ = _lcd()
    rows = ["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU 12345678901234"]
    lcd.show(rows)
    m = LcdModel()
    m.feed(i2c.data(0x27))
    eq(m.screen(), [r[:20] + " " * (20 - len(r[:20])) for r in rows])
    eq([c for c in m.commands if c & 0x80], [0x80, 0xC0, 0x94, 0xD4], "set DDRAM 0x00, 0x40, 0x14, 0x54")
    eq(m.errors, [])


def test_only_changed_rows_are_written_each_in_one_transaction():
    lcd, i2c, _ = _lcd()
    lcd.show(["A", "B", "C", "D"])
    n = len(i2c.writes)
    lcd.show(["A", "B", "X", "D"])
    eq(len(i2c.writes), n + 1, "one I2C write for the one changed row")
    eq(len(i2c.writes[-1][1]), 6 + 4 * 20)
    m = LcdModel()
    m.feed(i2c.data(0x27))
    eq(m.screen()[2], "X" + " " * 19)
    lcd.show(["A", "B", "X", "D"])
    eq(len(i2c.writes), n + 1, "nothing changed: nothing written")


def test_characters_outside_the_rom_become_question_marks():
    lcd, i2c, _ = _lcd()
    lcd.show(["EUR \u20ac 5", "tab\there"])
    m = LcdModel()
    m.feed(i2c.data(0x27))
    eq(m.screen()[:2], ["EUR ? 5" + " " * 13, "tab?here" + " " * 12])


def test_no_ack_is_hw06_and_the_next_show_starts_over():
    i2c = FakeI2C(present=())
    lcd, _, _ = _lcd(i2c)
    e = raises(Fault, lcd.show, ["HELLO"])
    eq(e.code, "HW-06")
    assert "0x27" in e.detail
    eq(lcd.ready, False)
    i2c.present.add(0x27)
    lcd.show(["HELLO"])
    m = LcdModel()
    m.feed(i2c.data(0x27))
    eq(m.init_nibbles, [3, 3, 3, 2], "re-initialised after the fault")
    eq(m.screen()[0], "HELLO" + " " * 15)


def test_cable_lost_mid_screen_is_hw06_and_rows_are_rewritten():
    lcd, i2c, _ = _lcd()
    lcd.show(["A", "B", "C", "D"])
    i2c.fail_after = 1
    eq(raises(Fault, lcd.show, ["1", "2", "3", "4"]).code, "HW-06")
    eq(lcd.shadow, [None] * 4, "what the LCD shows is unknown now")
    i2c.fail_after = None
    i2c.writes = []
    lcd.show(["1", "2", "3", "4"])
    m = LcdModel()
    m.feed(i2c.data(0x27))
    eq([r[0] for r in m.screen()], ["1", "2", "3", "4"])


def test_other_backpack_wiring():
    # e.g. RS=P6, RW=P5, E=P4, BL=P7, D4..D7=P0..P3
    i2c = FakeI2C()
    s = Sleeps()
    lcd = HD44780(i2c, 0x27, pins=(6, 5, 4, 7, 0, 1, 2, 3), sleep_ms=s.ms, sleep_us=s.us)
    lcd.show(["WIRED"])
    remap = bytearray(256)
    for v in range(256):
        # back to the default layout for the model: RS P0, E P2, BL P3, D4..D7 P4..P7
        remap[v] = (v >> 6 & 1) | (v >> 4 & 1) << 2 | (v >> 7 & 1) << 3 | (v & 0x0F) << 4
    m = LcdModel()
    m.feed(bytes(remap[v] for v in i2c.data(0x27)))
    eq(m.screen()[0], "WIRED" + " " * 15)
    eq(m.errors, [])

# runtimes: unix
"""SSD1306 driver: its I2C transactions replayed into a GDDRAM model, then read back as text.

OledModel follows the datasheet's I2C write format (control byte Co/D#C,
then commands or data) and horizontal addressing mode; it knows the
argument count of every command the driver may send and fails on others.
"""
from fakepins import FakeI2C
from mpt import eq, raises

from payterm.drivers import font5
from payterm.drivers.ssd1306 import SSD1306
from payterm.errors import Fault

ARGS = {0x81: 1, 0x8D: 1, 0x20: 1, 0x21: 2, 0x22: 2, 0xA8: 1, 0xD3: 1, 0xDA: 1, 0xD5: 1, 0xD9: 1, 0xDB: 1}
NOARG = (0xAE, 0xAF, 0xA0, 0xA1, 0xA4, 0xA5, 0xA6, 0xA7, 0xC0, 0xC8)


class OledModel:
    def __init__(self):
        self.ram = bytearray(1024)
        self.cmds = []
        self.col = (0, 127)
        self.page = (0, 7)
        self.c = 0
        self.p = 0
        self.on = False

    def transaction(self, data):
        ctrl = data[0]
        assert not ctrl & 0x80, "Co = 0: one control byte, then a stream"
        body = data[1:]
        if ctrl & 0x40:
            for b in body:
                self.ram[self.p * 128 + self.c] = b
                self.c += 1
                if self.c > self.col[1]:
                    self.c = self.col[0]
                    self.p = self.p + 1 if self.p < self.page[1] else self.page[0]
            return
        i = 0
        while i < len(body):
            op = body[i]
            if op in ARGS:
                n = ARGS[op]
                args = tuple(body[i + 1:i + 1 + n])
                assert len(args) == n, "arguments of 0x%02x cut off" % op
            elif op in NOARG or 0x40 <= op <= 0x7F:
                n, args = 0, ()
            else:
                raise AssertionError("unknown command 0x%02x" % op)
            self.cmds.append((op,) + args)
            if op == 0x21:
                self.col = args
                self.c = args[0]
            elif op == 0x22:
                self.page = args
                self.p = args[0]
            elif op in (0xAE, 0xAF):
                self.on = op == 0xAF
            i += 1 + n

    def pixel(self, x, y):
        return self.ram[(y // 8) * 128 + x] >> (y % 8) & 1

    def text(self, r):
        """Row r read back: 6-pixel cells from x=4 at y=16r+4, matched against the 5x8 glyphs."""
        out = ""
        for k in range(20):
            cols = bytes(sum(self.pixel(4 + 6 * k + j, 16 * r + 4 + b) << b for b in range(8)) for j in range(5))
            found = "?"
            for c in range(font5.FIRST, font5.LAST + 1):
                o = (c - font5.FIRST) * 5
                if bytes(font5.FONT[o:o + 5]) == cols:
                    found = chr(c)
                    break
            out += found
        return out.rstrip()


def _feed(i2c, model, start=0):
    for a, d in i2c.writes[start:]:
        if a == 0x3C:
            model.transaction(d)
    return len(i2c.writes)


def test_init_sequence_enables_the_charge_pump_and_clears_ram():
    i2c = FakeI2C()
    oled = SSD1306(i2c)
    oled.init()
    m = OledModel()
    _feed(i2c, m)
    ops = [c[0] for c in m.cmds]
    eq(ops[0], 0xAE, "display off first")
    eq(ops[-1], 0xAF, "display on last")
    for want in ((0x8D, 0x14), (0xA8, 63), (0x20, 0x00), (0xDA, 0x12), (0xA1,), (0xC8,)):
        assert want in m.cmds, want
    eq(bytes(m.ram), bytes(1024), "GDDRAM cleared")
    eq(m.on, True)


def test_rows_are_drawn_and_read_back():
    i2c = FakeI2C()
    oled = SSD1306(i2c)
    rows = ["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU #*/~ 12345678"]
    oled.show(rows)
    m = OledModel()
    _feed(i2c, m)
    eq(bytes(m.ram), bytes(oled.buf), "GDDRAM equals the frame buffer")
    eq([m.text(r) for r in range(4)], [r[:20] for r in rows])
    assert m.pixel(0, 0) == 0 and m.pixel(127, 63) == 0, "margins blank"


def test_only_changed_rows_are_sent_as_their_two_pages():
    i2c = FakeI2C()
    oled = SSD1306(i2c)
    oled.show(["A", "B", "C", "D"])
    m = OledModel()
    n = _feed(i2c, m)
    oled.show(["A", "B", "CHANGED", "D"])
    sent = i2c.writes[n:]
    eq(len(sent), 2, "window command, then the data")
    eq(sent[0][1], bytes((0x00, 0x21, 0, 127, 0x22, 4, 5)), "pages 4-5 hold row 2")
    eq(len(sent[1][1]), 1 + 256)
    _feed(i2c, m, n)
    eq(m.text(2), "CHANGED")
    eq(m.text(1), "B")
    oled.show(["A", "B", "CHANGED", "D"])
    eq(len(i2c.writes), n + 2, "nothing changed: nothing sent")


def test_unknown_characters_and_long_rows():
    i2c = FakeI2C()
    oled = SSD1306(i2c)
    oled.show(["\u20ac5", "x" * 30])
    m = OledModel()
    _feed(i2c, m)
    eq(m.text(0), "?5")
    eq(m.text(1), "x" * 20)


def test_no_ack_is_hw06_and_recovers():
    i2c = FakeI2C(present=())
    oled = SSD1306(i2c)
    e = raises(Fault, oled.show, ["X"])
    eq(e.code, "HW-06")
    assert "0x3c" in e.detail, e.detail
    i2c.present.add(0x3C)
    oled.show(["BACK"])
    m = OledModel()
    _feed(i2c, m)
    eq(m.text(0), "BACK")
    i2c.fail_after = 0
    eq(raises(Fault, oled.show, ["GONE"]).code, "HW-06")
    eq(oled.ready, False)

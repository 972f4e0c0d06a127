"""128x64 monochrome OLED: an SSD1306 on I2C, drawn through framebuf.

Reference: Solomon Systech SSD1306 datasheet rev 1.1: 8.1.5.2 I2C write
(control byte: Co bit 7, D/C# bit 6), 8.7 GDDRAM (8 pages of 128 column
bytes, bit 0 at the top), 10.1 fundamental / addressing / hardware
configuration commands, and the software initialisation flow chart of the
application note, with the charge pump (8Dh) enabled.

The panel protocol's 4 rows of 20 characters are drawn with the 5x8 font
(payterm.drivers.font5) in cells of 6x16 pixels from (4, 4): row r sits
at y = 16r + 4 and spans GDDRAM pages 2r and 2r + 1, so a changed row is
two pages in one write. Frame buffer and transfer buffers are allocated
once. No acknowledge from the display is HW-06.
"""
from micropython import const
import framebuf

from payterm.drivers import font5
from payterm.errors import Fault

_STAGE = "display"

_CTRL_CMD = const(0x00)  # 8.1.5.2: Co = 0, D/C# = 0: the remaining bytes are commands
_CTRL_DATA = const(0x40)  # Co = 0, D/C# = 1: the remaining bytes are GDDRAM data
# 10.1 commands
_DISPLAY_OFF = const(0xAE)
_DISPLAY_ON = const(0xAF)
_CLOCK_DIV = const(0xD5)  # display clock divide ratio / oscillator frequency
_MUX = const(0xA8)  # multiplex ratio
_OFFSET = const(0xD3)  # display offset
_START_LINE = const(0x40)  # display start line 0
_CHARGE_PUMP = const(0x8D)  # charge pump setting (application note), 0x14 enable
_ADDR_MODE = const(0x20)  # memory addressing mode, 0x00 horizontal
_SEG_REMAP = const(0xA1)  # column 127 -> SEG0 (upright on the usual module)
_COM_REMAP = const(0xC8)  # COM scan from COM[N-1] to COM0
_COM_PINS = const(0xDA)  # COM pins hardware configuration
_CONTRAST = const(0x81)
_PRECHARGE = const(0xD9)
_VCOMH = const(0xDB)
_RESUME = const(0xA4)  # output follows RAM
_NORMAL = const(0xA6)  # not inverted
_COL_ADDR = const(0x21)  # column address: start, end (horizontal mode)
_PAGE_ADDR = const(0x22)  # page address: start, end

ROW_Y0 = const(4)
ROW_PITCH = const(16)
CELL = const(6)  # 5 pixel glyph + 1 pixel gap
X0 = const(4)


class SSD1306:
    def __init__(self, i2c, addr=0x3C, width=128, height=64, rows=4, cols=20):
        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.nrows = rows
        self.cols = cols
        self.pages = height // 8
        self.buf = bytearray(width * self.pages)
        self.fb = framebuf.FrameBuffer(self.buf, width, height, framebuf.MONO_VLSB)
        self._glyph = bytearray(font5.WIDTH)
        self._gfb = framebuf.FrameBuffer(self._glyph, font5.WIDTH, 8, framebuf.MONO_VLSB)
        mv = memoryview(self.buf)
        # each text row: its two GDDRAM pages as one preallocated view
        self._row_mv = [mv[2 * r * width:(2 * r + 2) * width] for r in range(rows)]
        self._all = mv
        self._ctrl_data = bytes((_CTRL_DATA,))
        self._win = bytearray(7)  # control byte + column window + page window
        self._vec = [self._ctrl_data, None]
        self.shadow = [None] * rows  # type: list[str | None]
        self.ready = False

    # ------------------------------------------------------------ I2C
    def _fail(self, why):
        self.ready = False
        for i in range(self.nrows):
            self.shadow[i] = None
        raise Fault("HW-06", "no ACK from SSD1306 0x%02x (%s)" % (self.addr, why), _STAGE)

    def _commands(self, buf):
        try:
            n = self.i2c.writeto(self.addr, buf)
        except OSError as e:
            self._fail(e)
        if n is not None and n < len(buf):
            self._fail("%d of %d bytes" % (n, len(buf)))

    def _data(self, view):
        self._vec[1] = view
        try:
            n = self.i2c.writevto(self.addr, self._vec)
        except OSError as e:
            self._fail(e)
        if n is not None and n < len(view) + 1:
            self._fail("%d of %d bytes" % (n, len(view) + 1))

    def _window(self, page0, page1):
        w = self._win
        w[0] = _CTRL_CMD
        w[1] = _COL_ADDR
        w[2] = 0
        w[3] = self.width - 1
        w[4] = _PAGE_ADDR
        w[5] = page0
        w[6] = page1
        self._commands(w)

    # ------------------------------------------------------------ API
    def init(self):
        self.ready = False
        self._commands(bytes((
            _CTRL_CMD,
            _DISPLAY_OFF,
            _CLOCK_DIV, 0x80,  # reset value: divide 1, oscillator 8
            _MUX, self.height - 1,
            _OFFSET, 0x00,
            _START_LINE,
            _CHARGE_PUMP, 0x14,
            _ADDR_MODE, 0x00,
            _SEG_REMAP,
            _COM_REMAP,
            _COM_PINS, 0x12 if self.height == 64 else 0x02,  # alternative COM pins for 64 rows
            _CONTRAST, 0xCF,
            _PRECHARGE, 0xF1,  # phase 1: 1 DCLK, phase 2: 15 DCLK (internal charge pump)
            _VCOMH, 0x40,
            _RESUME,
            _NORMAL,
        )))
        self.fb.fill(0)
        self._window(0, self.pages - 1)
        self._data(self._all)
        self._commands(bytes((_CTRL_CMD, _DISPLAY_ON)))
        for i in range(self.nrows):
            self.shadow[i] = ""
        self.ready = True

    def _draw_row(self, r, text):
        fb = self.fb
        y = ROW_Y0 + ROW_PITCH * r
        fb.fill_rect(0, ROW_PITCH * r, self.width, ROW_PITCH, 0)
        g = self._glyph
        x = X0
        for ch in text:
            c = ord(ch)
            if c < font5.FIRST or c > font5.LAST:
                c = 0x3F  # '?'
            o = (c - font5.FIRST) * font5.WIDTH
            for k in range(font5.WIDTH):
                g[k] = font5.FONT[o + k]
            fb.blit(self._gfb, x, y)
            x += CELL

    def show(self, rows):
        """Show up to 4 rows of at most 20 characters; only changed rows are sent."""
        if not self.ready:
            self.init()
        for r in range(self.nrows):
            text = rows[r] if r < len(rows) else ""
            text = str(text)[: self.cols].rstrip()
            if text == self.shadow[r]:
                continue
            self._draw_row(r, text)
            self._window(2 * r, 2 * r + 1)
            self._data(self._row_mv[r])
            self.shadow[r] = text


def make(bus, spec, pins, hal):
    """Driver factory (payterm.hal.drivers): bus is the machine.I2C the entry names."""
    return SSD1306(bus, spec.get("addr", 0x3C), width=spec.get("width", 128), height=spec.get("height", 64))

"""Glyphs of the graphic display, for reading an SSD1306's GDDRAM back as text.

FONT8 is framebuf's built-in 8x8 font (MicroPython extmod/font_petme128_8x8,
MIT licence) as framebuf draws it: 8 column bytes a glyph, bit 0 at the top,
for 0x20..0x7E. derive() narrows it to the 5x8 font the firmware draws with
(firmware/payterm/drivers/font5.py); host_tests/tools/test_driver_peers.py
checks FONT8 against what the MicroPython runtime draws and the firmware's
table against derive().
"""
FIRST = 0x20
LAST = 0x7E

FONT8 = bytes.fromhex(
    "0000000000000000 0000004f4f000000 0007070000070700 147f7f14147f7f14 00242e6b6b3a1200 006333180c666300 00327f4d4d777250 0000000406030100"
    "00001c3e63410000 000041633e1c0000 082a3e1c1c3e2a08 0008083e3e080800 000080e060000000 0008080808080800 0000006060000000 00406030180c0602"
    "003e7f49457f3e00 0040447f7f404000 00627351494f4600 00226349497f3600 00181814167f7f10 00276745457d3900 003e7f49497b3200 000303797d070300"
    "00367f49497f3600 00266f49497f3e00 0000002424000000 000080e464000000 00081c3663414100 0014141414141400 00414163361c0800 00020351590f0600"
    "003e7f414d4f2e00 007c7e0b0b7e7c00 007f7f49497f3600 003e7f4141632200 007f7f41633e1c00 007f7f4949414100 007f7f0909010100 003e7f41497b3a00"
    "007f7f08087f7f00 0000417f7f410000 002060417f3f0100 007f7f1c36634100 007f7f4040404000 007f7f060c067f7f 007f7f0e1c7f7f00 003e7f41417f3e00"
    "007f7f09090f0600 001e3f21617f5e00 007f7f19396f4600 00266f49497b3200 0001017f7f010100 003f7f40407f3f00 001f3f60603f1f00 007f7f3018307f7f"
    "0063771c1c776300 00070f78780f0700 006171594d474300 00007f7f41410000 0002060c18306040 000041417f7f0000 00080c06060c0800 c0c0c0c0c0c0c0c0"
    "0000010306040000 00207454547c7800 007f7f44447c3800 00387c44446c2800 00387c44447f7f00 00387c54545c5800 00087e7f09030200 0098bca4a4fc7c00"
    "007f7f04047c7800 0000007d7d000000 0040c08080fd7d00 007f7f30386c4400 0000417f7f400000 007c7c1830187c7c 007c7c04047c7800 00387c44447c3800"
    "00fcfc24243c1800 00183c2424fcfc00 007c7c04040c0800 00485c5454742000 04043f7f44642000 003c7c40407c3c00 001c3c60603c1c00 001c7c3018307c1c"
    "00446c38386c4400 009cbca0a0fc7c00 004464745c4c4400 0008083e77414100 000000ffff000000 004141773e080800 0002030103020301"
)


def squeeze(cols, width=5):
    """An 8x8 glyph (8 column bytes, LSB at the top) narrowed to `width` columns."""
    cols = list(cols)
    while cols and cols[0] == 0:
        cols.pop(0)
    while cols and cols[-1] == 0:
        cols.pop()
    while len(cols) > width:
        n = len(cols)
        best = None
        for i in range(n - 1):  # a bold stroke is two equal columns: keep one, nearest the middle first
            if cols[i] == cols[i + 1]:
                d = abs(2 * i + 1 - (n - 1))
                if best is None or d < best[0]:
                    best = (d, i)
        if best is not None:
            del cols[best[1]]
            continue
        # no equal pair: merge the two neighbours that overlap most
        score = [(bin(cols[i] & cols[i + 1]).count("1"), -abs(2 * i + 1 - (n - 1)), i) for i in range(n - 1)]
        i = max(score)[2]
        cols[i:i + 2] = [cols[i] | cols[i + 1]]
    pad = width - len(cols)
    return [0] * (pad // 2) + cols + [0] * (pad - pad // 2)


def derive(font8=FONT8):
    """The 5x8 font: one 5-byte glyph per character, FIRST..LAST."""
    out = bytearray()
    for i in range(LAST - FIRST + 1):
        out += bytes(squeeze(font8[8 * i:8 * i + 8]))
    return bytes(out)


FONT5 = derive()
_BY_GLYPH = {FONT5[5 * i:5 * i + 5]: chr(FIRST + i) for i in range(LAST - FIRST + 1)}


def read_glyph(cols):
    """The character whose 5 column bytes these are, or None."""
    return _BY_GLYPH.get(bytes(cols))

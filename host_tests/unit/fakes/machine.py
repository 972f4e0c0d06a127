"""A stand-in for the ESP32 `machine` module, so the ESP32 HAL runs in the unix port.

Records what the HAL asked of the hardware; tests set pin levels, I2C replies and
the reset cause. Every public name not in FAKE_ONLY, and every signature, is
checked against micropython-esp32-stubs (host_tests/tools/test_hal_fakes.py):
a call the real module does not have fails there, so it cannot pass here.
MicroPython has no `/` syntax, so positional-only parameters are plain ones.
"""
FAKE_ONLY = ("FAKE_ONLY", "reset_cause_value", "pins", "pin_modes", "uarts", "wdts", "resets", "i2cs", "spis",
             "clear")

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

reset_cause_value = PWRON_RESET
pins = {}  # pin number -> level
pin_modes = {}  # pin number -> (mode, pull)
uarts = []
wdts = []
resets = []
i2cs = []
spis = []


def clear():
    global reset_cause_value
    reset_cause_value = PWRON_RESET
    for x in (pins, pin_modes):
        x.clear()
    for x in (uarts, wdts, resets, i2cs, spis):
        del x[:]


def reset_cause():
    return reset_cause_value


def reset():
    resets.append(1)


def _pin_id(p):
    return p.id if isinstance(p, Pin) else p


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        if mode != -1:
            pin_modes[id] = (mode, pull)
        pins.setdefault(id, 1)
        if value is not None:
            pins[id] = 1 if value else 0

    def value(self, x=None):
        if x is None:
            return pins[self.id]
        pins[self.id] = 1 if x else 0


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, *, tx=None, rx=None, txbuf=None,
                 rxbuf=None, timeout=None, timeout_char=None):
        self.id = id
        self.kw = {"baudrate": baudrate, "tx": _pin_id(tx), "rx": _pin_id(rx), "rxbuf": rxbuf, "timeout": timeout}
        self.written = bytearray()
        self.incoming = bytearray()
        uarts.append(self)

    def write(self, buf):
        self.written += buf
        return len(buf)

    def read(self, nbytes=-1):
        if not self.incoming:
            return None
        n = len(self.incoming) if nbytes < 0 else nbytes
        out = bytes(self.incoming[:n])
        self.incoming = self.incoming[n:]
        return out

    def any(self):
        return len(self.incoming)


class I2C:
    def __init__(self, id, *, scl, sda, freq=400000, timeout=50000):
        self.id = id
        self.scl = _pin_id(scl)
        self.sda = _pin_id(sda)
        self.freq = freq
        self.devices = {}  # address -> bytearray of what was written
        i2cs.append(self)

    def scan(self):
        return sorted(self.devices)

    def writeto(self, addr, buf, stop=True):
        if addr not in self.devices:
            raise OSError(19)  # ENODEV: no ACK from that address
        self.devices[addr] += buf
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        if addr not in self.devices:
            raise OSError(19)
        return bytes(nbytes)


class SPI:
    def __init__(self, id, baudrate=1000000, *, polarity=0, phase=0, bits=8, sck=None, mosi=None, miso=None):
        self.id = id
        self.baudrate = baudrate
        self.pins = (_pin_id(sck), _pin_id(mosi), _pin_id(miso))
        spis.append(self)


class WDT:
    def __init__(self, *, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        wdts.append(self)

    def feed(self):
        self.feeds += 1

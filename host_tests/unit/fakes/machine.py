"""A stand-in for the ESP32 `machine` module, so the ESP32 HAL runs in the unix port.

Records what the HAL asked of the hardware; tests set pin levels and the reset cause.
"""
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

reset_cause_value = PWRON_RESET
pins = {}
uarts = []
wdts = []
resets = []


def reset_cause():
    return reset_cause_value


def reset():
    resets.append(1)


class Pin:
    IN = 1
    OUT = 2

    def __init__(self, n, mode=None):
        self.n = n
        pins.setdefault(n, 1)

    def value(self, v=None):
        if v is None:
            return pins[self.n]
        pins[self.n] = v


class UART:
    def __init__(self, uid, **kw):
        self.id = uid
        self.kw = kw
        self.written = bytearray()
        uarts.append(self)

    def write(self, b):
        self.written += b
        return len(b)

    def read(self, n=-1):
        return None


class WDT:
    def __init__(self, timeout):
        self.timeout = timeout
        self.feeds = 0
        wdts.append(self)

    def feed(self):
        self.feeds += 1

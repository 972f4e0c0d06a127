"""A stand-in for the ESP32 `machine` module, so the ESP32 HAL runs in the unix port.

Records what the HAL asked of the hardware; tests set pin levels, I2C replies and
the reset cause. Every public name not in FAKE_ONLY, and every signature, is
checked against micropython-esp32-stubs (host_tests/tools/test_hal_fakes.py):
a call the real module does not have fails there, so it cannot pass here.
MicroPython has no `/` syntax, so positional-only parameters are plain ones.
"""
FAKE_ONLY = ("FAKE_ONLY", "reset_cause_value", "pins", "pin_modes", "uarts", "wdts", "resets", "i2cs", "spis",
             "pwms", "switches", "irq_pins", "irq_state", "close_switch", "open_switch", "clear")

import io

import micropython

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
pwms = []
switches = set()  # (output pin, input pin) joined by a closed switch (a key of a matrix)
irq_pins = {}  # pin number -> Pin with an IRQ handler
irq_state = [0, []]  # disable_irq nesting, IRQs pending until enable_irq
_levels = {}


def clear():
    global reset_cause_value
    reset_cause_value = PWRON_RESET
    for x in (pins, pin_modes, switches, irq_pins, _levels):
        x.clear()
    for x in (uarts, wdts, resets, i2cs, spis, pwms):
        del x[:]
    irq_state[0] = 0
    del irq_state[1][:]


def disable_irq():
    irq_state[0] += 1
    return irq_state[0] - 1


def enable_irq(state):
    irq_state[0] = state
    while not irq_state[0] and irq_state[1]:
        _fire(irq_state[1].pop(0))


def _level(n):
    """An input pin: low when a closed switch joins it to an output driven low, else its pull-up."""
    for (o, i) in switches:
        if i == n and pin_modes.get(o, (0, 0))[0] == Pin.OUT and pins.get(o, 1) == 0:
            return 0
    return 1


def _fire(p):
    if p.hard:  # a hard IRQ runs with the heap locked, as on the ESP32
        micropython.heap_lock()
        try:
            p.handler(p)
        finally:
            micropython.heap_unlock()
    else:
        p.handler(p)


def _edges():
    for n, p in irq_pins.items():
        lv = _level(n)
        if _levels.get(n, 1) == 1 and lv == 0 and p.trigger & Pin.IRQ_FALLING:
            if irq_state[0]:
                irq_state[1].append(p)
            else:
                _fire(p)
        _levels[n] = lv


def close_switch(out_pin, in_pin):
    switches.add((out_pin, in_pin))
    _edges()


def open_switch(out_pin, in_pin):
    switches.discard((out_pin, in_pin))
    _edges()


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
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        self.handler = None
        self.trigger = 0
        self.hard = False
        pins.setdefault(id, 1)
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if mode != -1:
            pin_modes[self.id] = (mode, pull)
        if value is not None:
            self.value(value)

    def value(self, x=None):
        if x is None:
            if pin_modes.get(self.id, (0, 0))[0] == Pin.IN and switches:
                return _level(self.id) & pins[self.id]
            return pins[self.id]
        pins[self.id] = 1 if x else 0
        if switches:
            _edges()

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
        self.handler = handler
        self.trigger = trigger
        self.hard = hard
        if handler is None:
            irq_pins.pop(self.id, None)
        else:
            irq_pins[self.id] = self
            _levels[self.id] = self.value()


class PWM:
    def __init__(self, dest, *, freq=None, duty_u16=None, duty_ns=None, invert=False):
        self.pin = _pin_id(dest)
        self.f = freq
        self.d = duty_u16
        self.log = []  # (freq, duty_u16) after each change
        pwms.append(self)

    def freq(self, value=None):
        if value is None:
            return self.f
        self.f = value
        self.log.append((self.f, self.d))

    def duty_u16(self, value=None):
        if value is None:
            return self.d
        self.d = value
        self.log.append((self.f, self.d))


class UART(io.IOBase):
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, *, tx=None, rx=None, txbuf=None,
                 rxbuf=None, timeout=None, timeout_char=None):
        self.id = id
        self.kw = {"baudrate": baudrate, "tx": _pin_id(tx), "rx": _pin_id(rx), "rxbuf": rxbuf, "timeout": timeout}
        self.written = bytearray()
        self.incoming = bytearray()
        self.peer = None  # the device on the line: peer(bytes written) -> bytes it answers
        uarts.append(self)

    def write(self, buf):
        self.written += buf
        if self.peer is not None:
            self.incoming += self.peer(bytes(buf))
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


def _uart_poll(self, req, arg):
    # The real UART is a stream the asyncio poller can wait on (its C stream protocol, which
    # the stubs do not show as a method); a Python class gets that from io.IOBase + ioctl.
    if req == 3:  # MP_STREAM_POLL: always writable, readable when bytes came in
        return (arg & 4) | (arg & 1 if self.incoming else 0)
    return 0


UART.ioctl = _uart_poll


class I2C:
    def __init__(self, id, *, scl, sda, freq=400000, timeout=50000):
        self.id = id
        self.scl = _pin_id(scl)
        self.sda = _pin_id(sda)
        self.freq = freq
        self.devices = {}  # address -> bytearray of what was written
        self.peers = {}  # address -> device model with write(buf) and read(n) (e.g. a key expander)
        i2cs.append(self)

    def scan(self):
        return sorted(self.devices)

    def writeto(self, addr, buf, stop=True):
        if addr not in self.devices:
            raise OSError(19)  # ENODEV: no ACK from that address
        self.devices[addr] += buf
        peer = self.peers.get(addr)
        if peer is not None:
            peer.write(buf)
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        if addr not in self.devices:
            raise OSError(19)
        peer = self.peers.get(addr)
        return peer.read(nbytes) if peer is not None else bytes(nbytes)

    def readfrom_into(self, addr, buf, stop=True):
        data = self.readfrom(addr, len(buf), stop)
        for i in range(len(buf)):
            buf[i] = data[i]

    def writevto(self, addr, vector, stop=True):
        n = 0
        for b in vector:
            n += self.writeto(addr, b, stop)
        return n


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

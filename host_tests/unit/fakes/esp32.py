"""A stand-in for the ESP32 `esp32` module: RMT channels that record the pulses they sent.

Signatures are those of micropython-esp32-stubs (host_tests/tools/test_hal_fakes.py).
"""
FAKE_ONLY = ("FAKE_ONLY", "rmts", "clear")

rmts = []


def clear():
    del rmts[:]


class RMT:
    PULSE_MAX = 32767

    def __init__(self, id=-1, *, pin, resolution_hz=None, clock_div=None, idle_level=False, tx_carrier=None,
                 num_symbols=48):
        self.id = id
        self.pin = pin.id
        self.resolution_hz = resolution_hz
        self.idle_level = idle_level
        self.sent = []  # (durations, start level) per write_pulses
        self.busy = 0  # wait_done() calls that still answer False
        rmts.append(self)

    def write_pulses(self, duration, data=True):
        for d in duration:
            if not 0 < d <= self.PULSE_MAX:
                raise ValueError("pulse duration out of range")
        self.sent.append((list(duration), data))

    def wait_done(self, *, timeout=0):
        if self.busy:
            self.busy -= 1
            return False
        return True

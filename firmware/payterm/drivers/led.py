"""Status LED on a GPIO: steady or blinking patterns, run by the LED's own task.

A pattern is a tuple of alternating on/off durations in ms, repeated;
() is off, None is steady on. The HAL hands over the Pin (active high, or
`invert=True` for an LED wired to Vcc).
"""
import time

PATTERNS = {
    "off": (),
    "on": None,
    "ready": (100, 1900),  # short blink every 2 s: powered and idle
    "busy": (250, 250),  # transaction in progress
    "fault": (100, 100, 100, 700),  # double blink: a hardware fault is logged
}


class StatusLed:
    def __init__(self, pin, ticks, invert=False):
        self.pin = pin
        self.ticks = ticks
        self.invert = invert
        self.name = "off"
        self._pat = ()
        self._t0 = ticks()
        self._wake = None
        self._put(0)

    def _put(self, on):
        self.level = 1 if on else 0
        self.pin.value(self.level ^ (1 if self.invert else 0))

    def set(self, name):
        """Switch to a pattern of PATTERNS by name; unknown names are a programming error."""
        pat = PATTERNS[name]
        if name == self.name:
            return
        self.name = name
        self._pat = pat
        self._t0 = self.ticks()
        self.step(self._t0)
        if self._wake is not None:
            self._wake.set()

    def step(self, now):
        """Drive the pin for time `now`; ms until the next change, or None when steady."""
        pat = self._pat
        if pat is None or not pat:
            self._put(pat is None)
            return None
        period = 0
        for d in pat:
            period += d
        t = time.ticks_diff(now, self._t0) % period
        for i in range(len(pat)):
            if t < pat[i]:
                self._put(i % 2 == 0)
                return pat[i] - t
            t -= pat[i]
        return 1

    async def run(self):
        import asyncio

        self._wake = asyncio.Event()
        while True:
            left = self.step(self.ticks())
            self._wake.clear()
            if left is None:
                await self._wake.wait()
            else:
                try:
                    await asyncio.wait_for_ms(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    pass


def make(bus, spec, pins, hal):
    """Driver factory (payterm.hal.drivers): bus is the output machine.Pin of a "gpio" entry."""
    return StatusLed(bus, hal.ticks, invert=bool(spec.get("invert", False)))

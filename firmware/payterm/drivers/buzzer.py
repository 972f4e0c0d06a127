"""Piezo buzzer on a PWM pin: `beep()` starts a tone, the buzzer's task ends it on time.

The PWM object comes from the HAL (machine.PWM on the device); only
freq() and duty_u16() are used. A passive piezo sounds loudest near its
resonance (2.7 kHz for the usual 12 mm part), at 50 % duty.
"""
from micropython import const
import time

_FREQ = const(2700)  # Hz
_DUTY_ON = const(32768)  # 50 % of duty_u16's 0..65535
_BEEP_MS = const(80)

ERROR = ((80, 2000, 60), (80, 2000, 0))  # two low beeps


class Buzzer:
    def __init__(self, pwm, ticks, freq=_FREQ, ms=_BEEP_MS):
        self.pwm = pwm
        self.ticks = ticks
        self.freq = freq
        self.ms = ms
        self.on = False
        self.beeps = 0
        self._steps = []  # (ms, freq) still to play; freq 0 is silence
        self._due = None  # when the current step ends
        self._wake = None
        pwm.duty_u16(0)

    def beep(self, ms=None, freq=None):
        """Sound for `ms` (default 80 ms); a new beep replaces what is playing."""
        self.play(((ms or self.ms, freq or self.freq),))

    def pattern(self, tones):
        """Play (ms, freq, gap_ms) tones in turn, e.g. ERROR."""
        steps = []
        for ms, freq, gap in tones:
            steps.append((ms, freq))
            if gap:
                steps.append((gap, 0))
        self.play(steps)

    def play(self, steps):
        self._steps = list(steps)
        self._advance(self.ticks())
        if self._wake is not None:
            self._wake.set()

    def _advance(self, now):
        if not self._steps:
            self.pwm.duty_u16(0)
            self.on = False
            self._due = None
            return
        ms, freq = self._steps.pop(0)
        if freq:
            self.pwm.freq(freq)
            self.pwm.duty_u16(_DUTY_ON)
            self.on = True
            self.beeps += 1
        else:
            self.pwm.duty_u16(0)
            self.on = False
        self._due = time.ticks_add(now, ms)

    def step(self, now):
        """End the steps that are due; ms until the next one ends, or None when silent."""
        while self._due is not None and time.ticks_diff(self._due, now) <= 0:
            self._advance(self._due)
        return None if self._due is None else time.ticks_diff(self._due, now)

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
    """Driver factory (payterm.hal.drivers): bus is the machine.PWM of a "pwm" entry, silent."""
    return Buzzer(bus, hal.ticks, freq=spec.get("freq", _FREQ))

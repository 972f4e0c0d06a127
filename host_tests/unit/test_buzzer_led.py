# runtimes: unix
"""Buzzer and status LED: tones and blink patterns on time, with fake PWM/pins and a hand-moved clock."""
import asyncio
import time

from fakepins import FakePin, FakePWM
from mpt import FakeClock, eq

from payterm.drivers.buzzer import ERROR, Buzzer
from payterm.drivers.led import StatusLed


def test_beep_sounds_for_its_duration():
    pwm = FakePWM()
    c = FakeClock(100)
    b = Buzzer(pwm, c)
    eq(pwm.duty, 0, "silent after construction")
    b.beep()
    eq((pwm.f, pwm.duty, b.on), (2700, 32768, True))
    eq(b.step(c.advance(79)), 1)
    eq(pwm.duty, 32768)
    eq(b.step(c.advance(1)), None)
    eq((pwm.duty, b.on), (0, False))
    b.beep(200, 1000)
    eq(pwm.f, 1000)
    eq(b.step(c.advance(150)), 50)


def test_error_pattern_is_two_beeps_with_a_gap():
    pwm = FakePWM()
    c = FakeClock(0)
    b = Buzzer(pwm, c)
    b.pattern(ERROR)
    seen = []
    for _ in range(300):
        b.step(c.advance(1))
        seen.append(1 if pwm.duty else 0)
    on = [i for i, v in enumerate(seen) if v]
    eq(b.beeps, 2)
    eq(len(on), 79 + 80, "80 ms each (the first millisecond sounded before the loop)")
    eq(seen[79:139], [0] * 60, "60 ms gap (seen[i] is the level at t = i + 1)")
    eq(seen[139], 1)


async def test_buzzer_task_ends_the_tone():
    pwm = FakePWM()
    b = Buzzer(pwm, time.ticks_ms)
    t = asyncio.create_task(b.run())
    await asyncio.sleep_ms(5)
    b.beep(40)
    await asyncio.sleep_ms(20)
    eq(pwm.duty, 32768)
    await asyncio.sleep_ms(40)
    eq(pwm.duty, 0)
    t.cancel()


def test_led_patterns():
    pin = FakePin("LED")
    c = FakeClock(0)
    led = StatusLed(pin, c)
    eq(pin.out, 0)
    led.set("on")
    eq((pin.out, led.step(c())), (1, None))
    led.set("busy")
    levels = []
    for _ in range(1000):
        led.step(c.advance(1))
        levels.append(pin.out)
    eq(sum(levels), 500, "250 on / 250 off")
    led.set("fault")
    seq = []
    for _ in range(1000):
        led.step(c.advance(1))
        seq.append(pin.out)
    eq(sum(seq), 200, "two 100 ms blinks a second")
    led.set("off")
    eq(pin.out, 0)


def test_inverted_led():
    pin = FakePin("LED")
    led = StatusLed(pin, FakeClock(0), invert=True)
    eq(pin.out, 1, "off is high for an LED wired to Vcc")
    led.set("on")
    eq(pin.out, 0)

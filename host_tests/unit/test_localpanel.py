# runtimes: unix
"""LocalPanel: the HD44780/SSD1306, keypad matrix and buzzer drivers behind the Panel interface.

Real drivers on fake buses: what the cashier flow shows is read back from
the LCD controller model, keys come from switch closures on the fake matrix.
"""
import asyncio
import time

from fakepins import FakeI2C, FakeMatrix, FakePWM
from mpt import eq
from test_hd44780 import LcdModel

from payterm.drivers.buzzer import Buzzer
from payterm.drivers.hd44780 import HD44780
from payterm.drivers.keymatrix import KeyMatrix
from payterm.ui.localpanel import LocalPanel


def _nosleep(n):
    pass


def _panel(i2c=None, **kw):
    i2c = i2c or FakeI2C()
    m = FakeMatrix()
    pwm = FakePWM()
    lcd = HD44780(i2c, 0x27, sleep_ms=_nosleep, sleep_us=_nosleep)
    km = KeyMatrix(m.rows, m.cols, time.ticks_ms, debounce_ms=10, scan_ms=2, stuck_ms=kw.pop("stuck_ms", 300),
                   disable_irq=m.disable_irq, enable_irq=m.enable_irq)
    faults = []
    p = LocalPanel(lcd, km, Buzzer(pwm, time.ticks_ms), on_fault=faults.append)
    return p, i2c, m, pwm, faults


def _screen(i2c):
    lm = LcdModel()
    lm.feed(i2c.data(0x27))
    return [r.rstrip() for r in lm.screen()]


def test_show_and_status_reach_the_lcd():
    p, i2c, _, _, _ = _panel()
    p.show(["SALE EUR 12.50", "PRESENT CARD", "SWIPE OR TAP", "C:CANCEL", "dropped row"])
    eq(p.rows, ["SALE EUR 12.50", "PRESENT CARD", "SWIPE OR TAP", "C:CANCEL"])
    p.status("WAITING FOR HOST AND MORE")
    eq(p.rows[2], "WAITING FOR HOST AND")
    eq(_screen(i2c), ["SALE EUR 12.50", "PRESENT CARD", "WAITING FOR HOST AND", "C:CANCEL"])
    p.show(["ONE"])
    eq(_screen(i2c), ["ONE", "", "", ""])


async def test_keys_from_the_matrix_and_timeouts():
    p, _, m, _, _ = _panel()
    t = asyncio.create_task(p.run())
    await asyncio.sleep_ms(10)
    eq(await p.key(30), None, "no key: timeout")
    for k in "12E":
        m.press(k)
        await asyncio.sleep_ms(60)
        m.release(k)
        await asyncio.sleep_ms(40)
    got = []
    for _ in range(3):
        got.append(await p.key(100))
    eq(got, ["1", "2", "E"])
    m.press("C")
    await asyncio.sleep_ms(25)
    m.release("C")
    await asyncio.sleep_ms(25)
    p.clear_keys()
    eq(await p.key(30), None, "cleared")
    t.cancel()


async def test_stuck_key_is_reported_and_counted_as_dropped():
    p, _, m, _, faults = _panel(stuck_ms=150)
    t = asyncio.create_task(p.run())
    await asyncio.sleep_ms(10)
    m.press("5")
    await asyncio.sleep_ms(400)
    eq([f.code for f in faults], ["HW-05"])
    eq(p.dropped, 1, "the keypad self-test sees it")
    m.press("9")
    await asyncio.sleep_ms(60)
    m.release("9")
    eq([await p.key(100), await p.key(100)], ["5", "9"], "the first press of 5, then 9 despite the stuck 5")
    t.cancel()


async def test_beep_sounds_the_buzzer_and_its_task_stops_it():
    p, _, _, pwm, _ = _panel()
    t = asyncio.create_task(p.run())
    await asyncio.sleep_ms(5)
    p.beep()
    eq(pwm.duty, 32768)
    await asyncio.sleep_ms(120)
    eq(pwm.duty, 0)
    t.cancel()


def test_display_fault_is_reported_once_and_the_screen_kept():
    i2c = FakeI2C(present=())
    p, _, _, _, faults = _panel(i2c)
    p.show(["A"])
    p.show(["B"])
    p.status("C")
    eq([f.code for f in faults], ["HW-06"], "once per episode")
    eq(p.rows, ["B", "", "C", ""], "rows kept for the console")
    i2c.present.add(0x27)
    p.show(["BACK"])
    eq(_screen(i2c), ["BACK", "", "", ""])
    i2c.present.discard(0x27)
    p.show(["AGAIN"])
    eq([f.code for f in faults], ["HW-06", "HW-06"], "a new episode after recovery")


async def test_technician_menu_runs_unchanged_on_the_local_panel():
    # the flows take a panel: the LCD and the keypad matrix stand in for the panel UART
    from mpt import FakeClock, tmpdir
    from payterm.diag import Diag
    from payterm.diag.pin import PinGate
    from payterm.diag.selftest import SelfTests
    from payterm.ui.techmenu import TechMenu

    p, i2c, m, _, _ = _panel()
    d = tmpdir("lp_tech")
    dg = Diag(d, lambda: 1700000000, FakeClock())
    gate = PinGate(d + "/pin.json", "4321", lambda: 1700000000)
    menu = TechMenu(p, p.key, dg, SelfTests(dg), gate.check, lambda: {"version": "0.1.0", "board": "S3"})
    t = asyncio.create_task(p.run())
    done = asyncio.create_task(menu.run())
    await asyncio.sleep_ms(20)
    eq(_screen(i2c)[:2], ["TECHNICIAN", "ENTER PIN:"])
    for k in "4321":
        m.press(k)
        await asyncio.sleep_ms(40)
        m.release(k)
        await asyncio.sleep_ms(40)
    eq(_screen(i2c)[2], "****")
    m.press("E")
    await asyncio.sleep_ms(40)
    m.release("E")
    await asyncio.sleep_ms(60)
    assert _screen(i2c)[0].startswith("1/"), _screen(i2c)
    m.press("C")
    await asyncio.sleep_ms(40)
    m.release("C")
    eq(await asyncio.wait_for_ms(done, 1000), True)
    eq(_screen(i2c), ["", "", "", ""])
    t.cancel()


def test_failed_display_is_retried_at_most_every_retry_ms():
    from mpt import FakeClock

    i2c = FakeI2C(present=())
    c = FakeClock(0)
    lcd = HD44780(i2c, 0x27, sleep_ms=_nosleep, sleep_us=_nosleep)
    tries = []
    orig = lcd.show

    def show(rows):
        tries.append(1)
        orig(rows)

    lcd.show = show
    faults = []
    p = LocalPanel(lcd, on_fault=faults.append, ticks=c, retry_ms=1000)
    p.show(["A"])
    p.show(["B"])
    c.advance(500)
    p.status("C")
    eq(len(tries), 1, "no retry within retry_ms")
    i2c.present.add(0x27)
    c.advance(600)
    p.show(["D"])
    eq(len(tries), 2)
    eq(_screen(i2c), ["D", "", "", ""])
    eq([f.code for f in faults], ["HW-06"])


async def test_display_back_is_redrawn_without_a_new_screen():
    i2c = FakeI2C(present=())
    lcd = HD44780(i2c, 0x27, sleep_ms=_nosleep, sleep_us=_nosleep)
    p = LocalPanel(lcd, ticks=time.ticks_ms, retry_ms=50)
    t = asyncio.create_task(p.run())
    p.show(["WAITING FOR HOST"])
    i2c.present.add(0x27)
    await asyncio.sleep_ms(150)
    eq(_screen(i2c)[0], "WAITING FOR HOST")
    eq(p.display_ok, True)
    t.cancel()

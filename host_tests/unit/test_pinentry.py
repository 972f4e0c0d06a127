"""Cardholder PIN entry (payterm.ui.pinentry): when a sale asks for a PIN, and the keypad screen.

The panel is the real Panel (no stream: what it would draw stays in `rows`),
keys pushed as the keypad task would; a recorder keeps every screen drawn.
"""
import asyncio

from mpt import eq

from payterm.ui import pinentry
from payterm.ui.panel import Panel


class Card:
    def __init__(self, source="swipe", service_code="101", aid="", cvm=None):
        self.source = source
        self.service_code = service_code
        self.aid = aid
        self.masked = "476173******0036"
        if cvm is not None:
            self.cvm = cvm


class Recording(Panel):
    def __init__(self):
        super().__init__(None)
        self.screens = []
        self.beeps = 0

    def show(self, rows):
        super().show(rows)
        self.screens.append(list(self.rows))

    def beep(self):
        self.beeps += 1


CFG = {"pin_timeout_ms": 300, "pin_debit": False}


async def _enter(keys, cfg=CFG, gap_ms=0):
    p = Recording()

    async def typist():
        for k in keys:
            await asyncio.sleep_ms(gap_ms or 5)
            p.push(ord(k))

    t = asyncio.create_task(typist())
    r = await pinentry.enter(p, cfg, "SALE EUR 10.00")
    t.cancel()
    return r, p


def test_required_by_service_code_cvm_and_debit_switch():
    req = pinentry.required
    eq(req(Card(service_code="101"), CFG), False, "visa: no PIN")
    for sc in ("120", "105", "106", "127"):
        eq(req(Card(service_code=sc), CFG), True, sc)
    for sc in ("101", "121", "201", "102"):
        eq(req(Card(service_code=sc), CFG), False, sc)
    eq(req(Card("tap", "120"), CFG), False, "a tap decides by its CVM, not the stripe's code")
    eq(req(Card("tap", "201", cvm="online_pin"), CFG), True)
    for cvm in ("none", "signature", "cdcvm"):
        eq(req(Card("tap", "201", cvm=cvm), CFG), False, cvm)
    eq(req(Card("tap", "201"), CFG), False, "no cvm attribute counts as none")
    maestro = Card("tap", "201", aid="A0000000043060")
    eq(req(maestro, CFG), False)
    eq(req(maestro, {"pin_debit": True}), True, "PIN on every debit")
    eq(req(Card("tap", "201", aid="A0000000031010"), {"pin_debit": True}), False, "credit")


async def test_one_star_per_digit_and_the_digits_come_back_in_a_fresh_bytearray():
    r, p = await _enter("2580E")
    eq(r, bytearray(b"2580"))
    rows = [s[2] for s in p.screens]
    eq(rows, ["_", "*", "**", "***", "****"])
    for s in p.screens:
        eq(s[1], "ENTER PIN")
        for row in s:
            for d in "0258":
                assert d not in row.replace("10.00", ""), (row, "a digit shown")
    eq(pinentry._buf, bytearray(12), "entry buffer zeroed")


async def test_backspace_and_clear():
    r, p = await _enter("123B4CC")
    eq(r, "PIN-04", "C on an empty entry cancels")
    eq([s[2] for s in p.screens], ["_", "*", "**", "***", "**", "***", "_"])
    r, p = await _enter("99C1357E")
    eq(r, bytearray(b"1357"), "C cleared, then a new PIN")
    r, p = await _enter("B1234B5E")
    eq(r, bytearray(b"1235"), "B on nothing does nothing")


async def test_four_to_twelve_digits():
    r, p = await _enter("123E4E")
    eq(r, bytearray(b"1234"))
    eq(p.screens[4][1], "PIN: 4 TO 12 DIGITS", "E with 3 digits says why and waits")
    eq(p.beeps, 1)
    r, p = await _enter("1234567890123E")
    eq(r, bytearray(b"123456789012"), "the 13th digit is refused")
    eq(p.screens[-1][2], "*" * 12)


async def test_timeout_cancels():
    r, p = await _enter("12", gap_ms=5)
    eq(r, "PIN-03")
    eq(pinentry._buf, bytearray(12))


async def test_keypad_queue_memory_is_overwritten_after_entry():
    p = Recording()
    for k in "4321E":
        p.push(ord(k))
    r = await pinentry.enter(p, CFG, "")
    eq(r, bytearray(b"4321"))
    ring = getattr(p._keys._q, "_buf", None)
    if ring is not None:  # the pure-Python queue (the C module's ring is not reachable)
        for b in ring:
            assert not 0x31 <= b <= 0x34, "a PIN digit left in the key queue"
    eq(len(p._keys), 0)


async def test_ask_skips_refunds_and_cards_without_pin_and_wipes_a_card_on_cancel():
    events = []

    class App:
        cfg = CFG

        def __init__(self):
            self.panel = Recording()
            self.diag = self

        def event(self, text):
            events.append(text)

        def fault(self, code, stage="", ctx=""):
            events.append("fault " + code)

    class Wipeable(Card):
        wiped = False

        def wipe(self):
            self.wiped = True

    app = App()
    eq(await pinentry.ask(app, "refund", Wipeable(service_code="120")), None)
    eq(await pinentry.ask(app, "sale", Wipeable(service_code="101")), None)
    eq(events, [])
    c = Wipeable(service_code="120")
    app.panel.push(ord("C"))
    eq(await pinentry.ask(app, "sale", c), "PIN-04")
    eq(c.wiped, True)
    eq(events, ["PIN REQUIRED", "fault PIN-04"])
    # a practice sale in training mode: marked, and a failed entry is no fault of the terminal's
    del events[:]
    c = Wipeable(service_code="120")
    app.panel.push(ord("C"))
    eq(await pinentry.ask(app, "sale", c, training=True), "PIN-04")
    eq(c.wiped, True)
    eq(events, ["PIN REQUIRED training"])
    for rows in app.panel.screens[-1:]:
        assert [r for r in rows if r.endswith("TRAINING")], rows


async def test_every_pin_screen_in_training_is_marked():
    p = Recording()
    for k in "123456789012E":
        p.push(ord(k))
    pin = await pinentry.enter(p, CFG, "SALE EUR 15.00", training=True)
    eq(bytes(pin), b"123456789012")
    for rows in p.screens:
        assert [r for r in rows if r.endswith("TRAINING")], rows
        assert len([r for r in rows if r.startswith("*")]) <= 1, rows
    assert [r for r in p.screens[-1] if r.startswith("*" * 12)], p.screens[-1]

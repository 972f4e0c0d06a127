"""CardService: presentment rules (only a card presented for the sale), retries, field empty, faults."""
# runtimes: unix
import asyncio
import time

from mpt import eq

from payterm.errors import Fault
from payterm.card.service import CardService, read_error
from test_card_fakes import FakePN532, FakeCard, Pipe

NOW = 1795435200  # 2026-11-23 12:00 UTC
T2 = ";4761739001010010=30122010000000?\r\n"
T2_101 = ";4761739001010010=30121010000000?\r\n"
T2_AMEX = ";374245455400126=30121010000000?\r\n"
BAD_LRC = ";4761739001010010=30121010000000?A\r\n"
FAST = {"nfc_ack_ms": 30, "nfc_resp_ms": 200, "nfc_poll_ms": 20, "nfc_idle_ms": 40, "nfc_retry_ms": 50,
        "mag_gap_ms": 30, "mag_retry_ms": 50}


def make(cfg=None, nfc=True):
    mag = Pipe()
    fake = FakePN532() if nfc else None
    c = dict(FAST)
    c.update(cfg or {})
    svc = CardService(mag, fake.pipe if fake else None, time.ticks_ms, lambda: NOW, c, rand=lambda n: b"\x01" * n)
    return svc, mag, fake


class Sale:
    """One present() running as a task, with the prompts it gave."""

    def __init__(self, svc, timeout=600):
        self.events = []
        self.pos = 0
        self.task = asyncio.create_task(self._run(svc, timeout))

    async def _run(self, svc, timeout):
        try:
            return await svc.present(1000, "978", timeout, self.prompt)
        except Fault as f:
            return f

    def prompt(self, event, fault=None):
        self.events.append(event if fault is None else event + " " + fault.code)

    async def until(self, event, ms=500):
        """Wait for `event` after the one the previous until() found."""
        t0 = time.ticks_ms()
        while event not in self.events[self.pos:]:
            assert not self.task.done(), "presentment ended before %r; events %r" % (event, self.events)
            assert time.ticks_diff(time.ticks_ms(), t0) < ms, "no %r in %d ms: %r" % (event, ms, self.events)
            await asyncio.sleep_ms(5)
        self.pos = self.events.index(event, self.pos) + 1

    async def result(self):
        return await self.task


async def sale(svc, action=None, timeout=600):
    """present(); `action()` runs once the prompt asks for a card."""
    s = Sale(svc, timeout)
    await s.until("present")
    if action:
        action()
    return await s.result()


async def settle(ms=120):
    await asyncio.sleep_ms(ms)


# ---------------------------------------------------------------- magstripe


async def test_swipe_after_prompt_is_read():
    svc, mag, fake = make()
    c = await sale(svc, lambda: mag.feed(T2_101.encode()))
    eq(c.source, "swipe")
    eq(c.masked, "476173******0010")


async def test_swipe_with_no_sale_waiting_is_discarded():
    # item 1: a card swiped at the idle screen must not pay the next sale
    svc, mag, fake = make()
    seen = []
    svc.on_ignored = seen.append
    svc.start()
    mag.feed(T2_AMEX.encode())
    await settle()
    eq(seen, ["swipe"], "reported as ignored")
    eq(svc._magbuf, bytearray(len(svc._magbuf)), "raw swipe overwritten")
    r = await sale(svc, timeout=300)
    eq(r.code, "CRD-01", "the idle swipe was not kept for the sale")
    # and a swipe that started before the prompt is not taken either, even if it ends after
    c = await sale(svc, lambda: mag.feed(T2_101.encode()))
    eq(c.masked, "476173******0010", "the card presented for the sale is the one read")


async def test_swipe_split_over_several_reads():
    svc, mag, fake = make()

    async def trickle():
        for ch in T2_101:
            mag.feed(ch.encode())
            await asyncio.sleep_ms(1)

    c = await sale(svc, lambda: asyncio.create_task(trickle()))
    eq(bytes(c.auth_fields()["35"]), T2_101[1:-3].encode())


async def test_read_error_keeps_the_same_sale_waiting():
    # item 2: after a bad LRC the customer's second swipe belongs to the same sale
    svc, mag, fake = make()
    s = Sale(svc)
    await s.until("present")
    mag.feed(BAD_LRC.encode())
    await s.until("error CRD-05")
    mag.feed(T2_101.encode())
    c = await s.result()
    eq(c.source, "swipe", "second swipe used by the sale that asked for it")
    # the next sale does not see anything left over
    eq((await sale(svc, timeout=200)).code, "CRD-01")


async def test_read_errors_end_the_sale_after_card_read_tries():
    svc, mag, fake = make({"card_read_tries": 2})
    s = Sale(svc)
    await s.until("present")
    mag.feed(b";4761739001010010=3012101\r\n")  # no end sentinel
    await s.until("error CRD-04")
    mag.feed(b"%?;?\r\n")
    r = await s.result()
    eq(r.code, "CRD-02", "the last read error's code")
    eq(s.events, ["present", "error CRD-04"])


async def test_final_card_failures_are_not_retried():
    svc, mag, fake = make()
    eq((await sale(svc, lambda: mag.feed(b";4761739001010011=30121010000000?\r\n"))).code, "CRD-07")
    eq((await sale(svc, lambda: mag.feed(b";4761739001010010=20011010000000?\r\n"))).code, "CRD-08")
    for code, want in (("CRD-05", True), ("CRD-10", True), ("CRD-11", True), ("CRD-12", True), ("CRD-13", True),
                       ("HW-02", True), ("CRD-01", False), ("CRD-07", False), ("CRD-09", False), ("HW-01", False)):
        eq(read_error(code), want, code)


async def test_swipe_while_authorizing_is_not_kept():
    svc, mag, fake = make()
    c = await sale(svc, lambda: mag.feed(T2_101.encode()))
    eq(c.source, "swipe")
    mag.feed(T2_AMEX.encode())  # customer swipes again while the host is asked
    await settle()
    eq(svc.ignored, 1)
    eq((await sale(svc, timeout=200)).code, "CRD-01")


# ---------------------------------------------------------------- contactless


def exchanges(fake):
    return fake.commands.count(0x40)


async def test_tap_is_read_once_and_a_card_left_on_the_reader_is_not_charged_again():
    # item 3: the next sale must not charge the card still lying on the reader
    svc, mag, fake = make()
    card = FakeCard()
    c = await sale(svc, lambda: fake.cards.append(card))
    eq(c.source, "tap")
    eq(c.label, "VISA")
    assert 0x52 in fake.commands, "target released"
    assert svc.awaiting_removal, "REMOVE CARD: the card is still in the field"
    n = exchanges(fake)
    s = Sale(svc, 400)
    await s.until("remove")
    eq(s.events[0], "remove", "no PRESENT CARD while the old card lies there")
    eq((await s.result()).code, "CRD-01", "not charged by the next sale")
    eq(exchanges(fake), n, "not even read")
    # taken away, the next sale asks for a card and reads a new tap
    gone = []
    svc.on_field_empty = lambda: gone.append(1)
    fake.cards = []
    await settle()
    assert gone and not svc.awaiting_removal, "field seen empty"
    c = await sale(svc, lambda: fake.cards.append(FakeCard()))
    eq(c.source, "tap")


async def test_card_removed_and_presented_again_in_the_same_sale():
    svc, mag, fake = make()
    fake.cards = [FakeCard()]  # put down before the prompt
    s = Sale(svc)
    await s.until("remove")
    fake.cards = []
    await s.until("present")
    fake.cards = [FakeCard()]
    c = await s.result()
    eq(c.source, "tap")
    eq(s.events, ["remove", "present"])


async def test_random_uid_per_activation_does_not_pay_twice():
    svc, mag, fake = make()
    fake.random_uid = True
    c = await sale(svc, lambda: fake.cards.append(FakeCard()))
    eq(c.source, "tap")
    n = exchanges(fake)
    s = Sale(svc, 300)
    await s.until("remove")
    eq((await s.result()).code, "CRD-01", "a new UID on every poll is still the same card")
    eq(exchanges(fake), n)
    assert fake.activations >= 3, "the fake changed UIDs"


async def test_tap_errors_wait_for_removal_then_retry():
    svc, mag, fake = make()
    s = Sale(svc)
    await s.until("present")
    fake.cards = [FakeCard(remove_at="gpo")]  # pulled away mid-read: field empty at once
    await s.until("error CRD-11")
    await settle(60)
    fake.cards = [FakeCard(sw={"read": 0x6A83})]  # record missing; stays there after the error
    await s.until("error CRD-16")
    await s.until("remove")
    fake.cards = []
    await s.until("present")
    fake.cards = [FakeCard()]
    c = await s.result()
    eq(s.events, ["present", "error CRD-11", "error CRD-16", "remove", "present"])
    eq(c.source, "tap")


async def test_collision_is_a_read_error():
    svc, mag, fake = make()
    s = Sale(svc)
    await s.until("present")
    fake.cards = [FakeCard(), FakeCard(uid=b"\x04\x09\x09\x09")]
    await s.until("error CRD-12")
    await s.until("remove")
    fake.cards = []
    await s.until("present")
    fake.cards = [FakeCard()]
    r = await s.result()
    eq(s.events, ["present", "error CRD-12", "remove", "present"])
    eq(r.source, "tap")


async def test_chip_card_swipe_then_fallback_after_failed_tap_in_one_sale():
    svc, mag, fake = make()
    s = Sale(svc)
    await s.until("present")
    mag.feed(T2.encode())
    await s.until("error CRD-10")
    fake.cards = [FakeCard(remove_at="gpo")]
    await s.until("error CRD-11")
    mag.feed(T2.encode())
    c = await s.result()
    eq(c.entry_mode, "801", "fallback swipe accepted after the failed tap")


async def test_dead_nfc_reader_still_takes_swipes_and_reports_hw01():
    svc, mag, fake = make()
    fake.silent = True
    eq((await sale(svc, timeout=300)).code, "HW-01", "reader not responding")
    c = await sale(svc, lambda: mag.feed(T2.encode()))
    eq(c.entry_mode, "801", "chip card may be swiped while the chip reader is down")
    fake.silent = False
    await asyncio.sleep_ms(100)
    c = await sale(svc, lambda: fake.cards.append(FakeCard(uid=b"\x04\x07\x07\x07")))
    eq(c.source, "tap", "reader re-initialised")


async def test_no_nfc_reader_configured():
    svc, mag, _ = make(nfc=False)
    eq((await sale(svc, lambda: mag.feed(T2.encode()))).entry_mode, "901", "no chip reader: chip card swiped normally")


async def test_cancelled_sale_leaves_nothing_armed():
    svc, mag, fake = make()
    s = Sale(svc, 5000)
    await s.until("present")
    await settle(60)
    s.task.cancel()
    try:
        await s.task
    except asyncio.CancelledError:
        pass
    assert not svc.armed
    mag.feed(T2_101.encode())
    await settle()
    eq(svc.ignored, 1, "a swipe after the cancel is discarded")
    eq((await sale(svc, lambda: mag.feed(T2_101.encode()))).source, "swipe", "next present works")


async def test_card_put_down_while_no_sale_waits_is_seen_and_must_leave():
    svc, mag, fake = make({"nfc_idle_ms": 30})
    seen = []
    svc.on_ignored = seen.append
    svc.start()
    await settle(80)
    fake.cards = [FakeCard()]
    await settle(120)
    eq(seen, ["tap"], "reported once while it lies there")
    s = Sale(svc, 400)
    await s.until("remove")
    eq(s.events[0], "remove", "the prompt asks to take it away first")
    eq(exchanges(fake), 0, "never read")
    fake.cards = []
    await s.until("present")
    fake.cards = [FakeCard()]
    eq((await s.result()).source, "tap")


async def test_tap_right_after_the_sale_starts_is_read():
    # the field was seen empty a moment ago: a card there at the first look was put down for this sale
    svc, mag, fake = make({"nfc_idle_ms": 30})
    svc.start()
    await settle(80)
    s = Sale(svc)
    fake.cards = [FakeCard()]
    eq((await s.result()).source, "tap")
    eq(s.events, ["present"])


async def test_stale_state_is_not_trusted_when_a_sale_starts():
    svc, mag, fake = make({"nfc_idle_ms": 30, "nfc_fresh_ms": 50})
    svc.start()
    await settle(80)
    fake.silent = True  # the reader stops answering: the last look at the field gets old
    await settle(150)
    fake.silent = False
    fake.cards = [FakeCard()]
    s = Sale(svc, 1500)
    await s.until("remove", 1200)
    fake.cards = []
    await s.until("present", 1200)
    fake.cards = [FakeCard()]
    eq((await s.result()).source, "tap")


async def test_stray_frames_from_the_reader_are_dropped():
    svc, mag, fake = make()
    c = await sale(svc, lambda: fake.cards.append(FakeCard()))
    fake.cards = []
    await settle()
    fake.pipe.feed(b"\x00\x00\xff\x04\xfc\xd5\x41\x00\x90\x5a\x00")  # an answer nobody asked for
    await settle()
    eq(fake.pipe.buf, bytearray(), "read and discarded")
    assert svc.nfc.stats["stale"] >= 1
    eq((await sale(svc, lambda: fake.cards.append(FakeCard()))).source, "tap")
    c.wipe()


async def test_ping_reports_reader_state():
    svc, mag, fake = make()
    eq(await svc.ping(), "PN532 v1.6")
    fake.silent = True
    try:
        await svc.ping()
    except Fault as f:
        eq(f.code, "HW-01")
    else:
        raise AssertionError("silent reader passed the self-test")
    svc2, _, _ = make(nfc=False)
    eq(await svc2.ping(), "no contactless reader")


class _Broken(Pipe):
    async def read(self, n):
        raise OSError(5)

    async def readinto(self, b):
        raise OSError(5)


async def test_stream_errors_become_hw01():
    mag = _Broken()
    svc = CardService(mag, FakePN532().pipe, time.ticks_ms, lambda: NOW, FAST)
    eq((await sale(svc)).code, "HW-01", "magstripe UART error")
    mag2 = Pipe()
    svc = CardService(mag2, _Broken(), time.ticks_ms, lambda: NOW, FAST)
    eq((await sale(svc, timeout=200)).code, "HW-01", "NFC UART error reported at timeout")
    eq((await sale(svc, lambda: mag2.feed(T2_101.encode()))).source, "swipe", "swipes still work")

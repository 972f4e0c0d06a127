"""CardService: swipe and tap raced, timeouts, fallback, reader faults."""
# runtimes: unix
import asyncio
import time

from mpt import eq

from payterm.errors import Fault
from payterm.card.service import CardService
from test_card_fakes import FakePN532, FakeCard, Pipe

NOW = 1795435200  # 2026-11-23 12:00 UTC
T2 = ";4761739001010010=30122010000000?\r\n"
T2_101 = ";4761739001010010=30121010000000?\r\n"
FAST = {"same_card_ms": 400, "nfc_ack_ms": 30, "nfc_resp_ms": 200, "nfc_poll_ms": 20, "nfc_retry_ms": 50, "mag_gap_ms": 30}


def make(cfg=None, nfc=True):
    mag = Pipe()
    fake = FakePN532() if nfc else None
    c = dict(FAST)
    c.update(cfg or {})
    svc = CardService(mag, fake.pipe if fake else None, time.ticks_ms, lambda: NOW, c, rand=lambda n: b"\x01" * n)
    return svc, mag, fake


async def present(svc, timeout=600):
    try:
        return await svc.present(1000, "978", timeout)
    except Fault as f:
        return f


async def later(ms, fn):
    await asyncio.sleep_ms(ms)
    fn()


async def test_swipe_wins():
    svc, mag, fake = make()
    asyncio.create_task(later(50, lambda: mag.feed(T2_101.encode())))
    c = await present(svc)
    eq(c.source, "swipe")
    eq(c.masked, "476173******0010")


async def test_swipe_split_over_several_reads():
    svc, mag, fake = make()

    async def trickle():
        for ch in T2_101:
            mag.feed(ch.encode())
            await asyncio.sleep_ms(1)

    asyncio.create_task(trickle())
    c = await present(svc)
    eq(c.auth_fields()["35"], T2_101[1:-3])


async def test_tap_wins_and_is_not_read_twice():
    svc, mag, fake = make()
    fake.cards = [FakeCard()]
    c = await present(svc)
    eq(c.source, "tap")
    eq(c.label, "VISA")
    assert 0x52 in fake.commands, "target released"
    r = await present(svc, 200)
    eq(r.code, "CRD-01", "same card still in the field is not charged again")
    fake.cards = []
    eq((await present(svc, 100)).code, "CRD-01", "field seen empty")
    fake.cards = [FakeCard()]
    eq((await present(svc)).source, "tap", "taken away and tapped again")
    fake.cards = []
    await asyncio.sleep_ms(450)
    fake.cards = [FakeCard()]
    eq((await present(svc)).source, "tap", "same card after same_card_ms")


async def test_timeout_is_crd01():
    svc, mag, fake = make()
    t0 = time.ticks_ms()
    eq((await present(svc, 200)).code, "CRD-01")
    assert time.ticks_diff(time.ticks_ms(), t0) < 600


async def test_swipe_errors_reported_per_track():
    svc, mag, fake = make()
    mag.feed(b";4761739001010010=3012101\r\n")
    eq((await present(svc)).code, "CRD-04")
    mag.feed(b"%?;?\r\n")
    eq((await present(svc)).code, "CRD-02")


async def test_chip_card_swipe_then_fallback_after_failed_tap():
    svc, mag, fake = make()
    mag.feed(T2.encode())
    eq((await present(svc)).code, "CRD-10", "use chip/tap")
    fake.cards = [FakeCard(remove_at="gpo")]
    eq((await present(svc)).code, "CRD-11", "card removed too early")
    mag.feed(T2.encode())
    c = await present(svc)
    eq(c.entry_mode, "801", "fallback swipe accepted after the failed tap")


async def test_collision():
    svc, mag, fake = make()
    fake.cards = [FakeCard(), FakeCard(uid=b"\x04\x09\x09\x09")]
    eq((await present(svc)).code, "CRD-12")


async def test_dead_nfc_reader_still_takes_swipes_and_reports_hw01():
    svc, mag, fake = make()
    fake.silent = True
    eq((await present(svc, 300)).code, "HW-01", "reader not responding")
    mag.feed(T2.encode())
    c = await present(svc)
    eq(c.entry_mode, "801", "chip card may be swiped while the chip reader is down")
    fake.silent = False
    fake.cards = [FakeCard(uid=b"\x04\x07\x07\x07")]
    await asyncio.sleep_ms(100)
    eq((await present(svc)).source, "tap", "reader re-initialised")


async def test_no_nfc_reader_configured():
    svc, mag, _ = make(nfc=False)
    mag.feed(T2.encode())
    eq((await present(svc)).entry_mode, "901", "no chip reader: chip card swiped normally")


async def test_cancelled_mid_command_reinitialises():
    svc, mag, fake = make()
    fake.cards = []
    asyncio.create_task(later(30, lambda: mag.feed(T2_101.encode())))
    eq((await present(svc)).source, "swipe")
    n = fake.commands.count(0x14)
    fake.cards = [FakeCard()]
    eq((await present(svc)).source, "tap")
    assert fake.commands.count(0x14) >= n


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


async def test_stream_errors_become_hw01():
    svc, mag, fake = make()
    svc.mag = _Broken()
    eq((await present(svc)).code, "HW-01", "magstripe UART error")
    mag2 = Pipe()
    svc = CardService(mag2, _Broken(), time.ticks_ms, lambda: NOW, FAST)
    eq((await present(svc, 200)).code, "HW-01", "NFC UART error reported at timeout")
    mag2.feed(T2_101.encode())
    eq((await present(svc)).source, "swipe", "swipes still work")


async def test_operator_cancel_stops_both_readers():
    svc, mag, fake = make()
    t = asyncio.create_task(svc.present(1000, "978", 5000))
    await asyncio.sleep_ms(80)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    n = len(fake.commands)
    await asyncio.sleep_ms(150)
    eq(len(fake.commands), n, "no polling after cancel")
    mag.feed(T2_101.encode())
    eq((await present(svc)).source, "swipe", "next present works")

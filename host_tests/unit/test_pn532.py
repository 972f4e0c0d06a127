"""PN532 HSU driver: framing, ACK/NACK, error frames, timeouts, resync."""
# runtimes: unix
import time

from mpt import raises, eq

from payterm.errors import Fault
from payterm.card.pn532 import PN532
from test_card_fakes import FakePN532, FakeCard, frame, ACK


def make(**kw):
    fake = FakePN532()
    drv = PN532(fake.pipe, time.ticks_ms, ack_ms=kw.get("ack_ms", 40), resp_ms=kw.get("resp_ms", 200))
    return fake, drv


async def fault(coro):
    try:
        await coro
    except Fault as f:
        return f
    raise AssertionError("no Fault")


async def test_begin_wakes_and_configures():
    fake, drv = make()
    await drv.begin()
    assert drv.ready
    eq(bytes(drv.firmware), b"\x32\x01\x06\x07", "IC PN532 ver 1.6")
    eq(fake.commands, [0x14, 0x32, 0x02], "SAMConfiguration, RFConfiguration, GetFirmwareVersion")
    w = bytes(fake.pipe.written)
    assert w.startswith(b"\x55\x55\x00\x00"), "HSU wake-up preamble first"
    assert frame(b"\xd4\x14\x01\x14\x00") in w, "SAMConfiguration normal mode frame"


async def test_poll_empty_one_and_collision():
    fake, drv = make()
    await drv.begin()
    eq(await drv.poll(), None, "empty field")
    fake.cards = [FakeCard(uid=b"\x04\xaa\xbb\xcc")]
    t = await drv.poll()
    eq(bytes(t.uid), b"\x04\xaa\xbb\xcc")
    eq(t.tg, 1)
    fake.cards.append(FakeCard(uid=b"\x04\x01\x01\x01"))
    eq((await fault(drv.poll())).code, "CRD-12")


async def test_exchange_and_card_removed():
    fake, drv = make()
    await drv.begin()
    fake.cards = [FakeCard()]
    t = await drv.poll()
    r = await drv.exchange(t.tg, b"\x00\xa4\x04\x00\x0e2PAY.SYS.DDF01\x00")
    eq(bytes(r[-2:]), b"\x90\x00")
    fake.cards = []
    eq((await fault(drv.exchange(t.tg, b"\x00\xb2\x01\x0c\x00"))).code, "CRD-11", "status 01 timeout = card gone")


async def test_not_responding_is_hw01():
    fake, drv = make(ack_ms=20)
    fake.silent = True
    f = await fault(drv.begin())
    eq(f.code, "HW-01")
    assert not drv.ready


async def test_error_frame_is_hw02():
    fake, drv = make()
    fake.error_for = (0x14,)
    eq((await fault(drv.begin())).code, "HW-02")


async def test_bad_checksum_is_nacked_and_recovered():
    fake, drv = make()
    await drv.begin()
    fake.corrupt = 1
    eq(await drv.poll(), None)
    eq(fake.nacks, 1, "one NACK asked for the retransmission")
    fake.corrupt = 10
    eq((await fault(drv.poll())).code, "HW-02", "persistent corruption")


async def test_resync_after_garbage_and_stale_frames():
    fake, drv = make()
    await drv.begin()
    # garbage containing a fake start code with a wrong LCS, then a stale answer to another command
    fake.garbage = b"\x55\xaa\x00\xff\x07\x07\x12" + frame(b"\xd5\x03\x32\x01\x06\x07")
    fake.cards = [FakeCard()]
    t = await drv.poll()
    assert t is not None
    assert drv.stats["garbage"] >= 1
    eq(drv.stats["stale"], 1)


async def test_garbage_only_is_hw02():
    from test_card_fakes import Pipe

    p = Pipe()

    def noise(b):
        p.feed(b"\x12\x34\x56\x00\xff\x09\x01")

    p.on_write = noise
    drv = PN532(p, time.ticks_ms, ack_ms=20, resp_ms=50)
    eq((await fault(drv.begin())).code, "HW-02")


def test_frame_build_checksums():
    drv = PN532(None, time.ticks_ms)
    f = bytes(drv._frame(0x40, b"\x01\x00\xa4\x04\x00"))
    eq(f, frame(b"\xd4\x40\x01\x00\xa4\x04\x00"))
    f = bytes(drv._frame(0x02, b""))
    eq(f, bytes.fromhex("0000ff02fed4022a00"), "UM0701-02 example")
    raises(Fault, drv._frame, 0x40, bytes(260))


def test_parser_extended_frame_and_ack():
    drv = PN532(None, time.ticks_ms)
    data = b"\xd5\x41\x00" + bytes(300 - 50)
    ln = len(data)
    s = sum(data) & 0xFF
    ext = b"\x00\x00\xff\xff\xff" + bytes((ln >> 8, ln & 0xFF, (0x100 - ((ln >> 8) + (ln & 0xFF))) & 0xFF)) + data + bytes(((0x100 - s) & 0xFF, 0))
    for chunk in (ACK, ext):
        drv._rx[drv._n:drv._n + len(chunk)] = chunk
        drv._n += len(chunk)
    eq(drv._parse()[0], 1, "ACK")
    k, d = drv._parse()
    eq(k, 0)
    eq(d, data)


async def test_frames_are_views_of_one_buffer_and_wipe_zeroes_everything():
    fake, drv = make()
    await drv.begin()
    fake.cards = [FakeCard()]
    t = await drv.poll()
    r = await drv.exchange(t.tg, b"\x00\xb2\x01\x0c\x00")
    assert isinstance(r, memoryview), "no bytes copy of card answers"
    assert bytes(r).find(bytes.fromhex("4761739001010010")) >= 0, "record 1 has the track 2 equivalent"
    drv.wipe()
    for name in ("_rx", "_fbuf", "_chunk", "_tx"):
        b = getattr(drv, name)
        eq(bytes(b), bytes(len(b)), name)
    eq(drv._n, 0)
    eq(await drv.poll() is not None, True, "still works after the wipe")

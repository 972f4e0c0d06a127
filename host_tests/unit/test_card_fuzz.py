"""Fuzz: random and mutated tracks, TLV, APDU responses and PN532 frames.

Whatever arrives, the parsers either return a result or raise a Fault with
a catalog code; no other exception may escape to the reader task.
"""
# runtimes: unix
import random
import time

from mpt import eq

from payterm.errors import Fault
from payterm.card import magstripe, tlv, emv
from payterm.card.pn532 import PN532
from test_card_fakes import FakeCard, FakePN532, frame

NOW = 1795435200  # 2026-11-23 12:00 UTC
SWIPE = b"%B4761739001010010^DOE/JOHN^3012101000000?;4761739001010010=30121010000000?\r\n"
MAG_CODES = ("CRD-02", "CRD-03", "CRD-04", "CRD-05", "CRD-06", "CRD-07", "CRD-08", "CRD-09", "CRD-10")
EMV_CODES = ("CRD-07", "CRD-08", "CRD-09", "CRD-11", "CRD-13", "CRD-14", "CRD-15", "CRD-16", "CRD-17", "CRD-18", "CRD-19")


def mutate(data, rnd):
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randint(0, 4)
        if not b:
            b.append(rnd.getrandbits(8))
            continue
        i = rnd.randint(0, len(b) - 1)
        if op == 0:
            b[i] = rnd.getrandbits(8)
        elif op == 1:
            b[i] ^= 1 << rnd.randint(0, 7)
        elif op == 2:
            b = b[:i] + b[i + 1:]
        elif op == 3:
            b = b[:i] + bytes((rnd.getrandbits(8),)) + b[i:]
        else:
            b = b[:i]
    return bytes(b)


def rand_bytes(rnd, n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


def test_fuzz_magstripe():
    rnd = random
    rnd.seed(7)
    outcomes = {}
    for k in range(1500):
        data = mutate(SWIPE, rnd) if k % 3 else rand_bytes(rnd, rnd.randint(0, 90))
        try:
            magstripe.card_from_swipe(data, NOW, chip_available=True)
            key = "card"
        except Fault as f:
            assert f.code in MAG_CODES, (f.code, data)
            key = f.code
        outcomes[key] = outcomes.get(key, 0) + 1
    assert len(outcomes) >= 6, "mutations reach many verdicts: %r" % outcomes


def _sample_tlv():
    c = FakeCard()
    return c.respond(b"\x00\xa4\x04\x00\x0e2PAY.SYS.DDF01\x00")[:-2] + c.records()[(1, 1)] + c.records()[(2, 1)]


def test_fuzz_tlv():
    random.seed(11)
    good = _sample_tlv()
    ok = 0
    for k in range(2000):
        data = mutate(good, random) if k % 4 else rand_bytes(random, random.randint(0, 40))
        try:
            tlv.walk(data)
            tlv.parse_dol(data)
            ok += 1
        except Fault as f:
            eq(f.code, "CRD-13")
    assert ok > 10, "some mutations stay well-formed"


async def test_fuzz_emv_responses():
    random.seed(23)
    base = FakeCard()
    steps = ("ppse", "select", "gpo", "read")
    goods = {}
    for st in steps:
        apdu = {"ppse": b"\x00\xa4\x04\x00\x0e2PAY.SYS.DDF01\x00",
                "select": b"\x00\xa4\x04\x00\x07\xa0\x00\x00\x00\x03\x10\x10\x00",
                "gpo": b"\x80\xa8\x00\x00\x02\x83\x00\x00", "read": b"\x00\xb2\x01\x0c\x00"}[st]
        if st == "gpo":
            base.respond(b"\x00\xa4\x04\x00\x07\xa0\x00\x00\x00\x03\x10\x10\x00")
        goods[st] = base.respond(apdu)
    seen = {}
    for k in range(600):
        st = steps[k % 4]
        resp = mutate(goods[st], random)
        card = FakeCard()

        async def xchg(apdu, card=card, st=st, resp=resp):
            r = card.respond(bytes(apdu))
            return resp if card.seen[-1] == st else r

        try:
            await emv.read_card(xchg, 100, "978", {}, NOW, b"\x00\x00\x00\x01")
            key = "card"
        except Fault as f:
            assert f.code in EMV_CODES, (f.code, st, resp)
            key = f.code
        seen[key] = seen.get(key, 0) + 1
    assert "CRD-13" in seen and len(seen) >= 2, seen


def test_fuzz_pn532_parser():
    random.seed(5)
    drv = PN532(None, time.ticks_ms)
    good = frame(b"\xd5\x4b\x01\x01\x00\x04\x20\x04\x01\x02\x03\x04\x05\x78\x80\x70\x02")
    frames = 0
    for k in range(1500):
        chunk = mutate(good, random) if k % 2 else rand_bytes(random, random.randint(1, 60))
        drv._rx[drv._n:drv._n + len(chunk)] = chunk
        drv._n += len(chunk)
        while True:
            r = drv._parse()
            if r is None:
                break
            frames += 1
        assert 0 <= drv._n <= len(drv._rx)
    assert frames > 100


async def test_fuzz_pn532_answers():
    random.seed(9)
    codes = {}
    for k in range(60):
        fake = FakePN532()
        fake.cards = [FakeCard()]
        drv = PN532(fake.pipe, time.ticks_ms, ack_ms=15, resp_ms=30)
        await drv.begin()
        orig = fake.pipe.feed

        def noisy(b, orig=orig):
            orig(mutate(b, random) if random.getrandbits(1) else b)

        fake.pipe.feed = noisy
        try:
            await drv.poll()
            key = "ok"
        except Fault as f:
            assert f.code in ("HW-01", "HW-02", "CRD-12", "CRD-09"), f.code
            key = f.code
        codes[key] = codes.get(key, 0) + 1
    assert len(codes) >= 2, codes

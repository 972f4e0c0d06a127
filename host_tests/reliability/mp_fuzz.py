"""Parser-level fuzzing inside MicroPython: many malformed inputs per VM.

Run by host_tests/reliability/fuzzing.py as

    micropython mp_fuzz.py TARGET SEED FIRST COUNT BOUND_MS [VECTORS.json]

Case i of a target draws everything from its own generator seeded with
(SEED, TARGET, i), so one case replays alone (`FIRST=i COUNT=1`). Inputs are
the real vectors the unit tests hold (the swipes, the fake EMV card and
PN532 of test_card_fakes, the acquirer simulator's frames passed in
VECTORS.json, the keys and console commands the system tests type), mutated,
or random bytes. A case passes when the code under test returns or raises a
Fault with a catalog code; any other exception is a crash, a case that runs
longer than BOUND_MS (async cases are cut off there) is a hang. Output lines:
`@@AT i` progress, `@@CRASH {...}` / `@@HANG {...}` reproducers, one final
`@@RESULT {...}` with the counts and the outcome of every case by code.
"""
import asyncio
import gc
import io
import json
import random
import sys
import time

from payterm import codes
from payterm.errors import Fault

NOW = 1795435200  # 2026-11-23 12:00 UTC
TARGETS = ("magstripe", "tracks", "pn532", "tlv", "emv", "iso8583", "link", "keypad", "console")
INTERESTING = b"\x00\xff\x7f\x80\x01%;?^=\r\nBDF\x90\xd4\xd5"


class Hang(Exception):
    pass


class HarnessError(BaseException):
    """A bug in this driver, not in the firmware: passes every `except Exception` and stops the run."""


class Bad(Exception):
    """An invariant the code under test broke (not a crash of the harness)."""


_PASS = (Fault, Hang, Bad, asyncio.TimeoutError, EOFError)


def harness(fn):
    """Run harness code called from inside firmware code (fakes, mutators) so its own errors stand out."""

    def wrapped(*a, **kw):
        try:
            return fn(*a, **kw)
        except _PASS:
            raise  # what the fake deliberately makes the firmware see
        except Exception as e:
            raise HarnessError("%s in %s: %s" % (type(e).__name__, fn.__name__, e))

    return wrapped


def aharness(fn):
    """harness() for async fakes."""

    async def wrapped(*a, **kw):
        try:
            return await fn(*a, **kw)
        except _PASS:
            raise
        except Exception as e:
            raise HarnessError("%s in %s: %s" % (type(e).__name__, fn.__name__, e))

    return wrapped


# ---------------------------------------------------------------- mutation
@harness
def rand_bytes(rnd, n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


@harness
def mutate(data, rnd, extra=()):
    """1-6 stacked edits: bit flips, byte sets, deletes, inserts, cuts, repeats, splices."""
    b = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.randint(0, 9)
        if not b:
            b.extend(rand_bytes(rnd, rnd.randint(1, 8)))
            continue
        i = rnd.randint(0, len(b) - 1)
        if op == 0:
            b[i] = rnd.getrandbits(8)
        elif op == 1:
            b[i] ^= 1 << rnd.randint(0, 7)
        elif op == 2:
            b[i:i + rnd.randint(1, 4)] = b""
        elif op == 3:
            b[i:i] = rand_bytes(rnd, rnd.randint(1, 4))
        elif op == 4:
            b = b[:i]
        elif op == 5:
            b[i] = INTERESTING[rnd.randint(0, len(INTERESTING) - 1)]
        elif op == 6:
            j = rnd.randint(i, len(b))
            b[j:j] = bytes(b[i:j]) * rnd.randint(1, 3)  # repeat a slice
        elif op == 7 and extra:
            o = extra[rnd.randint(0, len(extra) - 1)]
            k = rnd.randint(0, len(o))
            b = b[:i] + bytearray(o[k:])  # splice another vector's tail
        elif op == 8:
            b[i] = (b[i] + rnd.randint(1, 3)) & 0xFF  # off by a little (lengths, checksums)
        else:
            b[i:i] = INTERESTING[rnd.randint(0, len(INTERESTING) - 1):][:1]
    return bytes(b)


# ---- structure-aware mutation of BER-TLV answers (the harness's own codec: the firmware's is what is tested)
def _tlv_tree(b, depth=0):
    """[[tag bytes, value bytes | [children]]] or None when b is not well-formed BER-TLV."""
    out = []
    i = 0
    n = len(b)
    while i < n:
        if b[i] in (0x00, 0xFF):
            i += 1
            continue
        t0 = i
        i += 1
        if b[t0] & 0x1F == 0x1F:
            while i < n and b[i] & 0x80:
                i += 1
            i += 1
        if i >= n or i - t0 > 3:
            return None
        tag = bytes(b[t0:i])
        ln = b[i]
        i += 1
        if ln & 0x80:
            k = ln & 0x7F
            if k == 0 or k > 2 or i + k > n:
                return None
            ln = int.from_bytes(b[i:i + k], "big")
            i += k
        if i + ln > n:
            return None
        val = bytes(b[i:i + ln])
        kids = _tlv_tree(val, depth + 1) if (tag[0] & 0x20) and depth < 6 else None
        out.append([tag, kids if kids is not None else val])
        i += ln
    return out


def _tlv_bytes(tree):
    out = bytearray()
    for tag, v in tree:
        body = _tlv_bytes(v) if isinstance(v, list) else v
        n = len(body)
        out.extend(tag)
        if n < 0x80:
            out.append(n)
        elif n < 0x100:
            out.extend(bytes((0x81, n)))
        else:
            out.extend(bytes((0x82, n >> 8, n & 0xFF)))
        out.extend(body)
    return bytes(out)


def _nodes(tree, acc):
    for node in tree:
        acc.append((tree, node))
        if isinstance(node[1], list):
            _nodes(node[1], acc)
    return acc


# DOL entries and lengths a card may get wrong: long-form and oversized lengths, zero, one short of a tag's size
_ODD_LENGTHS = (b"\x00", b"\x01", b"\x7f", b"\x80", b"\x81\xff", b"\x82\x01\x00", b"\x82\xff\xff",
                b"\x83\x01\x00\x00", b"\x83\xff\xff\xff", b"\xff")


@harness
def mutate_tlv(resp, rnd, extra=()):
    """An answer whose templates stay well-formed (lengths recomputed) with one data object changed:
    its value mutated, emptied, made long or replaced by a DOL with odd lengths; or an object dropped or doubled.
    Falls back to mutate() when the answer is not TLV."""
    body, sw = resp[:-2], resp[-2:]
    tree = _tlv_tree(body) if len(resp) >= 2 else None
    if not tree:
        return mutate(resp, rnd, extra)
    for _ in range(rnd.randint(1, 3)):
        nodes = _nodes(tree, [])
        parent, node = nodes[rnd.randint(0, len(nodes) - 1)]
        op = rnd.randint(0, 7)
        if op == 0:
            parent.remove(node)
            if not tree:
                break
        elif op == 1:
            parent.insert(rnd.randint(0, len(parent)), [node[0], node[1]])
        elif isinstance(node[1], list):
            node[1] = mutate(_tlv_bytes(node[1]), rnd, extra)
        elif op == 2:
            node[1] = b""
        elif op == 3:
            node[1] = rand_bytes(rnd, rnd.randint(1, 300))
        elif op == 4:  # a DOL with odd lengths (PDOL, CDOL1, UDOL) or data of odd sizes
            dol = bytearray()
            for _ in range(rnd.randint(1, 6)):
                dol.extend((b"\x9f\x02", b"\x9f\x37", b"\x5a", b"\x57", b"\x9f\x6a", b"\x8a", b"\x9f\x1a",
                            b"\xdf\x81\x01", b"\x70", b"\x9f\x66")[rnd.randint(0, 9)])
                dol.extend(_ODD_LENGTHS[rnd.randint(0, len(_ODD_LENGTHS) - 1)] if rnd.randint(0, 2) == 0
                           else bytes((rnd.randint(0, 40),)))
            node[1] = bytes(dol)
        else:
            node[1] = mutate(node[1], rnd, extra)
    out = _tlv_bytes(tree) + sw
    return out


CUR = {"input": b""}  # the input of the running case, for its reproducer


@harness
def pick(rnd, vectors, rand_max, rand_share=4):
    """A mutated real vector, or (1 case in rand_share) random bytes."""
    if rnd.randint(0, rand_share - 1) == 0:
        v = rand_bytes(rnd, rnd.randint(0, rand_max))
    else:
        v = vectors[rnd.randint(0, len(vectors) - 1)]
        if rnd.randint(0, 15):  # the real vector itself now and then: the good path stays covered
            v = mutate(v, rnd, vectors)
    CUR["input"] = v
    return v


def fault_key(f):
    if not (codes.known(f.code) or f.code.startswith("ISS-")):
        raise Bad("uncatalogued code %r" % (f.code,))
    return f.code


# ---------------------------------------------------------------- magstripe / tracks
def _lrc(t, base):
    x = 0
    for ch in t:
        x ^= (ord(ch) - base) & 0x3F
    return chr(x + base)


def _swipe(t1, t2, lrc=True, sentinels=True, sep="", end="\r\n"):
    parts = []
    for body, ss, base in ((t1, "%", 0x20), (t2, ";", 0x30)):
        if body is None:
            continue
        if sentinels:
            t = ss + body + "?"
            parts.append(t + (_lrc(t, base) if lrc else ""))
        else:
            parts.append(body)
    return ((sep if sentinels else "\r\n").join(parts) + end).encode()


def _tracks(pan, exp="3012", sc="101", name="DOE/JOHN"):
    return "B%s^%s^%s%s00000000" % (pan, name, exp, sc), "%s=%s%s0000000" % (pan, exp, sc)


SWIPES = []
for _pan, _exp, _sc in (("4761739001010010", "3012", "101"), ("374245455400126", "3012", "101"),
                        ("4111111111111111", "3012", "201"), ("4761739001010119", "2001", "101"),
                        ("5413330089010434", "3012", "101")):
    _t1, _t2 = _tracks(_pan, _exp, _sc)
    SWIPES.append(_swipe(_t1, _t2))
    SWIPES.append(_swipe(_t1, _t2, lrc=False, sep="\r\n"))
    SWIPES.append(_swipe(None, _t2))
    SWIPES.append(_swipe(_t1, _t2, sentinels=False))
SWIPES.append(b"%E?;E?\r\n")
SWIPES.append(b"%B4761739001010010^DOE/JOHN^3012101000000?;4761739001010010=30121010000000?\r\n")
TRACK_STRS = []
for _v in SWIPES[:20]:
    for _part in _v.replace(b"\r", b"\n").split(b"\n"):
        if _part:
            TRACK_STRS.append(_part.strip(b"%;?"))


def _check_card(card):
    """The PAN leaves the Card only through auth_fields(), and wipe() zeroes every copy the Card handed out."""
    fields = card.auth_fields()
    pan = str(bytes(fields["2"]), "ascii")  # auth_fields() hands out the Card's own bytearrays
    if not pan.isdigit():
        raise Bad("PAN %r: not the card's own copy of the digits read" % card.masked)
    if pan in repr(card) or pan in card.masked or pan in card.name:
        raise Bad("full PAN outside auth_fields")
    bufs = card.buffers()
    card.wipe()
    for b in list(fields.values()) + bufs:
        if any(b):
            raise Bad("card data still there after wipe()")
    try:
        card.auth_fields()
    except Fault:
        return "card"
    raise Bad("auth_fields() after wipe()")


def case_magstripe(rnd):
    from payterm.card import magstripe

    data = pick(rnd, SWIPES, 600)[:512]  # the card service never hands over more than its 512-byte buffer
    buf = bytearray(512)  # as the card service does: a view of its swipe buffer, zeroed once the swipe is parsed
    buf[:len(data)] = data
    try:
        card = magstripe.card_from_swipe(memoryview(buf)[:len(data)], NOW, rnd.getrandbits(1), rnd.getrandbits(1),
                                         rnd.randint(0, 3) == 0)
    except Fault as f:
        return fault_key(f), data
    finally:
        for i in range(len(data)):
            buf[i] = 0
    return _check_card(card), data


def case_tracks(rnd):
    from payterm.card import magstripe

    raw = pick(rnd, TRACK_STRS, 90, 6)
    s = "".join(chr(b & 0x7F) for b in raw)  # the decoder hands the parsers 7-bit text
    try:
        if rnd.getrandbits(1):
            magstripe.parse_track1(s)
        else:
            magstripe.parse_track2(s)
        magstripe.check_service_code(s[-3:], rnd.getrandbits(1), rnd.getrandbits(1))
    except Fault as f:
        return fault_key(f), raw
    return "parsed", raw


# ---------------------------------------------------------------- EMV / TLV
def _fakes():
    import test_card_fakes

    return test_card_fakes


CARD_KINDS = (
    {},
    {"pan": "374245455400126", "aids": (("A00000002501", "AMEX", 1),)},
    {"pan": "5413330089010434", "aids": (("A0000000043060", "MAESTRO", 2), ("A0000000041010", "MASTERCARD", 1))},
    {"exp": "2001"},
    {"pdol": b""},
    {"pdol": b"\x9f\x02\x06\x9f\x1a\x02\x95\x05\x5f\x2a\x02\x9a\x03\x9c\x01\x9f\x37\x04"},
    {"pan": "5413330089010434", "aids": (("A0000000041010", "MASTERCARD", 1),), "genac_format": 1},
    {"ctq": b"\x00\x80"},
    {"pan": "5413330089010434", "aids": (("A0000000041010", "MASTERCARD", 1),), "magstripe": True},
)
# Mag-stripe mode data of a Mastercard (test_emv_kernel's card): track 2 data and its bitmaps.
_MS_RECS = (b"\x9f\x6b\x13\x54\x13\x33\x00\x89\x01\x04\x34\xd3\x01\x22\x01\x00\x00\x00\x00\x00\x00\x0f"
            b"\x9f\x65\x02\x00\x0e\x9f\x66\x02\x0e\x70\x9f\x67\x01\x03")


def _card_of(fk, kw):
    kw = dict(kw)
    if kw.pop("magstripe", False):
        c = fk.FakeCard(kernel="qvsdc", aip=b"\x00\x00", extra=_MS_RECS, **kw)
        c.kernel = "mchip-magstripe"  # records without CDOL1, mag-stripe data: COMPUTE CRYPTOGRAPHIC CHECKSUM
        return c
    return fk.FakeCard(**kw)


APDU = {"ppse": b"\x00\xa4\x04\x00\x0e2PAY.SYS.DDF01\x00",
        "select": b"\x00\xa4\x04\x00\x07\xa0\x00\x00\x00\x03\x10\x10\x00",
        "gpo": b"\x80\xa8\x00\x00\x02\x83\x00\x00", "read": b"\x00\xb2\x01\x0c\x00",
        "genac": b"\x80\xae\x80\x00\x01\x00\x00", "ccc": b"\x80\x2a\x8e\x80\x01\x00\x00"}


def _tlv_vectors():
    fk = _fakes()
    out = []
    for kw in CARD_KINDS:
        c = _card_of(fk, kw)
        out.append(c.respond(APDU["ppse"])[:-2])
        out.append(c.respond(APDU["select"])[:-2])
        out.append(c.respond(APDU["gpo"])[:-2])
        out.append(c.respond(APDU["genac"])[:-2])
        out.append(c.respond(APDU["ccc"])[:-2])
        for r in c.records().values():
            out.append(r)
    out.append(b"\x9f\x02\x06\x5f\x2a\x02\x9f\x37\x04\x9f\x66\x04\x9a\x03")
    return [v for v in out if v]


_TLV = []


def case_tlv(rnd):
    from payterm.card import tlv

    if not _TLV:
        _TLV.extend(_tlv_vectors())
    data = pick(rnd, _TLV, 80)
    try:
        d = tlv.walk(data)
        for k in d:
            tlv.encode(k, d[k])
        tlv.parse_dol(data)
        tlv.find(data, (0x6F, 0xA5, 0xBF0C))
        tlv.find_all(data, 0x61)
    except Fault as f:
        return fault_key(f), data
    return "parsed", data


def _emv_amount(rnd):
    """Mostly amounts the card may be tapped for (under / over the CVM limit), now and then above the
    contactless limit (CRD-14) or at the limits themselves."""
    r = rnd.randint(0, 15)
    if r < 8:
        return rnd.randint(0, 5000)  # cl_cvm_limit: no CVM
    if r < 13:
        return rnd.randint(5001, 100000)  # CVM required, under cl_tx_limit
    if r == 13:
        return (0, 5000, 5001, 100000)[rnd.randint(0, 3)]
    return rnd.randint(100001, 999999999999)


async def case_emv(rnd):
    from payterm.card import emv

    fk = _fakes()
    if not _TLV:
        _TLV.extend(_tlv_vectors())
    kw = CARD_KINDS[rnd.randint(0, len(CARD_KINDS) - 1)]
    card = _card_of(fk, kw)
    steps = ("ppse", "select", "gpo", "read", "genac", "ccc")
    hit = {}
    for st in steps:
        if rnd.randint(0, 2) == 0:
            hit[st] = rnd.randint(0, 5)
    if not hit:
        hit[steps[rnd.randint(0, len(steps) - 1)]] = 0
    shown = []
    cfg = {}
    if kw.get("magstripe") or rnd.randint(0, 5) == 0:
        cfg["cl_magstripe"] = True
    if rnd.getrandbits(1):
        cfg["online_pin"] = True

    @aharness
    async def xchg(apdu):
        resp = card.respond(bytes(apdu))
        st = card.seen[-1]
        how = hit.get(st)
        if how is not None and (st != "read" or rnd.getrandbits(1)):  # one record or several
            if how == 5:
                raise Fault("CRD-11", "card left the field", "nfc")  # as the PN532 driver reports it
            if how == 4:
                resp = rand_bytes(rnd, rnd.randint(0, 40))
            elif how == 3:
                resp = (resp or b"")[:-2] + bytes((rnd.getrandbits(8), rnd.getrandbits(8)))
            elif how == 2:
                resp = mutate(resp or b"\x90\x00", rnd, _TLV)
            else:
                resp = mutate_tlv(resp or b"\x90\x00", rnd, _TLV)
        if resp is None:
            raise Fault("CRD-11", "card left the field", "nfc")
        shown.append(resp)
        CUR["input"] = b"|".join(shown)  # the card's answers so far: the reproducer of a crash
        return resp

    try:
        c = await emv.read_card(xchg, _emv_amount(rnd), "978", cfg, NOW, b"\x00\x00\x00\x01")
    except Fault as f:
        return fault_key(f), b"|".join(shown)
    return _check_card(c), b"|".join(shown)


# ---------------------------------------------------------------- PN532 through the driver
class SimClock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


class SimPipe:
    """The driver's UART: what the fake PN532 answered, in random-size chunks.

    Time is simulated: when nothing is left to read, the wait the driver is
    in ends at once (the clock jumps past it and the read times out), so a
    case that waits for an answer that never comes costs no real time.
    """

    def __init__(self, on_write, clock, rnd):
        self.buf = bytearray()
        self.on_write = on_write
        self.clock = clock
        self.rnd = rnd
        self.reads = 0

    @harness
    def feed(self, data):
        self.buf.extend(data)

    @aharness
    async def read(self, n):
        self.reads += 1
        if self.reads > 5000:
            raise Hang("driver keeps reading")
        if not self.buf:
            self.clock.now += 100000
            raise asyncio.TimeoutError()
        k = min(n, len(self.buf), self.rnd.randint(1, 64))
        out = bytes(self.buf[:k])
        self.buf = self.buf[k:]
        self.clock.now += 1
        return out

    @harness
    def write(self, b):
        self.on_write(bytes(b))

    async def drain(self):
        pass


def _pn532_frames():
    fk = _fakes()
    return [fk.ACK, fk.ERR, fk.frame(b"\xd5\x03\x32\x01\x06\x07"),
            fk.frame(b"\xd5\x4b\x01\x01\x00\x04\x20\x04\x01\x02\x03\x04\x05\x78\x80\x70\x02"),
            fk.frame(b"\xd5\x41\x00" + fk.FakeCard().respond(APDU["ppse"])), fk.frame(b"\xd5\x15"),
            fk.frame(b"\xd5\x33"), fk.frame(b"\xd5\x4b\x00")]


_PN = []


async def case_pn532(rnd):
    from payterm.card.pn532 import PN532

    fk = _fakes()
    if not _PN:
        _PN.extend(_pn532_frames())
    clock = SimClock()
    fake = fk.FakePN532()
    ncards = rnd.randint(0, 2)
    fake.cards = [fk.FakeCard(uid=bytes((4, i, 2, 3))) for i in range(ncards)]
    pipe = SimPipe(fake._on_write, clock, rnd)
    fake.pipe = pipe
    noise = (0, 2, 6, 12, 40)[rnd.randint(0, 4)]  # per cent of the frames the line damages
    seen = bytearray()

    @harness
    def feed(b):
        r = rnd.randint(0, 99)
        if r < noise:
            how = rnd.randint(0, 5)
            if how == 0:
                b = pick(rnd, _PN, 64, 3)  # answer replaced
            elif how <= 2:
                b = mutate(b, rnd, _PN)
            elif how == 3:
                b = b""  # lost
            elif how == 4:
                b = b + b  # repeated
            else:
                b = rand_bytes(rnd, rnd.randint(1, 20)) + b  # line noise first
        seen.extend(b)
        SimPipe.feed(pipe, b)

    fake._emit = feed  # responses and retransmissions
    orig_on_write = fake._on_write

    def on_write(b):
        # the fake feeds ACK/ERR through pipe.feed directly: route those through the noise too
        pipe.feed = feed
        try:
            orig_on_write(b)
        finally:
            del pipe.feed

    pipe.on_write = on_write
    drv = PN532(pipe, clock, ack_ms=50, resp_ms=1000)
    try:
        await drv.begin()
        tgt = await drv.poll()
        if tgt is not None:
            r = await drv.exchange(tgt.tg, APDU["ppse"])
            if len(r) < 2:
                raise Bad("exchange returned %d bytes" % len(r))
            await drv.release(tgt.tg)
    except Fault as f:
        key = fault_key(f)
    else:
        key = "ok"
    if not 0 <= drv._n <= len(drv._rx):
        raise Bad("receive buffer count %d" % drv._n)
    return key, bytes(seen)


# ---------------------------------------------------------------- ISO 8583
VEC = {"responses": [], "frames": []}


def case_iso8583(rnd):
    from payterm.link import iso8583

    data = pick(rnd, VEC["responses"], 200)
    try:
        msg = iso8583.decode(data)
    except Fault as f:
        return fault_key(f), data
    for k, v in msg.items():
        if not isinstance(v, (str, bytes)):
            raise Bad("field %s decoded to %r" % (k, type(v)))
    return "decoded", data


class SimConn:
    """One TCP connection to the acquirer: reads give what the host sent (simulated time, as SimPipe)."""

    def __init__(self, data, clock, rnd, end):
        self.data = bytearray(data)
        self.clock = clock
        self.rnd = rnd
        self.end = end  # what happens when the host has nothing more to send: "eof" or "silence"
        self.written = bytearray()
        self.closed = False

    @aharness
    async def readexactly(self, n):
        if len(self.data) < n:
            if self.end == "eof":
                raise EOFError()
            self.clock.now += 100000
            raise asyncio.TimeoutError()
        out = bytes(self.data[:n])
        self.data = self.data[n:]
        return out

    def write(self, b):
        self.written.extend(b)

    async def drain(self):
        pass

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass


_SEAL = {}


def _keys():
    """The vector request's message keys with the firmware's own DUKPT and CMAC: the terminal's Seal
    (MACs the request, checks the answer) and the host's MAC of an answer (the verification key)."""
    if not _SEAL:
        import binascii

        from payterm.crypto import aes, dukpt, msgmac
        from payterm.crypto.cmac import Cmac

        ik = binascii.a2b_base64(VEC["ik"])
        ikid = binascii.unhexlify(VEC["ikid"])
        tc = VEC["counter"]
        tx = dukpt.Transaction(ikid, tc, dukpt.intermediate_key(ik, ikid, tc))
        if tx.field53() != VEC["ksn"]:
            raise HarnessError("firmware KSN %s, vectors %s" % (tx.field53(), VEC["ksn"]))
        _SEAL["sec"] = msgmac.Seal(tx)
        k = tx.response_mac_key()
        _SEAL["host"] = Cmac(k)
        aes.wipe(k)
        tx.wipe()
    return _SEAL


@harness
def _framed(body):
    return bytes((len(body) >> 8, len(body) & 0xFF)) + body


async def case_link(rnd):
    from payterm.link import messages
    from payterm.link.link import Link

    keys = _keys()
    clock = SimClock()
    frames = VEC["frames"]
    kinds = VEC["kinds"]
    answers = [i for i, k in enumerate(kinds) if k == "ok"]
    others = [i for i, k in enumerate(kinds) if k == "other"]
    # what the host sends back: mostly the matching answer (maybe broken), maybe after answers that do not match
    out = bytearray()
    for _ in range(rnd.randint(0, 2)):
        out.extend(frames[others[rnd.randint(0, len(others) - 1)]])
    i = answers[rnd.randint(0, len(answers) - 1)]
    ans = frames[i]
    r = rnd.randint(0, 11)
    expect = None  # the outcome this answer must have: "rc=.." accepted, or the code it is refused with
    if r == 0:
        broken = [f for f, k in zip(frames, kinds) if k == "broken"]
        ans = rand_bytes(rnd, rnd.randint(0, 80)) if rnd.getrandbits(1) else broken[rnd.randint(0, len(broken) - 1)]
    elif r <= 4:
        # the host's own odd answer: the fields mutated, then MACed as the host MACs (reaches the parser
        # and the checks behind the MAC check)
        body = mutate(ans[2:-8], rnd, [f[2:-8] for f in frames if len(f) > 10])
        ans = _framed(body + keys["host"].mac(body, 8))
    elif r <= 6:
        ans = mutate(ans, rnd, frames)  # damaged on the way: the MAC no longer matches (or the frame breaks)
    elif r == 7:
        k = rnd.randint(len(ans) - 8, len(ans) - 1)  # one MAC byte wrong
        ans = ans[:k] + bytes((ans[k] ^ (1 << rnd.randint(0, 7)),)) + ans[k + 1:]
        expect = "KEY-07"
    elif r == 8:
        ans = frames[kinds.index("no_mac")]
        expect = "KEY-08"
    elif r == 9:
        ans = frames[kinds.index("bad_mac")]
        expect = "KEY-07"
    else:
        expect = "rc=" + VEC["rcs"][i]  # the simulator's answer as it came: taken
    out.extend(ans)
    if rnd.randint(0, 3) == 0:
        out.extend(mutate(frames[rnd.randint(0, len(frames) - 1)], rnd, frames))
    conn = SimConn(out, clock, rnd, "eof" if rnd.getrandbits(1) else "silence")

    async def open_connection(host, port, ssl=None, server_hostname=None):
        return conn, conn

    link = Link([("127.0.0.1", 9)], open_connection, clock, 1000, 2500)
    req = messages.sale("000123", "TERM0001", 1250, "978", {"2": "4761739001010010", "14": "3012"},
                        "MERCHANT0000001", NOW)
    req[messages.F_KSN] = keys["sec"].field53()
    try:
        resp = await link.exchange(req, sec=keys["sec"])
    except Fault as f:
        if getattr(f, "sent", None) is not True:
            raise Bad("%s after the request was written but sent=%r" % (f.code, getattr(f, "sent", None)))
        if expect is not None and f.code != expect:
            raise Bad("answer refused with %s, expected %s" % (f.code, expect))
        return fault_key(f), bytes(out)
    if resp.get("11") != "000123" or resp.get("t") != "0210" or resp.get("41") != "TERM0001":
        raise Bad("accepted a response that does not match: %r" % ({k: resp.get(k) for k in ("t", "11", "41")},))
    got = "rc=" + str(resp.get("39"))
    if expect is not None and got != expect:
        raise Bad("answer gave %s, expected %s" % (got, expect))
    return got, bytes(out)


# ---------------------------------------------------------------- keypad -> panel -> cashier
# What the system tests type (README: merchant PIN 1234, technician PIN 4321): sales (with the confirmation
# of a large amount), refund / void / training behind the merchant PIN, status, reprint, the technician menu.
KEY_VECTORS = [b"1250E", b"1000E", b"0E", b"E", b"C", b"12B50E", b"F1500E", b"F2000001E", b"F3000001E",
               b"F94321E#####C", b"F90000E1111E2222E", b"F9C", b"999999999999E", b"F", b"FC", b"F9" + b"4" * 12 + b"E",
               b"F94321E*8822E##E#C", b"F11234E1500EE", b"F11234E1500EC", b"F10000E1234E1500EE", b"F1C",
               b"F21234E000001EE", b"F21234E1EC", b"F21234EC", b"F3000002E", b"F4", b"1250EF4",
               b"F51234E1250EF5", b"F51234EF94321E", b"F50000E0000E0000E0000E0000E", b"50000EE", b"50000EC",
               b"60000E", b"1250E1234E", b"1250E123456789012E", b"1250EC", b"F11234E60000EEE"]
_KEY_BOUND_MS = 1000  # fuzz time bound of a keypad case (the driver's default)


class SimTicks:
    """The UI's ticks(): real milliseconds plus every key wait the fuzz panel cut short (time compressed)."""

    def __init__(self):
        self.skipped = 0

    def __call__(self):
        return time.ticks_add(time.ticks_ms(), self.skipped)


TICKS = SimTicks()


class KeyStream:
    """The panel UART: bytes arrive a few at a time, and the reader task yields between reads."""

    def __init__(self, data, rnd):
        self.data = bytearray(data)
        self.rnd = rnd
        self.ev = asyncio.Event()

    @property
    def drained(self):
        return not self.data

    @aharness
    async def read(self, n):
        if not self.data:
            await self.ev.wait()  # nothing more comes: the reader task waits like on an idle UART
        await asyncio.sleep_ms(0)
        k = min(n, len(self.data), self.rnd.randint(1, 16))
        out = bytes(self.data[:k])
        self.data = self.data[k:]
        return out

    @harness
    def write(self, b):
        for line in bytes(b).split(b"\n"):
            if line.startswith(b"D") and len(line) > 3 + 20:
                raise Bad("display row longer than 20: %r" % line)


def _ui_classes():
    from payterm.ui.panel import Panel

    class FastPanel(Panel):
        """The real panel; its waits for a key end after 1 ms instead of seconds, and the UI's clock
        (TICKS) moves on by the whole wait: time compressed, so result holds and timeouts end at once."""

        waiting = False

        async def key(self, timeout_ms=None):
            if timeout_ms is None:
                self.waiting = not len(self._keys)
                try:
                    return await Panel.key(self, None)
                finally:
                    self.waiting = False
            k = await Panel.key(self, 1)
            if k is None:
                TICKS.skipped += max(0, timeout_ms - 1)
            return k

    return FastPanel


class StubCards:
    """The card service as the cashier flows see it (payterm.card.service.CardService.present and its state)."""

    def __init__(self, rnd):
        self.rnd = rnd
        self.armed = False
        self.awaiting_removal = False
        self.on_ignored = None  # set by the Cashier
        self.on_field_empty = None

    @aharness
    async def present(self, amount, currency, timeout_ms, prompt=None):
        from payterm.card.card import Card

        rnd = self.rnd
        self.armed = True
        try:
            tell = prompt or (lambda *a: None)
            if rnd.randint(0, 5) == 0:
                tell("remove")  # a card left on the contactless reader
                await asyncio.sleep_ms(0)
            tell("present")
            for _ in range(rnd.randint(0, 2)):  # read errors: the sale waits for another try
                await asyncio.sleep_ms(0)
                tell("error", Fault(("CRD-04", "CRD-05", "CRD-06", "CRD-13")[rnd.randint(0, 3)], "stub", "card"))
            await asyncio.sleep_ms(0)
            r = rnd.randint(0, 3)
            if r == 0:
                raise Fault(("CRD-01", "CRD-05", "CRD-07", "HW-01")[rnd.randint(0, 3)], "stub", "card")
            tap = rnd.getrandbits(1)
            self.awaiting_removal = bool(tap)
            sc = ("101", "201", "206", "120")[rnd.randint(0, 3)]  # x06 / x20: the cardholder's PIN is asked
            card = Card("tap" if tap else "swipe", bytearray(b"4761739001010010"), "3012", service_code=sc)
            if tap and rnd.randint(0, 2) == 0:
                card.cvm = "online_pin"
            return card
        finally:
            self.armed = False


class StubWorker:
    """The background worker as the technician menu sees it: failed advices, retry."""

    def __init__(self, rnd):
        self.rnd = rnd
        self._failed = [{"ref": "%06d" % (i + 1), "code": "HST-05"} for i in range(rnd.randint(0, 2))]

    def failed(self):
        return list(self._failed)

    def items(self):
        """(kind, record, due ms or None) of the queue, as payterm.txn.worker.Worker.items."""
        return [("advice", {"ref": f["ref"], "st": "pending", "tries": 1, "amt": 1250, "cur": 978}, None)
                for f in self._failed]

    async def retry(self, ref):
        await asyncio.sleep_ms(0)
        if self.rnd.getrandbits(1):
            raise Fault("OPR-04", "nothing to retry for %s" % ref, "txn")
        return ref


class StubJournal:
    def __init__(self, rnd):
        self._recs = [{"ref": "%06d" % (i + 1), "kind": ("sale", "refund", "saf")[i % 3], "amt": 1250 * (i + 1),
                       "cur": 978, "st": ("approved", "declined", "pending")[i % 3], "pan": "476173******0010",
                       "ts": NOW - 60 * i} for i in range(rnd.randint(0, 3))]

    def records(self):
        return list(self._recs)

    def get(self, ref):
        for t in self._recs:
            if t["ref"] == ref:
                return t
        return None


class StubEngine:
    """The engine as the cashier flows see it (payterm.txn.engine.Engine): sale, refund, void, look-up."""

    def __init__(self, rnd):
        self.rnd = rnd
        self.saf = self
        self.journal = StubJournal(rnd)
        self.n = 0

    def summary(self):
        return {"pending": 0, "sent": 0, "declined": 0, "failed": 0}

    @aharness
    async def _result(self, kind, card=None, amount=0, pin=None):
        from payterm.txn.result import Result

        await asyncio.sleep_ms(0)
        if card is not None:
            card.wipe()
        if pin is not None:
            for i in range(len(pin)):
                pin[i] = 0
        self.n += 1
        ok = self.rnd.getrandbits(1)
        r = Result(ok, code=None if ok else "ISS-51", rc="00" if ok else "51", auth_code="A1B2C3" if ok else None,
                   stan="%06d" % self.n, ref="%06d" % self.n, amount=amount, currency=978, kind=kind,
                   masked="476173******0010")
        if card is not None:
            r.card_info(card)
        return r

    async def sale(self, card, amount, cur, pin=None):
        return await self._result("sale", card, amount, pin)

    async def refund(self, card, amount, cur):
        return await self._result("refund", card, amount)

    def check_void(self, ref):
        t = self.journal.get(ref)
        if t is None:
            return None, "OPR-04"
        if t["kind"] != "sale" or t["st"] != "approved":
            return t, "OPR-06"
        return t, None

    async def void(self, ref):
        from payterm.txn.result import Result

        o, code = self.check_void(ref)
        if code:
            return Result(False, code=code, kind="void")
        r = await self._result("void", amount=o["amt"])
        r.orig = ref
        return r

    def lookup(self, ref):
        t = self.journal.get(ref)
        if t is None:
            raise Fault("OPR-04", "no ref %s" % ref, "lookup")
        return t

    def status_of(self, t):
        return t.get("st", "?")


class StubHal:
    """What the flows take from the HAL: no printer, the UI's clock, flash for training mode."""

    printer = None

    def __init__(self, env):
        self.storage = env["dir"]
        self.clock = env["clock"]
        self.ticks = TICKS


_UI = {}


def _fast_training():
    """Training mode's host answers after its real delay (400 ms, WAITING FOR HOST) on the UI's
    compressed clock (TICKS), not in real time: two training sales would otherwise pass the time bound."""
    from payterm.txn import training

    base = training.TrainingHost

    async def sleep_ms(ms):
        TICKS.skipped += ms
        await asyncio.sleep_ms(0)

    class FastTrainingHost(base):
        def __init__(self, status=None):  # as payterm.txn.training.engine() makes it: the default delay
            base.__init__(self, status, sleep_ms=sleep_ms)

    training.TrainingHost = FastTrainingHost


def _ui_env():
    """One Diag, PIN gate and self-tests on scratch files, shared by the keypad and console cases."""
    if _UI:
        return _UI
    import os

    from payterm.diag import Diag
    from payterm.diag.pin import PinGate
    from payterm.diag.selftest import SelfTests

    d = (os.getenv("PAYTERM_TMP") or "/tmp") + "/fuzz-ui"
    try:
        os.mkdir(d)
    except OSError:
        pass
    clock = SimClock()
    clock.now = NOW
    diag = Diag(d, clock, time.ticks_ms)
    st = SelfTests(diag, timeout_s=1)

    async def ok():
        return "ok"

    async def broken():
        raise Fault("HW-01", "stub reader", "selftest")

    st.add("reader", broken)
    st.add("storage", ok)
    _fast_training()
    _UI.update(diag=diag, clock=clock, pin=PinGate(d + "/pin.json", "4321", clock, diag=diag), selftests=st, dir=d,
               mpin=PinGate(d + "/mpin.json", "1234", clock, diag=diag, wrong="OPR-07", locked="OPR-08"))
    return _UI


class StubApp:
    def __init__(self, panel, rnd):
        env = _ui_env()
        from payterm.config import DEFAULTS

        self.panel = panel
        # the terminal's parameters as provisioned (payterm.config defaults), result screens held briefly
        self.cfg = dict(DEFAULTS)
        self.cfg.update({"terminal_id": "TERM0001", "merchant_id": "MERCHANT0000001", "currency": 978,
                         "merchant_name": "FUZZ SHOP", "card_timeout_ms": 1000, "result_ms": 10,
                         "result_min_ms": 0, "page_ms": 500, "pin_debit": rnd.getrandbits(1) == 1})
        self.engine = StubEngine(rnd)
        self.cards = StubCards(rnd)
        self.worker = StubWorker(rnd)
        self.hal = StubHal(env)
        self.diag = env["diag"]
        self.selftests = env["selftests"]
        self.pin = env["pin"]
        self.merchant_pin = env["mpin"]
        self.events = []

    def event(self, text):
        self.events.append(text)

    def info(self):
        return {"version": "fuzz", "board": "FUZZ", "saf_pending": 0}


async def case_keypad(rnd):
    from payterm.ui.flows import Cashier

    env = _ui_env()
    env["clock"].now += 1000  # a PIN lockout from an earlier case has passed
    data = pick(rnd, KEY_VECTORS, 40)
    FastPanel = _UI.get("panel_cls")
    if FastPanel is None:
        FastPanel = _UI["panel_cls"] = _ui_classes()
    stream = KeyStream(data, rnd)
    panel = FastPanel(stream)
    app = StubApp(panel, rnd)
    cashier = Cashier(app)
    tasks = [asyncio.create_task(panel.run()), asyncio.create_task(cashier.run())]
    try:
        while True:
            await asyncio.sleep_ms(0)
            for t in tasks:
                if t.done():
                    await t  # a task that ended raised (MicroPython's Task has no result()): the crash is reported
                    raise Bad("a UI task returned")
            if stream.drained and panel.waiting and not len(panel._keys):
                break
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.sleep_ms(0)
    key = "idle"
    for e in app.events:
        if e.startswith("FAIL ") and "code=" in e:
            key = e.split("code=")[1].split()[0]
        elif e.startswith("TXN "):
            key = "txn_" + e.split()[3].lower()
        elif e.startswith("LOOKUP"):
            key = "lookup"
        elif e == "TECHMENU" and key == "idle":
            key = "techmenu"
        elif e == "TRAINING ON" and key == "idle":
            key = "training"
    for f in env["diag"].faults(3):
        fault_key(Fault(f["code"]))
    return key, data


# ---------------------------------------------------------------- console lines
_LINE_MAX = 2048  # longer than any line the console reader hands on (it keeps 512 bytes)
CONSOLE_VECTORS = [b"help", b"status", b"faults", b"faults 5", b"faults 999", b"stats", b"wait", b"selftest",
                   b"selftest reader", b"code CRD-05", b"code ISS-51", b"code", b"export", b"pin 1234", b"pin 4321",
                   b"pin", b"clear", b"clear faults", b"clear stats", b"logout", b"FAULTS -1", b"code \xc3\xa9"]


@harness
def _line(data):
    """Console bytes as the reader would hand them on: UTF-8 where it is, one char per byte where not."""
    try:
        return data.decode("utf-8")
    except UnicodeError:
        return "".join([chr(b) for b in data])


async def case_console(rnd):
    from payterm.diag.console import Console

    env = _ui_env()
    env["clock"].now += 1000
    r = rnd.randint(0, 9)
    if r == 0:
        data = (pick(rnd, CONSOLE_VECTORS, 40) * rnd.randint(20, 200))[:_LINE_MAX]  # over-long
    elif r == 1:
        data = bytes(rnd.randint(0, 31) for _ in range(rnd.randint(1, 30)))  # control bytes
    else:
        data = pick(rnd, CONSOLE_VECTORS, 60)
    CUR["input"] = data
    con = Console(env["diag"], env["selftests"], env["pin"], env["clock"], info=lambda: {"version": "fuzz"})
    out = await con.handle(_line(data))
    if not isinstance(out, list) or any(not isinstance(x, str) for x in out):
        raise Bad("answer is not a list of str: %r" % (out,))
    if not out:
        return "empty", data
    last = out[-1]
    if last == "OK":
        return "OK", data
    if not last.startswith("ERR "):
        raise Bad("answer ends with %r" % last[:40])
    code = last.split()[1]
    if code != "USAGE":
        fault_key(Fault(code))
    return "ERR " + code, data


# ---------------------------------------------------------------- runner
CASES = {"magstripe": case_magstripe, "tracks": case_tracks, "pn532": case_pn532, "tlv": case_tlv,
         "emv": case_emv, "iso8583": case_iso8583, "link": case_link, "keypad": case_keypad,
         "console": case_console}


def case_seed(seed, target, i):
    h = seed & 0x3FFFFFFF
    for ch in target:
        h = (h * 31 + ord(ch)) & 0x3FFFFFFF
    return (h * 1000003 + i) & 0x3FFFFFFF


def _exc_text(e):
    s = io.StringIO()
    sys.print_exception(e, s)
    return s.getvalue()[-1500:]


async def run(target, seed, first, count, bound_ms):
    fn = CASES[target]
    res = {"target": target, "seed": seed, "first": first, "inputs": 0, "crashes": 0, "hangs": 0, "bad": 0,
           "outcomes": {}, "signatures": {}, "max_ms": 0}
    reports = 0
    for i in range(first, first + count):
        rnd = random
        rnd.seed(case_seed(seed, target, i))
        t0 = time.ticks_us()
        CUR["input"] = data = b""
        kind = None
        try:
            r = fn(rnd)
            if hasattr(r, "send"):
                r = await asyncio.wait_for_ms(r, bound_ms)
            key, data = r
        except asyncio.TimeoutError:
            kind, key, detail = "hangs", "hang", "cut off after %d ms" % bound_ms
        except Hang as e:
            kind, key, detail = "hangs", "hang", str(e)
        except Bad as e:
            kind, key, detail = "bad", "bad", str(e)
        except HarnessError:
            raise
        except Exception as e:  # anything but a Fault escaping a parser is a crash
            kind, key, detail = "crashes", "crash", _exc_text(e)
        if kind:
            data = data or CUR["input"]
        ms = time.ticks_diff(time.ticks_us(), t0) // 1000
        if kind is None and ms > bound_ms:
            kind, key, detail = "hangs", "hang", "took %d ms" % ms
        res["max_ms"] = max(res["max_ms"], ms)
        res["inputs"] += 1
        res["outcomes"][key] = res["outcomes"].get(key, 0) + 1
        if kind:
            res[kind] += 1
            lines = [l for l in detail.strip().split("\n") if l.strip()]
            sig = "%s:%s" % (target, lines[-1].strip() if lines else kind)
            res["signatures"][sig] = res["signatures"].get(sig, 0) + 1
            if res["signatures"][sig] <= 3 and reports < 30:  # a few reproducers of each kind of finding
                reports += 1
                print("@@" + ("HANG " if kind == "hangs" else "CRASH ") + json.dumps(
                    {"target": target, "seed": seed, "case": i, "kind": kind, "detail": detail,
                     "input": bytes(data[:256]).hex() if isinstance(data, (bytes, bytearray)) else repr(data)}))
        if i % 250 == 0:
            print("@@AT", i)
            gc.collect()  # the harness's own garbage must not fragment the heap the code under test gets
    print("@@RESULT " + json.dumps(res))


def main():
    target, seed, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    bound_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    if len(sys.argv) > 6:
        with open(sys.argv[6]) as f:
            v = json.load(f)
        VEC["responses"] = [bytes.fromhex(x) for x in v.get("responses", ())]
        VEC["frames"] = [bytes.fromhex(x) for x in v.get("frames", ())]
        for k in ("kinds", "ik", "ikid", "counter", "ksn", "rcs"):
            VEC[k] = v.get(k)
    asyncio.run(run(target, seed, first, count, bound_ms))


main()

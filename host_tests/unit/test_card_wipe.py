"""Card data is overwritten after use: reader buffers, EMV records, the Card, the ISO 8583 encode buffer.

Each test runs a real read (swipe or tap through the fakes), builds and
encodes the authorization request, wipes, then inspects the buffers.
"""
# runtimes: unix
import asyncio
import time

from mpt import eq

from payterm.card import emv, tlv
from payterm.errors import Fault
from payterm.card.service import CardService
from payterm.link import iso8583, messages
from payterm.link.link import Link
from test_card_fakes import FakeCard, FakePN532, Pipe

NOW = 1795435200
PAN = b"4761739001010010"
T1T2 = b"%B4761739001010010^DOE/JOHN^3012101000000?;4761739001010010=30121010000000?\r\n"
FAST = {"nfc_ack_ms": 30, "nfc_resp_ms": 200, "nfc_poll_ms": 20, "nfc_retry_ms": 50, "mag_gap_ms": 30}


def zeroed(buf, what):
    for i in range(len(buf)):
        if buf[i]:
            raise AssertionError("%s not overwritten: byte %d is %02x" % (what, i, buf[i]))


def has(buf, needle):
    return bytes(buf).find(needle) >= 0


async def read(svc, action):
    events = []

    def prompt(ev, fault=None):
        events.append(ev)
        if ev == "present":
            action()

    return await svc.present(1234, "978", 2000, prompt)


def make():
    mag = Pipe()
    fake = FakePN532()
    svc = CardService(mag, fake.pipe, time.ticks_ms, lambda: NOW, FAST, rand=lambda n: b"\x07" * n)
    return svc, mag, fake


def request(card):
    return messages.sale("000042", "TERM0001", 1234, "978", card.auth_fields(), "MERCHANT0000001", NOW)


async def test_swipe_buffers_request_and_card_are_zeroed():
    svc, mag, fake = make()
    card = await read(svc, lambda: mag.feed(T1T2))
    eq(card.source, "swipe")
    zeroed(svc._magbuf, "raw swipe buffer")
    zeroed(svc._magchunk, "magstripe read chunk")
    fields = request(card)
    for k in ("2", "14", "35"):
        assert isinstance(fields[k], bytearray), "field %s is wipeable" % k
    c = iso8583.Codec()
    frame = c.frame(fields)
    assert has(frame, PAN) and has(frame, b"=3012101"), "the request carries PAN and track 2"
    c.wipe()
    zeroed(c._buf, "ISO 8583 encode buffer")
    handed = list(card.auth_fields().values())
    card.wipe()
    for v in handed:
        zeroed(v, "auth_fields value")
    for k in ("2", "14", "35"):
        zeroed(fields[k], "request field %s" % k)
    for b in card.buffers():
        zeroed(b, "card buffer")


async def test_tap_buffers_records_request_and_card_are_zeroed():
    svc, mag, fake = make()
    log = []
    real_walk, spy = _spy_walk(log)
    tlv.walk = spy
    try:
        card = await read(svc, lambda: fake.cards.append(FakeCard()))
    finally:
        tlv.walk = real_walk
    eq(card.source, "tap")
    nfc = svc.nfc
    for name in ("_rx", "_fbuf", "_chunk", "_tx"):
        zeroed(getattr(nfc, name), "PN532 " + name)
    eq(nfc._n, 0)
    _check_walked(log)
    fields = request(card)
    assert has(fields["55"], b"\x9f\x26\x08" + b"\x11" * 8), "field 55 carries the cryptogram"
    c = iso8583.Codec()
    frame = c.frame(fields)
    assert has(frame, PAN)
    c.wipe()
    zeroed(c._buf, "ISO 8583 encode buffer")
    handed = list(card.auth_fields().values())
    card.wipe()
    for v in handed:
        zeroed(v, "auth_fields value")
    eq(bytes(card.masked.encode()), b"476173******0010", "the masked form stays")


_CARD_TAGS = (0x5A, 0x57, 0x5F20, 0x9F26)  # PAN, track 2 equivalent, name, cryptogram


def _spy_walk(log):
    """tlv.walk that remembers every dict it filled and the values in it (by identity)."""
    real_walk = tlv.walk

    def spy(buf, into=None, depth=0):
        d = real_walk(buf, into, depth)
        if depth == 0:
            for entry in log:
                if entry[0] is d:
                    break
            else:
                entry = (d, [], [])
                log.append(entry)
            for k, v in d.items():
                entry[1].append(k)
                entry[2].append(v)
        return d

    return real_walk, spy


def _check_walked(log):
    card_dicts = [e for e in log if any(t in e[1] for t in _CARD_TAGS)]
    assert card_dicts, "card data was walked"
    for d, keys, vals in card_dicts:
        eq(len(d), 0, "EMV data objects dropped")
        for v in vals:
            zeroed(v, "EMV data object")


async def test_emv_read_zeroes_its_records_on_failure_too():
    log = []
    real_walk, spy = _spy_walk(log)
    card = FakeCard(exp="2001")  # expired: fails after the records were read

    async def xchg(apdu):
        return card.respond(bytes(apdu))

    tlv.walk = spy
    try:
        try:
            await emv.read_card(xchg, 100, "978", {}, NOW, b"\x00\x00\x00\x01")
        except Fault as e:
            eq(e.code, "CRD-08")
        else:
            raise AssertionError("expired card read")
    finally:
        tlv.walk = real_walk
    _check_walked(log)


async def test_mchip_read_zeroes_records_cryptogram_and_command_buffers():
    """GENERATE AC path: the answer, the CDOL1 data and the command buffers are zeroed too."""
    log = []
    real_walk, spy = _spy_walk(log)
    card = FakeCard(aids=(("A0000000041010", "MASTERCARD", 1),), pan="5413330089010434")
    cmds = []

    async def xchg(apdu):
        cmds.append(apdu)
        return card.respond(bytes(apdu))

    tlv.walk = spy
    try:
        c = await emv.read_card(xchg, 100, "978", {}, NOW, b"\x00\x00\x00\x01")
    finally:
        tlv.walk = real_walk
    eq(card.seen[-1], "genac")
    _check_walked(log)
    gen = [d for d, keys, _ in log if 0x9F26 in keys]
    assert gen, "the GENERATE AC answer was walked"
    for a in cmds:
        if isinstance(a, bytearray):  # GPO and GENERATE AC: terminal and card data in the command
            zeroed(a, "command APDU %r" % bytes(a[:2]))
    assert sum(1 for a in cmds if isinstance(a, bytearray)) == 2, "GPO and GENERATE AC buffers are wipeable"
    handed = list(c.auth_fields().values())
    c.wipe()
    for v in handed:
        zeroed(v, "auth_fields value")


class _Conn:
    """One TCP connection to a host that approves: request bytes in, a matching 0210 out."""

    def __init__(self):
        self.sent = bytearray()
        self.inbox = bytearray()
        self.ev = asyncio.Event()
        self.codec = iso8583.Codec()

    def write(self, b):
        self.sent.extend(b)
        req = self.codec.decode(bytes(self.sent[2:]))
        resp = {"t": "0210", "11": req["11"], "41": req["41"], "39": "00"}
        self.inbox.extend(self.codec.frame(resp))
        self.ev.set()

    async def drain(self):
        pass

    async def readexactly(self, n):
        while len(self.inbox) < n:
            self.ev.clear()
            await self.ev.wait()
        out = bytes(self.inbox[:n])
        self.inbox = self.inbox[n:]
        return out

    def close(self):
        pass

    async def wait_closed(self):
        pass


async def test_link_wipes_the_codec_buffer_once_the_frame_is_sent():
    svc, mag, fake = make()
    card = await read(svc, lambda: mag.feed(T1T2))
    conn = _Conn()

    async def open_connection(host, port, **kw):
        return conn, conn

    codec = iso8583.Codec()
    link = Link([("127.0.0.1", 1)], open_connection, time.ticks_ms, 500, 500, codec=codec)
    resp = await link.exchange(request(card))
    eq(resp["39"], "00")
    assert has(conn.sent, PAN), "the host got the PAN"
    zeroed(codec._buf, "shared encode buffer after the exchange")
    card.wipe()

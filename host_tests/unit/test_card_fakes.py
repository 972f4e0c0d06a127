"""Fakes shared by the card tests: an in-memory stream, a PN532 and an EMV card.

The PN532 fake frames its answers from UM0701-02 by hand (it does not use
the driver's code) so the driver is checked against the manual, not
against itself. The tests in this file pin the fakes to the manual's
worked examples.
"""
import asyncio

from mpt import eq


class Pipe:
    """asyncio-stream lookalike: read(n)/readinto(b) wait for fed bytes, write() goes to a handler."""

    def __init__(self, on_write=None):
        self.buf = bytearray()
        self.ev = asyncio.Event()
        self.on_write = on_write
        self.written = bytearray()
        self.closed = False

    def feed(self, data):
        self.buf.extend(data)
        self.ev.set()

    async def read(self, n):
        while not self.buf:
            if self.closed:
                return b""
            self.ev.clear()
            await self.ev.wait()
        out = bytes(self.buf[:n])
        self.buf = self.buf[n:]
        return out

    async def readinto(self, b):
        """asyncio.Stream.readinto: waits for bytes, fills what fits, returns the count."""
        out = await self.read(len(b))
        b[:len(out)] = out
        return len(out)

    def write(self, b):
        b = bytes(b)
        self.written.extend(b)
        if self.on_write:
            self.on_write(b)

    async def drain(self):
        pass


def tlv(tag, value):
    tb = bytes((tag,)) if tag < 0x100 else bytes((tag >> 8, tag & 0xFF))
    n = len(value)
    lb = bytes((n,)) if n < 0x80 else bytes((0x81, n))
    return tb + lb + bytes(value)


def frame(data):
    """UM0701-02 6.2.1.1 normal information frame."""
    ln = len(data)
    s = 0
    for b in data:
        s += b
    return bytes((0, 0, 0xFF, ln, (0x100 - ln) & 0xFF)) + bytes(data) + bytes(((0x100 - (s & 0xFF)) & 0xFF, 0))


ACK = b"\x00\x00\xff\x00\xff\x00"
ERR = b"\x00\x00\xff\x01\xff\x7f\x81\x00"


class FakeCard:
    """EMV contactless card model answering SELECT / GPO / READ RECORD / GENERATE AC.

    kernel: "qvsdc" (Book C-3: cryptogram in the GPO answer) or "mchip" (Book C-2:
    GENERATE AC with CDOL1 after the records); by default from the AID (Visa: qvsdc).
    The cryptogram is a fixed value: the issuer's check of real ones is a system test.
    cid: cryptogram information data the card answers with; ctq: 9F6C in the GPO answer;
    aip: 82; extra: TLVs added to record 2 (a card putting terminal tags in a record);
    crypto=False: no cryptogram in the answer; genac_format: 1 (tag 80) or 2 (tag 77).
    """

    CDOL1 = b"\x9f\x02\x06\x9f\x03\x06\x9f\x1a\x02\x95\x05\x5f\x2a\x02\x9a\x03\x9c\x01\x9f\x37\x04\x9f\x35\x01\x9f\x34\x03"
    AC = b"\x11" * 8
    IAD_VISA = b"\x06\x01\x0a\x03\xa0\x00\x00"
    IAD_MC = b"\x01\x10\xa0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff"

    def __init__(self, pan="4761739001010010", exp="3012", sc="201", name="DOE/JANE",
                 aids=(("A0000000031010", "VISA", 1),), uid=b"\x04\x01\x02\x03",
                 pdol=b"\x9f\x02\x06\x5f\x2a\x02\x9f\x37\x04\x9f\x66\x04\x9a\x03", sw=None, remove_at=None, raw=None,
                 kernel=None, cid=0x80, ctq=None, aip=None, extra=b"", crypto=True, genac_format=2):
        self.pan, self.exp, self.sc, self.name = pan, exp, sc, name
        self.aids = aids
        self.uid = uid
        self.pdol = pdol
        self.sw = sw or {}
        self.remove_at = remove_at
        self.raw = raw or {}
        self.pdol_data = None
        self.cdol_data = None
        self.seen = []
        self.kernel = kernel or ("qvsdc" if aids[0][0].startswith("A000000003") else "mchip")
        self.cid = cid
        self.ctq = ctq
        self.aip = aip if aip is not None else (b"\x20\x00" if self.kernel == "qvsdc" else b"\x18\x80")
        self.extra = extra
        self.crypto = crypto
        self.genac_format = genac_format

    def t2(self):
        s = self.pan + "D" + self.exp + self.sc + "00000"
        if len(s) % 2:
            s += "F"
        return bytes.fromhex(s)

    def records(self):
        pan = self.pan + ("F" if len(self.pan) % 2 else "")
        r1 = tlv(0x70, tlv(0x57, self.t2()) + tlv(0x5F20, self.name.encode()))
        body = tlv(0x5A, bytes.fromhex(pan)) + tlv(0x5F24, bytes.fromhex(self.exp + "31")) + tlv(0x5F34, b"\x01")
        if self.kernel == "mchip":
            body += tlv(0x8C, self.CDOL1)  # "mchip-magstripe" / "mchip-nocdol": a card without one
        r2 = tlv(0x70, body + self.extra)
        return {(1, 1): r1, (2, 1): r2}

    def _crypto(self, iad):
        if not self.crypto:
            return b""
        return (tlv(0x9F27, bytes((self.cid,))) + tlv(0x9F36, b"\x00\x07") + tlv(0x9F26, self.AC)
                + tlv(0x9F10, iad))

    def respond(self, apdu):
        ins = apdu[1]
        step = {0xA4: "select", 0xA8: "gpo", 0xB2: "read", 0xAE: "genac", 0x2A: "ccc"}.get(ins, "?")
        if ins == 0xA4 and apdu[5:5 + apdu[4]] == b"2PAY.SYS.DDF01":
            step = "ppse"
        self.seen.append(step)
        if self.remove_at == step:
            return None
        if step in self.sw:
            return bytes((self.sw[step] >> 8, self.sw[step] & 0xFF))
        if step in self.raw:
            return self.raw[step] + b"\x90\x00"
        if step == "ppse":
            ents = b""
            for aid, label, pr in self.aids:
                ents += tlv(0x61, tlv(0x4F, bytes.fromhex(aid)) + tlv(0x50, label.encode()) + tlv(0x87, bytes((pr,))))
            return tlv(0x6F, tlv(0x84, b"2PAY.SYS.DDF01") + tlv(0xA5, tlv(0xBF0C, ents))) + b"\x90\x00"
        if step == "select":
            name = bytes(apdu[5:5 + apdu[4]])
            for aid, label, pr in self.aids:
                if bytes.fromhex(aid) == name:
                    return tlv(0x6F, tlv(0x84, name) + tlv(0xA5, tlv(0x50, label.encode()) + tlv(0x9F38, self.pdol))) + b"\x90\x00"
            return b"\x6a\x82"
        if step == "gpo":
            self.pdol_data = bytes(apdu[7:7 + apdu[6]])
            afl = b"\x08\x01\x01\x00\x10\x01\x01\x00"
            body = tlv(0x82, self.aip) + tlv(0x94, afl)
            if self.kernel == "qvsdc":
                body += self._crypto(self.IAD_VISA)  # Book C-3: the ARQC comes with GPO
                if self.ctq is not None:
                    body += tlv(0x9F6C, self.ctq)
            return tlv(0x77, body) + b"\x90\x00"
        if step == "read":
            r = self.records().get((apdu[3] >> 3, apdu[2]))
            return (r + b"\x90\x00") if r else b"\x6a\x83"
        if step == "genac":
            self.cdol_data = bytes(apdu[5:5 + apdu[4]])
            if self.genac_format == 1:
                if not self.crypto:
                    return tlv(0x80, bytes((self.cid,))) + b"\x90\x00"
                return tlv(0x80, bytes((self.cid,)) + b"\x00\x07" + self.AC + self.IAD_MC) + b"\x90\x00"
            return tlv(0x77, self._crypto(self.IAD_MC)) + b"\x90\x00"
        if step == "ccc":  # mag-stripe mode: CVC3(Track2) 0x1234, ATC 7
            self.udol_data = bytes(apdu[5:5 + apdu[4]])
            return tlv(0x77, tlv(0x9F61, b"\x12\x34") + tlv(0x9F36, b"\x00\x07")) + b"\x90\x00"
        return b"\x6d\x00"


class FakePN532:
    """Answers host frames on a Pipe like a PN532 on HSU would."""

    def __init__(self):
        self.pipe = Pipe(self._on_write)
        self.rx = bytearray()
        self.cards = []
        self.silent = False
        self.corrupt = 0
        self.garbage = b""
        self.commands = []
        self.nacks = 0
        self.last = None
        self.error_for = ()
        self.random_uid = False  # a fresh UID on every activation (InListPassiveTarget), as phones do
        self.activations = 0

    def _on_write(self, b):
        self.rx.extend(b)
        while True:
            k = self.rx.find(b"\x00\xff")
            if k < 0 or len(self.rx) < k + 4:
                return
            ln, lcs = self.rx[k + 2], self.rx[k + 3]
            if ln == 0 and lcs == 0xFF:  # host ACK (abort)
                self.rx = self.rx[k + 4:]
                continue
            if ln == 0xFF and lcs == 0:  # host NACK: resend
                self.rx = self.rx[k + 4:]
                self.nacks += 1
                if self.last:
                    self._emit(self.last)
                continue
            if len(self.rx) < k + 5 + ln:
                return
            data = bytes(self.rx[k + 4:k + 4 + ln])
            self.rx = self.rx[k + 5 + ln:]
            assert (ln + lcs) & 0xFF == 0, "LCS"
            if self.silent:
                continue
            self.commands.append(data[1])
            self.pipe.feed(ACK)
            if data[1] in self.error_for:
                self.pipe.feed(ERR)
                continue
            out = frame(bytes((0xD5, data[1] + 1)) + self._answer(data[1], data[2:]))
            self.last = out
            if self.garbage:
                self.pipe.feed(self.garbage)
                self.garbage = b""
            self._emit(out)

    def _emit(self, out):
        """Send a response; line noise (corrupt) hits retransmissions too."""
        if self.corrupt:
            self.corrupt -= 1
            bad = bytearray(out)
            bad[-2] ^= 0x55
            self.pipe.feed(bad)
        else:
            self.pipe.feed(out)

    def _answer(self, cmd, p):
        if cmd == 0x02:
            return b"\x32\x01\x06\x07"
        if cmd == 0x4A:
            out = bytes((len(self.cards),))
            for i, c in enumerate(self.cards):
                uid = c.uid
                if self.random_uid:
                    self.activations += 1
                    uid = bytes((0x08, self.activations & 0xFF, (self.activations >> 8) & 0xFF, 0x5A))
                out += bytes((i + 1, 0x00, 0x04, 0x20, len(uid))) + uid + b"\x05\x78\x80\x70\x02"
            return out
        if cmd == 0x40:
            if not self.cards:
                return b"\x01"
            r = self.cards[0].respond(bytes(p[1:]))
            if r is None:
                self.cards = []
                return b"\x01"
            return b"\x00" + r
        if cmd == 0x52:
            return b"\x00"
        return b""


def test_frame_matches_manual_example():
    # UM0701-02 6.2.1.1 example: GetFirmwareVersion = 00 00 FF 02 FE D4 02 2A 00
    eq(frame(b"\xd4\x02"), bytes.fromhex("0000ff02fed4022a00"), "GetFirmwareVersion frame")


def test_fake_card_track2_equivalent_layout():
    c = FakeCard(pan="374245455400126", exp="2512", sc="201")
    eq(c.t2().hex().upper(), "374245455400126D251220100000", "odd PAN + D + YYMM + SC, padded")

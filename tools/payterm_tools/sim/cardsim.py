"""Card reader simulators: a magstripe reader module and a PN532 with an EMV card.

The terminal sees the same bytes real hardware sends: the magstripe module
writes `%track1?<LRC>;track2?<LRC>\\r\\n` bursts on its UART; the PN532
answers HSU frames (ACK, response, error frames, NACK retransmission) and
forwards InDataExchange APDUs to a simulated contactless card that answers
SELECT PPSE / SELECT AID / GPO / READ RECORD / GENERATE AC with BER-TLV data
and real cryptograms (issuer.py's test keys, pyemv). The PN532's bytes are
paced at the HSU baud rate (115200 8N1 by default) in both directions, so
a read takes the time it takes on a real reader's UART.

Both sit on pty master fds handed over by the emulator harness. Faults are
injected per call (swipe options) or on the simulator (set_responding,
corrupt_next, garbage_next, collide, EmvCard(remove_at=..., sw=...)).
Full PANs never reach `log`: it records commands and APDU headers only.
"""
import collections
import os
import select
import threading
import time

from payterm_tools.sim.issuer import MS_DD, MS_NATC, MS_PCVC3, MS_PUNATC, RID_VISA, icc_cryptogram, icc_cvc3

# ---------------------------------------------------------------- helpers


def luhn_ok(pan):
    total = 0
    for i, ch in enumerate(reversed(pan)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mask_pan(pan):
    n = len(pan)
    return "*" * n if n < 13 else pan[:6] + "*" * (n - 10) + pan[-4:]


def lrc(track, base):
    """ISO/IEC 7811-2 LRC over the track including sentinels."""
    x = 0
    for ch in track:
        x ^= (ord(ch) - base) & 0x3F
    return chr(x + base)


def tlv(tag, value):
    """BER-TLV encode (tag as int, value bytes)."""
    tb = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        lb = bytes([n])
    elif n < 0x100:
        lb = bytes([0x81, n])
    else:
        lb = bytes([0x82]) + n.to_bytes(2, "big")
    return tb + lb + bytes(value)


def pn532_frame(data):
    """Normal information frame around TFI+data (UM0701-02 6.2.1.1)."""
    ln = len(data)
    return bytes([0x00, 0x00, 0xFF, ln, (-ln) & 0xFF]) + bytes(data) + bytes([(-sum(data)) & 0xFF, 0x00])


ACK = bytes.fromhex("0000ff00ff00")
NACK = bytes.fromhex("0000ffff0000")
ERROR_FRAME = bytes.fromhex("0000ff01ff7f8100")

# ---------------------------------------------------------------- cards


class MagCard:
    """A magnetic stripe (ISO/IEC 7813 tracks 1 and 2)."""

    def __init__(self, pan, expiry="3012", name="CARDHOLDER/TEST", service_code="101", discretionary="00000000"):
        self.pan = pan
        self.expiry = expiry
        self.name = name
        self.service_code = service_code
        self.discretionary = discretionary

    def track1(self):
        return "B%s^%s^%s%s%s" % (self.pan, self.name, self.expiry, self.service_code, self.discretionary)

    def track2(self):
        return "%s=%s%s%s" % (self.pan, self.expiry, self.service_code, self.discretionary)

    @property
    def masked(self):
        return mask_pan(self.pan)

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.masked)


def parse_dol(dol):
    """[(tag, length)] of a Data Object List (EMV Book 3 5.4)."""
    out, i = [], 0
    while i < len(dol):
        t = dol[i]
        i += 1
        if t & 0x1F == 0x1F:
            while True:
                t = (t << 8) | dol[i]
                i += 1
                if not dol[i - 1] & 0x80:
                    break
        ln = dol[i]
        i += 1
        out.append((t, ln))
    return out


def dol_values(dol, data):
    """{tag hex: value} of the data a terminal sent for `dol`."""
    out, k = {}, 0
    for t, ln in parse_dol(dol):
        out["%X" % t] = bytes(data[k:k + ln])
        k += ln
    return out


# Standard lengths of the data an ARQC covers, for a DOL that leaves one out (zeros then).
_AC_LEN = {"9F02": 6, "9F03": 6, "9F1A": 2, "95": 5, "5F2A": 2, "9A": 3, "9C": 1, "9F37": 4}
VISA_PDOL = "9F66049F02069F03069F1A0295055F2A029A039C019F3704"
MCHIP_CDOL1 = "9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403"


class EmvCard(MagCard):
    """A contactless EMV card personalised from the test issuer keys (issuer.py).

    kernel: "qvsdc" (Book C-3: the ARQC in the GPO answer, format 2) or "mchip"
      (Book C-2: GPO, records with CDOL1, GENERATE AC); default by the AID's RID
      (Visa qvsdc, every other scheme mchip), as the terminal's default kernels.
    The ARQC is real: pyemv over the terminal data the card received (PDOL or
    CDOL1), its AIP and ATC, with the card's ICC master key (issuer.icc_cryptogram).
    aids: [(aid_hex, label, priority)] listed in the PPSE directory.
    remove_at: "ppse" | "select" | "gpo" | "read" | "genac" | "ccc": the card leaves the field
      when that command arrives (the PN532 reports a timeout, status 01).
    sw: {"ppse"|"select"|"gpo"|"read"|"genac": int} status words to answer instead.
    gpo_format: 1 (tag 80: no cryptogram) or 2 (tag 77); genac_format likewise.
    cid: the cryptogram type answered (0x80 ARQC, 0x40 TC, 0x00 AAC).
    tamper: the ARQC sent is altered (the issuer must decline it).
    crypto=False: the answer carries no cryptogram (9F26/9F27/9F10/9F36).
    ctq: Card Transaction Qualifiers (9F6C, qVSDC), e.g. "0080" a phone that verified its holder.
    aip: Application Interchange Profile (82), e.g. "1A80" on-device CVM (M/Chip phone).
    magstripe: M/Chip card in mag-stripe mode only (AIP 0000, 9F6B/56 records, no CDOL1): answers
      COMPUTE CRYPTOGRAPHIC CHECKSUM with a real CVC3 (issuer.icc_cvc3).
    extra_record: TLV bytes added to the second record (e.g. terminal tags a card should not send).
    random_uid: a fresh random UID (08 xx xx xx, ISO/IEC 14443-3) on every tap,
      as most payment cards do; "activation": a fresh one on every activation
      (each InListPassiveTarget), as phones do, so a card left on the reader
      never shows the same UID twice; False keeps `uid` fixed.
    raw: {"ppse"|"select"|"gpo"|"read"|"genac": bytes} exact response data (fuzzing).
    """

    def __init__(self, pan, expiry="3012", name="CARDHOLDER/TEST", service_code="201",
                 aids=(("A0000000031010", "VISA CREDIT", 1),), uid=b"\x04\x52\x11\x7a",
                 pdol=VISA_PDOL, remove_at=None, sw=None,
                 gpo_format=2, raw=None, records=None, random_uid=True, kernel=None, psn="01", cid=0x80,
                 tamper=False, crypto=True, ctq=None, aip=None, magstripe=False, extra_record=b"",
                 genac_format=2, cdol1=MCHIP_CDOL1):
        super().__init__(pan, expiry, name, service_code)
        self.random_uid = random_uid
        self.aids = list(aids)
        self.uid = uid
        self.kernel = kernel or ("qvsdc" if self.aids[0][0].upper().startswith(RID_VISA) else "mchip")
        self.pdol = bytes.fromhex(pdol) if self.kernel == "qvsdc" or pdol != VISA_PDOL else b""
        self.remove_at = remove_at
        self.sw = dict(sw or {})
        self.gpo_format = gpo_format
        self.genac_format = genac_format
        self.raw = dict(raw or {})
        self.records = records
        self.psn = psn
        self.cid = cid
        self.tamper = tamper
        self.crypto = crypto
        self.ctq = bytes.fromhex(ctq) if ctq else None
        self.magstripe = magstripe
        if aip is None:
            aip = "0000" if magstripe else ("2000" if self.kernel == "qvsdc" else "1880")
        self.aip = bytes.fromhex(aip)
        self.extra_record = bytes(extra_record)
        self.cdol1 = bytes.fromhex(cdol1)
        self.selected = None
        self.last_pdol_data = None
        self.last_cdol_data = None
        self.last_arqc = None
        self.last_udol_data = None
        self.atc = 0

    # -- data
    def track2_eq(self):
        s = "%sD%s%s%s" % (self.pan, self.expiry, self.service_code, "0000000000")
        if len(s) % 2:
            s += "F"
        return bytes.fromhex(s)

    def pan_bcd(self):
        s = self.pan + ("F" if len(self.pan) % 2 else "")
        return bytes.fromhex(s)

    def iad(self):
        if self.kernel == "qvsdc":
            # Visa: length 06, DKI 01, CVN 10 (0A), CVR 03 A0 00 00 (b6-b5 of A0: ARQC)
            return bytes.fromhex("06010A03A00000")
        # M/Chip: DKI 01, CVN 16 (10), CVR(6) A0..: 1st GENERATE AC ARQC, DAC 0000, counters
        return bytes.fromhex("0110A00000000000" + "0000" + "00000000000000FF")

    def record_list(self):
        if self.records is not None:
            return self.records
        if self.magstripe:
            t2 = "%sD%s%s%s" % (self.pan, self.expiry, self.service_code, MS_DD)
            t2 += "F" if len(t2) % 2 else ""
            r1 = tlv(0x70, tlv(0x9F6C, b"\x00\x01") + tlv(0x9F62, bytes(6)) + tlv(0x9F63, bytes(6))
                     + tlv(0x56, ("B%s^%s^%s%s" % (self.pan, self.name, self.expiry, self.service_code)).encode())
                     + tlv(0x9F64, b"\x03") + tlv(0x9F65, MS_PCVC3.to_bytes(2, "big"))
                     + tlv(0x9F66, MS_PUNATC.to_bytes(2, "big"))  # PUNATC(Track2): not a TTQ here
                     + tlv(0x9F6B, bytes.fromhex(t2)) + tlv(0x9F67, bytes([MS_NATC])))
            return [(1, 1, r1)]
        r1 = tlv(0x70, tlv(0x57, self.track2_eq()) + tlv(0x5F20, self.name.encode()))
        body = (tlv(0x5A, self.pan_bcd()) + tlv(0x5F24, bytes.fromhex(self.expiry + "31"))
                + tlv(0x5F34, bytes.fromhex(self.psn)) + tlv(0x9F07, b"\xff\x00"))
        if self.kernel == "mchip":
            body += tlv(0x8C, self.cdol1)
        r2 = tlv(0x70, body + self.extra_record)
        return [(1, 1, r1), (2, 1, r2)]

    def afl(self):
        out = b""
        for sfi, rec, _ in self.record_list():
            out += bytes([sfi << 3, rec, rec, 0])
        return out

    # -- APDU handling
    def respond(self, apdu):
        """One command APDU -> response data + SW1 SW2 (None: card left the field)."""
        apdu = bytes(apdu)
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        if ins == 0xA4 and p1 == 0x04:
            name = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
            step = "ppse" if name == b"2PAY.SYS.DDF01" else "select"
            return self._answer(step, lambda: self._select(name, step))
        if cla == 0x80 and ins == 0xA8:
            return self._answer("gpo", lambda: self._gpo(apdu))
        if cla == 0x80 and ins == 0xAE:
            return self._answer("genac", lambda: self._genac(apdu))
        if cla == 0x80 and ins == 0x2A and p1 == 0x8E and p2 == 0x80:
            return self._answer("ccc", lambda: self._ccc(apdu))
        if ins == 0xB2:
            return self._answer("read", lambda: self._read(p1, p2 >> 3))
        return b"\x6d\x00"

    def _answer(self, step, fn):
        if self.remove_at == step:
            return None
        if step in self.sw:
            return self.sw[step].to_bytes(2, "big")
        if step in self.raw:
            return self.raw[step] + b"\x90\x00"
        return fn()

    def _select(self, name, step):
        if step == "ppse":
            entries = b""
            for aid, label, prio in self.aids:
                e = tlv(0x4F, bytes.fromhex(aid)) + tlv(0x50, label.encode())
                if prio is not None:
                    e += tlv(0x87, bytes([prio]))
                entries += tlv(0x61, e)
            fci = tlv(0x6F, tlv(0x84, name) + tlv(0xA5, tlv(0xBF0C, entries)))
            return fci + b"\x90\x00"
        for aid, label, prio in self.aids:
            if bytes.fromhex(aid) == name:
                self.selected = (aid, label)
                prop = tlv(0x50, label.encode()) + (tlv(0x87, bytes([prio])) if prio is not None else b"")
                if self.pdol:
                    prop += tlv(0x9F38, self.pdol)
                return tlv(0x6F, tlv(0x84, name) + tlv(0xA5, prop)) + b"\x90\x00"
        return b"\x6a\x82"

    def _cryptogram(self, dol, data):
        """ARQC (or the type `cid` asks for) over the terminal data and the card's AIP and ATC."""
        vals = dol_values(dol, data)
        ac_data = {t: vals.get(t, bytes(n)) for t, n in _AC_LEN.items()}
        ac_data["82"] = self.aip
        ac_data["9F36"] = self.atc.to_bytes(2, "big")
        ac = icc_cryptogram(self.selected[0], self.pan, self.psn, self.iad(), ac_data)
        self.last_arqc = ac
        if self.tamper:
            ac = bytes([ac[0] ^ 0x01]) + ac[1:]
        return ac

    def _crypto_tlv(self, ac):
        if not self.crypto:
            return b""
        return (tlv(0x9F27, bytes([self.cid])) + tlv(0x9F36, self.atc.to_bytes(2, "big")) + tlv(0x9F26, ac)
                + tlv(0x9F10, self.iad()))

    def _gpo(self, apdu):
        if self.selected is None:
            return b"\x69\x85"
        body = apdu[5:5 + apdu[4]]
        if body[:1] != b"\x83":
            return b"\x67\x00"
        self.last_pdol_data = body[2:2 + body[1]]
        self.atc += 1
        if self.gpo_format == 1:
            return tlv(0x80, self.aip + self.afl()) + b"\x90\x00"
        out = tlv(0x82, self.aip) + tlv(0x94, self.afl())
        if self.kernel == "qvsdc":
            out += self._crypto_tlv(self._cryptogram(self.pdol, self.last_pdol_data))
            if self.ctq is not None:
                out += tlv(0x9F6C, self.ctq)
        return tlv(0x77, out) + b"\x90\x00"

    def _genac(self, apdu):
        if self.selected is None or self.kernel != "mchip" or self.magstripe:
            return b"\x69\x85"
        if apdu[2] & 0xC0 != 0x80:
            return b"\x6a\x86"  # this card is only asked for ARQCs here
        data = apdu[5:5 + apdu[4]]
        self.last_cdol_data = data
        ac = self._cryptogram(self.cdol1, data)
        if self.genac_format == 1:
            if not self.crypto:
                return tlv(0x80, bytes([self.cid])) + b"\x90\x00"
            return tlv(0x80, bytes([self.cid]) + self.atc.to_bytes(2, "big") + ac + self.iad()) + b"\x90\x00"
        return tlv(0x77, self._crypto_tlv(ac)) + b"\x90\x00"

    def _ccc(self, apdu):
        """COMPUTE CRYPTOGRAPHIC CHECKSUM (Book C-2 mag-stripe mode): CVC3 over the static track,
        the UN (numeric, default UDOL 9F6A04) and the ATC."""
        if self.selected is None or not self.magstripe:
            return b"\x69\x85"
        un = apdu[5:5 + apdu[4]]
        if len(un) != 4:
            return b"\x67\x00"
        self.last_udol_data = un
        atc = self.atc.to_bytes(2, "big")
        cvc3 = icc_cvc3(self.pan, self.expiry, self.service_code, atc, un)
        if self.tamper:
            cvc3 ^= 1
        body = tlv(0x9F61, cvc3.to_bytes(2, "big")) + tlv(0x9F60, cvc3.to_bytes(2, "big")) + tlv(0x9F36, atc)
        return tlv(0x77, body) + b"\x90\x00"

    def _read(self, rec, sfi):
        for s, r, data in self.record_list():
            if s == sfi and r == rec:
                return data + b"\x90\x00"
        return b"\x6a\x83"


# Terminal data objects a card has no business sending, with values no terminal would use:
# a record carrying them must not change field 55 (9F66 is PUNATC(Track2) in Mastercard records).
TERMINAL_TAGS_IN_RECORD = (tlv(0x9F66, b"\x0e\x70") + tlv(0x9F02, bytes.fromhex("000099999999"))
                           + tlv(0x9F37, bytes.fromhex("CAFEBABE")) + tlv(0x95, b"\xff" * 5)
                           + tlv(0x9A, bytes.fromhex("991231")) + tlv(0x5F2A, bytes.fromhex("0840")))

TEST_CARDS = {
    "visa": EmvCard("4761739001010010", "3012", "VISA/TEST CARD", "101",
                    aids=[("A0000000031010", "VISA CREDIT", 1)]),
    "mastercard": EmvCard("5413330089010434", "3012", "MC/TEST CARD", "101",
                          aids=[("A0000000041010", "MASTERCARD", 1)], uid=b"\x04\x66\x21\x0b"),
    "amex": EmvCard("374245455400126", "3012", "AMEX/TEST CARD", "101",
                    aids=[("A00000002501", "AMERICAN EXPRESS", 1)], uid=b"\x04\x77\x31\x0c"),
    "girocard": EmvCard("6799998900000060018", "3012", "GIRO/TEST CARD", "201",
                        aids=[("A0000003591010028001", "GIROCARD", 1)], uid=b"\x04\x79\x32\x0d"),
    "maestro": EmvCard("6759649826438453", "3012", "MAESTRO/TEST", "201",
                       aids=[("A0000000043060", "MAESTRO", 1)], uid=b"\x04\x7a\x33\x0e"),
    "visa_phone": EmvCard("4761739001010036", "3012", "VISA/PHONE", "201",
                          aids=[("A0000000031010", "VISA CREDIT", 1)], ctq="0080", random_uid="activation"),
    "mastercard_phone": EmvCard("5413330089010442", "3012", "MC/PHONE", "201",
                                aids=[("A0000000041010", "MASTERCARD", 1)], aip="1A80", random_uid="activation"),
    "visa_tampered": EmvCard("4761739001010044", "3012", "VISA/TAMPERED", "201",
                             aids=[("A0000000031010", "VISA CREDIT", 1)], tamper=True),
    "mastercard_aac": EmvCard("5413330089010459", "3012", "MC/AAC", "201",
                              aids=[("A0000000041010", "MASTERCARD", 1)], cid=0x00),
    "mastercard_magstripe": EmvCard("5413330089010467", "3012", "MC/MAGSTRIPE", "201",
                                    aids=[("A0000000041010", "MASTERCARD", 1)], magstripe=True),
    "no_cryptogram": EmvCard("4761739001010051", "3012", "VISA/NOAC", "201",
                             aids=[("A0000000031010", "VISA CREDIT", 1)], crypto=False),
    "gpo_refused": EmvCard("4761739001010069", "3012", "VISA/6985", "201",
                           aids=[("A0000000031010", "VISA CREDIT", 1)], sw={"gpo": 0x6985}),
    "record_missing": EmvCard("5413330089010475", "3012", "MC/NOREC", "201",
                              aids=[("A0000000041010", "MASTERCARD", 1)], sw={"read": 0x6A83}),
    "terminal_tags": EmvCard("5413330089010483", "3012", "MC/TERMTAGS", "201",
                             aids=[("A0000000041010", "MASTERCARD", 1)], extra_record=TERMINAL_TAGS_IN_RECORD),
    "expired": EmvCard("4761739001010119", "2001", "EXPIRED/TEST", "101",
                       aids=[("A0000000031010", "VISA CREDIT", 1)], uid=b"\x04\x88\x41\x0d"),
    "bad_luhn": EmvCard("4761739001010011", "3012", "BADLUHN/TEST", "101",
                        aids=[("A0000000031010", "VISA CREDIT", 1)], uid=b"\x04\x99\x51\x0e"),
    "chip_swipe": EmvCard("4111111111111111", "3012", "CHIP/TEST", "201",
                          aids=[("A0000000031010", "VISA CREDIT", 1)], uid=b"\x04\xaa\x61\x0f"),
    "unsupported_aid": EmvCard("6011000991300009", "3012", "OTHER/TEST", "101",
                               aids=[("A0000009999999", "LOCAL SCHEME", 1)], uid=b"\x04\xbb\x71\x10"),
    "two_apps": EmvCard("5555555555554444", "3012", "TWOAPPS/TEST", "201",
                        aids=[("A0000000043060", "MAESTRO", 2), ("A0000000041010", "MASTERCARD", 1)],
                        uid=b"\x04\xcc\x81\x11"),
    # Cards that ask for the cardholder's online PIN: service code third digit 0 (PIN
    # required) and 6 (PIN where a PIN pad is present); a debit application (Maestro) that
    # asks when the terminal's `pin_debit` switch is on.
    "visa_pin": EmvCard("4761739001010036", "3012", "VISAPIN/TEST CARD", "120",
                        aids=[("A0000000031010", "VISA CREDIT", 1)], uid=b"\x04\xdd\x91\x12"),
    "mastercard_pin": EmvCard("5413330089010624", "3012", "MCPIN/TEST CARD", "106",
                              aids=[("A0000000041010", "MASTERCARD", 1)], uid=b"\x04\xee\xa1\x13"),
    "maestro": EmvCard("6799990010000002", "3012", "MAESTRO/TEST CARD", "201",
                       aids=[("A0000000043060", "MAESTRO", 1)], uid=b"\x04\xff\xb1\x14"),
}

# The issuer's PIN of every simulated card (the acquirer simulator checks PIN blocks
# against these; `cards` in the emulator lists them). Test values only.
TEST_PINS = {
    "visa": "1234", "mastercard": "5678", "amex": "2468", "expired": "1111", "bad_luhn": "1111",
    "chip_swipe": "4111", "unsupported_aid": "9999", "two_apps": "4444",
    "visa_pin": "1234", "mastercard_pin": "2580", "maestro": "4321",
}


def issuer_pins():
    """{PAN: PIN} of the simulated cards, as an issuer holds them."""
    return {TEST_CARDS[n].pan: p for n, p in TEST_PINS.items() if n in TEST_CARDS}


def get_card(card):
    return TEST_CARDS[card] if isinstance(card, str) else card


# ---------------------------------------------------------------- reader sim


class CardReaderSim:
    """Magstripe module on mag_fd, PN532 (HSU) on nfc_fd: pty master fds or serial ports.

    Either fd may be None when that reader is not wired (e.g. a real
    terminal with only its magstripe UART brought out).
    """

    def __init__(self, mag_fd, nfc_fd, baud=115200):
        """baud: the PN532 HSU line rate the bytes are paced at (8N1: 10 bits a byte, 86.8 us
        at 115200) in both directions; 0 sends them as fast as the pty takes them."""
        self.mag_fd = mag_fd
        self.nfc_fd = nfc_fd
        self.byte_s = 10.0 / baud if baud else 0.0
        self._line_free = 0.0
        # Timing for the bench (tools/bench_emv.py): ("detect", t) when an InListPassiveTarget answer
        # lists a card, ("wire", t, seconds) for each paced frame, ("card", t, seconds) in card.respond.
        self.trace = collections.deque(maxlen=5000)
        self.log = collections.deque(maxlen=20000)
        self.responding = True
        self.field = []
        self.firmware = bytes([0x32, 0x01, 0x06, 0x07])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._rx = bytearray()
        self._last = None
        self._corrupt = 0
        self._garbage = b""
        self._active = None

    # -- lifecycle
    def start(self):
        """Answer the PN532 in a background thread (nothing to run without nfc_fd)."""
        self._stop.clear()
        if self.nfc_fd is None:
            return self
        self._thread = threading.Thread(target=self._run, name="pn532-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(2)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- magstripe
    def swipe(self, card_or_tracks, tracks=(1, 2), sentinels=True, lrc_char=True, terminator="\r\n",
              no_start=None, no_end=None, bad_lrc=None, parity=None, empty=False, reader_error=None,
              separate_lines=False):
        """Emit one swipe. Fault options take a track number (1 or 2) or True (both tracks).

        card_or_tracks: a TEST_CARDS name, a MagCard, a (track1, track2) tuple
        (either may be None), or raw bytes sent unchanged.
        """
        if isinstance(card_or_tracks, (bytes, bytearray)):
            data = bytes(card_or_tracks)
        else:
            if isinstance(card_or_tracks, tuple):
                t1, t2 = card_or_tracks
            else:
                c = get_card(card_or_tracks)
                t1, t2 = c.track1(), c.track2()
            out = []
            for n, body in ((1, t1), (2, t2)):
                if n not in tracks or body is None:
                    continue
                hit = lambda opt: opt is True or opt == n  # noqa: E731
                ss, base = ("%", 0x20) if n == 1 else (";", 0x30)
                if empty or hit(reader_error):
                    body = "E" if hit(reader_error) else ""
                if hit(parity):
                    body = body[:3] + "\x7f" + body[4:] if n == 2 else body[:5] + "\x1b" + body[6:]
                t = ss + body + "?"
                check = lrc(t, base)
                if hit(bad_lrc):
                    check = chr(((ord(check) - base + 1) & (0x3F if n == 1 else 0x0F)) + base)
                    if check in "%;":
                        check = chr(((ord(check) - base + 2) & (0x3F if n == 1 else 0x0F)) + base)
                if not sentinels:
                    t = body
                else:
                    if hit(no_start):
                        t = t[1:]
                    if hit(no_end):
                        t = t[:-1]
                    elif lrc_char or hit(bad_lrc):
                        t += check
                out.append(t)
            data = ("\r\n" if separate_lines or not sentinels else "").join(out) + terminator
            data = data.encode("latin-1")
        self.log.append(("swipe", len(data)))
        if self.mag_fd is None:
            raise RuntimeError("no magstripe UART wired to this simulator")
        os.write(self.mag_fd, data)

    # -- contactless
    @staticmethod
    def _in_field(card):
        """The card as the reader sees it during one stay in the field (its UID)."""
        c = get_card(card)
        uid = b"\x08" + os.urandom(3) if c.random_uid else c.uid
        return (c, uid)

    def tap(self, card):
        with self._lock:
            self.field = [self._in_field(card)]
        self.log.append(("tap", get_card(card).masked))

    def collide(self, card1, card2):
        with self._lock:
            self.field = [self._in_field(card1), self._in_field(card2)]
        self.log.append(("collide", 2))

    def remove(self):
        with self._lock:
            self.field = []
            self._active = None
        self.log.append(("remove",))

    def set_responding(self, on):
        self.responding = bool(on)

    def corrupt_next(self, n=1):
        """The next n response frames go out with a wrong DCS (the terminal must NACK)."""
        self._corrupt = n

    def garbage_next(self, data=b"\x13\x37\x00\xff\x05\x99"):
        """Bytes sent just before the next response (resynchronisation)."""
        self._garbage = bytes(data)

    # -- log views
    def commands(self):
        return [e[1] for e in self.log if e[0] == "cmd"]

    def apdus(self):
        """Headers (CLA INS P1 P2) of the APDUs the terminal sent, as hex."""
        return [e[1] for e in self.log if e[0] == "apdu"]

    # -- PN532 engine
    def _run(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.nfc_fd], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                chunk = os.read(self.nfc_fd, 512)
            except OSError:
                # pty slave not opened yet (EIO): wait for the terminal.
                time.sleep(0.05)
                continue
            if not chunk:
                continue
            self._rx += chunk
            self._process()

    def _pace(self, n):
        """Let n bytes take their time on the line (after the bytes before them)."""
        if not self.byte_s:
            return
        now = time.monotonic()
        start = max(now, self._line_free)
        self._line_free = start + n * self.byte_s
        self.trace.append(("wire", now, self._line_free - now))
        while True:
            left = self._line_free - time.monotonic()
            if left <= 0:
                return
            time.sleep(left)

    def _write(self, data):
        self._pace(len(data))
        try:
            os.write(self.nfc_fd, data)
        except OSError:
            pass

    def _process(self):
        rx = self._rx
        while True:
            k = rx.find(b"\x00\xff")
            if k < 0:
                del rx[:max(0, len(rx) - 1)]
                return
            del rx[:k]
            if len(rx) < 4:
                return
            ln, lcs = rx[2], rx[3]
            if ln == 0 and lcs == 0xFF:
                del rx[:4]
                self.log.append(("ack",))
                continue
            if ln == 0xFF and lcs == 0x00:
                del rx[:4]
                self.log.append(("nack",))
                if self.responding and self._last is not None:
                    self._write(self._last)
                continue
            if (ln + lcs) & 0xFF:
                self.log.append(("bad_lcs",))
                del rx[:2]
                continue
            if len(rx) < 5 + ln:
                return
            data = bytes(rx[4:4 + ln])
            dcs = rx[4 + ln]
            del rx[:5 + ln]
            self._pace(7 + ln)  # the frame's bytes arrive at the line rate: the last one only now
            if (sum(data) + dcs) & 0xFF or not data or data[0] != 0xD4:
                self.log.append(("bad_frame", data[:2].hex()))
                continue
            if not self.responding:
                self.log.append(("ignored", data[1] if len(data) > 1 else None))
                continue
            self._write(ACK)
            resp = self._command(data[1], data[2:])
            if resp is None:
                self._write(ERROR_FRAME)
                continue
            frame = pn532_frame(bytes([0xD5, data[1] + 1]) + resp)
            self._last = frame
            if self._garbage:
                self._write(self._garbage)
                self._garbage = b""
            if self._corrupt:
                self._corrupt -= 1
                bad = bytearray(frame)
                bad[-2] ^= 0x5A
                self._write(bytes(bad))
            else:
                self._write(frame)
            if data[1] == 0x4A and resp[:1] not in (b"", b"\x00"):
                self.trace.append(("detect", time.monotonic()))  # the terminal has the card's activation now

    def _command(self, cmd, p):
        self.log.append(("cmd", cmd))
        if cmd == 0x02:
            return self.firmware
        if cmd in (0x14, 0x32):
            return b""
        if cmd == 0x4A:
            if len(p) < 2 or p[1] != 0x00:
                return None
            with self._lock:
                cards = self.field[:max(1, p[0])]
            out = bytes([len(cards)])
            for i, (c, uid) in enumerate(cards):
                if c.random_uid == "activation":
                    uid = b"\x08" + os.urandom(3)
                ats = bytes.fromhex("0578807002")
                out += bytes([i + 1, 0x00, 0x04, 0x20, len(uid)]) + uid + ats
            if cards:
                self._active = cards[0]
            return out
        if cmd == 0x40:
            if not p:
                return None
            apdu = p[1:]
            self.log.append(("apdu", apdu[:4].hex()))
            with self._lock:
                card = self._active[0] if self._active in self.field else None
            if card is None:
                return b"\x01"
            t0 = time.monotonic()
            resp = card.respond(apdu)
            self.trace.append(("card", t0, time.monotonic() - t0))
            if resp is None:
                self.remove()
                return b"\x01"
            return b"\x00" + resp
        if cmd == 0x52:
            self._active = None
            return b"\x00"
        return None

"""Issuer simulator: checks the application cryptogram of a chip request and answers with an ARPC.

The acquirer simulator (acquirer.py) asks `Issuer.verify` about each sale,
refund and advice, and books a request whose cryptogram fails as declined
with rc 82 (cryptogram verification failed, ISO 8583:1987 private use as
acquirers assign it). The EMV cryptography is pyemv's (pinned in
tools/requirements.txt): ICC master key derivation (option A), session keys
and the MAC (ISO/IEC 9797-1 algorithm 3), per cryptogram version:

- Visa (RID A000000003), IAD format 06 DKI CVN CVR: CVN 10 (ICC master key,
  no session key) and CVN 18;
- every other scheme here (Mastercard, Maestro, girocard, ...), M/Chip IAD
  format DKI CVN CVR(6): CVN 16 (Mastercard session key from ATC and UN).

A cryptogram is "ok" when field 55 has every data object the cryptogram
covers, the amount (9F02) and currency (5F2A) in it are fields 4 and 49 of
the request, the type (9F27) is an ARQC and the ARQC recomputes from the
test issuer master keys below. A chip entry (field 22 05x/07x) without
field 55 is "bad" too. Anything else (a swipe; an advice without the card
number, whose key cannot be derived) is "-". The answer to an
approved or declined request whose ARQC was ok carries field 55 with tag 91:
ARPC (method 1) followed by the 2-byte ARPC response code (the rc in ASCII).
A Mastercard mag-stripe mode tap (field 22 91x) has no field 55: its CVC3
(pyemv's generate_cvc3) is checked from the digits the terminal wrote into
field 35, at the positions the cards are personalised with (MS_*).

The simulated cards (cardsim.EmvCard) are personalised from the same test
keys, as a card bureau would: `icc_cryptogram` is what the card computes.
Nothing here is a secret: these are test keys for simulators only.
"""
import warnings

# pyemv computes the card schemes' 2-key Triple DES (EMV Book 2 A1.4, CVV, CVC3) through the cryptography
# package, which warns on every call that such keys are deprecated: the schemes still use them. The warning
# would print over the emulator's screen at each card read.
warnings.filterwarnings("ignore", message=".*TripleDES.*")

from pyemv import cvn as _cvn  # noqa: E402
from pyemv import cvv as _cvv  # noqa: E402
from pyemv import kd as _kd  # noqa: E402
from pyemv import tlv as _tlv  # noqa: E402

TEST_IMK_AC = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
TEST_IMK_SMI = bytes.fromhex("89ABCDEF0123456776543210FEDCBA98")
TEST_IMK_SMC = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
TEST_IMK_CVC3 = bytes.fromhex("01234567899876543210012345678998")

# Mag-stripe mode personalisation of the simulated cards (Book C-2): where the CVC3, UN and ATC
# digits go in the track 2 discretionary data (bit 0 = its last digit), and its static value.
MS_PCVC3 = 0x000E  # PCVC3(Track2): 3 CVC3 digits
MS_PUNATC = 0x0E70  # PUNATC(Track2): 6 positions ...
MS_NATC = 3  # ... NATC(Track2) 3 for the ATC, so nUN = 3 UN digits
MS_DD = "0" * 13  # static discretionary data of Track 2 Data (9F6B)
MAGSTRIPE_ENTRY = "91"  # field 22: contactless magnetic stripe

RID_VISA = "A000000003"
# The data objects an ARQC covers (EMV Book 2 8.1.1 recommended minimum set).
AC_TAGS = ("9F02", "9F03", "9F1A", "95", "5F2A", "9A", "9C", "9F37", "82", "9F36")
NEEDED = ("9F26", "9F27", "9F10") + AC_TAGS
CID_TYPE, CID_ARQC = 0xC0, 0x80
CHIP_ENTRY = ("05", "07")  # field 22 positions 1-2: chip, contactless chip


def _scheme(aid, iad, pan, psn):
    """(pyemv CVN object, CVR or IAD argument) for this card, or raise ValueError."""
    if aid.upper().startswith(RID_VISA):
        if len(iad) < 7 or iad[0] != 0x06:
            raise ValueError("Visa IAD format")
        if iad[2] == 0x0A:
            return _cvn.VisaCVN10(TEST_IMK_AC, TEST_IMK_SMI, TEST_IMK_SMC, pan, psn), bytes(iad[3:7])
        if iad[2] == 0x12:
            return _cvn.VisaCVN18(TEST_IMK_AC, TEST_IMK_SMI, TEST_IMK_SMC, pan, psn), bytes(iad)
        raise ValueError("Visa CVN %02X not supported" % iad[2])
    if len(iad) < 8:
        raise ValueError("M/Chip IAD format")
    if iad[1] == 0x10:
        return _cvn.MasterCardCVN16(TEST_IMK_AC, TEST_IMK_SMI, TEST_IMK_SMC, pan, psn), bytes(iad[2:8])
    raise ValueError("CVN %02X not supported" % iad[1])


def icc_cryptogram(aid, pan, psn, iad, data):
    """The 8-byte application cryptogram a card personalised from the test keys computes.

    data: {tag hex: bytes} with every tag of AC_TAGS (terminal data as the card received it,
    the card's own AIP and ATC).
    """
    scheme, last = _scheme(aid, iad, pan, psn)
    args = [bytes(data.get(t, b"")) for t in AC_TAGS]
    return scheme.generate_ac(*args, last)


def _bits(n):
    out, i = [], 0
    while n:
        if n & 1:
            out.append(i)
        n >>= 1
        i += 1
    return out


def ms_track_template(pan, expiry, service_code):
    """The card's static Track 2 Data (9F6B) as the CVC3 covers it (PAN D YYMM SC DD, F padded)."""
    t = "%sD%s%s%s" % (pan, expiry, service_code, MS_DD)
    return bytes.fromhex(t + ("F" if len(t) % 2 else ""))


def icc_cvc3(pan, expiry, service_code, atc, un):
    """CVC3(Track2) a card personalised from the test keys computes (int, 2 bytes on the card)."""
    key = _kd.derive_icc_mk_a(TEST_IMK_CVC3, pan, "00")
    return int(_cvv.generate_cvc3(key, ms_track_template(pan, expiry, service_code), atc, un))


def _ms_verify(req, last=None):
    """CVC3 check of a mag-stripe mode tap: field 35 with CVC3, UN and ATC digits in its discretionary data.

    The track carries only the ATC's low NATC digits. As an issuer does, the full ATC is rebuilt from the
    last one this card used (`last`: (atc, track 2) of its last verified tap, None before the first): the
    smallest ATC above it with those low digits, the only one tried (trying every ATC with those digits
    would let a wrong CVC3 through one time in fifteen). The same track again (a retransmission) is
    checked at the same ATC. Returns (result, why, atc).
    """
    t2 = req.get("35", "").lstrip(";").rstrip("?")
    pan, sep, rest = t2.partition("=")
    if not sep or len(rest) < 7 + 12:
        return "bad", "field 35 is not a mag-stripe mode track 2", None
    exp, sc, dd = rest[:4], rest[4:7], rest[7:]
    if not dd.isdigit():
        return "bad", "discretionary data not numeric", None
    at = lambda positions: "".join(dd[len(dd) - 1 - p] for p in reversed(positions))  # noqa: E731
    pc, pu = _bits(MS_PCVC3), _bits(MS_PUNATC)
    nun = len(pu) - MS_NATC
    if dd[-1] != str(nun):
        return "bad", "nUN digit %s" % dd[-1], None
    cvc3 = at(pc)
    un = bytes.fromhex(at(pu[:nun]).rjust(8, "0"))
    atc_low = int(at(pu[nun:]))
    step = 10 ** MS_NATC
    if last is not None and last[1] == t2:
        atc = last[0]
    else:
        floor = -1 if last is None else last[0]
        atc = atc_low + max(0, (floor - atc_low) // step + 1) * step
        if atc > 0xFFFF:
            return "bad", "ATC exhausted", None
    if str(icc_cvc3(pan, exp, sc, atc.to_bytes(2, "big"), un)).zfill(5)[-len(pc):] == cvc3:
        return "ok", "", atc
    return "bad", "CVC3 does not verify at ATC %d" % atc, None


def _psn(tags):
    v = tags.get("5F34")
    return v.hex()[-2:] if v else "00"


def _icc(req):
    """Field 55 as bytes (pyiso8583 hands binary fields over as hex text)."""
    v = req.get("55")
    if isinstance(v, str):
        return bytes.fromhex(v)
    return bytes(v or b"")


def _aid(tags):
    v = tags.get("84") or tags.get("4F") or tags.get("9F06") or b""
    return v.hex().upper()


class Issuer:
    """Verifies cryptograms for the acquirer simulator; counts what it checked."""

    def __init__(self):
        self.checked = {"ok": 0, "bad": 0, "-": 0}
        self.last = None  # {tag hex: bytes} of the last field 55 checked (tests look at it)
        self.ms_last = {}  # PAN -> (ATC, track 2) of its last mag-stripe mode tap that verified

    def verify(self, req, pan):
        """("ok" | "bad" | "-", why) for one request (decoded ISO 8583 fields, PAN in clear)."""
        r = self._verify(req, pan)
        self.checked[r[0]] += 1
        return r

    def _verify(self, req, pan):
        icc = _icc(req)
        if req.get("22", "")[:2] == MAGSTRIPE_ENTRY:
            key = req.get("35", "").lstrip(";").partition("=")[0]
            res, why, atc = _ms_verify(req, self.ms_last.get(key))
            if res == "ok":
                self.ms_last[key] = (atc, req.get("35", "").lstrip(";").rstrip("?"))
            return res, why
        if not icc:
            if req.get("22", "")[:2] in CHIP_ENTRY:
                return "bad", "chip entry without field 55"
            return "-", ""
        try:
            tags = _tlv.decode(icc, flatten=True)
        except Exception as e:  # pyemv raises its own DecodeError
            return "bad", "field 55 does not decode: %s" % e
        self.last = tags
        missing = [t for t in NEEDED if t not in tags]
        if missing:
            return "bad", "field 55 without " + " ".join(missing)
        if tags["9F02"].hex() != req.get("4", ""):
            return "bad", "9F02 %s is not field 4 %s" % (tags["9F02"].hex(), req.get("4", ""))
        if tags["5F2A"].hex()[-3:] != req.get("49", "")[-3:]:
            return "bad", "5F2A %s is not field 49 %s" % (tags["5F2A"].hex(), req.get("49", ""))
        if tags["9F27"][:1] and tags["9F27"][0] & CID_TYPE != CID_ARQC:
            return "bad", "9F27 %s is not an ARQC" % tags["9F27"].hex()
        if not pan:
            # An advice without the card number (the terminal keeps no clear PAN for store and
            # forward): its data is consistent, but the ARQC cannot be recomputed without the card key.
            return "-", "no card number: ARQC not recomputed"
        try:
            want = icc_cryptogram(_aid(tags), pan, _psn(tags), tags["9F10"], tags)
        except ValueError as e:
            return "bad", str(e)
        if want != bytes(tags["9F26"]):
            return "bad", "ARQC does not verify"
        return "ok", ""

    def field55(self, req, pan, rc):
        """Response field 55 (hex, as pyiso8583 takes it) for a verified ARQC: 91 = ARPC (method 1)
        || ARC (the rc in ASCII)."""
        tags = _tlv.decode(_icc(req), flatten=True)
        scheme, _ = _scheme(_aid(tags), tags["9F10"], pan, _psn(tags))
        arc = (rc or "00").encode("ascii")[:2]
        arpc = scheme.generate_arpc(bytes(tags["9F26"]), arc)
        v = arpc + arc
        return (bytes([0x91, len(v)]) + v).hex().upper()

"""Mastercard mag-stripe mode (EMV Book C-2, mag-stripe mode processing), when `cl_magstripe` is on.

A card without EMV mode (AIP byte 2 b8 clear, or 9F6B track data and no
CDOL1) gets COMPUTE CRYPTOGRAPHIC CHECKSUM with the UDOL (default: 9F6A,
the numeric unpredictable number) and answers with CVC3(Track2) and its
ATC. The terminal writes them into the discretionary data of the card's
Track 2 Data (9F6B) at the positions its bitmaps give:

- PCVC3(Track2) (9F65): where the q least significant digits of the CVC3 go;
- PUNATC(Track2) (9F66 in a record: not a TTQ) and NATC(Track2) (9F67): the
  nUN = set bits - NATC least significant set bits take the UN's nUN least
  significant digits, the NATC most significant set bits the ATC's digits;
- the last digit of the discretionary data is nUN.

Bit 0 of a bitmap is the rightmost digit of the discretionary data. The
result goes to the host as field 35 with entry mode 91 (contactless
magnetic stripe), without field 55; the issuer checks the CVC3. A CVC3 is
checked at once or never: such a tap is never approved offline (CRD-20).
"""
from micropython import const

from payterm.errors import Fault
from payterm.card import tlv
from payterm.card.card import zero
from payterm.card.emvterm import T_UN, T_UN_NUM, dol_data, bcd

T_PCVC3 = const(0x9F65)  # PCVC3(Track2), b2
T_PUNATC = const(0x9F66)  # PUNATC(Track2), b2
T_NATC = const(0x9F67)  # NATC(Track2), b1
T_UDOL = const(0x9F69)  # UDOL
T_TRACK2_DATA = const(0x9F6B)  # Track 2 Data: PAN D YYMM SC DD, F padded
T_CVC3_T2 = const(0x9F61)  # CVC3(Track2), b2
T_ATC = const(0x9F36)
_INS_CCC = const(0x2A)  # Book C-2: COMPUTE CRYPTOGRAPHIC CHECKSUM, CLA 80 P1 8E P2 80
_DEFAULT_UDOL = b"\x9f\x6a\x04"
_SW_OK = const(0x9000)
_STAGE = "emv"


def _bits(v):
    """Indexes of the set bits of a big-endian bitmap, least significant first."""
    n = 0
    for b in v:
        n = (n << 8) | b
    out = []
    i = 0
    while n:
        if n & 1:
            out.append(i)
        n >>= 1
        i += 1
    return out


def _digits(value, n):
    """The n least significant decimal digits of value, most significant first."""
    s = "%010d" % value
    return s[len(s) - n:] if n else ""


def un_numeric(tdata, nun):
    """9F6A: nUN random digits (from the hardware RNG's 9F37) right-aligned in n8."""
    un = tdata[T_UN]
    v = 0
    for b in un:
        v = (v << 8) | b
    tdata[T_UN_NUM] = bcd(_digits(v % (10 ** nun) if nun else 0, nun), 4)


async def compute(xchg, recs, tdata, track2_from_57, bufs, got):
    """Run COMPUTE CRYPTOGRAPHIC CHECKSUM; the dynamic track 2 (bytearray, ISO text) and the ATC."""
    for tag in (T_TRACK2_DATA, T_PCVC3, T_PUNATC, T_NATC):
        if tag not in recs:
            raise Fault("CRD-16", "mag-stripe mode without %X" % tag, _STAGE)
    pcvc3 = _bits(recs[T_PCVC3])
    punatc = _bits(recs[T_PUNATC])
    natc = recs[T_NATC][0] if len(recs[T_NATC]) else 0
    nun = len(punatc) - natc
    if nun < 0 or nun > 8 or len(pcvc3) > 5 or natc > 5:
        raise Fault("CRD-13", "mag-stripe bitmaps (q=%d nUN=%d NATC=%d)" % (len(pcvc3), nun, natc), _STAGE)
    un_numeric(tdata, nun)
    udata = dol_data(recs.get(T_UDOL) or _DEFAULT_UDOL, tdata)
    bufs.append(udata)
    if len(udata) > 255:
        raise Fault("CRD-13", "UDOL data too long", _STAGE)
    cmd = bytearray((0x80, _INS_CCC, 0x8E, 0x80, len(udata)))
    cmd.extend(udata)
    cmd.append(0x00)
    bufs.append(cmd)
    resp = await xchg(cmd)
    if len(resp) < 2:
        raise Fault("CRD-13", "response without status word", _STAGE)
    sw = (resp[-2] << 8) | resp[-1]
    if sw != _SW_OK:
        raise Fault("CRD-13", "COMPUTE CRYPTOGRAPHIC CHECKSUM status %04x" % sw, _STAGE)
    its = tlv.items(memoryview(resp)[:-2])
    if len(its) != 1 or its[0][0] != 0x77:
        raise Fault("CRD-13", "COMPUTE CRYPTOGRAPHIC CHECKSUM response template", _STAGE)
    ans = tlv.walk(its[0][1])
    got.append(ans)
    cvc3, atc = ans.get(T_CVC3_T2), ans.get(T_ATC)
    if cvc3 is None or atc is None or len(cvc3) != 2 or len(atc) != 2:
        raise Fault("CRD-17", "no CVC3(Track2)/ATC in the answer", _STAGE)
    t2 = track2_from_57(recs[T_TRACK2_DATA])
    try:
        _fill(t2, (cvc3[0] << 8) | cvc3[1], (atc[0] << 8) | atc[1], tdata[T_UN_NUM], pcvc3, punatc, natc, nun)
    except BaseException:
        zero(t2)
        raise
    return t2, bytearray(atc)


def _fill(t2, cvc3, atc, un_num, pcvc3, punatc, natc, nun):
    k = -1
    for i in range(len(t2)):
        if t2[i] == 0x3D:  # '='
            k = i
            break
    dd = k + 8  # '=' YYMM SC: the discretionary data starts after the service code
    n = len(t2) - dd
    top = max(pcvc3 + punatc + [0])
    if k < 0 or n < 1 or top >= n:
        raise Fault("CRD-13", "Track 2 Data too short for its bitmaps", _STAGE)
    end = len(t2) - 1

    def put(digits, positions):
        # the least significant digit goes to the least significant position
        for j in range(len(positions)):
            t2[end - positions[j]] = ord(digits[len(digits) - 1 - j])

    put(_digits(cvc3, len(pcvc3)), pcvc3)
    un_digits = ""
    for b in un_num:
        un_digits += "%02x" % b
    put(un_digits[len(un_digits) - nun:] if nun else "", punatc[:nun])
    if natc:
        put(_digits(atc, natc), punatc[len(punatc) - natc:])
    t2[end] = 0x30 + nun

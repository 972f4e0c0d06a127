"""Terminal data objects of a contactless transaction, and DOL filling.

The terminal's own data (EMV Book 3 Annex A, "source: terminal") comes only
from here: amount, currency, country, date and time, transaction type, the
unpredictable number (from the hardware RNG, passed in), TVR, terminal
type and capabilities, TTQ (Book C-3) and CVM results. A card may put any
tag in its records, including these (9F66 is PUNATC(Track2) in a
Mastercard record): `dol_data` and the field 55 builder never take a
terminal tag from card data, and never a card tag from the terminal.

`dol_data` fills a PDOL (GPO) and a CDOL (GENERATE AC) the same way, at
the lengths the card asked for (Book 3 5.4).
"""
from micropython import const

from payterm.errors import Fault
from payterm.card.card import civil_date

# Book 3 Annex A, terminal-sourced data objects
T_AMOUNT = const(0x9F02)  # n12 Amount, Authorised
T_AMOUNT_OTHER = const(0x9F03)  # n12 Amount, Other
T_COUNTRY = const(0x9F1A)  # n3 Terminal Country Code
T_CURRENCY = const(0x5F2A)  # n3 Transaction Currency Code
T_DATE = const(0x9A)  # n6 YYMMDD
T_TIME = const(0x9F21)  # n6 HHMMSS
T_TXN_TYPE = const(0x9C)  # n2 (00 purchase)
T_UN = const(0x9F37)  # b4 Unpredictable Number
T_TVR = const(0x95)  # b5 Terminal Verification Results
T_TERM_CAPS = const(0x9F33)  # b3 Terminal Capabilities
T_TERM_TYPE = const(0x9F35)  # n2 Terminal Type
T_ADD_CAPS = const(0x9F40)  # b5 Additional Terminal Capabilities
T_TTQ = const(0x9F66)  # b4 Terminal Transaction Qualifiers (Book C-3 A.2)
T_CVM_RESULTS = const(0x9F34)  # b3 CVM Results (Book 4 A4)
T_ARC = const(0x8A)  # an2 Authorisation Response Code (CDOL2; zeros in CDOL1)
T_UN_NUM = const(0x9F6A)  # n8 Unpredictable Number (Numeric), Book C-2 mag-stripe mode (UDOL)

TERMINAL_TAGS = (T_AMOUNT, T_AMOUNT_OTHER, T_COUNTRY, T_CURRENCY, T_DATE, T_TIME, T_TXN_TYPE, T_UN, T_TVR,
                 T_TERM_CAPS, T_TERM_TYPE, T_ADD_CAPS, T_TTQ, T_CVM_RESULTS, T_ARC, T_UN_NUM)
# Book 3 5.4: numeric (n) data is right-aligned (leading zeros / leftmost digits cut),
# compressed numeric (cn) padded with trailing F, anything else left-aligned.
_NUMERIC = (T_AMOUNT, T_AMOUNT_OTHER, T_COUNTRY, T_CURRENCY, T_DATE, T_TIME, T_TXN_TYPE, T_TERM_TYPE, T_UN_NUM)
_CN = (0x5A,)

# TTQ (Book C-3 Table 5-4 / A.2)
_TTQ1_ONLINE_PIN = const(0x04)  # byte 1 b3: online PIN supported
_TTQ2_ONLINE = const(0x80)  # byte 2 b8: online cryptogram required (online-only reader)
_TTQ2_CVM = const(0x40)  # byte 2 b7: CVM required
# Terminal capabilities (Book 4 A2), byte 2: CVM capability
_CAPS2_ONLINE_PIN = const(0x40)  # b7 enciphered PIN for online verification
# TVR (Book 3 C5)
_TVR1_NO_ODA = const(0x80)  # byte 1 b8: offline data authentication was not performed
_TVR4_FLOOR = const(0x80)  # byte 4 b8: transaction exceeds floor limit

# CVM Results (Book 4 A4): method, condition, result
CVM_RESULTS = {
    "none": b"\x1f\x00\x02",  # No CVM required, successful
    "signature": b"\x1e\x00\x00",  # signature (paper), result unknown
    "online_pin": b"\x02\x00\x00",  # enciphered PIN verified online, result unknown
    "cdcvm": b"\x01\x00\x02",  # verified by the card/device (C-2: OD-CVM)
}

# ISO/IEC 7816-4 5.1: a short command APDU carries at most 255 bytes of data (Lc is one byte), so no
# DOL a card sends may ask for more (Book 3 5.4: each DOL length is one byte).
_DOL_MAX = const(255)

_ALPHA_CURRENCY = {"EUR": "978", "USD": "840", "GBP": "826", "CHF": "756", "JPY": "392", "SEK": "752"}

_STAGE = "emv"


def bcd(digits, nbytes):
    """Right-aligned packed BCD of a digit string (n format)."""
    digits = "0" * (nbytes * 2 - len(digits)) + digits if len(digits) < nbytes * 2 else digits[-nbytes * 2:]
    return bytes.fromhex(digits)


def currency_code(currency):
    """ISO 4217 numeric code as 3 digits, from '978', 978 or 'EUR'."""
    c = str(currency).upper()
    c = _ALPHA_CURRENCY.get(c, c)
    if len(c) > 3 or not c.isdigit():
        raise Fault("SYS-07", "currency %s" % c, _STAGE)
    return "0" * (3 - len(c)) + c


def _hex(cfg, key, n):
    v = cfg.get(key)
    try:
        b = bytearray(bytes.fromhex(v))
    except (TypeError, ValueError):
        raise Fault("SYS-07", "%s is not hex" % key, _STAGE)
    if len(b) != n:
        raise Fault("SYS-07", "%s must be %d bytes" % (key, n), _STAGE)
    return b


def terminal_data(amount, currency, cfg, now_epoch, un, cvm_required=False, above_floor=False):
    """{tag: bytes} of the terminal's data for one tap; `un` comes from the hardware RNG.

    TTQ asks for an online cryptogram (this reader is online only) and says
    whether a CVM is required (amount above the CVM required limit); the TVR
    says that no offline data authentication was done and whether the amount
    is above the floor limit. CVM results are set by `set_cvm` once decided.
    """
    y, m, d = civil_date(now_epoch)
    s = int(now_epoch) % 86400
    amt = str(int(amount))
    if int(amount) < 0 or len(amt) > 12:
        raise Fault("OPR-02", "amount does not fit n12", _STAGE)
    if len(un) != 4:
        raise Fault("SYS-09", "unpredictable number must be 4 bytes", _STAGE)
    online_pin = bool(cfg.get("online_pin"))
    ttq = _hex(cfg, "ttq", 4)
    ttq[1] |= _TTQ2_ONLINE
    if cvm_required:
        ttq[1] |= _TTQ2_CVM
    caps = _hex(cfg, "capabilities", 3)
    if online_pin:
        ttq[0] |= _TTQ1_ONLINE_PIN
        caps[1] |= _CAPS2_ONLINE_PIN
    tvr = bytearray(5)
    tvr[0] |= _TVR1_NO_ODA
    if above_floor:
        tvr[3] |= _TVR4_FLOOR
    return {
        T_AMOUNT: bcd(amt, 6),
        T_AMOUNT_OTHER: bytes(6),
        T_CURRENCY: bcd(currency_code(currency), 2),
        T_COUNTRY: bcd(str(cfg.get("country")), 2),
        T_DATE: bytes.fromhex("%02d%02d%02d" % (y % 100, m, d)),
        T_TIME: bytes.fromhex("%02d%02d%02d" % (s // 3600, (s // 60) % 60, s % 60)),
        T_TXN_TYPE: b"\x00",
        T_UN: bytes(un),
        T_TTQ: bytes(ttq),
        T_TVR: bytes(tvr),
        T_TERM_TYPE: _hex(cfg, "terminal_type", 1),
        T_TERM_CAPS: bytes(caps),
        T_ADD_CAPS: bytes(_hex(cfg, "additional_capabilities", 5)),
        T_CVM_RESULTS: CVM_RESULTS["none"],
        T_ARC: b"\x00\x00",
    }


def set_cvm(tdata, cvm):
    """Record the CVM decision in the terminal data (9F34)."""
    tdata[T_CVM_RESULTS] = CVM_RESULTS[cvm]


def _constructed(tag):
    while tag > 0xFF:
        tag >>= 8
    return bool(tag & 0x20)


def dol_data(dol, tdata, cdata=None):
    """Values for a PDOL or CDOL (Book 3 5.4) as a bytearray (the caller wipes it).

    A terminal tag is filled from `tdata` only, any other tag from `cdata`
    (card data read so far) only; unknown or constructed tags are zeros.
    Shorter values are padded (n: leading zeros, cn: trailing F, others:
    trailing zeros), longer ones cut (n: leftmost digits, others: rightmost bytes).
    A DOL asking for more than a command carries (255 bytes) is malformed card data: CRD-13.
    """
    from payterm.card import tlv

    entries = tlv.parse_dol(dol)
    total = 0
    for _, ln in entries:
        total += ln
    if total > _DOL_MAX:  # checked before anything is allocated: the lengths are the card's
        raise Fault("CRD-13", "DOL asks for %d bytes (at most %d fit a command)" % (total, _DOL_MAX), _STAGE)
    out = bytearray()
    for tag, ln in entries:
        if tag in TERMINAL_TAGS:
            v = tdata.get(tag)
        elif cdata is not None and not _constructed(tag):
            v = cdata.get(tag)
        else:
            v = None
        if v is None:
            out.extend(bytes(ln))
            continue
        n = len(v)
        if n == ln:
            out.extend(v)
        elif tag in _NUMERIC:
            if n < ln:
                out.extend(bytes(ln - n))
                out.extend(v)
            else:
                out.extend(memoryview(v)[n - ln:])
        elif n > ln:
            out.extend(memoryview(v)[:ln])
        else:
            out.extend(v)
            pad = 0xFF if tag in _CN else 0x00
            for _ in range(ln - n):
                out.append(pad)
    return out

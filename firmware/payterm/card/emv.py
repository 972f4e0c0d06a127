"""Contactless EMV read: PPSE, application selection, GPO, READ RECORD.

Follows EMV Contactless Book B (entry point) for selection and Book C-3
(qVSDC-style) for the data: the cryptogram comes back in the GPO answer,
so after the records are read the terminal has everything the online
authorization needs (PAN, expiry, track 2 equivalent, field 55 data).
`xchg(apdu) -> response` is the only I/O, so tests drive it with a card
model and the service drives it with the PN532.

Card data (PAN, track 2 equivalent, records, cryptogram) is kept in
bytearrays only: the records `tlv.walk` collected are zeroed when the read
ends, whatever the outcome, and the Card takes over fresh bytearrays for
the PAN, track 2 and field 55, which its `wipe()` zeroes.
"""
from micropython import const

from payterm.errors import Fault
from payterm.card import tlv
from payterm.card.card import Card, check_pan, check_expiry, civil_date, name_text, same_bytes, zero, ENTRY_TAP

# EMV Book 1 11.3 / Contactless Book B 3.3
_PPSE = b"2PAY.SYS.DDF01"
_CLA = const(0x00)
_INS_SELECT = const(0xA4)  # Book 1 11.3
_INS_GPO = const(0xA8)  # Book 3 6.5.8, CLA 80
_INS_READ = const(0xB2)  # Book 3 6.5.11
_SW_OK = const(0x9000)
_SW_NOT_FOUND = const(0x6A82)  # file/application not found
_SW_BLOCKED = const(0x6283)  # selected file invalidated
_SW_COND = const(0x6985)  # conditions of use not satisfied (use another interface)
_MAX_RECORDS = const(40)

# Book 3 Annex A tags used here
T_FCI = const(0x6F)
T_FCI_PROP = const(0xA5)
T_FCI_DISC = const(0xBF0C)
T_DIR_ENTRY = const(0x61)
T_AID = const(0x4F)
T_DF_NAME = const(0x84)
T_LABEL = const(0x50)
T_PRIORITY = const(0x87)
T_PDOL = const(0x9F38)
T_RMT1 = const(0x80)
T_RMT2 = const(0x77)
T_AIP = const(0x82)
T_AFL = const(0x94)
T_RECORD = const(0x70)
T_PAN = const(0x5A)
T_EXPIRY = const(0x5F24)
T_TRACK2 = const(0x57)
T_NAME = const(0x5F20)
T_SERVICE = const(0x5F30)

# Terminal data objects (Book 3 Annex A); numeric (n) ones are right-aligned
# when a PDOL asks for a different length (Book 3 5.4).
T_AMOUNT = const(0x9F02)
T_AMOUNT_OTHER = const(0x9F03)
T_CURRENCY = const(0x5F2A)
T_COUNTRY = const(0x9F1A)
T_DATE = const(0x9A)
T_TXN_TYPE = const(0x9C)
T_UN = const(0x9F37)
T_TTQ = const(0x9F66)
T_TVR = const(0x95)
T_TERM_TYPE = const(0x9F35)
T_TERM_CAPS = const(0x9F33)
_NUMERIC = (T_AMOUNT, T_AMOUNT_OTHER, T_CURRENCY, T_COUNTRY, T_DATE, T_TXN_TYPE)

# Field 55 contents (ISO 8583 field 55, EMV online authorization data set)
ICC_TAGS = (0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x9F36, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A,
            0x82, 0x9F1A, 0x9F03, 0x9F33, 0x9F35, 0x9F66, 0x84, 0x9F6E, 0x5F34)

DEFAULT_AIDS = ("A0000000031010", "A0000000032010", "A0000000041010", "A0000000043060",
                "A000000025", "A0000001523010", "A0000000651010")

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


def terminal_data(amount, currency, cfg, now_epoch, un):
    y, m, d = civil_date(now_epoch)
    date = "%02d%02d%02d" % (y % 100, m, d)
    amt = str(int(amount))
    if int(amount) < 0 or len(amt) > 12:
        raise Fault("OPR-02", "amount does not fit n12", _STAGE)
    return {
        T_AMOUNT: bcd(amt, 6),
        T_AMOUNT_OTHER: bytes(6),
        T_CURRENCY: bcd(currency_code(currency), 2),
        T_COUNTRY: bcd(str(cfg.get("country", "0840")), 2),
        T_DATE: bytes.fromhex(date),
        T_TXN_TYPE: b"\x00",
        T_UN: un,
        T_TTQ: bytes.fromhex(cfg.get("ttq", "36000000")),
        T_TVR: bytes(5),
        T_TERM_TYPE: bytes.fromhex(cfg.get("terminal_type", "22")),
        T_TERM_CAPS: bytes.fromhex(cfg.get("capabilities", "E0F0C8")),
    }


def dol_data(dol, tdata):
    """Concatenate terminal values for a DOL, fitted to the lengths the card asked for."""
    out = bytearray()
    for tag, ln in tlv.parse_dol(dol):
        v = tdata.get(tag)
        if v is None:
            out.extend(bytes(ln))
        elif len(v) == ln:
            out.extend(v)
        elif tag in _NUMERIC:
            out.extend(bytes(ln - len(v)) + v if len(v) < ln else v[len(v) - ln:])
        else:
            out.extend(v[:ln] + bytes(ln - len(v)) if len(v) < ln else v[:ln])
    return bytes(out)


def _sw(resp):
    if len(resp) < 2:
        raise Fault("CRD-13", "response without status word", _STAGE)
    return (resp[-2] << 8) | resp[-1], memoryview(resp)[:-2]


def select_cmd(name):
    return bytes((_CLA, _INS_SELECT, 0x04, 0x00, len(name))) + bytes(name) + b"\x00"


def gpo_cmd(pdol_data):
    body = tlv.encode(0x83, pdol_data)
    return bytes((0x80, _INS_GPO, 0x00, 0x00, len(body))) + body + b"\x00"


def read_record_cmd(sfi, rec):
    return bytes((_CLA, _INS_READ, rec, (sfi << 3) | 4, 0x00))


def candidates(ppse_fci, supported):
    """Supported directory entries ordered by Application Priority Indicator.

    Matching is by prefix (Book 1 12.3.1 partial selection): a terminal AID
    matches every card AID that starts with it. Priority 0 (or none) sorts
    after all explicit priorities; ties keep the card's order.
    """
    disc = tlv.find(ppse_fci, (T_FCI, T_FCI_PROP, T_FCI_DISC))
    if disc is None:
        raise Fault("CRD-13", "PPSE without directory", _STAGE)
    found = []
    order = 0
    for entry in tlv.find_all(disc, T_DIR_ENTRY):
        d = tlv.walk(entry)
        aid = d.get(T_AID)
        if not aid or len(aid) < 5 or len(aid) > 16:
            continue
        hx = aid.hex().upper()
        ok = False
        for s in supported:
            if hx.startswith(s.upper()):
                ok = True
                break
        if not ok:
            continue
        pr = d.get(T_PRIORITY, b"\x00")
        p = (pr[0] & 0x0F) if pr else 0
        label = _text(d.get(T_LABEL, b""))
        found.append((p or 16, order, aid, label))
        order += 1
    found.sort()
    return [(aid, label) for _, _, aid, label in found]


def _text(b):
    """Printable ASCII only: labels and names are shown on the display."""
    return "".join(chr(c) if 0x20 <= c < 0x7F else "?" for c in b).strip()


_HEXDIGITS = b"0123456789ABCDEF"
_NIB_D = const(0x0D)  # track 2 equivalent field separator nibble (EMV Book 3 Annex A, tag 57)
_NIB_F = const(0x0F)  # padding nibble
_EQ = const(0x3D)  # '=' ISO/IEC 7813 track 2 field separator


def _nibbles(b):
    for x in b:
        yield x >> 4
        yield x & 0x0F


def _digits_from_bcd(b):
    """cn/BCD digits up to the first F pad as ASCII (bytearray: wipeable)."""
    out = bytearray()
    for d in _nibbles(b):
        if d == _NIB_F:
            break
        out.append(_HEXDIGITS[d])
    return out


def track2_from_57(v):
    """Track 2 equivalent (tag 57, b format with D separator) -> ISO track 2 text (bytearray)."""
    out = bytearray()
    k = -1
    for d in _nibbles(v):
        out.append(_HEXDIGITS[d])
    n = len(out)
    while n and out[n - 1] == 0x46:  # trailing 'F' pad
        n -= 1
    ok = True
    for i in range(n):
        c = out[i]
        if c == 0x44 and k < 0:  # 'D'
            k = i
            out[i] = _EQ
        elif not (0x30 <= c <= 0x39):
            ok = False
    for i in range(n, len(out)):
        out[i] = 0
    if not ok or k < 0 or n < k + 8:
        zero(out)
        raise Fault("CRD-13", "track 2 equivalent malformed", _STAGE)
    mv = memoryview(out)
    r = bytearray(mv[:n])
    zero(out)
    return r


def _sep(t2):
    for i in range(len(t2)):
        if t2[i] == _EQ:
            return i
    return -1


async def read_card(xchg, amount, currency, cfg, now_epoch, un):
    """Run the contactless read and return a Card (tap) or raise CRD-*/HW-*.

    The data objects collected on the way are zeroed before this returns.
    """
    got = []
    try:
        return await _read(xchg, amount, currency, cfg, now_epoch, un, got)
    finally:
        for d in got:
            tlv.wipe(d)


async def _read(xchg, amount, currency, cfg, now_epoch, un, got):
    supported = cfg.get("aids", DEFAULT_AIDS)
    sw, body = _sw(await xchg(select_cmd(_PPSE)))
    if sw == _SW_NOT_FOUND or (sw >> 8) == 0x6A:
        raise Fault("CRD-09", "no contactless applications (PPSE %04x)" % sw, _STAGE)
    if sw != _SW_OK:
        raise Fault("CRD-13", "SELECT PPSE status %04x" % sw, _STAGE)
    apps = candidates(body, supported)
    if not apps:
        raise Fault("CRD-09", "no supported AID on card", _STAGE)
    fci = None
    for aid, label in apps:
        sw, fbody = _sw(await xchg(select_cmd(aid)))
        if sw == _SW_OK:
            fci = tlv.walk(fbody)
            got.append(fci)
            break
        if sw != _SW_NOT_FOUND and sw != _SW_BLOCKED:
            raise Fault("CRD-13", "SELECT AID status %04x" % sw, _STAGE)
    if fci is None:
        raise Fault("CRD-09", "no selectable application", _STAGE)
    label = _text(fci.get(T_LABEL, b"")) or label
    tdata = terminal_data(amount, currency, cfg, now_epoch, un)
    pdol = fci.get(T_PDOL, b"")
    sw, gbody = _sw(await xchg(gpo_cmd(dol_data(pdol, tdata))))
    if sw == _SW_COND:
        raise Fault("CRD-09", "card asks for another interface", _STAGE)
    if sw != _SW_OK:
        raise Fault("CRD-13", "GPO status %04x" % sw, _STAGE)
    card = _gpo_data(gbody)
    got.append(card)
    afl = card.get(T_AFL, b"")
    if len(afl) % 4:
        raise Fault("CRD-13", "AFL length %d" % len(afl), _STAGE)
    nrec = 0
    for k in range(0, len(afl), 4):
        sfi = afl[k] >> 3
        first = afl[k + 1]
        last = afl[k + 2]
        if sfi < 1 or sfi > 30 or first < 1 or last < first:
            raise Fault("CRD-13", "AFL entry", _STAGE)
        for rec in range(first, last + 1):
            nrec += 1
            if nrec > _MAX_RECORDS:
                raise Fault("CRD-13", "too many records", _STAGE)
            sw, rbody = _sw(await xchg(read_record_cmd(sfi, rec)))
            if sw != _SW_OK:
                raise Fault("CRD-13", "READ RECORD %d/%d status %04x" % (sfi, rec, sw), _STAGE)
            its = tlv.items(rbody)
            if len(its) != 1 or its[0][0] != T_RECORD:
                raise Fault("CRD-13", "record is not a 70 template", _STAGE)
            tlv.walk(its[0][1], card)
    return _make_card(card, aid, label, tdata, now_epoch)


def _gpo_data(body):
    its = tlv.items(body)
    if len(its) != 1:
        raise Fault("CRD-13", "GPO response template", _STAGE)
    tag, v = its[0]
    if tag == T_RMT1:
        if len(v) < 2:
            raise Fault("CRD-13", "GPO format 1 too short", _STAGE)
        return {T_AIP: bytearray(v[:2]), T_AFL: bytearray(v[2:])}
    if tag == T_RMT2:
        d = tlv.walk(v)
        if T_AIP not in d:
            raise Fault("CRD-13", "GPO without AIP", _STAGE)
        return d
    raise Fault("CRD-13", "GPO response tag %x" % tag, _STAGE)


def _make_card(d, aid, label, tdata, now_epoch):
    t2 = None
    pan = None
    icc = None
    try:
        if T_TRACK2 in d:
            t2 = track2_from_57(d[T_TRACK2])
        k = _sep(t2) if t2 else -1
        if T_PAN in d:
            pan = _digits_from_bcd(d[T_PAN])
        elif t2:
            pan = bytearray(memoryview(t2)[:k])
        if not pan:
            raise Fault("CRD-13", "no PAN (5A/57)", _STAGE)
        if t2 and not same_bytes(memoryview(t2)[:k], pan):
            raise Fault("CRD-13", "5A and 57 disagree", _STAGE)
        if T_EXPIRY in d:
            if len(d[T_EXPIRY]) != 3:
                raise Fault("CRD-13", "expiry length", _STAGE)
            exp = d[T_EXPIRY].hex()[:4]
        elif t2:
            exp = str(bytes(memoryview(t2)[k + 1:k + 5]), "ascii")
        else:
            raise Fault("CRD-13", "no expiry (5F24/57)", _STAGE)
        sc = ""
        if t2:
            sc = str(bytes(memoryview(t2)[k + 5:k + 8]), "ascii")
        elif T_SERVICE in d:
            sc = d[T_SERVICE].hex()[-3:]
        check_pan(pan, _STAGE)
        check_expiry(exp, now_epoch, _STAGE, bad="CRD-13")
        icc = bytearray()
        for tag in ICC_TAGS:
            v = d.get(tag)
            if v is None:
                v = tdata.get(tag)
            if v is None and tag == 0x84:
                v = aid
            if v is not None:
                tlv.encode_into(icc, tag, v)
        card = Card("tap", pan, exp, service_code=sc, name=_name(d.get(T_NAME, b"")),
                    aid=bytes(aid).hex().upper(), label=label, entry_mode=ENTRY_TAP, track2=t2, icc=icc)
    except BaseException:
        for b in (pan, t2, icc):
            zero(b)
        raise
    return card


def _name(b):
    n = name_text(b)
    k = n.find("/")
    if k >= 0:
        n = (n[k + 1:].strip() + " " + n[:k].strip()).strip()
    return n

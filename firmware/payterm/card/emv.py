"""Contactless EMV kernel: entry point, qVSDC (Book C-3) and M/Chip (Book C-2) style.

Entry point (EMV Contactless Book B): SELECT PPSE, the card's directory
entries matched against the terminal's AID list (payterm.card.emvrisk:
per-AID kernel, priority and limits), SELECT of the first that is allowed
for the amount. Then the kernel of that AID:

- qVSDC: GET PROCESSING OPTIONS with the PDOL filled from the terminal's
  data (TTQ: online cryptogram required, CVM required above the CVM limit);
  the online cryptogram (9F26, 9F27, 9F10, 9F36) and the CTQ come back in
  the GPO answer (format 2); PAN, expiry and track 2 equivalent from the GPO
  answer or the records (AFL). Online only.
- M/Chip: GPO, the records, then GENERATE AC asking for an ARQC with CDOL1
  filled by the same function as the PDOL; the answer (format 1 or 2) gives
  9F27, 9F36, 9F26, 9F10. An AAC is declined at once (CRD-18). A card in
  mag-stripe mode (no EMV mode in the AIP, or 9F6B/56 data without a CDOL1)
  is declined with CRD-19 unless the `cl_magstripe` parameter is on; then
  payterm.card.emvms runs COMPUTE CRYPTOGRAPHIC CHECKSUM and the card goes
  online with its dynamic track 2 (CVC3), entry mode 91.

Field 55 carries terminal data from the terminal (payterm.card.emvterm) and
card data from the card, never the other way round, and the cryptogram only
from the command that produced it (GPO or GENERATE AC), never from a record.

Failures each have their own code: no common AID CRD-09, amount above the
contactless limit CRD-14 (INSERT OR SWIPE CARD), GPO refused (6985) CRD-15,
record or mandatory data missing CRD-16, no usable cryptogram CRD-17, AAC
CRD-18, mag-stripe mode (when off) CRD-19; the card leaving the field is CRD-11 and two
cards CRD-12 (payterm.card.pn532); malformed data CRD-13.

`xchg(apdu) -> response` is the only I/O, so tests drive it with a card
model and the service drives it with the PN532.

Card data (PAN, track 2 equivalent, records, cryptogram) is kept in
bytearrays only: what `tlv.walk` collected and the command buffers are
zeroed when the read ends, whatever the outcome, and the Card takes over
fresh bytearrays for the PAN, track 2 and field 55, which its `wipe()` zeroes.
"""
from micropython import const

from payterm.errors import Fault
from payterm.card import tlv, emvterm, emvrisk, emvms
from payterm.card.card import Card, check_pan, check_expiry, name_text, same_bytes, zero, ENTRY_TAP, ENTRY_TAP_MAGSTRIPE
from payterm.card.emvterm import bcd, currency_code, dol_data, terminal_data, TERMINAL_TAGS  # noqa: F401
from payterm.config import DEFAULTS

# EMV Book 1 11.3 / Contactless Book B 3.3
_PPSE = b"2PAY.SYS.DDF01"
_CLA = const(0x00)
_INS_SELECT = const(0xA4)  # Book 1 11.3
_INS_GPO = const(0xA8)  # Book 3 6.5.8, CLA 80
_INS_READ = const(0xB2)  # Book 3 6.5.11
_INS_GENAC = const(0xAE)  # Book 3 6.5.5, CLA 80
_P1_ARQC = const(0x80)  # Book 3 Table 13: b8-b7 = 10 ARQC
_SW_OK = const(0x9000)
_SW_NOT_FOUND = const(0x6A82)  # file/application not found
_SW_NO_RECORD = const(0x6A83)  # record not found
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
T_CDOL1 = const(0x8C)
T_AC = const(0x9F26)  # application cryptogram
T_CID = const(0x9F27)  # cryptogram information data
T_IAD = const(0x9F10)  # issuer application data
T_ATC = const(0x9F36)  # application transaction counter
T_CTQ = const(0x9F6C)  # card transaction qualifiers (Book C-3)
T_FFI = const(0x9F6E)  # form factor indicator / third party data
T_PSN = const(0x5F34)  # PAN sequence number
T_MS_TRACK1 = const(0x56)  # Book C-2: track 1 data (mag-stripe mode)
T_MS_TRACK2 = const(0x9F6B)  # Book C-2: track 2 data (mag-stripe mode)
_AIP2_EMV_MODE = const(0x80)  # Book C-2: AIP byte 2 b8, EMV mode supported
_RID_MASTERCARD = "A000000004"

# Re-exported for callers that name terminal tags through this module.
T_AMOUNT = emvterm.T_AMOUNT
T_UN = emvterm.T_UN
T_TTQ = emvterm.T_TTQ

CRYPTO_TAGS = (T_AC, T_CID, T_IAD, T_ATC)
# Field 55 contents (ISO 8583 field 55, EMV online authorization data set), in this order.
ICC_TAGS = (T_AC, T_CID, T_IAD, 0x9F37, T_ATC, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A, T_AIP, 0x9F1A, 0x9F03,
            0x9F33, 0x9F35, 0x9F66, 0x9F34, T_DF_NAME, T_FFI, T_CTQ, T_PSN)
# Card data objects of field 55 with the lengths they may have (Book 3 Annex A).
_CARD_LEN = {T_AC: (8, 8), T_CID: (1, 1), T_IAD: (1, 32), T_ATC: (2, 2), T_AIP: (2, 2), T_DF_NAME: (5, 16),
             T_FFI: (1, 32), T_CTQ: (2, 2), T_PSN: (1, 1)}

DEFAULT_AIDS = DEFAULTS["aids"]

_STAGE = "emv"


class _Params:
    """The caller's parameters with DEFAULTS underneath (tests pass a few keys only)."""

    def __init__(self, cfg):
        self.cfg = cfg or {}

    def get(self, key, default=None):
        v = self.cfg.get(key)
        if v is None:
            v = DEFAULTS.get(key, default)
        return v


def _sw(resp):
    if len(resp) < 2:
        raise Fault("CRD-13", "response without status word", _STAGE)
    return (resp[-2] << 8) | resp[-1], memoryview(resp)[:-2]


def select_cmd(name):
    return bytes((_CLA, _INS_SELECT, 0x04, 0x00, len(name))) + bytes(name) + b"\x00"


def _cmd(cla, ins, p1, body):
    """A case 4 command APDU in a bytearray (zeroed by the caller after the exchange)."""
    if len(body) > 255:
        raise Fault("CRD-13", "command data too long", _STAGE)
    out = bytearray((cla, ins, p1, 0x00, len(body)))
    out.extend(body)
    out.append(0x00)
    return out


def gpo_cmd(pdol_data):
    body = bytearray()
    tlv.encode_into(body, 0x83, pdol_data)
    try:
        return _cmd(0x80, _INS_GPO, 0x00, body)
    finally:
        zero(body)


def genac_cmd(cdol_data):
    return _cmd(0x80, _INS_GENAC, _P1_ARQC, cdol_data)


def read_record_cmd(sfi, rec):
    return bytes((_CLA, _INS_READ, rec, (sfi << 3) | 4, 0x00))


def candidates(ppse_fci, table, amount=0):
    """Supported directory entries allowed for the amount: [(aid, label, entry)].

    Matching is by prefix (Book 1 12.3.1 partial selection) against the
    terminal's AID table. Ordered by the card's Application Priority
    Indicator (0 or none after all explicit ones), then the terminal's
    priority for the AID, then the card's order. An AID whose contactless
    transaction limit the amount exceeds is left out; if that leaves none of
    the supported ones, CRD-14 (INSERT OR SWIPE CARD).
    """
    disc = tlv.find(ppse_fci, (T_FCI, T_FCI_PROP, T_FCI_DISC))
    if disc is None:
        raise Fault("CRD-13", "PPSE without directory", _STAGE)
    found = []
    order = 0
    over = 0
    for entry in tlv.find_all(disc, T_DIR_ENTRY):
        d = tlv.walk(entry)
        aid = d.get(T_AID)
        if not aid or len(aid) < 5 or len(aid) > 16:
            continue
        e = emvrisk.match(table, aid.hex().upper())
        if e is None:
            continue
        if not emvrisk.allowed(e, amount):
            over += 1
            continue
        pr = d.get(T_PRIORITY, b"\x00")
        p = (pr[0] & 0x0F) if pr else 0
        label = _text(d.get(T_LABEL, b"")) or e["label"]
        found.append((p or 16, e["priority"] or 16, order, bytes(aid), label, e))
        order += 1
    if not found and over:
        raise Fault("CRD-14", "amount %d above the contactless limit of every common AID" % amount, _STAGE)
    found.sort(key=lambda x: x[:3])
    return [(aid, label, e) for _, _, _, aid, label, e in found]


def _text(b):
    """Printable ASCII only: labels and names are shown on the display."""
    return "".join(chr(c) if 0x20 <= c < 0x7F else "?" for c in b).strip()


_HEXDIGITS = b"0123456789ABCDEF"
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
    """Run the contactless kernel and return a Card (tap) or raise CRD-*/HW-*.

    un: the 4-byte unpredictable number (9F37), from the hardware RNG.
    The data objects and command buffers used on the way are zeroed before this returns.
    """
    got = []
    bufs = []
    try:
        return await _read(xchg, amount, currency, _Params(cfg), now_epoch, un, got, bufs)
    finally:
        for d in got:
            tlv.wipe(d)
        for b in bufs:
            zero(b)


async def _exchange(xchg, cmd, bufs):
    bufs.append(cmd)
    return _sw(await xchg(cmd))


async def _read(xchg, amount, currency, cfg, now_epoch, un, got, bufs):
    table = emvrisk.aid_table(cfg)
    sw, body = _sw(await xchg(select_cmd(_PPSE)))
    if sw == _SW_NOT_FOUND or (sw >> 8) == 0x6A:
        raise Fault("CRD-09", "no contactless applications (PPSE %04x)" % sw, _STAGE)
    if sw != _SW_OK:
        raise Fault("CRD-13", "SELECT PPSE status %04x" % sw, _STAGE)
    apps = candidates(body, table, amount)
    if not apps:
        raise Fault("CRD-09", "no supported AID on card", _STAGE)
    fci = None
    aid = label = entry = None
    for aid, label, entry in apps:
        sw, fbody = _sw(await xchg(select_cmd(aid)))
        if sw == _SW_OK:
            fci = tlv.walk(fbody)
            got.append(fci)
            break
        if sw != _SW_NOT_FOUND and sw != _SW_BLOCKED:
            raise Fault("CRD-13", "SELECT AID status %04x" % sw, _STAGE)
    if fci is None or entry is None or aid is None:
        raise Fault("CRD-09", "no selectable application", _STAGE)
    label = _text(fci.get(T_LABEL, b"")) or label
    kernel = entry["kernel"]
    tdata = terminal_data(amount, currency, cfg, now_epoch, un, emvrisk.cvm_required(entry, amount),
                          emvrisk.above_floor(entry, amount))
    pdol = fci.get(T_PDOL, b"")
    pdata = dol_data(pdol, tdata)
    bufs.append(pdata)
    sw, gbody = await _exchange(xchg, gpo_cmd(pdata), bufs)
    if sw == _SW_COND:
        raise Fault("CRD-15", "GPO refused (6985): the card asks for another interface", _STAGE)
    if sw != _SW_OK:
        raise Fault("CRD-13", "GPO status %04x" % sw, _STAGE)
    gpo = _gpo_data(gbody)
    got.append(gpo)
    recs = {}
    got.append(recs)
    await _read_records(xchg, gpo.get(T_AFL, b""), recs)
    aip = gpo[T_AIP]
    aid_hex = bytes(aid).hex().upper()
    if kernel == emvrisk.KERNEL_QVSDC:
        crypt = gpo  # Book C-3: the online cryptogram is in the GPO answer
        cid = _cid(crypt, kernel)
        cvm = emvrisk.cvm(kernel, entry, amount, cfg, ctq=_card(T_CTQ, gpo, recs))
        emvterm.set_cvm(tdata, cvm)
    else:
        why = None
        if T_CDOL1 not in recs:
            if T_MS_TRACK2 not in recs and T_MS_TRACK1 not in recs:
                raise Fault("CRD-16", "no CDOL1 (8C) in the records", _STAGE)
            why = "9F6B/56 and no CDOL1"
        elif aid_hex.startswith(_RID_MASTERCARD) and not aip[1] & _AIP2_EMV_MODE:
            why = "AIP %s: no EMV mode" % bytes(aip).hex()
        if why is not None:
            if not cfg.get("cl_magstripe"):
                raise Fault("CRD-19", "card in mag-stripe mode (%s), cl_magstripe is off" % why, _STAGE)
            return await _magstripe(xchg, recs, aid, label, entry, amount, tdata, cfg, now_epoch, bufs, got)
        # Book C-2: CVM selection comes before GENERATE AC (9F34 may be in CDOL1).
        cvm = emvrisk.cvm(kernel, entry, amount, cfg, aip=aip)
        emvterm.set_cvm(tdata, cvm)
        cdata = dol_data(recs[T_CDOL1], tdata, _Merged(gpo, recs))
        bufs.append(cdata)
        sw, abody = await _exchange(xchg, genac_cmd(cdata), bufs)
        if sw != _SW_OK:
            raise Fault("CRD-13", "GENERATE AC status %04x" % sw, _STAGE)
        crypt = _genac_data(abody)
        got.append(crypt)
        cid = _cid(crypt, kernel)
    t = emvrisk.cid_type(cid)
    if t == emvrisk.CID_AAC:
        raise Fault("CRD-18", "card declined (AAC)", _STAGE)
    if t != emvrisk.CID_ARQC:
        raise Fault("CRD-17", "cryptogram type %02x is not an ARQC (online only)" % cid, _STAGE)
    card = _make_card(gpo, recs, crypt, fci, aid, label, tdata, now_epoch, kernel)
    card.kernel = kernel
    card.cvm = cvm
    card.deferral = emvrisk.deferral(entry, cid)
    card.floor_limit = entry["floor_limit"]
    return card


async def _magstripe(xchg, recs, aid, label, entry, amount, tdata, cfg, now_epoch, bufs, got):
    """Book C-2 mag-stripe mode (payterm.card.emvms): a Card with the dynamic track 2, entry mode 91."""
    cvm = emvrisk.cvm(emvrisk.KERNEL_MCHIP, entry, amount, cfg)
    t2, atc = await emvms.compute(xchg, recs, tdata, track2_from_57, bufs, got)
    pan = None
    try:
        zero(atc)
        k = _sep(t2)
        pan = bytearray(memoryview(t2)[:k])
        exp = str(bytes(memoryview(t2)[k + 1:k + 5]), "ascii")
        sc = str(bytes(memoryview(t2)[k + 5:k + 8]), "ascii")
        check_pan(pan, _STAGE)
        check_expiry(exp, now_epoch, _STAGE, bad="CRD-13")
        card = Card("tap", pan, exp, service_code=sc, name=_name(recs.get(T_NAME) or b""),
                    aid=bytes(aid).hex().upper(), label=label, entry_mode=ENTRY_TAP_MAGSTRIPE, track2=t2)
    except BaseException:
        zero(pan)
        zero(t2)
        raise
    card.kernel = emvrisk.KERNEL_MCHIP
    card.cvm = cvm
    card.deferral = "CRD-20"  # a CVC3 is checked online at once: no deferred authorization
    card.floor_limit = entry["floor_limit"]
    return card


async def _read_records(xchg, afl, into):
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
            if sw == _SW_NO_RECORD:
                raise Fault("CRD-16", "record %d/%d missing (6A83)" % (sfi, rec), _STAGE)
            if sw != _SW_OK:
                raise Fault("CRD-13", "READ RECORD %d/%d status %04x" % (sfi, rec, sw), _STAGE)
            its = tlv.items(rbody)
            if len(its) != 1 or its[0][0] != T_RECORD:
                raise Fault("CRD-13", "record is not a 70 template", _STAGE)
            tlv.walk(its[0][1], into)


class _Merged:
    """Card data read so far, GPO answer first (for a CDOL's card tags)."""

    def __init__(self, a, b):
        self.a = a
        self.b = b

    def get(self, tag, default=None):
        v = self.a.get(tag)
        if v is None:
            v = self.b.get(tag, default)
        return v


def _card(tag, gpo, recs):
    v = gpo.get(tag)
    return v if v is not None else recs.get(tag)


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
        if T_AIP not in d or len(d[T_AIP]) != 2:
            tlv.wipe(d)
            raise Fault("CRD-13", "GPO without AIP", _STAGE)
        return d
    raise Fault("CRD-13", "GPO response tag %x" % tag, _STAGE)


def _genac_data(body):
    """GENERATE AC answer, format 1 (80: CID ATC AC [IAD]) or 2 (77 template), Book 3 6.5.5.4."""
    its = tlv.items(body)
    if len(its) != 1:
        raise Fault("CRD-13", "GENERATE AC response template", _STAGE)
    tag, v = its[0]
    if tag == T_RMT1:
        if len(v) < 11:
            raise Fault("CRD-17", "GENERATE AC format 1 without a cryptogram", _STAGE)
        d = {T_CID: bytearray(v[0:1]), T_ATC: bytearray(v[1:3]), T_AC: bytearray(v[3:11])}
        if len(v) > 11:
            d[T_IAD] = bytearray(v[11:])
        return d
    if tag == T_RMT2:
        return tlv.walk(v)
    raise Fault("CRD-13", "GENERATE AC response tag %x" % tag, _STAGE)


def _cid(crypt, kernel):
    """Cryptogram type of the cryptogram answer; CRD-17 when its data is missing."""
    for tag in (T_AC, T_ATC, T_IAD):
        if tag not in crypt:
            raise Fault("CRD-17", "no %X in the cryptogram answer" % tag, _STAGE)
    _check_len(T_AC, crypt[T_AC])
    _check_len(T_ATC, crypt[T_ATC])
    _check_len(T_IAD, crypt[T_IAD])
    c = crypt.get(T_CID)
    if c is not None:
        _check_len(T_CID, c)
        return c[0]
    iad = crypt[T_IAD]
    if kernel == emvrisk.KERNEL_QVSDC and len(iad) >= 5 and iad[0] == 0x06:
        # Book C-3: without 9F27 the type is in the CVR (IAD byte 5, b6-b5: 00 AAC, 01 TC, 10 ARQC).
        return (iad[4] & 0x30) << 2
    raise Fault("CRD-17", "no cryptogram information data (9F27)", _STAGE)


def _check_len(tag, v):
    lo, hi = _CARD_LEN[tag]
    if not lo <= len(v) <= hi:
        raise Fault("CRD-13", "%X has length %d" % (tag, len(v)), _STAGE)


def icc_data(gpo, recs, crypt, fci, aid, tdata, kernel):
    """Field 55 as a bytearray: terminal tags from the terminal, the cryptogram from its
    command's answer, other card tags from the card (GPO answer before records)."""
    icc = bytearray()
    for tag in ICC_TAGS:
        if tag in TERMINAL_TAGS:
            if tag == emvterm.T_TTQ and kernel != emvrisk.KERNEL_QVSDC:
                continue  # TTQ is a qVSDC data object (9F66 means PUNATC to an M/Chip card)
            v = tdata.get(tag)
        elif tag in CRYPTO_TAGS:
            v = crypt.get(tag)
        elif tag == T_DF_NAME:
            v = fci.get(T_DF_NAME) or aid
        else:
            v = _card(tag, gpo, recs)
        if v is None:
            continue
        if tag in _CARD_LEN:
            _check_len(tag, v)
        tlv.encode_into(icc, tag, v)
    return icc


def _make_card(gpo, recs, crypt, fci, aid, label, tdata, now_epoch, kernel):
    t2 = None
    pan = None
    icc = None
    try:
        v = _card(T_TRACK2, gpo, recs)
        if v is not None:
            t2 = track2_from_57(v)
        k = _sep(t2) if t2 else -1
        v = _card(T_PAN, gpo, recs)
        if v is not None:
            pan = _digits_from_bcd(v)
        elif t2:
            pan = bytearray(memoryview(t2)[:k])
        if not pan:
            raise Fault("CRD-16", "no PAN (5A/57)", _STAGE)
        if t2 and not same_bytes(memoryview(t2)[:k], pan):
            raise Fault("CRD-13", "5A and 57 disagree", _STAGE)
        v = _card(T_EXPIRY, gpo, recs)
        if v is not None:
            if len(v) != 3:
                raise Fault("CRD-13", "expiry length", _STAGE)
            exp = bytes(v).hex()[:4]
        elif t2:
            exp = str(bytes(memoryview(t2)[k + 1:k + 5]), "ascii")
        else:
            raise Fault("CRD-16", "no expiry (5F24/57)", _STAGE)
        sc = ""
        if t2:
            sc = str(bytes(memoryview(t2)[k + 5:k + 8]), "ascii")
        else:
            v = _card(T_SERVICE, gpo, recs)
            if v is not None:
                sc = bytes(v).hex()[-3:]
        check_pan(pan, _STAGE)
        check_expiry(exp, now_epoch, _STAGE, bad="CRD-13")
        icc = icc_data(gpo, recs, crypt, fci, aid, tdata, kernel)
        card = Card("tap", pan, exp, service_code=sc, name=_name(_card(T_NAME, gpo, recs) or b""),
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

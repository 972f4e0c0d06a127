"""Request builders for the message types the terminal sends (ISO 8583:1987).

One place decides which fields each message carries, so the engine, the
SAF uploader and the reversal worker send what the acquirer (and its
simulator's ledger) expects: reversals and voids name the original in field
90 (an authorization 0200 or an advice 0220), repeats differ only in the
MTI's last digit.
"""
from micropython import const

# ISO 8583:1987 section 4.1: message type indicators used by the terminal.
MTI_AUTH = "0200"
MTI_ADVICE = "0220"
MTI_ADVICE_REPEAT = "0221"
MTI_REVERSAL = "0400"
MTI_REVERSAL_REPEAT = "0401"
MTI_NETWORK = "0800"

# Field 3 processing code: transaction type (first two digits).
PC_PURCHASE = "000000"
PC_VOID = "020000"
PC_REFUND = "200000"

# Field 39 response codes the terminal acts on (ISO 8583:1987 annex A): approvals,
# partial approval (not supported: reversed), and "unable to locate original"
# (the answer to a reversal of something the host never booked).
RC_APPROVED = ("00", "08", "11")
RC_PARTIAL = "10"
RC_NO_ORIGINAL = "25"

# Field 70 network management information code.
NMI_LOGON = "001"
NMI_ECHO = "301"

# Security fields (docs/keys.md): 52 the format 4 PIN block, 53 the AES DUKPT KSN,
# 62 the card data of an offline sale, encrypted under its data key (letter hex);
# the MAC (64, or 128 with a secondary bitmap) is added by the codec.
F_PIN = "52"
F_KSN = "53"
F_CARD_DATA = "62"
# Requests that carry field 53 and a MAC, and whose answers must carry the host's MAC.
SEALED = ("0200", "0201", "0220", "0221", "0400", "0401")

# Field 90: original MTI (4) + STAN (6) + transmission date/time (10) + 2 x 11 ids.
_F90_LEN = const(42)

# Fields of the original request a reversal/advice repeats (card, amount, terminal).
_COPIED = ("2", "3", "4", "7", "12", "13", "14", "22", "23", "35", "41", "42", "49", "55")


def amount(minor):
    """Field 4: amount in minor units, 12 digits."""
    if minor < 0 or minor > 999999999999:
        raise ValueError("amount out of range")
    return "%012d" % minor


def stamp(fields, epoch, time_mod=None):
    """Fields 7 (MMDDhhmmss UTC), 12 (hhmmss) and 13 (MMDD) from epoch seconds."""
    if time_mod is None:
        import time as time_mod
    t = time_mod.gmtime(epoch)
    fields["7"] = "%02d%02d%02d%02d%02d" % (t[1], t[2], t[3], t[4], t[5])
    fields["12"] = "%02d%02d%02d" % (t[3], t[4], t[5])
    fields["13"] = "%02d%02d" % (t[1], t[2])
    return fields


def _base(mti, pcode, stan, tid, minor, currency, card, mid, epoch):
    f = {"t": mti, "3": pcode, "11": stan, "41": tid}
    if minor is not None:
        f["4"] = amount(minor)
    if currency:
        f["49"] = currency
    if mid:
        f["42"] = mid
    if card:
        f.update(card)  # Card.auth_fields(): 2/14/35/55 and the entry mode
    if epoch is not None:
        stamp(f, epoch)
    return f


def sale(stan, tid, minor, currency, card=None, mid=None, epoch=None):
    return _base(MTI_AUTH, PC_PURCHASE, stan, tid, minor, currency, card, mid, epoch)


def refund(stan, tid, minor, currency, card=None, mid=None, epoch=None):
    return _base(MTI_AUTH, PC_REFUND, stan, tid, minor, currency, card, mid, epoch)


def original_data(orig):
    """Field 90 naming the original request (MTI, STAN, transmission time)."""
    s = orig["t"] + orig["11"] + orig.get("7", "0000000000")
    return s + "0" * (_F90_LEN - len(s))


def void(stan, orig, rrn=None, epoch=None):
    """Cancel an approved sale/refund of this batch (0200, processing code 02)."""
    f = {"t": MTI_AUTH, "3": PC_VOID, "11": stan, "90": original_data(orig)}
    for k in ("4", "41", "42", "49"):
        if k in orig:
            f[k] = orig[k]
    if rrn:
        f["37"] = rrn
    if epoch is not None:
        stamp(f, epoch)
    return f


def reversal(orig, repeat=False):
    """0400 (0401 when repeated) undoing `orig`, whose outcome is unknown.

    orig["t"] names what is undone in field 90: 0200 for an authorization or a
    void, 0220 for an advice (the void of an offline sale that may have been
    uploaded cancels its advice this way). Field 11 repeats the original's STAN.
    """
    f = {k: orig[k] for k in _COPIED if k in orig}
    f["t"] = MTI_REVERSAL_REPEAT if repeat else MTI_REVERSAL
    f["11"] = orig["11"]
    f["90"] = original_data(orig)
    return f


def advice(orig, auth_code=None, repeat=False, card_data=None):
    """0220 (0221 repeated): a store-and-forward sale approved offline.

    card_data: the sale's card data as kept encrypted on the terminal (field 62,
    docs/keys.md): the host decrypts it; the terminal never holds it in clear again.
    A tap approved offline (deferred authorization) carries its ARQC inside it; a
    terminal without keys keeps the tap's field 55 with the journal's request as
    `icc` (see icc_text) instead.
    """
    f = {k: orig[k] for k in _COPIED if k in orig}
    f["t"] = MTI_ADVICE_REPEAT if repeat else MTI_ADVICE
    f["11"] = orig["11"]
    if auth_code:
        f["38"] = auth_code
    if card_data:
        f[F_CARD_DATA] = card_data
    elif orig.get("icc"):
        f["55"] = icc_bytes(orig["icc"])
    return f


# ---- field 55 kept for the advice of an offline tap (EMV deferred authorization).
# It holds no PAN or track data (payterm.card.emv builds it without 5A/57), but its
# amounts are digit runs: the journal refuses 12+ digit runs, so the text breaks the
# hex into groups of 8 digits.
_ICC_GROUP = const(8)


def icc_text(icc):
    """Field 55 as hex in groups of 8 separated by '-' (journal-safe text)."""
    h = bytes(icc).hex()
    return "-".join(h[i:i + _ICC_GROUP] for i in range(0, len(h), _ICC_GROUP))


def icc_bytes(text):
    """The field 55 bytes of an icc_text."""
    return bytes.fromhex(text.replace("-", ""))


def network(stan, tid=None, nmi=NMI_ECHO, epoch=None):
    f = {"t": MTI_NETWORK, "11": stan, "70": nmi}
    if tid:
        f["41"] = tid
    if epoch is not None:
        f["7"] = stamp({}, epoch)["7"]
    return f

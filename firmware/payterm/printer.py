"""Receipts: what a card scheme asks on a cardholder receipt, with the PAN masked.

Every receipt carries the merchant's name and address (terminal parameters
`merchant_name`, `merchant_address`), TID and MID, date and time, the
transaction type, the masked PAN, the entry mode, for chip and contactless
the application label and AID, the auth code, ref, STAN and RRN, amount and
currency, the result, and which copy it is. The MERCHANT COPY of an approved
sale whose cardholder verification is a signature has the signature line
(the cardholder signs it; the CUSTOMER COPY says so). The first line, the
title, is the merchant name. Training receipts say TRAINING at the top (under
the title) and at the bottom: nothing was paid. A reprint says DUPLICATE.

Lines are at most WIDTH characters (58 mm paper, font A).
"""
from micropython import const

from payterm.txn.currency import format_amount

WIDTH = const(32)
CUSTOMER = "CUSTOMER COPY"
MERCHANT = "MERCHANT COPY"
TRAINING = "*** TRAINING - NOT A PAYMENT ***"
DUPLICATE = "*** DUPLICATE ***"

# ISO 8583:1987 field 22 positions 1-2 (PAN entry mode) as the receipt names them.
_ENTRY = (("05", "CHIP"), ("07", "CONTACTLESS"), ("91", "CONTACTLESS"), ("90", "SWIPED"),
          ("80", "SWIPED (CHIP FALLBACK)"), ("02", "SWIPED"), ("01", "KEYED"))
_CHIP_MODES = ("05", "07", "91")
_KIND = {"sale": "SALE", "refund": "REFUND", "void": "VOID"}


def entry_name(mode):
    if not mode:
        return ""
    for k, name in _ENTRY:
        if str(mode)[:2] == k:
            return name
    return "MODE %s" % mode


def signature_needed(result):
    """The cardholder signs: an approved sale whose CVM (card.cvm) is signature."""
    return bool(result.approved and getattr(result, "cvm", None) == "signature" and result.kind == "sale")


def copies(result, cfg):
    """The copies to print, in order: the merchant's first when the cardholder signs it."""
    if signature_needed(result) or cfg.get("merchant_copy"):
        return (MERCHANT, CUSTOMER)
    return (CUSTOMER,)


def _pair(left, right):
    n = WIDTH - len(left) - len(right)
    if n < 1:
        return (left + " " + right)[:WIDTH]
    return left + " " * n + right


def receipt(result, cfg, when, copy=CUSTOMER, training=False, duplicate=False):
    """Lines of one copy of the receipt for a Result; `when` is a time.localtime() tuple."""
    # The first line is the receipt's title (the printer driver prints it centred, bold, double
    # size): always the merchant's name. The training mark comes right under it, printed whole.
    name = cfg.get("merchant_name") or "PAYTERM"
    lines = [name[:WIDTH]]
    if training:
        lines.append(TRAINING)
    for a in cfg.get("merchant_address") or ():
        lines.append(str(a)[:WIDTH])
    lines.append("TID %s" % cfg.get("terminal_id", ""))
    lines.append("MID %s" % cfg.get("merchant_id", ""))
    lines.append("%04d-%02d-%02d %02d:%02d:%02d" % (when[0], when[1], when[2], when[3], when[4], when[5]))
    kind = _KIND.get(result.kind or "sale", (result.kind or "sale").upper())
    lines.append(kind + (" (OFFLINE)" if result.offline else ""))
    if result.kind == "void" and result.orig:
        lines.append("CANCELS REF %s" % result.orig)
    if result.masked:
        lines.append("CARD %s" % result.masked)
    mode = result.entry_mode
    if mode:
        lines.append("ENTRY %s" % entry_name(mode))
    if mode and str(mode)[:2] in _CHIP_MODES:
        if result.label:
            lines.append("APP %s" % result.label[:WIDTH - 4])
        if result.aid:
            lines.append("AID %s" % result.aid)
    if result.currency:
        lines.append(_pair("AMOUNT", format_amount(result.amount, result.currency)))
    lines.append(_pair("REF %s" % (result.ref or "-"), "STAN %s" % (result.stan or "-")))
    if result.rrn:
        lines.append("RRN %s" % result.rrn)
    if result.approved:
        if result.auth_code:
            lines.append("AUTH CODE %s" % result.auth_code)
        lines.append(("%s APPROVED" % kind) + (" OFFLINE" if result.offline else ""))
        cvm = getattr(result, "cvm", None)
        if cvm == "online_pin":
            lines.append("PIN VERIFIED")
        elif cvm == "cdcvm":
            lines.append("VERIFIED ON DEVICE")
        if signature_needed(result):
            if copy == MERCHANT:
                lines += ["", "", "X" + "_" * (WIDTH - 1), "CARDHOLDER SIGNATURE"]
            else:
                lines.append("SIGNED ON MERCHANT COPY")
    else:
        lines.append("%s DECLINED %s" % (kind, result.code or ""))
        if result.text:
            lines.append(result.text[:WIDTH])
    if duplicate:
        lines.append(DUPLICATE)
    lines.append("-- %s --" % copy)
    if training:
        lines.append(TRAINING)
    return lines


async def paper_state(printer):
    """The failure code a printer reports before printing (HW-03 paper out, HW-04 fault), or None.

    A printer that can be asked now (ESC/POS DLE EOT: `poll()`) is asked; one with only a
    sensor or a cached state answers `status()`. None also when the printer cannot tell
    (no paper sensor): the receipt is then tried as usual.
    """
    if printer is None:
        return None
    poll = getattr(printer, "poll", None)
    if poll is not None:
        try:
            return await poll()
        except Exception:
            return None
    st = getattr(printer, "status", None)
    if st is None:
        return None
    try:
        return st()
    except Exception:
        return None

"""Receipts: what the customer and merchant keep, with the PAN masked."""
from payterm.txn.currency import format_amount


def receipt(result, cfg, when):
    """Lines of a receipt for a Result; `when` is a time.localtime() tuple."""
    kind = (result.kind or "sale").upper()
    lines = [
        "PAYTERM",
        "TID %s" % cfg.get("terminal_id", ""),
        "%04d-%02d-%02d %02d:%02d" % (when[0], when[1], when[2], when[3], when[4]),
        kind,
        "CARD %s" % (result.masked or ""),
    ]
    if result.currency:
        lines.append("AMOUNT %s" % format_amount(result.amount, result.currency))
    lines.append("REF %s STAN %s" % (result.ref or "-", result.stan or "-"))
    if result.approved:
        lines.append("APPROVED" + (" OFFLINE" if result.offline else ""))
        if result.auth_code:
            lines.append("AUTH %s" % result.auth_code)
        if result.rrn:
            lines.append("RRN %s" % result.rrn)
        cvm = getattr(result, "cvm", "none")
        if cvm == "signature":
            lines += ["CARDHOLDER SIGNATURE", "", "X______________________"]
        elif cvm == "cdcvm":
            lines.append("VERIFIED ON DEVICE")
        elif cvm == "online_pin":
            lines.append("PIN VERIFIED")
    else:
        lines.append("DECLINED %s" % (result.code or ""))
        lines.append(result.text or "")
    return lines

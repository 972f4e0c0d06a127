"""PAN masking: the only form of a card number that may be shown, logged or stored."""


def mask_pan(pan):
    """First 6 and last 4 digits; everything between becomes '*'.

    Short or odd inputs are masked entirely rather than risk leaking digits.
    """
    if isinstance(pan, (bytes, bytearray)):
        pan = pan.decode()
    n = len(pan)
    if n < 13:
        return "*" * n
    return pan[:6] + "*" * (n - 10) + pan[-4:]


def scrub(text):
    """Mask every run of 12-19 digits in free text (logs, fault context)."""
    out = []
    run = []
    for ch in text:
        if "0" <= ch <= "9":
            run.append(ch)
            continue
        _flush(run, out)
        out.append(ch)
    _flush(run, out)
    return "".join(out)


def _flush(run, out):
    if run:
        s = "".join(run)
        out.append(mask_pan(s) if 12 <= len(s) <= 19 else s)
        run.clear()

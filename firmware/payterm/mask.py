"""PAN masking: the only form of a card number that may be shown, logged or stored.

`pan_run` is the one place that decides what looks like a card number in
text; `scrub` (logs, fault contexts, console echoes) and the journal's guard
both use it. Card numbers are 12 to 19 digits (ISO/IEC 7812-1), so:

- every run of 13 or more digits counts (a run longer than 19 digits may be
  a PAN with other digits stuck to it);
- a run of exactly 12 digits counts when it could be a card number: its
  first digit is an issuer's major industry identifier (1-9) and its last
  digit is a valid Luhn check digit. ISO 8583 is full of other 12-digit
  numbers (field 4 amounts, field 37 retrieval references) that a store
  must accept; `every=True` counts every 12-digit run, for text a person
  sees, where masking too much costs nothing.
"""


def luhn_ok(digits, start=0, end=None):
    """ISO/IEC 7812-1 check digit over ASCII digits (str, bytes, bytearray or memoryview)."""
    if end is None:
        end = len(digits)
    total = 0
    dbl = False
    as_str = isinstance(digits, str)
    for i in range(end - 1, start - 1, -1):
        d = (ord(digits[i]) if as_str else digits[i]) - 48
        if dbl:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        dbl = not dbl
    return total % 10 == 0


def _is_digit(text, i, as_str):
    c = ord(text[i]) if as_str else text[i]
    return 48 <= c <= 57


def pan_run(text, start=0, every=False):
    """(i, j) of the first digit run in text[start:] that may be a card number, or None.

    text is a str or a bytes-like object; runs are maximal (the digits at
    i-1 and j are not digits).
    """
    as_str = isinstance(text, str)
    n = len(text)
    i = start
    while i < n:
        if not _is_digit(text, i, as_str):
            i += 1
            continue
        j = i + 1
        while j < n and _is_digit(text, j, as_str):
            j += 1
        ln = j - i
        if ln >= 13:
            return i, j
        if ln == 12:
            if every:
                return i, j
            first = ord(text[i]) if as_str else text[i]
            if first != 48 and luhn_ok(text, i, j):
                return i, j
        i = j
    return None


def mask_pan(pan):
    """First 6 and last 4 digits; everything between becomes '*'.

    Short or odd inputs (fewer than 13 characters) are masked entirely rather
    than risk leaking digits. Accepts str or bytes-like without making a full
    copy of the number.
    """
    n = len(pan)
    if n < 13:
        return "*" * n
    if isinstance(pan, str):
        return pan[:6] + "*" * (n - 10) + pan[n - 4:]
    return str(bytes(pan[:6]), "ascii") + "*" * (n - 10) + str(bytes(pan[n - 4:n]), "ascii")


def scrub(text, every=True):
    """Mask every run of digits that may be a card number in free text.

    Runs of 13-19 digits keep their first 6 and last 4; 12-digit runs and
    runs longer than 19 are masked entirely. With every=True (default) every
    run of 12 or more digits is masked.
    """
    out = []
    pos = 0
    while True:
        r = pan_run(text, pos, every)
        if r is None:
            break
        i, j = r
        out.append(text[pos:i])
        out.append(mask_pan(text[i:j]) if j - i <= 19 else "*" * (j - i))
        pos = j
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)

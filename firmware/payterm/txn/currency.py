"""ISO 4217 currencies: numeric code -> alphabetic code and minor-unit exponent.

Amounts travel and are stored as integers in minor units (ISO 8583 field 4)
with the numeric currency code (field 49); only the display and the receipt
turn them into "EUR 12.34", "JPY 1234" or "BHD 1.234".
"""
from payterm.errors import Fault

# ISO 4217 (numeric, alpha, minor-unit exponent).
TABLE = (
    (36, "AUD", 2), (48, "BHD", 3), (124, "CAD", 2), (156, "CNY", 2), (203, "CZK", 2),
    (208, "DKK", 2), (344, "HKD", 2), (348, "HUF", 2), (352, "ISK", 0), (356, "INR", 2),
    (392, "JPY", 0), (400, "JOD", 3), (410, "KRW", 0), (414, "KWD", 3), (484, "MXN", 2),
    (512, "OMR", 3), (554, "NZD", 2), (578, "NOK", 2), (634, "QAR", 2), (643, "RUB", 2),
    (682, "SAR", 2), (702, "SGD", 2), (710, "ZAR", 2), (752, "SEK", 2), (756, "CHF", 2),
    (784, "AED", 2), (788, "TND", 3), (826, "GBP", 2), (840, "USD", 2), (946, "RON", 2),
    (949, "TRY", 2), (975, "BGN", 2), (978, "EUR", 2), (985, "PLN", 2), (986, "BRL", 2),
)

_MAX_MINOR = 999999999999  # field 4 is n12


def _entry(numeric):
    n = int(numeric)
    for e in TABLE:
        if e[0] == n:
            return e
    raise Fault("SYS-07", "unknown currency %s" % numeric, "txn")


def alpha(numeric):
    return _entry(numeric)[1]


def exponent(numeric):
    return _entry(numeric)[2]


def numeric_of(alpha_code):
    for e in TABLE:
        if e[1] == alpha_code:
            return e[0]
    raise Fault("SYS-07", "unknown currency %s" % alpha_code, "txn")


def field49(numeric):
    """ISO 8583 field 49: the numeric code as three digits."""
    return "%03d" % _entry(numeric)[0]


def format_amount(minor, numeric, symbol=True):
    """'EUR 12.34' / 'JPY 1234' / 'BHD 1.234'; negative amounts keep their sign."""
    _, code, exp = _entry(numeric)
    sign = "-" if minor < 0 else ""
    minor = -minor if minor < 0 else minor
    if exp:
        unit = 10 ** exp
        text = "%s%d.%0*d" % (sign, minor // unit, exp, minor % unit)
    else:
        text = "%s%d" % (sign, minor)
    return code + " " + text if symbol else text


def parse_amount(text, numeric):
    """Keypad entry -> minor units.

    Digits alone are minor units, as a terminal keypad fills the amount from
    the right ("1234" is 12.34 EUR, 1234 JPY); a typed decimal point is honoured
    with at most the currency's exponent of decimals. Raises OPR-02.
    """
    exp = exponent(numeric)
    text = text.strip()
    if not text:
        raise Fault("OPR-02", "empty amount", "txn")
    if "." in text:
        whole, _, frac = text.partition(".")
        digits = whole + frac
        if not digits or not digits.isdigit() or len(frac) > exp:
            raise Fault("OPR-02", "bad amount %r" % text, "txn")
        frac = frac + "0" * (exp - len(frac))
        value = int(whole or "0") * 10 ** exp + int(frac or "0")
    else:
        if not text.isdigit():
            raise Fault("OPR-02", "bad amount %r" % text, "txn")
        value = int(text)
    if value <= 0 or value > _MAX_MINOR:
        raise Fault("OPR-02", "amount out of range", "txn")
    return value

"""The Card object and the checks every card passes, however it was read.

The full PAN and track data live in bytearrays private to the object so
`wipe()` can overwrite them in place once authorization is done; everything
a person can see (display, logs, repr, diagnostics) gets the masked form.
"""
from payterm.errors import Fault
from payterm.mask import mask_pan

# ISO 8583:1987 field 22 (POS entry mode), positions 1-2 = PAN entry mode.
ENTRY_SWIPE = "901"  # full magnetic stripe read
ENTRY_FALLBACK = "801"  # magstripe after a failed chip/contactless read
ENTRY_TAP = "071"  # contactless EMV


def luhn_ok(digits):
    """ISO/IEC 7812-1 check digit over a string of ASCII digits."""
    total = 0
    dbl = False
    for i in range(len(digits) - 1, -1, -1):
        d = ord(digits[i]) - 48
        if dbl:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        dbl = not dbl
    return total % 10 == 0


def check_pan(pan, stage="card"):
    """Length 12-19 (ISO/IEC 7812-1) and Luhn; anything else is CRD-07."""
    n = len(pan)
    if n < 12 or n > 19:
        raise Fault("CRD-07", "PAN length %d" % n, stage)
    for ch in pan:
        if not ("0" <= ch <= "9"):
            raise Fault("CRD-07", "PAN not numeric", stage)
    if not luhn_ok(pan):
        raise Fault("CRD-07", "Luhn check failed " + mask_pan(pan), stage)


def check_expiry(yymm, now_epoch, stage="card", bad="CRD-06"):
    """A card is valid through the last day of its expiry month.

    Two-digit years are taken as 20YY: cards issued today never expire in
    the 1900s, and a terminal clock before 2000 is rejected elsewhere.
    """
    if len(yymm) != 4 or not _digits(yymm):
        raise Fault(bad, "expiry not YYMM", stage)
    yy = int(yymm[:2])
    mm = int(yymm[2:])
    if mm < 1 or mm > 12:
        raise Fault(bad, "expiry month %d" % mm, stage)
    y, m, _ = civil_date(now_epoch)
    if (2000 + yy, mm) < (y, m):
        raise Fault("CRD-08", "expired %s" % yymm, stage)


def civil_date(epoch):
    """(year, month, day) in UTC of Unix-epoch seconds.

    Done by arithmetic (days-to-civil, proleptic Gregorian) rather than
    time.localtime: ports differ in epoch (1970/2000) and core builds
    have no localtime at all.
    """
    z = int(epoch) // 86400 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


def _digits(s):
    for ch in s:
        if not ("0" <= ch <= "9"):
            return False
    return True


class Card:
    """One presented card. Only `auth_fields()` hands out the PAN."""

    def __init__(self, source, pan, expiry, service_code="", name="", aid="", label="",
                 entry_mode=None, track2="", icc=None):
        self.source = source
        self.expiry = expiry
        self.service_code = service_code
        self.name = name
        self.aid = aid
        self.label = label
        self.entry_mode = entry_mode or (ENTRY_TAP if source == "tap" else ENTRY_SWIPE)
        self.masked = mask_pan(pan)
        self._pan = bytearray(pan.encode())
        self._track2 = bytearray(track2.encode()) if track2 else None
        self._icc = bytearray(icc) if icc else None
        self.wiped = False

    def auth_fields(self):
        """ISO 8583 fields for the authorization request (the PAN's one exit)."""
        if self.wiped:
            raise Fault("SYS-09", "card data already wiped", "card")
        f = {"2": self._pan.decode(), "14": self.expiry}
        if self._track2:
            f["35"] = self._track2.decode()
        if self._icc:
            f["55"] = bytes(self._icc)
        return f

    def wipe(self):
        """Overwrite PAN, track and ICC data in place; called after authorization."""
        for b in (self._pan, self._track2, self._icc):
            if b is not None:
                for i in range(len(b)):
                    b[i] = 0
        self._pan = bytearray()
        self._track2 = None
        self._icc = None
        self.wiped = True

    def __repr__(self):
        return "<Card %s %s exp=%s %s>" % (self.source, self.masked, self.expiry, self.label or self.service_code)

    __str__ = __repr__

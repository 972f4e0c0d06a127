"""The Card object and the checks every card passes, however it was read.

The full PAN, track 2 and ICC data live in bytearrays owned by the object
so `wipe()` can overwrite them in place once authorization is done; the
readers hand them over without making immutable copies (str/bytes cannot
be wiped), and `auth_fields()` hands out those same bytearrays, so the
request built from them is zeroed by the same `wipe()`. Everything a person
can see (display, logs, repr, diagnostics) gets the masked form.
"""
from payterm.errors import Fault
from payterm.mask import luhn_ok, mask_pan

# ISO 8583:1987 field 22 (POS entry mode), positions 1-2 = PAN entry mode.
ENTRY_SWIPE = "901"  # full magnetic stripe read
ENTRY_FALLBACK = "801"  # magstripe after a failed chip/contactless read
ENTRY_TAP = "071"  # contactless EMV
ENTRY_TAP_MAGSTRIPE = "911"  # contactless magnetic stripe (Book C-2 mag-stripe mode)


def check_pan(pan, stage="card"):
    """Length 12-19 (ISO/IEC 7812-1) and Luhn; anything else is CRD-07.

    pan: ASCII digits as str or bytes-like.
    """
    n = len(pan)
    if n < 12 or n > 19:
        raise Fault("CRD-07", "PAN length %d" % n, stage)
    as_str = isinstance(pan, str)
    for ch in pan:
        c = ord(ch) if as_str else ch
        if not (48 <= c <= 57):
            raise Fault("CRD-07", "PAN not numeric", stage)
    if not luhn_ok(pan):
        raise Fault("CRD-07", "Luhn check failed " + mask_pan(pan), stage)


def same_bytes(a, b):
    """Content equality of two bytes-like objects (memoryviews included)."""
    n = len(a)
    if n != len(b):
        return False
    for i in range(n):
        if a[i] != b[i]:
            return False
    return True


def zero(buf):
    """Overwrite a bytearray (or writable memoryview) in place."""
    if buf is not None:
        for i in range(len(buf)):
            buf[i] = 0


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


_NAME_DIGITS = 12  # ISO/IEC 7812-1: the shortest card number


def name_text(b):
    """A cardholder name field (track 1 name, EMV tag 5F20; bytes-like) as printable text.

    A field holding 12 digits or more carries a card number where the name belongs (a
    damaged or forged card): its digits become '*' before any str exists, so no full PAN
    ends up in an immutable string that cannot be wiped, nor on a receipt. Fewer digits
    (JOHN DOE 3RD) stay.
    """
    n = 0
    for c in b:
        if 48 <= c <= 57:
            n += 1
    hide = n >= _NAME_DIGITS
    out = []
    for c in b:
        if hide and 48 <= c <= 57:
            out.append("*")
        else:
            out.append(chr(c) if 0x20 <= c < 0x7F else "?")
    return "".join(out).strip()


def _digits(s):
    for ch in s:
        if not ("0" <= ch <= "9"):
            return False
    return True


def _owned(v):
    """A bytearray the Card may wipe: taken over as is, or copied from a view/bytes."""
    if v is None or len(v) == 0:
        return None
    if isinstance(v, bytearray):
        return v
    if isinstance(v, str):
        return bytearray(v.encode())
    return bytearray(v)


class Card:
    """One presented card. Only `auth_fields()` hands out the PAN.

    pan, track2, icc: str or bytes-like; a bytearray is taken over (the
    reader must not keep using it), anything else is copied.
    """

    def __init__(self, source, pan, expiry, service_code="", name="", aid="", label="",
                 entry_mode=None, track2=None, icc=None):
        self.source = source
        self.expiry = expiry
        self.service_code = service_code
        self.name = name
        self.aid = aid
        self.label = label
        self.entry_mode = entry_mode or (ENTRY_TAP if source == "tap" else ENTRY_SWIPE)
        self.masked = mask_pan(pan)
        self._pan = _owned(pan) or bytearray()
        self._exp = bytearray(expiry.encode())
        self._track2 = _owned(track2)
        self._icc = _owned(icc)
        self.wiped = False
        # Set by the contactless kernel (payterm.card.emv); a swipe keeps these.
        self.kernel = ""  # "qvsdc" | "mchip"
        self.cvm = "none"  # cardholder verification: "none" | "signature" | "online_pin" | "cdcvm"
        # None: may be approved offline; else the code declining that (CRD-20)
        self.deferral = None  # type: str | None
        # the AID's floor limit (None: the terminal's)
        self.floor_limit = None  # type: int | None

    def auth_fields(self):
        """ISO 8583 fields for the authorization request (the PAN's one exit).

        The values are the card's own bytearrays (the codec takes them for
        text fields too): `wipe()` zeroes them wherever the request still
        holds them.
        """
        if self.wiped:
            raise Fault("SYS-09", "card data already wiped", "card")
        f = {"2": self._pan, "14": self._exp}
        if self._track2:
            f["35"] = self._track2
        if self._icc:
            f["55"] = self._icc
        return f

    def buffers(self):
        """The bytearrays holding card data (tests check they are zeroed after wipe())."""
        return [b for b in (self._pan, self._exp, self._track2, self._icc) if b is not None]

    def wipe(self):
        """Overwrite PAN, expiry, track and ICC data in place; called after authorization."""
        for b in self.buffers():
            zero(b)
        self.wiped = True

    def __repr__(self):
        return "<Card %s %s exp=%s %s>" % (self.source, self.masked, self.expiry, self.label or self.service_code)

    __str__ = __repr__

"""The acquirer's HSM: AES DUKPT host side (ANSI X9.24-3-2017), on the `cryptography` package.

It holds Base Derivation Keys (BDKs) by BDK ID and does what the host's HSM
does for a terminal that uses payterm.crypto:

- BDK -> initial key for an initial key ID (key injection / `payterm provision`);
- KSN (field 53) -> the transaction's working keys;
- PIN block (field 52, ISO 9564-1 format 4) -> PIN, and PIN check;
- CMAC (field 64) check of a request, CMAC of a response;
- decryption of card data the terminal encrypted with its data key.

As strict as a real HSM: a malformed or truncated field 52/53/64, a KSN
counter the terminal can never use (0, more than 16 one bits), an unknown BDK
ID, a PIN block that does not decipher to a format 4 PIN field, a wrong MAC or
undecryptable data each raise `HsmError` with the terminal's catalog code
(firmware/payterm/codes.py) and the ISO 8583 field 39 code a host answers with.
The HSM never logs a key, PIN or PAN.
"""
import json
import os

from cryptography.hazmat.primitives import cmac as _cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# X9.24-3-2017 6.3.2 tables 2 and 3: key usage indicators
KEY_ENCRYPTION = 0x0002
PIN_ENCRYPTION = 0x1000
MAC_GENERATION = 0x2000
MAC_VERIFICATION = 0x2001
MAC_BOTH = 0x2002
DATA_ENCRYPT = 0x3000
DATA_DECRYPT = 0x3001
DATA_BOTH = 0x3002
KEY_DERIVATION = 0x8000
KEY_DERIVATION_INITIAL = 0x8001

# algorithm indicators (key types)
AES128, AES192, AES256 = 2, 3, 4
BITS = {AES128: 128, AES192: 192, AES256: 256}
KIND_OF_LEN = {16: AES128, 24: AES192, 32: AES256}

MAX_WORK = 16  # X9.24-3-2017 6.1: a used counter has at most 16 one bits
IKID_LEN = 8
KSN_LEN = 12
PIN_BLOCK_LEN = 16
MAC_LEN = 8  # field 64: leftmost 64 bits of the CMAC

# The ANSI X9.24-3-2017 Annex B test BDK and initial key ID: the emulator's keys. Test use only.
TEST_BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
TEST_BDK_ID = bytes.fromhex("12345678")
TEST_IKID = bytes.fromhex("1234567890123456")

# field 39 a host answers with for each failure
_RC = {"KEY-05": "30", "KEY-06": "30", "KEY-07": "63", "PIN-02": "81"}


class HsmError(Exception):
    """A request the HSM refuses: `code` is the terminal's catalog id, `rc` the field 39 answer."""

    def __init__(self, code, detail=""):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
        self.rc = _RC.get(code, "96")

    def __str__(self):
        return "%s %s" % (self.code, self.detail) if self.detail else self.code


def _ecb(key):
    return Cipher(algorithms.AES(key), modes.ECB())


def kind_of(key):
    k = KIND_OF_LEN.get(len(key))
    if k is None:
        raise HsmError("KEY-02", "key length %d" % len(key))
    return k


def derivation_data(usage, kind, data8, block=1):
    """X9.24-3-2017 6.3.2: version 01, key block counter, usage, algorithm, length in bits, 8 bytes."""
    return bytes([0x01, block]) + usage.to_bytes(2, "big") + kind.to_bytes(2, "big") + \
        BITS[kind].to_bytes(2, "big") + bytes(data8)


def derive(key, usage, kind, data8):
    """X9.24-3-2017 6.3.1: AES-ECB of the derivation data under `key`, one block per 128 bits."""
    n = BITS[kind] // 8
    enc = _ecb(key).encryptor()
    out = b"".join(enc.update(derivation_data(usage, kind, data8, i + 1)) for i in range((n + 15) // 16))
    return out[:n]


def _tail(ikid, tc):
    return bytes(ikid[4:8]) + tc.to_bytes(4, "big")


def initial_key(bdk, ikid):
    if len(ikid) != IKID_LEN:
        raise HsmError("KEY-05", "initial key ID length %d" % len(ikid))
    return derive(bdk, KEY_DERIVATION_INITIAL, kind_of(bdk), ikid)


def derivation_key(ik, ikid, tc):
    """The intermediate derivation key of counter `tc`: one derivation per one bit, high bit first."""
    kind = kind_of(ik)
    key, working = ik, 0
    for shift in range(31, -1, -1):
        bit = 1 << shift
        if tc & bit:
            working |= bit
            key = derive(key, KEY_DERIVATION, kind, _tail(ikid, working))
    return key


def working_key(ik, ikid, tc, usage, kind=AES128):
    return derive(derivation_key(ik, ikid, tc), usage, kind, _tail(ikid, tc))


def cmac(key, data, n=16):
    c = _cmac.CMAC(algorithms.AES(key))
    c.update(bytes(data))
    return c.finalize()[:n]


def kcv(key):
    """Key check value of the initial key file: leftmost 5 bytes of AES-CMAC(key, 16 zero bytes)."""
    return cmac(key, bytes(16), 5)


def parse_ksn(value):
    """(IKID, counter) from field 53 (24 hex characters); KEY-05 when truncated or malformed."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise HsmError("KEY-05", "field 53 not text")
    if not isinstance(value, str) or len(value) != 2 * KSN_LEN:
        raise HsmError("KEY-05", "field 53 length %d" % (len(value) if value else 0))
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise HsmError("KEY-05", "field 53 not hex")
    tc = int.from_bytes(raw[8:], "big")
    if tc == 0 or bin(tc).count("1") > MAX_WORK:
        raise HsmError("KEY-05", "KSN counter %08X is never used by a terminal" % tc)
    return raw[:8], tc


def ksn_hex(ikid, tc):
    return (bytes(ikid) + tc.to_bytes(4, "big")).hex().upper()


def _pan_field(pan):
    if not isinstance(pan, str) or not pan.isdigit() or not 1 <= len(pan) <= 19:
        raise HsmError("PIN-02", "PAN not 1..19 digits")
    return bytes.fromhex((str(max(0, len(pan) - 12)) + pan.rjust(12, "0")).ljust(32, "0"))


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def decode_pin_field(field):
    """ISO 9564-1 format 4 plain text PIN field -> PIN; PIN-02 when it is not one."""
    h = field.hex().upper()
    n = int(h[1], 16)
    if h[0] != "4" or not 4 <= n <= 12:
        raise HsmError("PIN-02", "not a format 4 PIN field")
    pin, fill = h[2:2 + n], h[2 + n:16]
    if not pin.isdigit() or fill != "A" * (14 - n):
        raise HsmError("PIN-02", "PIN digits or fill")
    return pin


class Hsm:
    """BDKs by BDK ID (the first 4 bytes of every initial key ID they derive)."""

    def __init__(self, bdks=None):
        self._bdks = dict(bdks) if bdks is not None else {TEST_BDK_ID: TEST_BDK}
        for bid, bdk in self._bdks.items():
            if len(bid) != 4:
                raise ValueError("BDK ID must be 4 bytes")
            kind_of(bdk)

    def _bdk(self, ikid):
        bdk = self._bdks.get(bytes(ikid[:4]))
        if bdk is None:
            raise HsmError("KEY-05", "unknown BDK ID %s" % bytes(ikid[:4]).hex().upper())
        return bdk

    # -- key injection
    def initial_key(self, ikid):
        return initial_key(self._bdk(ikid), ikid)

    def provisioning_record(self, ikid):
        """The initial key file the terminal loads (payterm.crypto.dukpt.Dukpt.install_file)."""
        ik = self.initial_key(ikid)
        return {"ikid": bytes(ikid).hex().upper(), "ik": ik.hex().upper(), "kcv": kcv(ik).hex().upper()}

    # -- per transaction
    def working_key(self, ksn, usage, kind=AES128):
        ikid, tc = parse_ksn(ksn)
        return working_key(self.initial_key(ikid), ikid, tc, usage, kind)

    def decrypt_pin(self, ksn, pin_block, pan):
        """PIN from field 52 under the KSN's PIN key; KEY-05 truncated, PIN-02 undecipherable."""
        if not isinstance(pin_block, (bytes, bytearray)) or len(pin_block) != PIN_BLOCK_LEN:
            raise HsmError("KEY-05", "field 52 length %d" % (len(pin_block) if pin_block else 0))
        key = self.working_key(ksn, PIN_ENCRYPTION)
        panf = _pan_field(pan)
        dec = _ecb(key).decryptor()
        b = dec.update(bytes(pin_block))
        return decode_pin_field(dec.update(_xor(b, panf)))

    def verify_pin(self, ksn, pin_block, pan, pin):
        """True when field 52 carries `pin` (the issuer's PIN check, as the simulator plays it)."""
        return self.decrypt_pin(ksn, pin_block, pan) == pin

    def encipher_pin(self, ksn, pin, pan, pad=None):
        """A format 4 PIN block as the terminal builds it (PIN translation, tests)."""
        if not pin.isdigit() or not 4 <= len(pin) <= 12:
            raise HsmError("PIN-02", "PIN not 4..12 digits")
        pad = os.urandom(8) if pad is None else pad
        field = bytes.fromhex("4%X%s%s" % (len(pin), pin, "A" * (14 - len(pin)))) + bytes(pad)
        key = self.working_key(ksn, PIN_ENCRYPTION)
        enc = _ecb(key).encryptor()
        return enc.update(_xor(enc.update(field), _pan_field(pan)))

    def verify_mac(self, ksn, data, mac):
        """Check a request's field 64 (CMAC under the MAC-generation key); KEY-05 / KEY-07."""
        if not isinstance(mac, (bytes, bytearray)) or not 8 <= len(mac) <= 16:
            raise HsmError("KEY-05", "field 64 length %d" % (len(mac) if mac else 0))
        want = cmac(self.working_key(ksn, MAC_GENERATION), data, len(mac))
        c = 0
        for x, y in zip(want, bytes(mac)):
            c |= x ^ y
        if c:
            raise HsmError("KEY-07", "request MAC mismatch")
        return True

    def request_mac(self, ksn, data, n=MAC_LEN):
        """What a terminal puts in field 64 of a request (tests)."""
        return cmac(self.working_key(ksn, MAC_GENERATION), data, n)

    def response_mac(self, ksn, data, n=MAC_LEN):
        """Field 64 of a response: CMAC under the MAC-verification key of the request's KSN."""
        return cmac(self.working_key(ksn, MAC_VERIFICATION), data, n)

    def decrypt_data(self, ksn, cipher):
        """Card data the terminal encrypted (AES-CBC, zero IV, ISO 9797-1 padding 2); KEY-06."""
        if not cipher or len(cipher) % 16:
            raise HsmError("KEY-06", "data length %d" % len(cipher or b""))
        key = self.working_key(ksn, DATA_ENCRYPT)
        dec = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
        out = dec.update(bytes(cipher)) + dec.finalize()
        body = out.rstrip(b"\0")
        if not body or body[-1] != 0x80 or len(out) - len(body) >= 16:
            raise HsmError("KEY-06", "data padding")
        return body[:-1]

    def encrypt_data(self, ksn, plain):
        """The inverse of decrypt_data, as the terminal encrypts (tests)."""
        key = self.working_key(ksn, DATA_ENCRYPT)
        n = len(plain)
        buf = bytes(plain) + b"\x80" + bytes(15 - n % 16)
        enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
        return enc.update(buf) + enc.finalize()


# ---------------------------------------------------------------- the host's view of a message
# Requests that must carry field 53 and a MAC (payterm.link.messages.SEALED), and the field
# holding an offline sale's encrypted card data (docs/keys.md).
SEALED = ("0200", "0201", "0220", "0221", "0400", "0401")
F_PIN, F_KSN, F_CARD_DATA = "52", "53", "62"
CARD_FIELDS = {2: "2", 14: "14", 35: "35", 55: "55"}


def letter_hex(text):
    """bytes from the terminal's letter hex (nibbles as a..p, payterm.crypto.lhex); KEY-06 if not."""
    if not isinstance(text, str) or len(text) % 2 or any(not "a" <= c <= "p" for c in text):
        raise HsmError("KEY-06", "card data not letter hex")
    return bytes((ord(text[i]) - 97) << 4 | (ord(text[i + 1]) - 97) for i in range(0, len(text), 2))


def to_letter_hex(data):
    return "".join(chr(97 + (b >> 4)) + chr(97 + (b & 15)) for b in data)


def parse_card_data(plain):
    """{field: value} of a decrypted card-data record: number (1), length (2, big endian), bytes.
    2/14/35 come back as ASCII text, 55 as upper-case hex, as pyiso8583 decodes the fields
    of a message (payterm.txn.cardstore)."""
    out, p = {}, 0
    while p < len(plain):
        if p + 3 > len(plain):
            raise HsmError("KEY-06", "card data truncated")
        tag, n = plain[p], int.from_bytes(plain[p + 1:p + 3], "big")
        v = plain[p + 3:p + 3 + n]
        if len(v) != n or tag not in CARD_FIELDS:
            raise HsmError("KEY-06", "card data record malformed")
        name = CARD_FIELDS[tag]
        if name == "55":
            out[name] = bytes(v).hex().upper()
        else:
            try:
                out[name] = v.decode("ascii")
            except UnicodeDecodeError:
                raise HsmError("KEY-06", "card data field %s not text" % name)
        p += 3 + n
    return out


def _bin(v):
    """A binary field as pyiso8583 gives it (upper-case hex text) or as bytes -> bytes."""
    if v is None or isinstance(v, (bytes, bytearray)):
        return v
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise HsmError("KEY-05", "binary field not hex")


def mac_tag(req):
    """The MAC (bytes) a decoded message carries as its last field: 128 with a secondary bitmap, else 64."""
    return _bin(req.get("128") if "1" in req else req.get("64"))


def _pan_of(fields):
    pan = fields.get("2", "")
    if not pan and fields.get("35"):
        pan = fields["35"].lstrip(";").replace("D", "=").split("=")[0]
    return pan if pan.isdigit() else ""


class Inspection(dict):
    """What the HSM found in one request: "mac", "pin", "card" (ok | bad | missing | -),
    "ksn" (field 53 when the host can derive its keys: the answer is MACed under it),
    "error" (the first HsmError: the host answers error.rc and books nothing),
    "card_fields" (an advice's decrypted card data: 2, 14, 35, 55)."""


def inspect(box, body, req, pin_for):
    """The HSM's checks of request `req` (decoded from `body`, the bytes as received).

    pin_for(pan) -> the card's PIN (the issuer's record) or None. The PIN the block
    carries is compared inside and never returned, logged or kept.
    """
    mti = req.get("t", "")
    r = Inspection(mac="-", pin="-", card="-", ksn=None, error=None, card_fields={})
    try:
        tag = mac_tag(req)
    except HsmError as e:
        tag, r["error"] = b"", e
    f53 = req.get(F_KSN)
    if f53 is not None:
        try:
            parse_ksn(f53)
            box.working_key(f53, MAC_GENERATION)  # unknown BDK ID: KEY-05 here
            r["ksn"] = f53
        except HsmError as e:
            r["error"] = e
    if mti in SEALED or tag is not None:
        if r["error"] is not None or not tag and tag is not None:
            r["error"] = r["error"] or HsmError("KEY-05", "empty MAC field")
            r["mac"] = "bad"
        elif f53 is None:
            r["mac"], r["error"] = "bad", HsmError("KEY-05", "no field 53 (KSN) on a MACed message")
        elif tag is None:
            r["mac"], r["error"] = "bad", HsmError("KEY-07", "no MAC (field 64/128)")
        else:
            try:
                if bytes(body[len(body) - len(tag):]) != bytes(tag):
                    raise HsmError("KEY-07", "MAC is not the last field")
                box.verify_mac(f53, bytes(body[:len(body) - len(tag)]), tag)
                r["mac"] = "ok"
            except HsmError as e:
                r["mac"], r["error"] = "bad", e
    if r["error"] is not None:
        return r  # nothing in an unauthenticated message is looked at further
    fields = req
    if mti[:3] == "022":
        blob = req.get(F_CARD_DATA)
        r["card"] = "missing"
        if blob:
            try:
                raw = letter_hex(blob)
                if len(raw) <= KSN_LEN:
                    raise HsmError("KEY-06", "card data record too short")
                plain = box.decrypt_data(raw[:KSN_LEN].hex().upper(), raw[KSN_LEN:])
                r["card_fields"] = parse_card_data(plain)
                fields = r["card_fields"]
                r["card"] = "ok" if _pan_of(fields) else "missing"
            except HsmError:
                r["card"] = "missing"
    elif mti[:2] == "02" and req.get("3", "")[:2] != "02":  # a sale or refund (a void names its original)
        r["card"] = "ok" if _pan_of(req) else "missing"
    if F_PIN in req:
        pan = _pan_of(fields)
        try:
            if f53 is None:
                raise HsmError("KEY-05", "PIN block without field 53")
            want = pin_for(pan) if pan else None
            got = box.decrypt_pin(f53, _bin(req[F_PIN]), pan or "0")
            r["pin"] = "ok" if want is not None and got == want else "bad"
            got = want = None
        except HsmError as e:
            r["pin"], r["error"] = "bad", e
    return r


def seal_response(box, ksn, data, mac_len=MAC_LEN):
    """Encoded response `data` whose last mac_len bytes are the MAC field: those bytes
    replaced by the CMAC under the MAC-verification key of `ksn` (the host's MAC)."""
    body = bytes(data[:len(data) - mac_len])
    return body + box.response_mac(ksn, body, mac_len)


def write_provisioning_file(path, record):
    """Write the initial key file atomically (owner-only permissions)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)

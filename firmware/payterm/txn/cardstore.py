"""Card data of offline sales, encrypted at rest until their advice is answered.

An offline approval keeps what its advice (0220) needs to be usable at the
acquirer: PAN (field 2), expiry (14), track 2 (35) and the ICC data with its
cryptogram (55). `pack` encrypts them under the data-encryption key of the
sale's own DUKPT transaction (payterm.crypto.data, docs/keys.md) and returns
the record as it is stored and sent in field 62: letter hex (payterm.crypto.lhex,
no digit at all, so neither the journal's guard nor a scan of the flash can
ever see a card number in it) of KSN (12 bytes) || ciphertext. The terminal
cannot decrypt it (the key's register is erased at once): only the host can,
from the BDK and the KSN.

Plain text (before encryption): for each field present, its number (1 byte),
its length (2 bytes, big endian) and its bytes: 02 PAN digits, 0E expiry YYMM,
23 track 2 equivalent, 37 ICC data (BER-TLV). Built in one bytearray that is
zeroed once encrypted.

The store is one file per offline sale, `cd<ref>.dat` in the storage root: a
CRC-32 line and the record. Written as `.tmp`, then renamed, so a power cut
leaves either no file or a whole one. Bounded: at most `max_items` files (the
store-and-forward count limit); a full store refuses a new offline approval
(SYS-04). `erase` overwrites the file with zeros, then removes it: after the
0230, after a void took the sale off the queue, and at boot for any file no
queued advice owns (`sweep`). On a flash filesystem the old blocks may stay
until reused; what they hold is ciphertext under a key the terminal no longer has.
"""
import binascii

from micropython import const

from payterm import flash
from payterm.crypto import aes, data, lhex
from payterm.errors import Fault

# Fields packed, in this order (ISO 8583:1987 numbers, docs/keys.md).
FIELDS = ("2", "14", "35", "55")
_KSN_LEN = const(12)
_MAX_PLAIN = const(1024)

_PREFIX = "cd"
_SUFFIX = ".dat"


def pack(txn, fields):
    """The encrypted card-data record (str) of `fields` under the data key of DUKPT transaction `txn`."""
    n = 0
    for k in FIELDS:
        v = fields.get(k)
        if v:
            n += 3 + len(v)
    if n > _MAX_PLAIN:
        raise Fault("SYS-09", "card data %d bytes" % n, "txn")
    plain = bytearray(n)
    key = None
    try:
        p = 0
        for k in FIELDS:
            v = fields.get(k)
            if not v:
                continue
            m = len(v)
            plain[p] = int(k)
            plain[p + 1] = m >> 8
            plain[p + 2] = m & 0xFF
            p += 3
            as_str = isinstance(v, str)
            for i in range(m):
                plain[p + i] = ord(v[i]) if as_str else v[i]
            p += m
        key = txn.data_key()
        cipher = data.encrypt(key, plain)
    finally:
        aes.wipe(plain)
        if key is not None:
            aes.wipe(key)
    return lhex.encode(bytes(txn.ksn) + cipher)


def parse(plain):
    """{field: bytearray} from a decrypted record (self-tests and cross-checks; the host has its own)."""
    out = {}
    p = 0
    n = len(plain)
    while p < n:
        if p + 3 > n:
            raise Fault("KEY-06", "card data truncated", "txn")
        m = (plain[p + 1] << 8) | plain[p + 2]
        if p + 3 + m > n:
            raise Fault("KEY-06", "card data truncated", "txn")
        out[str(plain[p])] = bytearray(plain[p + 3:p + 3 + m])
        p += 3 + m
    return out


def split(record):
    """(KSN bytes, ciphertext bytes) of a stored record; KEY-06 when it is not one."""
    try:
        raw = lhex.decode(record)
    except ValueError:
        raise Fault("KEY-06", "card data record not letter hex", "txn")
    if len(raw) <= _KSN_LEN or (len(raw) - _KSN_LEN) % 16:
        raise Fault("KEY-06", "card data record length %d" % len(raw), "txn")
    return bytes(raw[:_KSN_LEN]), bytes(raw[_KSN_LEN:])


class CardStore:
    def __init__(self, root, max_items=50, diag=None):
        self.root = root
        self.max_items = max_items
        self.diag = diag

    def _path(self, ref):
        return "%s/%s%s%s" % (self.root, _PREFIX, ref, _SUFFIX)

    def refs(self):
        """Refs with a stored record, sorted."""
        out = []
        for name in flash.names(self.root):
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
                out.append(name[len(_PREFIX):-len(_SUFFIX)])
        out.sort()
        return out

    def put(self, ref, record):
        """Store `record` for `ref` (on flash when this returns); SYS-04 full, SYS-01 storage."""
        held = self.refs()
        if ref not in held and len(held) >= self.max_items:
            raise Fault("SYS-04", "card data store full (%d)" % len(held), "txn")
        body = record.encode()
        head = b"%08x\n" % (binascii.crc32(body) & 0xFFFFFFFF)
        path = self._path(ref)
        tmp = path[:-len(_SUFFIX)] + ".tmp"
        try:
            flash.write(tmp, (head, body))
            flash.sync()
            flash.rename(tmp, path)
            flash.sync()
        except OSError as e:
            try:
                flash.remove(tmp)
            except OSError:
                pass
            raise Fault("SYS-01", "card data write: %s" % e, "txn")

    def get(self, ref):
        """The record stored for `ref`, or None (never stored, erased, or damaged)."""
        raw = flash.read(self._path(ref))
        if raw is None:
            return None
        nl = raw.find(b"\n")
        try:
            ok = nl == 8 and int(raw[:8], 16) == binascii.crc32(raw[9:]) & 0xFFFFFFFF
            rec = raw[9:].decode() if ok else None
        except (ValueError, UnicodeError):
            rec = None
        if rec is None and self.diag is not None:
            self.diag.fault("KEY-09", "txn", "card data of %s damaged" % ref)
        return rec

    def erase(self, ref):
        """Overwrite the record of `ref` with zeros and remove it; True when there was one."""
        path = self._path(ref)
        n = flash.size(path)
        if n < 0:
            return False
        try:
            flash.write(path, bytes(n))
            flash.sync()
            flash.remove(path)
            flash.sync()
        except OSError as e:
            raise Fault("SYS-01", "card data erase: %s" % e, "txn")
        return True

    def sweep(self, keep):
        """Erase every record whose ref is not in `keep` (boot); removes torn temporary files."""
        n = 0
        for name in flash.names(self.root):
            if name.startswith(_PREFIX) and name.endswith(".tmp"):
                flash.write(self.root + "/" + name, bytes(flash.size(self.root + "/" + name)))
                flash.remove(self.root + "/" + name)
        for ref in self.refs():
            if ref not in keep:
                self.erase(ref)
                n += 1
        return n

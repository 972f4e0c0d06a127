"""AES DUKPT (ANSI X9.24-3-2017): the terminal's keys, one unique key set per transaction.

Hierarchy (docs/keys.md): the acquirer's HSM holds the Base Derivation Key (BDK)
and derives each terminal's initial key from its 8-byte initial key ID (IKID =
BDK ID || derivation ID). The terminal gets only the initial key and IKID
(`install_file`, written by `payterm provision`), turns them into the 32
intermediate derivation key registers of X9.24-3 6.1 and erases the initial
key. Each payment takes the next transaction counter: `begin()` returns a
`Transaction` whose KSN (IKID || counter, 12 bytes) goes to the host in field
53, and whose PIN, MAC and data keys are derived from that counter's
intermediate derivation key. The host derives the same keys from the BDK
and the KSN (tools/payterm_tools/sim/hsm.py).

Counter rules (X9.24-3 6.1): 32-bit counter, a value with more than 16 one
bits is never used (skipped), and after the last usable value (0xFFFF0000)
the key is exhausted: `begin()` raises KEY-03 until a new initial key is
loaded. The registers and the next counter are saved through the state
object (`get(key, default)` / `set(key, value)`, e.g. payterm.txn.state.State)
before a transaction gets its keys, like the STAN, so a power cut can skip a
counter but never reuse one.
"""
from micropython import const
import binascii

from payterm.crypto import aes
from payterm.errors import Fault

# X9.24-3-2017 6.1: one intermediate derivation key register per counter bit,
# at most MAX_WORK one bits in a counter value that is used.
NUMREG = const(32)
MAX_WORK = const(16)
_TC_END = 0x100000000  # 2**32: counter exhausted (not const: a long int on the ESP32)
_TC_LAST = 0xFFFF0000  # the last counter with <= 16 one bits

# X9.24-3-2017 6.3.2 tables 2 and 3: key usage indicator (derivation data bytes 2-3)
KEY_ENCRYPTION = const(0x0002)
PIN_ENCRYPTION = const(0x1000)
MAC_GENERATION = const(0x2000)
MAC_VERIFICATION = const(0x2001)
MAC_BOTH = const(0x2002)
DATA_ENCRYPT = const(0x3000)
DATA_DECRYPT = const(0x3001)
DATA_BOTH = const(0x3002)
KEY_DERIVATION = const(0x8000)
KEY_DERIVATION_INITIAL = const(0x8001)

# X9.24-3-2017 6.3.2 tables 2 and 3: algorithm indicator (bytes 4-5); 6.2.2: AES key types.
# AES-192 (3) is left out: cryptolib on the unix port has no 192-bit keys (payterm.crypto.aes).
AES128 = const(2)
AES256 = const(4)
_BITS = {AES128: 128, AES256: 256}
_KIND_OF_LEN = {16: AES128, 32: AES256}

_VERSION = const(0x01)  # 6.3.2: derivation data version ID
_IKID_LEN = const(8)  # 6.2: initial key ID = BDK ID (4) || derivation ID (4)
_KSN_LEN = const(12)  # 6.2: KSN = initial key ID (8) || transaction counter (4)

_STAGE = "key"
_DD = bytearray(16)  # derivation data, reused (hot path)
_TAIL = bytearray(8)


def _ones(n):
    c = 0
    while n:
        n &= n - 1
        c += 1
    return c


def kind_of(key):
    """Key type (algorithm indicator) of an AES key by its length; KEY-02 for any other length."""
    k = _KIND_OF_LEN.get(len(key))
    if k is None:
        raise Fault("KEY-02", "key length %d" % len(key), _STAGE)
    return k


def _tail(ikid, tc):
    # 6.3.3: rightmost 4 bytes of the initial key ID || 32-bit counter, big endian
    t = _TAIL
    t[0:4] = ikid[4:8]
    t[4] = (tc >> 24) & 0xFF
    t[5] = (tc >> 16) & 0xFF
    t[6] = (tc >> 8) & 0xFF
    t[7] = tc & 0xFF
    return t


def derive(key, usage, kind, data8):
    """X9.24-3 6.3.1 key derivation: AES_key(derivation data) per 128 bits of the new key.

    `data8` is the IKID for the initial key, else IKID[4:8] || counter. Returns a new bytearray.
    """
    nbytes = _BITS[kind] // 8
    dd = _DD
    dd[0] = _VERSION
    dd[2] = usage >> 8
    dd[3] = usage & 0xFF
    dd[4] = 0
    dd[5] = kind
    bits = _BITS[kind]
    dd[6] = bits >> 8
    dd[7] = bits & 0xFF
    dd[8:16] = data8
    out = bytearray((nbytes + 15) // 16 * 16)
    mv = memoryview(out)
    c = aes.ecb(key)
    for i in range(len(out) // 16):
        dd[1] = i + 1  # key block counter
        c.encrypt(dd, mv[i * 16:i * 16 + 16])
    if len(out) != nbytes:
        out2 = bytearray(out[:nbytes])
        aes.wipe(out)
        out = out2
    return out


def initial_key(bdk, ikid):
    """The terminal's initial key from the BDK (the HSM's step; here for tests and key loaders)."""
    return derive(bdk, KEY_DERIVATION_INITIAL, kind_of(bdk), ikid)


def intermediate_key(ik, ikid, tc):
    """Intermediate derivation key for counter `tc`: one derivation per one bit, most significant first."""
    kind = kind_of(ik)
    key = bytearray(ik)
    working = 0
    bit = 0x80000000
    while bit:
        if tc & bit:
            working |= bit
            nxt = derive(key, KEY_DERIVATION, kind, _tail(ikid, working))
            aes.wipe(key)
            key = nxt
        bit >>= 1
    return key


def working_key(ik, ikid, tc, usage, kind=AES128):
    """A working key for counter `tc` straight from the initial key (host-style derivation)."""
    d = intermediate_key(ik, ikid, tc)
    try:
        return derive(d, usage, kind, _tail(ikid, tc))
    finally:
        aes.wipe(d)


def ksn_of(ikid, tc):
    return bytes(ikid) + bytes(((tc >> 24) & 0xFF, (tc >> 16) & 0xFF, (tc >> 8) & 0xFF, tc & 0xFF))


def field53(ksn):
    """Field 53 value: the 12-byte KSN as 24 uppercase hex characters (docs/keys.md)."""
    return binascii.hexlify(ksn).decode().upper()


def parse_field53(value):
    """(IKID bytes, counter) from a field 53 value; KEY-05 when it is truncated or not hex."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = value.decode()
        except UnicodeError:
            raise Fault("KEY-05", "field 53 not text", _STAGE)
    if value is None or len(value) != 2 * _KSN_LEN:
        raise Fault("KEY-05", "field 53 length %d" % (0 if value is None else len(value)), _STAGE)
    try:
        raw = binascii.unhexlify(value)
    except ValueError:
        raise Fault("KEY-05", "field 53 not hex", _STAGE)
    return raw[:_IKID_LEN], int.from_bytes(raw[_IKID_LEN:], "big")


class Transaction:
    """One payment's keys: KSN and the working keys of its counter.

    Holds that counter's intermediate derivation key in RAM until `wipe()` (also at
    the end of a `with` block). Working keys come back as bytearrays the caller
    wipes after use.
    """

    def __init__(self, ikid, tc, dkey):
        self.counter = tc
        self.ksn = ksn_of(ikid, tc)
        self._ikid = bytes(ikid)
        self._dkey = dkey

    def key(self, usage, kind=AES128):
        if self._dkey is None:
            raise Fault("KEY-04", "transaction keys already wiped", _STAGE)
        return derive(self._dkey, usage, kind, _tail(self._ikid, self.counter))

    def pin_key(self):
        return self.key(PIN_ENCRYPTION)

    def mac_key(self):
        """Request MAC (field 64 of what the terminal sends)."""
        return self.key(MAC_GENERATION)

    def response_mac_key(self):
        """Response MAC check (field 64 of what the host answers)."""
        return self.key(MAC_VERIFICATION)

    def data_key(self):
        """Card data encrypted for the host (store-and-forward records)."""
        return self.key(DATA_ENCRYPT)

    def field53(self):
        return field53(self.ksn)

    def wipe(self):
        if self._dkey is not None:
            aes.wipe(self._dkey)
            self._dkey = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.wipe()
        return False


def _hex(b):
    return None if b is None else binascii.hexlify(b).decode()


def _b64(b):
    return None if b is None else binascii.b2a_base64(b, newline=False).decode()


# Stored forms of the record's bytes, by record version: 1 = hex (read only), 2 = base64.
# Key material is never stored in hex: a random key in hex holds a Luhn-valid run of 12-19
# decimal digits often enough (one state file in ten) that a PAN scanner reads the flash as
# holding card numbers; base64 has no such runs.
_DECODE = {1: binascii.unhexlify, 2: binascii.a2b_base64}
_V = const(2)


class Dukpt:
    """The terminal's DUKPT registers and counter, kept in `state` under `key`.

    The record is {"v": 2, "ikid": base64, "tc": next counter, "reg": [32 x base64 or null]};
    a version 1 record (the same in hex) is read and saved again as version 2.
    Nothing else about the key is ever stored: no initial key, no working key.
    """

    def __init__(self, state, key="dukpt"):
        self._state = state
        self._key = key
        self._ikid = None
        self._tc = 0
        self._reg = None
        self._strs = None  # the stored form of each register in self._reg
        self._error = None
        rec = state.get(key, None)
        if rec is not None:
            self._parse(rec)
            if self._error is None and rec.get("v") != _V:
                try:
                    self._save(self._ikid, self._tc, self._reg)  # both copies in the current form
                except Fault:
                    pass  # kept in RAM; the next begin() saves it again
            if self._error is None and getattr(state, "recovered", False) and self._tc < _TC_END:
                # The state fell back to its previous copy, which may hold a counter
                # that was already handed out: skip one so it is never used twice.
                try:
                    self.begin().wipe()
                except Fault:
                    pass  # exhausted: begin() reports KEY-03 to the next payment

    def _parse(self, rec):
        try:
            dec = _DECODE[rec.get("v")]
            ikid = dec(rec["ikid"])
            tc = rec["tc"]
            reg = [None if r is None else bytearray(dec(r)) for r in rec["reg"]]
            sizes = [len(r) for r in reg if r is not None]
            ok = (len(ikid) == _IKID_LEN and isinstance(tc, int)
                  and 1 <= tc <= _TC_END and len(reg) == NUMREG)
            for n in sizes:
                ok = ok and n in _KIND_OF_LEN and n == sizes[0]
            if ok:
                self._ikid, self._tc, self._reg = ikid, tc, reg
                self._strs = rec["reg"] if rec.get("v") == _V else None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            ok = False
        if not ok:
            self._error = "key registers unreadable"

    # -- status for the technician (never key material)
    def loaded(self):
        return self._reg is not None

    def ikid(self):
        return None if self._ikid is None else binascii.hexlify(self._ikid).decode().upper()

    def next_counter(self):
        return self._tc

    def exhausted(self):
        return self._reg is not None and self._tc >= _TC_END

    def problem(self):
        """The code `begin()` would raise now (KEY-04, KEY-01, KEY-03), or None when keys are ready."""
        if self._error is not None:
            return "KEY-04"
        if self._reg is None:
            return "KEY-01"
        if self._tc >= _TC_END:
            return "KEY-03"
        return None

    # -- key loading
    def install(self, ik, ikid, counter=1):
        """Load an initial key (bytearray, zeroed here) with its 8-byte IKID.

        Fills the registers for `counter` (1 for a freshly injected key; tests start
        later to reach the end of the counter range), saves them and forgets the key.
        """
        try:
            kind_of(ik)
            if len(ikid) != _IKID_LEN:
                raise Fault("KEY-02", "initial key ID length %d" % len(ikid), _STAGE)
            if not 1 <= counter <= _TC_LAST:
                raise Fault("KEY-02", "counter %d" % counter, _STAGE)
            if self._ikid is not None and bytes(ikid) == bytes(self._ikid):
                # Loading the same initial key again would restart its counter and repeat keys.
                raise Fault("KEY-02", "initial key ID already loaded", _STAGE)
            reg = []
            low = counter & -counter
            for j in range(NUMREG):
                bit = 1 << j
                key = None  # also when that register's counters are already behind `counter`
                if not (counter & bit and bit != low):
                    c = (counter & ~(2 * bit - 1)) | bit
                    if _ones(c) <= MAX_WORK:
                        key = intermediate_key(ik, ikid, c)
                reg.append(key)
            old = self._reg
            try:
                self._save(bytes(ikid), counter, reg)
            except BaseException:
                _wipe_all(reg)
                raise
            _wipe_all(old)
        finally:
            aes.wipe(ik)
        self._error = None

    def install_file(self, path):
        """Load the initial key file written by `payterm provision` and erase it.

        The file is JSON {"ikid": 16 hex, "ik": 32 or 64 hex, "kcv": 10 hex}; kcv is the
        leftmost 5 bytes of AES-CMAC(ik, 16 zero bytes). Returns the IKID (hex), or None
        when there is no file or it holds the key already loaded (a load cut before the
        erase: the file is erased, the counter goes on). KEY-02 when the file is not a valid key.
        """
        import json

        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            return None
        if raw[:1] == b"\x00" and self._ikid is not None:
            # An erase cut by the power (it overwrites from the start) after the load had finished: the
            # rest of the key's bytes go now. With no key loaded it is a damaged file: KEY-02 below.
            raw = None
            _erase(path)
            return None
        ik = None
        try:
            try:
                d = json.loads(raw)
                ikid = binascii.unhexlify(d["ikid"])
                ik = bytearray(binascii.unhexlify(d["ik"]))
                kcv = binascii.unhexlify(d["kcv"])
            except (ValueError, KeyError, TypeError):
                raise Fault("KEY-02", "initial key file unreadable", _STAGE)
            kind_of(ik)
            from payterm.crypto import cmac

            if not aes.equal(cmac.mac(ik, bytes(16), 5), kcv):
                raise Fault("KEY-02", "initial key check value mismatch", _STAGE)
            if self._ikid is not None and bytes(ikid) == bytes(self._ikid):
                # The registers of this very key are saved: a power cut came between their save and
                # the file's erase. Loading it again would restart the counter; the erase finishes.
                return None
            self.install(ik, ikid)
        finally:
            if ik is not None:
                aes.wipe(ik)
            raw = None
            # The initial key must not outlive the load (nor a failed one): overwrite, then remove.
            _erase(path)
        return binascii.hexlify(ikid).decode().upper()

    def _save(self, ikid, tc, reg):
        # A register that did not change keeps its stored string (self._strs, saved with self._reg): one
        # transaction re-encodes the one or two registers it derived, not all 32, so fewer long-lived strings
        # are scattered over a small heap.
        old = self._strs if ikid == self._ikid else None
        cur = self._reg
        rec = {"v": _V, "ikid": _b64(ikid), "tc": tc,
               "reg": [old[j] if old is not None and cur is not None and reg[j] is cur[j] else _b64(reg[j])
                       for j in range(NUMREG)]}
        self._state.set(self._key, rec)
        # A second save replaces the backup copy, which still held the register just
        # used (X9.24-3 6.1: a used key is erased).
        self._state.set(self._key, rec)
        self._ikid, self._tc, self._reg, self._strs = ikid, tc, reg, rec["reg"]

    # -- per transaction
    def begin(self):
        """Reserve the next counter (saved before return) and return its Transaction.

        KEY-01 no initial key, KEY-04 unreadable registers, KEY-03 counter exhausted.
        """
        if self._error is not None:
            raise Fault("KEY-04", self._error, _STAGE)
        if self._reg is None:
            raise Fault("KEY-01", "no initial key loaded", _STAGE)
        reg = list(self._reg)
        tc = self._tc
        while True:
            if tc >= _TC_END:
                if self._tc < _TC_END:
                    old = self._reg
                    self._save(self._ikid, _TC_END, [None] * NUMREG)
                    _wipe_all(old)
                raise Fault("KEY-03", "transaction counter exhausted", _STAGE)
            i = 0
            while not (tc >> i) & 1:
                i += 1
            used = reg[i]
            if used is not None:
                break
            tc += 1 << i  # X9.24-3 6.1: a register not in use: skip to its next counter
        dkey = bytearray(used)
        try:
            if _ones(tc) < MAX_WORK:
                kind = kind_of(dkey)
                for j in range(i - 1, -1, -1):
                    reg[j] = derive(dkey, KEY_DERIVATION, kind, _tail(self._ikid, tc | (1 << j)))
                nxt = tc + 1
            else:
                nxt = tc + (1 << i)  # any lower bit would make more than 16 one bits
            reg[i] = None
            self._save(self._ikid, nxt, reg)
        except BaseException:
            aes.wipe(dkey)
            for j in range(i):
                if reg[j] is not self._reg[j]:
                    aes.wipe(reg[j])
            raise
        aes.wipe(used)
        return Transaction(self._ikid, tc, dkey)


def _wipe_all(regs):
    if regs:
        for r in regs:
            if r is not None:
                aes.wipe(r)


def _erase(path):
    from payterm import flash

    try:
        size = flash.size(path)
        if size >= 0:
            flash.write(path, bytes(size))  # the key's bytes overwritten before the name goes
            flash.sync()
            flash.remove(path)
            flash.sync()
    except OSError:
        pass

"""Technician PIN: stored salted-hashed in flash, with lockout after wrong tries.

Shared by the console and the technician menu so a wrong PIN on one counts
towards the lockout of both. Time is epoch seconds from `clock()`; the
lockout state is kept in the same file so a reboot does not reset it.
"""
from micropython import const
import hashlib
from binascii import b2a_base64, unhexlify

from payterm.diag import _store
from payterm.errors import Fault

_MAX_TRIES = const(3)
_LOCK_S = const(300)
_HEX_LEN = const(64)  # a SHA-256 in hex: the provisioning file's form, and older firmware's pin.json


def _b64(raw):
    return b2a_base64(raw, newline=False).decode()


def _hash(salt, pin):
    """sha256(salt:pin), stored base64: a digest in hex holds a Luhn-valid 12-19 digit run often
    enough (one file in a hundred) that a PAN scanner reads the flash as holding a card number."""
    return _b64(hashlib.sha256((salt + ":" + pin).encode()).digest())


def _stored(h):
    """A hash in the stored form (base64); a hex one (provisioning file, older pin.json) converted."""
    if isinstance(h, str) and len(h) == _HEX_LEN:
        try:
            return _b64(unhexlify(h))
        except ValueError:
            pass
    return h


def _mark(prov):
    """What pin.json keeps of a provisioned "sha256$salt$hex" to notice a new one: salt$base64."""
    if not (isinstance(prov, str) and prov.startswith("sha256$")):
        return prov
    _, salt, h = prov.split("$")
    return salt + "$" + _stored(h)


class PinGate:
    def __init__(self, path, default_pin, clock, max_tries=_MAX_TRIES, lock_s=_LOCK_S, diag=None,
                 wrong="OPR-05", locked="OPR-03"):
        """wrong/locked: the failure codes of this PIN (the merchant PIN has OPR-07/OPR-08)."""
        self.path = path
        self._wrong = wrong
        self._locked = locked
        self._diag = diag  # wrong PINs and lockouts go to the fault log (who tried to get in)
        self._clock = clock
        self.max_tries = max_tries
        self.lock_s = lock_s
        d, _ = _store.load(path)
        # A provisioned "sha256$salt$hash" (payterm.config) replaces the stored PIN
        # whenever it changes; a plain default PIN only seeds a missing file.
        prov = default_pin if str(default_pin).startswith("sha256$") else None
        old_form = False
        if isinstance(d, dict) and "hash" in d:
            h, p = _stored(d["hash"]), _mark(d.get("prov"))
            old_form = (h, p) != (d["hash"], d.get("prov"))  # hex of older firmware
            d["hash"] = h
            if p is not None:
                d["prov"] = p
        if not isinstance(d, dict) or "hash" not in d or (prov and d.get("prov") != _mark(prov)):
            old = d if isinstance(d, dict) else {}
            d = {"salt": "pt1", "fails": old.get("fails", 0), "until": old.get("until", 0)}
            if prov:
                _, d["salt"], h = prov.split("$")
                d["hash"] = _stored(h)
                d["prov"] = _mark(prov)
            else:
                d["hash"] = _hash(d["salt"], default_pin)
            _store.save(path, d)
        elif old_form:
            _store.save(path, d)
        self._d = d

    def locked_for(self):
        left = self._d.get("until", 0) - self._clock()
        return left if left > 0 else 0

    def check(self, pin):
        """True on the right PIN; raises Fault OPR-03 (locked) or OPR-05 (wrong), or this gate's codes."""
        d = self._d
        left = self.locked_for()
        if left:
            raise self._fail(self._locked, "locked %ds" % left)
        if _hash(d["salt"], str(pin)) == d["hash"]:
            if d.get("fails"):
                d["fails"] = 0
                _store.save(self.path, d)
            return True
        d["fails"] = d.get("fails", 0) + 1
        if d["fails"] >= self.max_tries:
            d["fails"] = 0
            d["until"] = self._clock() + self.lock_s
            _store.save(self.path, d)
            raise self._fail(self._locked, "locked %ds" % self.lock_s)
        _store.save(self.path, d)
        raise self._fail(self._wrong, "%d tries left" % (self.max_tries - d["fails"]))

    def _fail(self, code, detail):
        if self._diag is not None:
            self._diag.fault(code, "pin", detail)
        return Fault(code, detail, "pin")

    def set(self, pin):
        pin = str(pin)
        if len(pin) < 4 or not pin.isdigit():
            raise Fault(self._wrong, "PIN must be 4+ digits", "pin")
        self._d["hash"] = _hash(self._d["salt"], pin)
        _store.save(self.path, self._d)

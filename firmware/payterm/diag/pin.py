"""Technician PIN: stored salted-hashed in flash, with lockout after wrong tries.

Shared by the console and the technician menu so a wrong PIN on one counts
towards the lockout of both. Time is epoch seconds from `clock()`; the
lockout state is kept in the same file so a reboot does not reset it.
"""
from micropython import const
import hashlib
from binascii import hexlify

from payterm.diag import _store
from payterm.errors import Fault

_MAX_TRIES = const(3)
_LOCK_S = const(300)


def _hash(salt, pin):
    return hexlify(hashlib.sha256((salt + ":" + pin).encode()).digest()).decode()


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
        if not isinstance(d, dict) or "hash" not in d or (prov and d.get("prov") != prov):
            old = d if isinstance(d, dict) else {}
            d = {"salt": "pt1", "fails": old.get("fails", 0), "until": old.get("until", 0)}
            if prov:
                _, d["salt"], d["hash"] = prov.split("$")
                d["prov"] = prov
            else:
                d["hash"] = _hash(d["salt"], default_pin)
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

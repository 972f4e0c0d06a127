"""Acquirer simulator: ISO 8583 (pyiso8583, spec87 `default`) over TCP, as strict as an acquirer host.

Frames carry a 2-byte big-endian length header, like the terminal's Link.

The host side is a book of what it holds. Per original transaction (a sale
0200, a refund 0200 with processing code 20, an advice 0220/0221) it knows
what it approved, and reversals 0400/0401 and voids (0200, processing code
02) change that:

- duplicate transmission: an original 0200 (not 0201) with the TID (41),
  STAN (11) and transmission date (MMDD of 7, else 13) of one received before
  is answered 94 and not booked again;
- a reversal finds its original by TID + field 90 (original MTI, STAN, field 7):
  booked and standing -> reversed, 00; already reversed, voided or declined ->
  00 with nothing changed (idempotent, 0401 alike); not found -> 25. A reversal
  naming an advice (0220) un-books the advice; one naming a void restores the
  voided original;
- a void names its original by TID + field 90 (a void naming 0200 also finds a
  sale the host only knows from its advice): unknown -> 25; declined, a void,
  already voided or reversed -> 12; field 4 not the amount the host holds -> 13;
  else approved and booked;
- an advice is booked once per TID + STAN + date, whether it came as 0220 or
  only as 0221; repeats are answered 00 and not booked again;
- missing or malformed mandatory fields -> 30, nothing booked (sale/refund:
  3 4 11 41 49 and 2 or 35; void: 3 4 11 41 90; reversal: 11 41 90;
  advice: 3 4 11 41);
- a request the host is still deciding ("delay") is known to it from the
  moment it arrived: a reversal or void naming it, on another connection,
  waits for that decision instead of answering 25 (original not found).

Each test scripts how the next requests are answered (`script()`, actions in
ACTIONS) and reads back the ledger (one entry per request, see `_Book.decide`)
and `holdings()`: what the host holds per original, in minor units.
The issuer role (issuer.py) checks the cryptogram in field 55 of every
sale, refund and advice: `arqc` in the ledger entry is "ok", "bad" (a bad,
missing or tampered ARQC: declined 82 when the host would have booked it)
or "-" (no chip data: a swipe); answers to a verified ARQC carry the ARPC in
field 55 (tag 91).
Full PANs never leave this module: the ledger, its file and the log hold
masked PANs only.
"""
import json
import os
import socket
import struct
import threading
import time

import copy

import iso8583
from iso8583.specs import default as _DEFAULT

from payterm_tools.sim import hsm as _hsm

# The acquirer's field table: pyiso8583's `default` (ISO 8583:1987) with AES DUKPT's
# fields 52 (the 16-byte format 4 PIN block) and 53 (the KSN as 24 hex characters),
# as docs/keys.md specifies and firmware/payterm/link/spec87.py has them.
SPEC = copy.deepcopy(_DEFAULT)
SPEC["52"]["max_len"] = 16
SPEC["53"].update({"data_enc": "ascii", "len_type": 0, "max_len": 24})

from payterm_tools.sim.issuer import Issuer

_HDR = struct.Struct(">H")
_MAX_FRAME = 4096

_KINDS_BY_MTI = {
    "0400": "reversal", "0401": "reversal", "0420": "reversal", "0421": "reversal",
    "0220": "advice", "0221": "advice",
    "0800": "echo", "0801": "echo",
}
_FINANCIAL = ("0200", "0201")
# Fields copied from the request into the response (ISO 8583:1987 usage).
_ECHOED = ("3", "4", "7", "11", "12", "13", "22", "24", "41", "42", "49", "90")
# Response codes at which the host books: approved, approved for a partial amount.
APPROVED = ("00", "10")
# Mandatory fields per kind (card data, 2 or 35, is checked apart for sale/refund).
_MANDATORY = {
    "auth": ("3", "4", "11", "41", "49"),
    "refund": ("3", "4", "11", "41", "49"),
    "void": ("3", "4", "11", "41", "90"),
    "reversal": ("11", "41", "90"),
    "advice": ("3", "4", "11", "41"),
}
# Numeric fields the host reads, with their fixed length (spec87).
_DIGITS = {"3": 6, "4": 12, "7": 10, "11": 6, "13": 4, "49": 3, "90": 42}

# Script actions: name -> what follows it in the tuple.
ACTIONS = {
    "approve": "",              # answer as the host decides (the default)
    "decline": "rc",            # answer rc, book nothing (also for reversals: the charge stays)
    "partial": "minor_amount",  # a sale approved for a smaller amount: rc 10, field 4 = that amount, booked
                                # for it (other messages, or an amount not smaller: answered as "approve")
    "no_rc": "",                # book as decided, answer without field 39
    "delay": "ms[, action]",    # wait, then do the action (default approve)
    "late": "ms",               # book, answer after ms (the terminal has given up by then)
    "no_answer": "",            # book, never answer; the connection stays open
    "close": "",                # book, close the connection (FIN) without answering
    "approve_drop": "",         # the same as "close": book the approval, drop the connection unanswered
    "approve_close": "",        # answer, then close (one-shot connections)
    "reset": "",                # book, reset the connection (RST) without answering
    "reset_mid": "",            # book, send the length header and half of the answer, then reset (RST)
    "garbage": "",              # book, answer a frame that does not decode
    "truncated": "",            # book, answer a cut frame
    "duplicate": "",            # book, answer twice
    "wrong_stan": "[also_right]",  # answer with another STAN first (then the right one unless False)
    "wrong_mti": "[also_right]",   # answer with a wrong response MTI first (then the right one unless False)
    "wrong_tid": "[also_right]",   # answer with another TID first (then the right one unless False)
    "half_open": "",            # book, never answer, and ignore every later request on this connection
                                # (the path back died: those never reach the host, nor the ledger)
    "huge_len": "",             # book, answer a length header 0xFFFF and a few bytes; the connection stays open
    "zero_len": "",             # book, answer a length header 0 and nothing else
    "bad_mac": "",              # book as decided, answer with a wrong MAC (field 64/128)
    "no_mac": "",               # book as decided, answer without a MAC
}
# PIN tries before the issuer blocks the card's PIN (rc 75 from the last wrong try on).
PIN_TRIES = 3


def mask_pan(pan):
    """First 6 / last 4, as payterm.mask does on the terminal."""
    if not pan:
        return ""
    n = len(pan)
    if n < 13:
        return "*" * n
    return pan[:6] + "*" * (n - 10) + pan[-4:]


def _pan_of(req):
    pan = req.get("2", "")
    if not pan and req.get("35"):
        t2 = req["35"].lstrip(";")
        for sep in ("=", "D", "d"):
            if sep in t2:
                t2 = t2.split(sep)[0]
                break
        pan = t2 if t2.isdigit() else ""
    return pan


def response_mti(mti):
    return mti[:2] + str(int(mti[2]) + 1) + "0"


def _wrong_mti(mti):
    """A response MTI that does not answer `mti` (0210 <-> 0230, 0410 -> 0430)."""
    return mti[:2] + ("1" if mti[2] == "3" else "3") + mti[3]


def _family(mti):
    """0200/0201 -> 0200, 0220/0221 -> 0220: a message and its repeats."""
    return mti[:3] + "0" if len(mti) == 4 else mti


def _norm(action):
    """Action as a tuple (name, arg...)."""
    if isinstance(action, str):
        return (action,)
    return tuple(action)


def check_action(action):
    """The action as a tuple, or ValueError naming what is wrong with it."""
    a = _norm(action)
    if not a or a[0] not in ACTIONS:
        raise ValueError("unknown acquirer action %r (one of %s)" % (action, ", ".join(sorted(ACTIONS))))
    name, args = a[0], a[1:]
    ok = True
    if name == "decline":
        ok = len(args) == 1 and isinstance(args[0], str) and len(args[0]) == 2 and args[0].isalnum()
    elif name == "partial":
        ok = len(args) == 1 and isinstance(args[0], int) and args[0] > 0
    elif name == "late":
        ok = len(args) == 1 and isinstance(args[0], (int, float)) and args[0] >= 0
    elif name == "delay":
        ok = 1 <= len(args) <= 2 and isinstance(args[0], (int, float)) and args[0] >= 0
        if ok and len(args) == 2:
            inner = check_action(args[1])
            ok = inner[0] not in ("delay",)
    elif name in ("wrong_stan", "wrong_mti", "wrong_tid"):
        ok = len(args) <= 1
    else:
        ok = not args
    if not ok:
        raise ValueError("acquirer action %r: %s takes %s" % (action, name, ACTIONS[name] or "no argument"))
    return a


def _kind(mti, pcode):
    k = _KINDS_BY_MTI.get(mti)
    if k:
        return k
    if mti not in _FINANCIAL:
        return "other"
    if pcode.startswith("20"):
        return "refund"
    if pcode.startswith("02"):
        return "void"
    return "auth"


def _pin_by_service_code(req):
    """A swiped card whose service code (track 2) asks for a PIN (third digit 0, 5, 6, 7)."""
    if req.get("22", "")[:2] not in ("90", "80"):
        return False
    t2 = req.get("35", "")
    k = t2.find("=")
    sc = t2[k + 5:k + 8] if k >= 0 else ""
    return len(sc) == 3 and sc[2] in "0567"


def _orig_stan(req):
    """STAN of the transaction a reversal/void refers to (field 90, else 11)."""
    f90 = req.get("90", "")
    if len(f90) >= 10 and f90[4:10].isdigit() and f90[4:10] != "000000":
        return f90[4:10]
    return req.get("11", "")


def _date(f7, f13):
    if len(f7 or "") >= 4:
        return f7[:4]
    return f13 or ""


class _Orig:
    """One original transaction as the host books it (a void is one too: it undoes another)."""

    def __init__(self, entry):
        self.kind = entry["kind"]
        self.fam = _family(entry["mti"])
        self.tid = entry.get("tid", "")
        self.stan = entry["stan"]
        self.f7 = entry.get("f7", "")
        self.date = entry.get("date", "")
        self.amount = entry.get("amount", 0)
        self.approved = bool(entry.get("booked"))
        self.reversed = False
        self.voids = []      # void _Orig records naming this one
        self.void_of = None  # for a void: the original it cancels
        self.entry = entry

    def standing(self):
        """Approved and not undone: a void that stands cancels its original."""
        return self.approved and not self.reversed

    def voided(self):
        return any(v.standing() for v in self.voids)

    def held(self):
        if self.kind == "void" or not self.standing() or self.voided():
            return 0
        return -self.amount if self.kind == "refund" else self.amount


class _Book:
    """What the host holds; shared by every AcquirerSim that stands for the same host."""

    def __init__(self, path=None):
        self.path = path
        self.lock = threading.RLock()
        self.entries = []
        self.origs = []
        self.received = {}   # (tid, stan, date) -> _Orig: 0200s received (duplicate detection)
        self.advised = {}    # (tid, stan, date) -> _Orig: advices
        self.arriving = {}   # (tid, stan) -> threading.Event: received, still being decided ("delay")
        self.rrn = 0
        self.pin_tries = {}  # pan_masked -> wrong PIN tries in a row (the issuer's PIN try counter)
        self.issuer = Issuer()  # the cryptogram check (arqc=ok|bad|-) of sales, refunds and advices
        if path and os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue  # a line torn by a crash while it was written
                    if isinstance(e, dict) and "kind" in e and "stan" in e:
                        self._apply(e)
                        self.entries.append(e)

    # ------------------------------------------------------------ lookup
    def find(self, tid, f90, void=False):
        """The original named by field 90 (MTI, STAN, field 7) for terminal `tid`, or None."""
        if len(f90) < 10:
            return None
        omti, ostan, of7 = f90[:4], f90[4:10], f90[10:20]
        fams = [_family(omti)]
        if void and fams[0] == "0200":
            fams.append("0220")  # an offline sale: the host knows it from its advice
        for fam in fams:
            for r in reversed(self.origs):
                if r.tid == tid and r.stan == ostan and r.fam == fam and (
                        not of7.strip("0") or not r.f7 or r.f7 == of7):
                    return r
        return None

    def _prior(self, e):
        for p in reversed(self.entries):
            if (p["kind"] == e["kind"] and p["stan"] == e["stan"] and p.get("tid", "") == e["tid"]
                    and p.get("date", "") == e["date"]):
                return p
        return None

    # ------------------------------------------------------------ decisions
    def decide(self, req, action, host, auth_code, sec=None):
        """The ledger entry for one request: what the host answers and whether it books it.

        Keys: mti, stan, tid, kind (auth refund void reversal advice echo other), amount
        (field 4 in minor units; for a partial approval the approved amount), requested
        (field 4 as sent), currency, pan_masked, rc, outcome
        (approved/declined), booked (this request changed what the host holds),
        repeat (a repeat MTI, or a message the host already had), note (why, for
        non-obvious answers), delivery (script action), rrn, auth_code, date (MMDD),
        f7, orig_mti/orig_stan/orig_f7 (field 90 of reversals and voids), host, ts,
        pin / mac / card (the HSM's findings, `hsm.inspect`: ok, bad, missing or -).

        sec: the HSM's inspection of the request (None: a host that checks no MACs).
        A message whose MAC or key data fails is answered with the HSM's code (63,
        30) and never booked nor remembered; an advice needs its card data
        (field 62) to decrypt (else 30, card=missing); a wrong PIN is 55, the
        PIN_TRIES-th wrong one in a row and every PIN after it 75.
        """
        mti = req["t"]
        kind = _kind(mti, req.get("3", ""))
        name = action[0]
        tid, stan = req.get("41", ""), req.get("11", "")
        amount = req.get("4", "")
        requested = int(amount) if amount.isdigit() else 0
        f90 = req.get("90", "")
        e = {
            "mti": mti, "stan": stan, "tid": tid, "kind": kind,
            "amount": requested, "requested": requested,
            "currency": req.get("49", ""), "pan_masked": mask_pan(_pan_of(req)),
            "rc": "00", "outcome": "", "booked": False, "repeat": mti[3:] in ("1", "3"), "note": "",
            "delivery": name, "rrn": "", "auth_code": "",
            "date": _date(req.get("7", ""), req.get("13", "")), "f7": req.get("7", ""),
            "orig_mti": f90[:4] if kind in ("reversal", "void") else "",
            "orig_stan": _orig_stan(req) if kind in ("reversal", "void") else "",
            "orig_f7": f90[10:20] if kind in ("reversal", "void") else "",
            "host": host, "ts": round(time.time(), 3),
            "pin": sec["pin"] if sec else "-", "mac": sec["mac"] if sec else "-", "card": sec["card"] if sec else "-",
        }
        scripted = action[1] if name == "decline" else None
        rc, booked, note = "00", False, ""
        missing = self._format_errors(kind, req)
        prior_orig = None
        if kind == "other":
            rc, note = "12", "unsupported message type"
        elif missing:
            rc, note = "30", "format: " + " ".join(missing)
        elif sec is not None and sec["error"] is not None:
            rc, note = sec["error"].rc, "security: %s" % sec["error"]
        elif kind == "advice" and sec is not None and sec["card"] != "ok":
            rc, note = "30", "format: no usable card data (field 62)"
        elif kind == "echo":
            rc = scripted or "00"
        elif kind in ("auth", "refund", "void") and not e["repeat"] and (tid, stan, e["date"]) in self.received:
            rc, note = "94", "duplicate transmission"
        elif self._pin_answer(kind, req, e):
            rc, note = self._pin_answer(kind, req, e)
        elif scripted is not None:
            rc, note = scripted, "scripted"
        elif kind in ("auth", "refund") and e["repeat"] and (tid, stan, e["date"]) in self.received:
            prior_orig = self.received[(tid, stan, e["date"])]
            rc, note = prior_orig.entry["rc"], "repeat of a request the host has"
            e["amount"] = prior_orig.entry["amount"]
        elif kind in ("auth", "refund"):
            rc, booked = "00", True
            if name == "partial" and kind == "auth" and action[1] < requested:
                rc, e["amount"] = "10", action[1]
        elif kind == "void":
            o = self.find(tid, f90, void=True)
            if o is None:
                rc, note = "25", "original not found"
            elif o.kind == "void":
                rc, note = "12", "a void cannot be voided (reverse it)"
            elif not o.approved:
                rc, note = "12", "original was declined"
            elif o.reversed:
                rc, note = "12", "original already reversed"
            elif o.voided():
                rc, note = "12", "original already voided"
            elif requested != o.amount:
                rc, note = "13", "amount %d, original %d" % (requested, o.amount)
            else:
                rc, booked = "00", True
        elif kind == "reversal":
            o = self.find(tid, f90)
            if e["repeat"] is False and any(p["kind"] == "reversal" and p.get("tid", "") == tid
                                            and p.get("orig_stan") == e["orig_stan"] for p in self.entries):
                e["repeat"] = True  # a second 0400 for the same original
            if o is None:
                rc, note = "25", "original not found"
            elif not o.approved:
                note = "original was declined: nothing held"
            elif o.reversed:
                note = "already reversed"
            elif o.voided():
                note = "original voided: nothing held"
            else:
                booked = True
        elif kind == "advice":
            o = self.advised.get((tid, stan, e["date"]))
            if o is not None:
                e["repeat"] = True
            if o is not None and o.approved:
                note = "advice already booked"
            else:
                booked = True
        # The issuer: a chip request whose cryptogram does not verify is declined (82), not booked.
        e["arqc"], why = self.issuer.verify(req, _pan_of(req)) if kind in ("auth", "refund", "advice") else ("-", "")
        if e["arqc"] == "bad" and booked:
            rc, booked, note = "82", False, "issuer: " + why
        e["rc"], e["booked"], e["note"] = rc, booked, note
        e["outcome"] = "approved" if rc in APPROVED else "declined"
        if kind != "echo":
            prior = self._prior(e) if e["repeat"] else None
            if prior_orig is not None:
                prior = prior_orig.entry
            if prior and prior.get("rrn"):
                e["rrn"] = prior["rrn"]
            else:
                self.rrn += 1
                e["rrn"] = "%012d" % self.rrn
            if rc in APPROVED and kind in ("auth", "refund", "void", "advice"):
                e["auth_code"] = prior["auth_code"] if prior and prior.get("auth_code") else auth_code
        return e

    def _pin_answer(self, kind, req, e):
        """(rc, note) when the issuer declines for the PIN, else None."""
        if kind not in ("auth", "refund"):
            return None
        n = self.pin_tries.get(e["pan_masked"], 0)
        if e["pin"] in ("ok", "bad") and n >= PIN_TRIES:
            return "75", "PIN tries exceeded: the card's PIN is blocked"
        if e["pin"] == "bad":
            return ("75" if n + 1 >= PIN_TRIES else "55"), "wrong PIN (try %d of %d)" % (n + 1, PIN_TRIES)
        if kind == "auth" and e["mac"] != "-" and e["pin"] == "-" and _pin_by_service_code(req):
            return "55", "the card's service code requires a PIN, none sent"
        return None

    @staticmethod
    def _format_errors(kind, req):
        need = _MANDATORY.get(kind, ())
        bad = [k for k in need if not req.get(k)]
        if kind in ("auth", "refund") and not (req.get("2") or req.get("35")):
            bad.append("2|35")
        for k, n in _DIGITS.items():
            v = req.get(k)
            if v and (len(v) != n or not v.isdigit()):
                bad.append(k + "?")
        return bad

    def commit(self, e):
        self._apply(e)
        self.entries.append(e)
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(e, sort_keys=True) + "\n")

    def _apply(self, e):
        """Book what entry `e` decided (also used to replay a ledger file)."""
        rrn = e.get("rrn", "")
        if rrn.isdigit():
            self.rrn = max(self.rrn, int(rrn))
        kind, rc = e["kind"], e.get("rc", "")
        if e.get("pin") in ("ok", "bad") and rc not in ("30", "94") and e.get("mac") != "bad":
            pm = e.get("pan_masked", "")
            if e["pin"] == "bad":
                self.pin_tries[pm] = self.pin_tries.get(pm, 0) + 1
            elif self.pin_tries.get(pm, 0) < PIN_TRIES:
                self.pin_tries[pm] = 0
        if rc == "30" or kind in ("echo", "other") or e.get("mac") == "bad":
            return  # not understood, or not authentic: the host keeps no trace of it
        tid, stan, date = e.get("tid", ""), e["stan"], e.get("date", "")
        if kind in ("auth", "refund", "void"):
            key = (tid, stan, date)
            if rc == "94" or key in self.received:
                return
            r = _Orig(e)
            if kind == "void" and r.approved:
                r.void_of = self.find(tid, e.get("orig_mti", "") + e.get("orig_stan", "") + e.get("orig_f7", ""),
                                      void=True)
                if r.void_of is not None:
                    r.void_of.voids.append(r)
            self.origs.append(r)
            self.received[key] = r
        elif kind == "advice":
            key = (tid, stan, date)
            r = self.advised.get(key)
            if r is None:
                r = self.advised[key] = _Orig(e)
                self.origs.append(r)
            elif e.get("booked"):
                r.approved, r.amount, r.entry = True, e.get("amount", 0), e
        elif kind == "reversal" and e.get("booked"):
            o = self.find(tid, e.get("orig_mti", "") + e.get("orig_stan", "") + e.get("orig_f7", ""))
            if o is not None:
                o.reversed = True

    # ------------------------------------------------------------ views
    def holdings(self):
        with self.lock:
            out = {}
            for r in self.origs:
                if r.kind != "void":
                    key = (r.tid, r.stan)
                    out[key] = out.get(key, 0) + r.held()
            return out


class _Conn:
    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr
        self.lock = threading.Lock()
        self.open = True
        self.half_open = False

    def send(self, data):
        with self.lock:
            if not self.open:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False

    def close(self, reset=False):
        with self.lock:
            if not self.open:
                return
            self.open = False
            try:
                if reset:
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


class AcquirerSim:
    """An acquirer host on 127.0.0.1 (see the module docstring for how it decides).

    script(*actions, mti=None): how the next requests (of `mti`, one MTI or a tuple)
    are answered; actions are listed in ACTIONS. Views: `ledger` (entries, see
    _Book.decide), holdings() {(tid, stan): minor units held}, held(tid, stan),
    authorized(), refunds(), advices(), reversed_stans(), voided_stans().
    ledger_path: a JSON-lines file the ledger is appended to and reloaded from, so
    duplicates are still detected and RRNs stay unique after a restart.
    backend: another AcquirerSim standing for the same host (a second address of
    one acquirer): both share one book and ledger.
    """

    def __init__(self, host="127.0.0.1", port=0, name="primary", auth_code="A1B2C3", on_request=None, tls=None,
                 ledger_path=None, backend=None, security=True, hsm=None, pins=None):
        self.tls = tls  # (certfile, keyfile) to serve TLS
        self._tls_ctx = None
        self.tls_failures = 0
        self.host = host
        self.port = port
        self.name = name
        self.auth_code = auth_code
        self.on_request = on_request  # callable(entry) for the CLI log
        if backend is not None:
            if ledger_path is not None:
                raise ValueError("a sim sharing another's book keeps no ledger file of its own")
            self._book = backend._book
        else:
            self._book = _Book(ledger_path)
        self.ledger_path = self._book.path
        # The host's HSM (sim/hsm.py: the test BDK by default) checks field 53 and the MAC of
        # every 0200/0220/0400, the PIN block against the issuer's PIN (`pins`: PAN -> PIN,
        # the simulated cards' by default) and decrypts an advice's card data; it MACs the
        # answers. security=False: a host that checks none of it (tests of other layers).
        self.security = security
        self.hsm = hsm or _hsm.Hsm()
        if pins is None:
            from payterm_tools.sim.cardsim import issuer_pins

            pins = issuer_pins()
        self.pins = dict(pins)
        self.requests = []  # raw log: {"t", "stan", "action", "pan_masked", "len"} or {"t": None, "error"}
        self._script = []
        self._lock = threading.Lock()
        self._conns = []
        self._threads = []
        self._timers = []
        self._srv = None
        self._running = False
        self.connections = 0

    # ------------------------------------------------------------ lifecycle
    @property
    def address(self):
        return (self.host, self.port)

    @property
    def running(self):
        return self._running

    @property
    def ledger(self):
        return self._book.entries

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        self._srv = s
        if self.tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls[0], self.tls[1])
            self._tls_ctx = ctx
        self._running = True
        t = threading.Thread(target=self._accept_loop, name="acq-%s" % self.name, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def drop(self):
        """Close every open connection (FIN), as a host that restarts or drops idle connections."""
        for c in list(self._conns):
            c.close()

    def stop(self):
        self._running = False
        for t in self._timers:
            t.cancel()
        if self._srv is not None:
            self._srv.close()
            self._srv = None
        for c in list(self._conns):
            c.close()
        self._conns = []
        for t in self._threads:
            t.join(timeout=2)
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ scripting
    def script(self, *actions, mti=None):
        """Queue behaviours for the next requests (only requests of `mti` if given)."""
        checked = [check_action(a) for a in actions]
        with self._lock:
            for a in checked:
                self._script.append((mti, a))

    def _next_action(self, req_mti):
        with self._lock:
            for i, (want, action) in enumerate(self._script):
                if want is None or want == req_mti or (isinstance(want, (tuple, list)) and req_mti in want):
                    del self._script[i]
                    return action
        return ("approve",)

    # ------------------------------------------------------------ ledger views
    def holdings(self):
        """{(tid, stan): minor units the host holds} per original sale/refund/advice it received:
        approved amount, 0 once reversed or voided or when declined; refunds negative."""
        return self._book.holdings()

    def held(self, tid, stan):
        return self.holdings().get((tid, stan), 0)

    def _origs(self, kind):
        with self._book.lock:
            return [r for r in self._book.origs if r.kind == kind]

    def authorized(self):
        """Approved sales (auth) still held: not reversed or voided. What the host will settle."""
        return [r.entry for r in self._origs("auth") if r.held()]

    def refunds(self):
        return [r.entry for r in self._origs("refund") if r.held()]

    def advices(self):
        """Store-and-forward advices booked, one per transaction (repeats collapsed)."""
        return [r.entry for r in self._origs("advice") if r.approved]

    def reversed_stans(self):
        """STANs of originals the host acknowledged a reversal for."""
        return {e["orig_stan"] for e in self.ledger if e["kind"] == "reversal" and e["rc"] == "00"}

    def voided_stans(self):
        """STANs of originals cancelled by a void that stands (approved, not itself reversed)."""
        return {r.void_of.stan for r in self._origs("void") if r.standing() and r.void_of is not None}

    # ------------------------------------------------------------ server
    def _accept_loop(self):
        while self._running:
            try:
                sock, addr = self._srv.accept()
            except socket.timeout:
                continue
            except (OSError, AttributeError):
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(sock, addr)
            self.connections += 1
            self._conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _recv_exact(self, c, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = c.sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, c):
        if self._tls_ctx is not None:
            try:
                c.sock.settimeout(5)
                c.sock = self._tls_ctx.wrap_socket(c.sock, server_side=True)
                c.sock.settimeout(None)
            except OSError:
                self.tls_failures += 1
                c.close()
                return
        try:
            while self._running and c.open:
                hdr = self._recv_exact(c, 2)
                if hdr is None:
                    break
                (n,) = _HDR.unpack(hdr)
                body = self._recv_exact(c, n) if 0 < n <= _MAX_FRAME else None
                if body is None:
                    self.requests.append({"t": None, "error": "bad frame length %d" % n})
                    break
                self._handle(c, body)
        finally:
            c.close()

    def _frame(self, resp, ksn=None, how=None):
        """The framed answer; MACed under `ksn` (the request's field 53) unless how="no_mac",
        with a wrong MAC when how="bad_mac"."""
        resp = dict(resp)
        if ksn and how != "no_mac":
            resp["128" if any(int(k) > 64 for k in resp if k.isdigit()) else "64"] = "00" * 8  # pyiso8583: hex
        data, _ = iso8583.encode(resp, SPEC)
        data = bytes(data)
        if ksn and how != "no_mac":
            data = _hsm.seal_response(self.hsm, ksn, data)
            if how == "bad_mac":
                data = data[:-1] + bytes([data[-1] ^ 0x01])
        return _HDR.pack(len(data)) + data

    def _log(self, req, action, pan_masked, n):
        self.requests.append({"t": req["t"], "stan": req.get("11"), "action": action, "pan_masked": pan_masked,
                              "len": n})

    def _handle(self, c, body):
        try:
            req, _ = iso8583.decode(bytes(body), SPEC)
        except iso8583.DecodeError as e:
            self.requests.append({"t": None, "error": "decode: %s" % e.msg, "len": len(body)})
            c.close()
            return
        mti = req["t"]
        if c.half_open:
            self._log(req, "ignored (half_open)", mask_pan(_pan_of(req)), len(body))
            return
        action = self._next_action(mti)
        name = action[0]
        arrived = None
        if name == "delay":
            # Received: a reversal or void naming it waits for the decision (see the module docstring).
            arrived = threading.Event()
            with self._book.lock:
                self._book.arriving[(req.get("41", ""), req.get("11", ""))] = arrived
            time.sleep(action[1] / 1000.0)
            action = _norm(action[2]) if len(action) > 2 else ("approve",)
            name = action[0]
        elif _kind(mti, req.get("3", "")) in ("reversal", "void"):
            with self._book.lock:
                deciding = self._book.arriving.get((req.get("41", ""), _orig_stan(req)))
            if deciding is not None:
                deciding.wait(60)
        sec = _hsm.inspect(self.hsm, bytes(body), req, self.pins.get) if self.security else None
        if sec and sec["card_fields"]:
            req = dict(req, **sec["card_fields"])  # an advice's card data, decrypted by the HSM
        ksn = sec["ksn"] if sec else None
        with self._book.lock:
            entry = self._book.decide(req, action, self.name, self.auth_code, sec)
            self._book.commit(entry)
            if arrived is not None:
                self._book.arriving.pop((req.get("41", ""), req.get("11", "")), None)
        if arrived is not None:
            arrived.set()
        self._log(req, name, entry["pan_masked"], len(body))
        if self.on_request:
            self.on_request(entry)
        resp = self._response(req, entry)
        if name == "no_rc":
            del resp["39"]
        if name in ("approve", "decline", "partial", "no_rc", "bad_mac", "no_mac"):
            c.send(self._frame(resp, ksn, name))
        elif name == "approve_close":
            # One-shot connections: answer, then hang up before the next request.
            c.send(self._frame(resp, ksn, name))
            time.sleep(0.05)
            c.close()
        elif name == "no_answer":
            pass
        elif name == "half_open":
            c.half_open = True
        elif name in ("close", "approve_drop"):
            c.close()
        elif name == "reset":
            c.close(reset=True)
        elif name == "reset_mid":
            frame = self._frame(resp)
            c.send(frame[: 2 + (len(frame) - 2) // 2])
            time.sleep(0.02)
            c.close(reset=True)
        elif name == "garbage":
            c.send(_HDR.pack(12) + b"\xffGARBAGE\x00\x01\x02\x03")
        elif name == "truncated":
            data, _ = iso8583.encode(dict(resp), SPEC)
            cut = bytes(data[: max(len(data) * 2 // 3, 5)])
            c.send(_HDR.pack(len(cut)) + cut)
        elif name == "duplicate":
            frame = self._frame(resp, ksn, name)
            c.send(frame)
            c.send(frame)
        elif name == "late":
            t = threading.Timer(action[1] / 1000.0, c.send, args=(self._frame(resp, ksn, name),))
            t.daemon = True
            self._timers.append(t)
            t.start()
        elif name in ("wrong_stan", "wrong_mti", "wrong_tid"):
            wrong = dict(resp)
            if name == "wrong_stan":
                wrong["11"] = "%06d" % ((int(req.get("11", "0") or 0) + 500000) % 1000000)
            elif name == "wrong_mti":
                wrong["t"] = _wrong_mti(resp["t"])
            else:
                wrong["41"] = "TERM9999" if req.get("41") != "TERM9999" else "TERM9998"
            c.send(self._frame(wrong, ksn))
            if len(action) < 2 or action[1]:
                c.send(self._frame(resp, ksn, name))
        elif name == "huge_len":
            c.send(_HDR.pack(0xFFFF) + self._frame(resp, ksn, name)[2:22])
        elif name == "zero_len":
            c.send(_HDR.pack(0))
        else:
            raise ValueError("unknown acquirer action %r" % (name,))

    def _response(self, req, entry):
        resp = {"t": response_mti(req["t"])}
        for k in _ECHOED:
            if k in req:
                resp[k] = req[k]
        if req["t"].startswith("08"):
            if "70" in req:
                resp["70"] = req["70"]
        else:
            if entry["rrn"]:
                resp["37"] = entry["rrn"]
            if entry["auth_code"]:
                resp["38"] = entry["auth_code"]
            if entry["rc"] == "10":
                resp["4"] = "%012d" % entry["amount"]
        resp["39"] = entry["rc"]
        if entry.get("arqc") == "ok" and entry["kind"] in ("auth", "refund") and req.get("55"):
            resp["55"] = self._book.issuer.field55(req, _pan_of(req), entry["rc"])
        return resp


# ---------------------------------------------------------------- CLI
def add_arguments(p):
    p.add_argument("--port", type=int, default=5000, help="TCP port on 127.0.0.1 (default 5000)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--name", default="primary", help="name of this host in its log lines (default primary)")
    p.add_argument("--decline", metavar="RC", default=None, help="answer every request with this response code")
    p.add_argument("--delay", type=int, default=0, metavar="MS", help="answer every request after MS milliseconds")
    p.add_argument("--ledger", default=None, metavar="FILE",
                   help="keep the ledger in this JSON-lines file (reloaded at start: duplicates, RRNs)")


def _print_entry(e):
    print("%s %s stan=%s kind=%s amount=%d %s pan=%s rc=%s rrn=%s%s pin=%s mac=%s card=%s" % (
        time.strftime("%H:%M:%S"), e["mti"], e["stan"], e["kind"], e["amount"], e["currency"],
        e["pan_masked"] or "-", e["rc"], e["rrn"] or "-", " repeat" if e["repeat"] else "",
        e.get("pin", "-"), e.get("mac", "-"), e.get("card", "-")), flush=True)


class _Forever(AcquirerSim):
    """CLI variant: the configured behaviour applies to every request."""

    def __init__(self, args):
        super().__init__(args.host, args.port, args.name, on_request=_print_entry,
                         ledger_path=getattr(args, "ledger", None))
        base = ("decline", args.decline) if args.decline else ("approve",)
        self._default = check_action(("delay", args.delay, base) if args.delay else base)

    def _next_action(self, req_mti):
        with self._lock:
            if self._script:
                return super()._next_action(req_mti)
        return self._default


def run(args):
    sim = _Forever(args).start()
    try:
        print("acquirer %s listening on %s:%d (Ctrl-C to stop)" % (sim.name, sim.host, sim.port), flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        print("authorized=%d reversed=%d advices=%d" % (len(sim.authorized()), len(sim.reversed_stans()), len(sim.advices())))
    return 0

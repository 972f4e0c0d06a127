"""Transaction engine: sale, refund, void, reversal, store-and-forward.

Never lose, never double-charge:
- the intent (STAN, masked PAN, amount) is journaled before a request leaves,
  so a power cut mid-flight is found at boot (`recover`) and reversed;
- a request that reached the host without a usable answer (timeout, lost
  connection, late or garbled response) is marked for reversal; the worker
  (payterm.txn.worker) sends 0400 then 0401 repeats until a 0410 with rc 00
  (or 25, original not found) arrives, the attempt count journaled before each send;
- a request that provably never left (connect failure, breaker open) is
  approved offline when under the floor limit and SAF limits, or declined;
- offline approvals go up as advices (worker) in order, one at a time, exactly once.
Only masked PANs and the non-card fields of the request reach the journal.
"""
import asyncio
import time

from payterm import codes
from payterm.errors import Fault
from payterm.link import messages
from payterm.txn import currency as _cur
from payterm.txn.result import Result
from payterm.txn.saf import Saf
from payterm.txn.stan import Stan

DEFAULTS = {
    "terminal_id": "TERM0001",        # field 41, ans 8
    "merchant_id": "MERCHANT0000001",  # field 42, ans 15
    "currency": 978,                  # ISO 4217 numeric
    "floor_limit": 5000,              # minor units; 0 disables offline approval
    "saf_max_count": 50,
    "saf_max_total": 100000,          # minor units, sum of pending advices
    "saf_max_tries": 20,              # then the advice is "failed" (technician settles)
    "max_wait_ms": 30000,             # customer-facing wait for one authorization
    "worker_wait_ms": 10000,          # budget of one reversal/advice attempt (payterm.txn.worker)
    "retry_base_ms": 2000,            # first pause before an item's next attempt (equal jitter)
    "retry_cap_ms": 120000,           # longest pause between an item's attempts
    "worker_scan_ms": 30000,          # journal rescan for new items when nothing else wakes the worker
}

# Non-card request fields kept in the journal to build reversals, voids and advices.
_KEEP = ("t", "3", "4", "7", "11", "12", "13", "22", "41", "42", "49")
# Link faults that mean the request may have reached the host, when not flagged.
_AMBIGUOUS = ("HST-01", "HST-02", "HST-03", "NET-05")
_APPROVED = "APPROVED"


def _sent(f):
    return getattr(f, "sent", f.code in _AMBIGUOUS)


class Engine:
    def __init__(self, supervisor, journal, state, saf, cfg, diag, clock, ticks, status, sleep_ms=None,
                 close_waits=True):
        """close_waits=False: the caller owns the whole customer interaction (card read
        before, receipt after) and ends the wait record itself with diag.txn_done(ref)."""
        self.sup = supervisor
        self.journal = journal
        self.state = state
        self.cfg = dict(DEFAULTS)
        if cfg:
            for k in DEFAULTS:
                v = cfg.get(k) if hasattr(cfg, "get") else getattr(cfg, k, None)
                if v is not None:
                    self.cfg[k] = v
        c = self.cfg
        self.saf = saf if saf is not None else Saf(journal)
        self.saf.floor_limit = c["floor_limit"]
        self.saf.max_count = c["saf_max_count"]
        self.saf.max_total = c["saf_max_total"]
        self.saf.max_tries = c["saf_max_tries"]
        self.diag = diag
        self._close_waits = close_waits
        self.clock = clock
        self.ticks = ticks
        self.status = status or (lambda text: None)
        self._sleep_ms = sleep_ms or asyncio.sleep_ms
        self.stan = Stan(state)
        if hasattr(supervisor, "set_echo_fields"):
            supervisor.set_echo_fields(self.echo_fields)

    # ------------------------------------------------------------ helpers
    def echo_fields(self):
        """Fields numbering an 0800 from the terminal's own STAN sequence."""
        return {"11": self.stan.next(), "41": self.cfg["terminal_id"]}

    def _ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    async def _send(self, fields, deadline_ms):
        """One customer exchange: the supervisor puts it before any background work."""
        return await self.sup.request(fields, deadline_ms)

    def _result(self, t, approved, code=None, offline=False):
        if approved:
            text = _APPROVED + (" OFFLINE" if offline else "")
        else:
            text = codes.lookup(code)[codes.DISPLAY].strip()
        kind = t.get("kind", "")
        if kind == "saf":
            kind = "sale"  # an offline sale is still a sale to the merchant; Result.offline tells
        return Result(approved, code, t.get("rc"), t.get("auth"), t.get("rrn"), t.get("stan"), t.get("ref"),
                      offline, text, t.get("amt", 0), t.get("cur", 0), kind, t.get("pan", ""))

    def _done(self, ref):
        if self._close_waits:
            self.diag.txn_done(ref)

    def _fail(self, code, stage, ctx):
        self.diag.fault(code, stage, ctx)

    # ------------------------------------------------------------ customer flows
    async def sale(self, card, amount, currency=None):
        return await self._authorize("sale", card, amount, currency)

    async def refund(self, card, amount, currency=None):
        return await self._authorize("refund", card, amount, currency)

    async def _authorize(self, kind, card, amount, currency):
        try:
            cur = int(currency or self.cfg["currency"])
            f49 = _cur.field49(cur)
            if not isinstance(amount, int) or amount <= 0 or amount > 999999999999:
                raise Fault("OPR-02", "amount %r" % (amount,), "txn")
            stan = self.stan.next()
            build = messages.sale if kind == "sale" else messages.refund
            fields = build(stan, self.cfg["terminal_id"], amount, f49, card.auth_fields(),
                           self.cfg["merchant_id"], self.clock())
        except Fault as f:
            card.wipe()
            self._fail(f.code, "txn", kind)
            return Result(False, f.code, text=codes.lookup(f.code)[codes.DISPLAY].strip(), kind=kind,
                          amount=amount if isinstance(amount, int) else 0, masked=card.masked)
        fields["22"] = card.entry_mode
        ref = stan
        try:
            t = self.journal.create(ref, {
                "kind": kind, "st": "pending", "stan": stan, "amt": amount, "cur": cur, "pan": card.masked,
                "ts": self.clock(), "req": {k: fields[k] for k in _KEEP if k in fields}})
        except Fault as f:
            card.wipe()
            self._fail(f.code, "txn", kind)
            return Result(False, f.code, stan=stan, ref=ref, text=codes.lookup(f.code)[codes.DISPLAY].strip(),
                          kind=kind, amount=amount, currency=cur, masked=card.masked)
        try:
            return await self._exchange(t, fields, offline_ok=(kind == "sale"))
        finally:
            card.wipe()
            for k in ("2", "35", "55"):
                fields.pop(k, None)

    async def _exchange(self, t, fields, offline_ok):
        ref = t["ref"]
        self.status("PROCESSING")
        t0 = self.ticks()
        try:
            resp = await self._send(fields, self.cfg["max_wait_ms"])
        except Fault as f:
            self.diag.wait(ref, "host", self._ticks_diff(self.ticks(), t0))
            self._fail(f.code, f.stage or "host", "%s %s" % (t.get("kind"), ref))
            if _sent(f):
                self.journal.update(ref, {"st": "reversing", "code": f.code})
                self._done(ref)
                return self._result(t, False, f.code)
            return self._offline(t, f, offline_ok)
        except Exception as e:  # a bug past the send: the host may have it, so reverse
            self.journal.update(ref, {"st": "reversing", "code": "SYS-09"})
            self._fail("SYS-09", "txn", repr(e))
            self._done(ref)
            return self._result(t, False, "SYS-09")
        self.diag.wait(ref, "host", self._ticks_diff(self.ticks(), t0))
        rc = resp.get("39")
        code = codes.for_rc(rc)
        upd = {"rc": rc, "rrn": resp.get("37"), "auth": resp.get("38")}
        if code is None:
            upd["st"] = "approved"
        else:
            upd["st"] = "declined"
            upd["code"] = code
            self._fail(code, "host", "%s %s" % (t.get("kind"), ref))
        t = self.journal.update(ref, upd)
        if t.get("kind") == "void" and code is None:
            self.journal.update(t["orig"], {"voided": ref})
        self._done(ref)
        return self._result(t, code is None, code)

    def _offline(self, t, f, offline_ok):
        """The request never left: approve offline (SAF) or decline with the reason."""
        ref = t["ref"]
        code = f.code
        if offline_ok and self.saf.floor_limit > 0:
            try:
                self.saf.check(t["amt"])
                t = self.journal.update(ref, {"kind": "saf", "st": "pending", "tries": 0,
                                              "auth": "Y1" + t["stan"][-4:], "code": None})
                self._done(ref)
                return self._result(t, True, None, offline=True)
            except Fault as g:
                self._fail(g.code, "txn", ref)
                code = g.code
        self.journal.update(ref, {"st": "failed", "code": code})
        self._done(ref)
        return self._result(t, False, code)

    async def void(self, ref):
        o = self.journal.get(ref)
        if (o is None or o.get("kind") not in ("sale", "refund", "saf") or o.get("voided")
                or o.get("st") not in ("approved", "pending", "sent")
                or (o.get("kind") != "saf" and o.get("st") != "approved")):
            self._fail("OPR-04", "txn", "void %s" % ref)
            return Result(False, "OPR-04", ref=ref, kind="void", text=codes.lookup("OPR-04")[codes.DISPLAY].strip())
        if o.get("kind") == "saf" and o.get("st") == "pending":
            # Never uploaded: dropping it from the queue is the whole void.
            o = self.journal.update(ref, {"st": "voided", "voided": ref})
            r = self._result(o, True, None, offline=True)
            r.kind = "void"
            return r
        try:
            stan = self.stan.next()
            fields = messages.void(stan, o["req"], o.get("rrn"), self.clock())
            t = self.journal.create(stan, {
                "kind": "void", "st": "pending", "stan": stan, "amt": o.get("amt", 0), "cur": o.get("cur", 0),
                "pan": o.get("pan", ""), "orig": ref, "ts": self.clock(),
                "req": {k: fields[k] for k in _KEEP if k in fields}})
        except Fault as f:
            self._fail(f.code, "txn", "void %s" % ref)
            return Result(False, f.code, ref=ref, kind="void", text=codes.lookup(f.code)[codes.DISPLAY].strip())
        return await self._exchange(t, fields, offline_ok=False)

    def lookup(self, ref):
        """Journal record for `ref` (technician/refund status look-up); OPR-04 if unknown."""
        t = self.journal.get(ref)
        if t is None and ref.isdigit() and len(ref) < 6:
            t = self.journal.get("%06d" % int(ref))
        if t is None:
            raise Fault("OPR-04", "no transaction %s" % ref, "txn")
        return t

    @staticmethod
    def status_of(t):
        """Status a person reads: refunds pending/approved/declined/reversed, SAF as queued."""
        st = t.get("st")
        if st == "reversing":
            return "pending" if t.get("kind") == "refund" else "reversal pending"
        if t.get("voided") and st != "voided":
            return "voided"
        return st

    def technician_lines(self, n=5):
        """Queue state for the tech menu / console: SAF by status, reversals, the newest transactions."""
        s = self.saf.summary()
        out = ["SAF pending %d sent %d declined %d failed %d" % (s["pending"], s["sent"], s["declined"], s["failed"]),
               "REVERSALS pending %d" % len(self.reversals())]
        for t in self.journal.records()[-n:]:
            amt = t.get("amt", 0)
            try:
                amt = _cur.format_amount(amt, t.get("cur", self.cfg["currency"]))
            except Fault:
                amt = str(amt)
            out.append("%s %s %s %s %s" % (t["ref"], t.get("kind", "").upper(), self.status_of(t), amt,
                                           t.get("code") or ""))
        return [l.rstrip() for l in out]

    # ------------------------------------------------------------ boot
    async def recover(self):
        """Boot: anything journaled as in flight may have reached the host, so it is reversed."""
        n = 0
        for t in self.journal.records(st="pending"):
            if t.get("kind") in ("sale", "refund", "void"):
                self.journal.update(t["ref"], {"st": "reversing", "code": "HST-05"})
                self._fail("HST-05", "txn", "in flight at power loss %s" % t["ref"])
                n += 1
        return n

    def reversals(self):
        return self.journal.records(st="reversing")

    # ------------------------------------------------------------ minimal claim/mark for the worker
    # (stand-ins until the customer-flow engine with its own claim/mark/reversals lands)
    def claim(self, ref):
        """Async context manager: one holder per transaction ref."""
        return _Claim(self, ref)

    def mark(self, ref, fields):
        """Journal update that never raises: on a storage fault the update is kept in RAM."""
        try:
            return self.journal.update(ref, fields)
        except Fault as f:
            self._fail(f.code, "txn", "mark %s kept in RAM" % ref)
            t = self.journal.txns.get(ref)
            if t is not None:
                t.update(fields)
            return t


class _Claim:
    def __init__(self, engine, ref):
        self.e = engine
        self.ref = ref

    async def __aenter__(self):
        locks = getattr(self.e, "_claims", None)
        if locks is None:
            locks = self.e._claims = {}
        lk = locks.get(self.ref)
        if lk is None:
            lk = locks[self.ref] = asyncio.Lock()
        await lk.acquire()
        self.lk = lk
        return self

    async def __aexit__(self, *exc):
        self.lk.release()
        if not self.lk.locked():
            self.e._claims.pop(self.ref, None)
        return False

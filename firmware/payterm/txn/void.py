"""Voids: cancel a sale or refund at most once, atomically with the original's mark.

The flows (`Voids.void`, run by `Engine.void` under its last-line guard):
- an online sale or refund: a 0200 with processing code 02 naming it in
  field 90 (a customer exchange like any other: `Engine._exchange`);
- an offline sale no upload of which can have left (`out` = 0; pending or
  failed): dropped from the queue, nothing sent;
- an offline sale whose advice was attempted, is in flight or was uploaded:
  a reversal of its advice (0400 naming the 0220, field 11 the advice's
  STAN). A void record (`adv`: 1, `req` the 0220) and the sale's status
  `voiding` (off the upload queue) are journaled before it leaves. 00 (the
  host had booked it) and 25 (it never got it) both cancel it: the void is
  approved, the sale `reversed` with `voided` = the void's ref, never
  uploaded afterwards. Not sent: the void is declined, the sale stands.
  No usable answer: the void record goes to reversing (0401 repeats by the
  worker; `Engine.mark` cancels the sale once they are acknowledged).
"Voided" is derived from the void records naming a transaction
(`Journal.is_voided`), so a cut between a void's outcome and the mark cannot
make it voidable again; `repair` (boot) writes the missing mark.
Every flow holds `engine.claim(ref)` on the transactions it changes, after
`sup.preempt()` has cut short a background exchange that may hold it.
"""
from payterm.errors import Fault
from payterm.link import messages
from payterm.txn import journal as _jr
from payterm.txn.result import Result

# Link faults that mean the request may have reached the host, when not flagged.
_AMBIGUOUS = ("HST-01", "HST-02", "HST-03", "NET-05")


def _sent(f):
    return getattr(f, "sent", f.code in _AMBIGUOUS)


def _rc(rc):
    if isinstance(rc, (bytes, bytearray)):
        rc = rc.decode()
    return rc


class Voids:
    """The void flows of one Engine (its journal, numbering, claims, marks, exchange and results)."""

    def __init__(self, engine):
        self.e = engine

    def _refused(self, ref, code, why):
        self.e._fail(code, "txn", "void %s: %s" % (ref, why))
        r = Result(False, code, ref=ref, kind="void", text=self.e._text(code))
        r.orig = ref
        return r

    def _voidable(self, o):
        """(code, why) when transaction `o` cannot be voided now, else (None, None)."""
        if o is None or o.get("kind") not in ("sale", "refund", "saf"):
            return "OPR-04", "no sale or refund"
        ref = o["ref"]
        if self.e.journal.is_voided(o):
            return "OPR-06", "already voided"
        for v in self.e.journal.voids_of(ref):
            if v.get("st") == "pending" or (v.get("st") == "reversing" and v.get("adv")):
                return "OPR-06", "void %s in progress" % v["ref"]
            if v.get("st") == "reversing":
                return "HST-05", "void %s is being reversed" % v["ref"]
        st = o.get("st")
        if st == "voiding":
            return "OPR-06", "void in progress"
        if o["kind"] == "saf":
            if st not in ("pending", "sent", "failed"):
                return "OPR-04", "offline sale %s" % st
        elif st != "approved":
            return "OPR-04", "%s %s" % (o["kind"], st)
        return None, None

    async def void(self, ref):
        """Void transaction `ref`: its record, then the flow its kind and state call for."""
        if ref[:1] == "~" or self.e.journal.get(ref) is None:
            return self._refused(ref, "OPR-04", "no transaction")
        # The worker may hold this ref's claim for an upload or reversal in flight: cut that
        # exchange short first (HST-08, repeated later) so the customer never waits behind it.
        await self.e.sup.preempt()
        async with self.e.claim(ref):
            o = self.e.journal.get(ref)  # re-read: a worker may have changed it while we waited
            code, why = self._voidable(o)
            if code:
                return self._refused(ref, code, why)
            if o["kind"] == "saf":
                if o.get("st") in ("pending", "failed") and not o.get("out"):
                    return self._drop_offline(o)  # no upload ever left (or could have)
                return await self._void_advice(o)
            return await self._void_online(o)

    def _drop_offline(self, o):
        """Never uploaded (no attempt, none in flight: we hold its claim): dropping it is the whole void."""
        ref = o["ref"]
        try:
            o = self.e.journal.update(ref, {"st": "voided", "voided": ref})
        except Exception as x:
            return self._refused(ref, x.code if isinstance(x, Fault) else "SYS-09", "drop: %s" % x)
        self.e.forget_card(ref)
        r = self.e._result(o, True, None, offline=True)
        r.kind = "void"
        return r

    async def _void_online(self, o):
        ref = o["ref"]
        txn = sec = None
        try:
            try:
                stan, vref = self.e._numbers()
                fields = messages.void(stan, o["req"], o.get("rrn"), self.e.clock())
                txn, sec = self.e.seal(fields)
                t = self.e.journal.create(vref, {
                    "kind": "void", "st": "pending", "stan": stan, "amt": o.get("amt", 0), "cur": o.get("cur", 0),
                    "pan": o.get("pan", ""), "orig": ref, "ts": self.e.clock(), "req": self.e._kept(fields)})
            except Exception as f:
                return self._refused(ref, f.code if isinstance(f, Fault) else "SYS-09", "void: %s" % f)
            async with self.e.claim(vref):
                return await self.e._exchange(t, fields, offline_ok=False, sec=sec)
        finally:
            self.e.unseal(txn, sec)

    async def _void_advice(self, o):
        """Cancel an offline sale the host may hold: a reversal of its advice (0400 naming the 0220)."""
        fields = {}
        try:
            txn, sec = self.e.seal(fields)  # before anything is journaled: KEY-01/03/04 refuse the void
        except Exception as f:
            return self._refused(o["ref"], f.code if isinstance(f, Fault) else "SYS-09", "void: %s" % f)
        try:
            return await self._void_advice_sealed(o, fields, sec)
        finally:
            self.e.unseal(txn, sec)

    async def _void_advice_sealed(self, o, sealed, sec):
        sref = o["ref"]
        v = None
        try:
            _, vref = self.e._numbers(stan=False)
            req = dict(o["req"])
            req["t"] = messages.MTI_ADVICE
            v = self.e.journal.create(vref, {
                "kind": "void", "adv": 1, "st": "pending", "stan": o.get("stan"), "amt": o.get("amt", 0),
                "cur": o.get("cur", 0), "pan": o.get("pan", ""), "orig": sref, "ost": o.get("st"),
                "ts": self.e.clock(), "req": req})
            # Off the upload queue before the reversal can leave.
            self.e.journal.update(sref, {"st": "voiding"})
        except Exception as f:
            code = f.code if isinstance(f, Fault) else "SYS-09"
            if v is not None:
                self.e.mark(v["ref"], {"st": "failed", "code": code})  # nothing was sent
            return self._refused(sref, code, "void: %s" % f)
        fields = messages.reversal(req)
        fields.update(sealed)  # field 53 of the transaction the MAC keys belong to
        async with self.e.claim(vref):
            return await self._cancel_advice(v, o, fields, sec)

    async def _cancel_advice(self, v, o, fields, sec=None):
        vref = v["ref"]
        self.e._out.add(vref)  # as in _exchange: left there if anything escapes
        r = await self._cancel_settle(v, o, fields, sec)
        self.e._out.discard(vref)
        return r

    async def _cancel_settle(self, v, o, fields, sec=None):
        vref = v["ref"]
        sref = o["ref"]
        self.e._status("PROCESSING")
        t0 = self.e.ticks()
        try:
            resp = await self.e._send(fields, self.e.cfg["max_wait_ms"], sec)
        except Fault as f:
            self.e._waited(vref, t0)
            self.e._fail(f.code, f.stage or "host", "void %s of offline %s" % (vref, sref))
            if not _sent(f):
                # Never left: the sale stands and its advice is uploaded later.
                self.e._out.discard(vref)
                self.e.mark(sref, {"st": v.get("ost") or "pending"})
                v = self.e.mark(vref, {"st": "failed", "code": f.code}) or v
                self.e._done(vref)
                return self.e._result(v, False, f.code)
            return self._cancel_unsure(v)
        except Exception as x:
            self.e._fail("SYS-09", "txn", repr(x))
            return self._cancel_unsure(v)
        self.e._waited(vref, t0)
        try:
            code, ambiguous, why = self.e._judge(fields, resp, (messages.RC_APPROVED[0], messages.RC_NO_ORIGINAL))
            rc = _rc(resp.get("39"))
            if ambiguous:
                self.e._fail(code, "host", "void %s: %s" % (vref, why))
                return self._cancel_unsure(v)
            if code is None:
                # 00: the host had booked the advice and cancelled it; 25: it never got it.
                # Either way it is cancelled and never uploaded afterwards.
                v = self.e.journal.update(vref, {"st": "approved", "rc": rc})
                self.e.mark(sref, {"st": "reversed", "voided": vref, "rv_rc": rc})
                self.e.forget_card(sref)
                self.e._done(vref)
                return self.e._result(v, True, None)
            # The host refused to cancel: the sale stands, its advice goes on as before.
            self.e._fail(code, "host", "void %s" % vref)
            self.e.mark(sref, {"st": v.get("ost") or "pending"})
            v = self.e.mark(vref, {"st": "declined", "rc": rc, "code": code}) or v
            self.e._done(vref)
            return self.e._result(v, False, code)
        except Exception as x:
            self.e._fail(x.code if isinstance(x, Fault) else "SYS-09", "txn", "void %s: %s" % (vref, x))
            return self._cancel_unsure(self.e.journal.get(vref) or v)

    def _cancel_unsure(self, v):
        """The reversal of the advice may have reached the host: it is repeated (0401)
        in the background until acknowledged; the advice is never uploaded again."""
        vref = v["ref"]
        v = self.e.mark(vref, {"st": "reversing", "code": "HST-05", "rv": max(1, v.get("rv", 0)),
                               "rv_out": max(1, v.get("rv_out", 0))}) or v
        self.e._done(vref)
        return self.e._result(v, False, "HST-05")

    def repair(self):
        """Boot: a void whose outcome and its original's mark were cut apart is made whole (the void record decides)."""
        j = self.e.journal
        for v in j.records(kind="void"):
            o = j.get(v.get("orig"))
            if o is None:
                continue
            vref, vst, ost = v["ref"], v.get("st"), o.get("st")
            want = None
            if v.get("adv"):
                if _jr.void_done(v):
                    if ost != "reversed" or o.get("voided") != vref:
                        want = {"st": "reversed", "voided": vref}
                elif _jr.void_open(v):
                    if ost != "voiding":
                        want = {"st": "voiding"}
                elif ost == "voiding" and not any(_jr.void_open(w) or _jr.void_done(w) for w in j.voids_of(o["ref"])):
                    want = {"st": v.get("ost") or "pending"}
            elif vst == "approved":
                if o.get("voided") != vref:
                    want = {"voided": vref}
            elif o.get("voided") == vref:
                want = {"voided": None}
            if want:
                self.e.mark(o["ref"], want)
                self.e._fail("SYS-02", "txn", "void %s: %s repaired %r" % (vref, o["ref"], want))

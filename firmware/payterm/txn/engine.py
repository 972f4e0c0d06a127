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

Outcome rules for a customer request (`_judge`): only a clean, matching
answer settles it. No field 39, a response code the catalog does not know, a
field 4 that differs from the request, or a wrong MTI/STAN/TID (the Link
already drops those) is ambiguous: the transaction is reversed and the
customer sees a decline (HST-02 / HST-03). A partial approval (39 = 10) is
not supported: it is reversed and declined as HST-09. Once the host has
answered, any local failure (storage full, corrupt, a bug) puts the
transaction into reversing, in RAM if flash refuses (`mark`), so the
reversal goes out without a reboot; no exception leaves sale/refund/void.

Voids (payterm.txn.void, entered by `void(ref)`): a sale can be voided once,
derived from the void records naming it (`Journal.is_voided`); an offline
sale never attempted is dropped from the queue, one the host may hold is
cancelled with a reversal of its advice; `recover` repairs a cut between a
void's outcome and its original's mark. Every flow holds `claim(ref)` on the
transactions it changes, so a background worker cannot act on them at the
same time.

Keys (docs/keys.md): every 0200/0220/0400 gets a fresh DUKPT counter (`seal`):
its KSN in field 53, its MAC added by the link, the host's answer MAC-checked
(a bad or missing one is an unknown outcome: reversed). A PIN goes only as the
format 4 block of that counter, and a PIN sale is never approved offline. An
offline approval stores its card data encrypted under that counter's data key
(payterm.txn.cardstore) for its advice, erased once the advice is settled.

Numbering: STANs and refs are separate 6-digit sequences saved before use,
seeded at boot above the newest in the journal and the state (plus a gap
when the state was lost), skipping any still in the journal after the wrap.
"""
import asyncio
import time

from payterm import codes
from payterm.errors import Fault
from payterm.link import iso8583, messages
from payterm.txn import cardstore as _cards
from payterm.txn import currency as _cur
from payterm.txn import journal as _jr
from payterm.txn.result import Result
from payterm.txn.saf import Saf
from payterm.txn.stan import Stan
from payterm.txn.void import Voids

from payterm.config import DEFAULTS  # the one table of terminal parameters

# Non-card request fields kept in the journal to build reversals, voids and advices.
_KEEP = ("t", "3", "4", "7", "11", "12", "13", "22", "41", "42", "49")
# Link faults that mean the request may have reached the host, when not flagged.
_AMBIGUOUS = ("HST-01", "HST-02", "HST-03", "NET-05")
_APPROVED = "APPROVED"


def _sent(f):
    return getattr(f, "sent", f.code in _AMBIGUOUS)


# Numbers skipped at boot when the state copy was lost: echo STANs have no
# journal record, so the newest ones may be known nowhere else.
_LOST_GAP = 1000


def _rc(rc):
    if isinstance(rc, (bytes, bytearray)):
        rc = rc.decode()
    return rc


def _amount(f4):
    try:
        return int(f4)
    except (TypeError, ValueError):
        return f4


def _num(v):
    if isinstance(v, str) and len(v) == 6 and v.isdigit():
        return int(v)
    return 0


class _Claim:
    """Async context manager holding one transaction's claim (see Engine.claim)."""

    def __init__(self, table, ref):
        self._table = table
        self._ref = ref
        self._ent = None

    async def __aenter__(self):
        ent = self._table.get(self._ref)
        if ent is None:
            ent = self._table[self._ref] = [asyncio.Lock(), 0]
        ent[1] += 1
        try:
            await ent[0].acquire()
        except BaseException:
            self._leave(ent)
            raise
        self._ent = ent
        return self

    async def __aexit__(self, *exc):
        ent = self._ent
        self._ent = None
        if ent is not None:
            ent[0].release()
            self._leave(ent)
        return False

    def _leave(self, ent):
        ent[1] -= 1
        if ent[1] <= 0 and self._table.get(self._ref) is ent:
            del self._table[self._ref]


class Engine:
    def __init__(self, supervisor, journal, state, saf, cfg, diag, clock, ticks, status, sleep_ms=None,
                 close_waits=True, keys=None, cards=None):
        """close_waits=False: the caller owns the whole customer interaction (card read
        before, receipt after) and ends the wait record itself with diag.txn_done(ref).

        keys: the terminal's DUKPT keys (payterm.crypto.dukpt.Dukpt): every 0200, 0220
        and 0400 then carries its KSN (field 53) and a MAC, the host's answers must
        carry a valid MAC, a PIN goes in field 52, and an offline sale keeps its card
        data encrypted in `cards` (payterm.txn.cardstore.CardStore) for its advice.
        Without keys nothing is sealed (tests of the money rules only: the
        application always passes them)."""
        self.sup = supervisor
        self.keys = keys
        self.cards = cards
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
        self.refs = Stan(state, "ref")  # journal refs: a sequence of their own (voids of advices send no STAN)
        self._claims = {}
        self._unsaved = {}  # ref -> keys whose journal write failed (kept in RAM, written by the next mark)
        self._out = set()  # refs of customer requests that may be at the host right now
        self._voids = Voids(self)
        # EMV deferred authorization: ref -> (code declining it or None, the AID's floor limit, field 55)
        # of the customer request in flight, for _offline (payterm.card.emv sets them on the Card).
        self._emv = {}
        self._seed()

    # ------------------------------------------------------------ helpers
    def echo_fields(self):
        """Fields numbering an 0800 from the terminal's own STAN sequence."""
        return {"11": self.stan.next(self._stans_in_use()), "41": self.cfg["terminal_id"]}

    def _kept(self, fields):
        """The non-card fields of a request that the journal keeps (for reversals, voids, advices)."""
        return {k: fields[k] for k in _KEEP if k in fields}

    def _ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    async def _send(self, fields, deadline_ms, sec=None):
        """One customer exchange: the supervisor puts it before any background work."""
        if sec is None:
            return await self.sup.request(fields, deadline_ms)
        return await self.sup.request(fields, deadline_ms, sec=sec)

    def seal(self, fields):
        """(txn, sec) for a request: a fresh DUKPT transaction, its KSN put in field 53,
        and the message keys the link MACs with; (None, None) without keys.
        KEY-01/03/04 raise before anything is sent."""
        if self.keys is None:
            return None, None
        txn = self.keys.begin()
        try:
            fields[messages.F_KSN] = txn.field53()
            from payterm.crypto.msgmac import Seal

            return txn, Seal(txn)
        except BaseException:
            txn.wipe()
            raise

    @staticmethod
    def unseal(txn, sec):
        if sec is not None:
            sec.wipe()
        if txn is not None:
            txn.wipe()

    def forget_card(self, ref):
        """Erase the stored card data of offline sale `ref` (its advice is settled or cancelled)."""
        if self.cards is None:
            return
        try:
            self.cards.erase(ref)
        except Exception as e:
            # Left for the boot sweep; the record is ciphertext under a key the terminal lost.
            self._fail(e.code if isinstance(e, Fault) else "SYS-09", "txn", "erase card data %s: %s" % (ref, e))

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
            try:
                self.diag.txn_done(ref)
            except Exception:
                pass

    def _fail(self, code, stage, ctx):
        try:
            self.diag.fault(code, stage, ctx)
        except Exception:
            pass  # reporting a failure must never become one

    # ------------------------------------------------------------ customer flows
    async def sale(self, card, amount, currency=None, pin=None):
        """pin: the cardholder's PIN as a bytearray of ASCII digits (payterm.ui.pinentry),
        zeroed here whatever happens; it goes to the host only as a format 4 PIN block."""
        return await self._guarded("sale", self._authorize("sale", card, amount, currency, pin))

    async def refund(self, card, amount, currency=None):
        return await self._guarded("refund", self._authorize("refund", card, amount, currency))

    async def _guarded(self, kind, flow):
        """Last line of defence: a bug in a flow becomes a decline, never an exception."""
        try:
            return await flow
        except Exception as e:
            self._fail("SYS-09", "txn", "%s: %r" % (kind, e))
            for ref in list(self._out):
                # It may have reached the host: the reversal goes out without a reboot.
                self.mark(ref, {"st": "reversing", "code": "SYS-09"})
            self._out.clear()
            return Result(False, "SYS-09", kind=kind, text=self._text("SYS-09"))

    def _text(self, code):
        return codes.lookup(code)[codes.DISPLAY].strip()

    def _numbers(self, stan=True):
        """A fresh (STAN, ref) pair, both saved to the state before either is used.

        Numbers still held by a journal record are skipped (after the wrap).
        stan=False: a ref only (a void that cancels an advice sends no new STAN).
        """
        try:
            r = self.refs.propose(self.journal.held_refs())
            upd = {self.refs.key: r}
            s = None
            if stan:
                n = self.stan.propose(self._stans_in_use())
                upd[self.stan.key] = n
                s = "%06d" % n
        except ValueError as e:
            raise Fault("SYS-09", "numbering: %s" % e, "txn")
        self.state.update(upd)
        return s, "%06d" % r

    def _stans_in_use(self):
        return self.journal.held_stans()

    async def _authorize(self, kind, card, amount, currency, pin=None):
        stan = ref = cur = None
        fields = None
        txn = sec = None
        try:
            try:
                cur = int(currency or self.cfg["currency"])
                f49 = _cur.field49(cur)
                if not isinstance(amount, int) or amount <= 0 or amount > 999999999999:
                    raise Fault("OPR-02", "amount %r" % (amount,), "txn")
                stan, ref = self._numbers()
                build = messages.sale if kind == "sale" else messages.refund
                fields = build(stan, self.cfg["terminal_id"], amount, f49, card.auth_fields(),
                               self.cfg["merchant_id"], self.clock())
                fields["22"] = card.entry_mode
                if pin is not None and self.keys is None:
                    raise Fault("KEY-01", "a PIN was entered but there is no key to encipher it", "key")
                txn, sec = self.seal(fields)
                if pin is not None and txn is not None:
                    from payterm.crypto import aes, pinblock

                    k = txn.pin_key()
                    try:
                        # PIN-01 for a bad length; the digits are zeroed in there either way.
                        fields[messages.F_PIN] = pinblock.encipher(k, pin, fields["2"])
                    finally:
                        aes.wipe(k)
                rec = {"kind": kind, "st": "pending", "stan": stan, "amt": amount, "cur": cur, "pan": card.masked,
                       "ts": self.clock(), "req": self._kept(fields)}
                if pin is not None:
                    rec["pin"] = 1  # the sale was PIN-verified online (never the PIN itself)
                t = self.journal.create(ref, rec)
            except Exception as f:
                # Nothing was sent: a clean decline.
                code = f.code if isinstance(f, Fault) else "SYS-09"
                self._fail(code, "txn", "%s %s" % (kind, f if isinstance(f, Fault) else repr(f)))
                return Result(False, code, stan=stan, ref=ref, text=self._text(code), kind=kind,
                              amount=amount if isinstance(amount, int) else 0, currency=(cur or 0) if ref else 0,
                              masked=card.masked).card_info(card)
            self._emv[ref] = (getattr(card, "deferral", None), getattr(card, "floor_limit", None), fields.get("55"))
            async with self.claim(ref):
                r = await self._exchange(t, fields, offline_ok=(kind == "sale"), sec=sec, txn=txn)
            return r.card_info(card)  # the receipt asks for a signature when the kernel said so
        finally:
            if ref is not None:
                self._emv.pop(ref, None)
            if pin is not None:
                for i in range(len(pin)):
                    pin[i] = 0
            card.wipe()
            self.unseal(txn, sec)
            if fields is not None:
                for k in ("2", "35", "55", messages.F_PIN):
                    fields.pop(k, None)

    async def _exchange(self, t, fields, offline_ok, sec=None, txn=None):
        """Send one customer request and settle its outcome; never raises.

        While it is in `_out` the request may be at the host: if anything escapes
        the settling below, `_guarded` puts it into reversing.
        """
        ref = t["ref"]
        self._out.add(ref)
        r = await self._exchange_settle(t, fields, offline_ok, sec, txn)
        self._out.discard(ref)
        return r

    async def _exchange_settle(self, t, fields, offline_ok, sec=None, txn=None):
        ref = t["ref"]
        self._status("PROCESSING")
        t0 = self.ticks()
        try:
            resp = await self._send(fields, self.cfg["max_wait_ms"], sec)
        except Fault as f:
            self._waited(ref, t0)
            self._fail(f.code, f.stage or "host", "%s %s" % (t.get("kind"), ref))
            if _sent(f):
                return self._unsure(t, f.code)
            self._out.discard(ref)
            return self._offline(t, f, offline_ok, fields, txn)
        except Exception as e:  # a bug past the send: the host may have it, so reverse
            self._fail("SYS-09", "txn", repr(e))
            return self._unsure(t, "SYS-09")
        self._waited(ref, t0)
        try:
            return self._answered(t, fields, resp)
        except Exception as e:
            # The host answered but the outcome could not be kept (storage full or
            # corrupt, a bug): it may hold an approval, so the transaction is reversed.
            code = e.code if isinstance(e, Fault) else "SYS-09"
            self._fail(code, "txn", "after host answer %s: %s" % (ref, e if isinstance(e, Fault) else repr(e)))
            return self._unsure(self.journal.get(ref) or t, code)

    def _unsure(self, t, code, extra=None):
        """The host may have the request and its outcome is not known here: reverse it."""
        ref = t["ref"]
        upd = dict(extra) if extra else {}
        upd["st"] = "reversing"
        upd["code"] = code
        t = self.mark(ref, upd) or t
        orig = t.get("orig")
        if t.get("kind") == "void" and orig:
            o = self.journal.get(orig)
            if o is not None and o.get("voided") == ref:
                self.mark(orig, {"voided": None})  # this void is being undone: the sale stands
        self._done(ref)
        return self._result(t, False, code)

    def _judge(self, fields, resp, ok_rcs):
        """(code, ambiguous, why) for a response: code None = accepted (an rc in ok_rcs)."""
        if resp.get("t") != iso8583.response_mti(fields["t"]) or resp.get("11") != fields.get("11"):
            return "HST-03", True, "MTI/STAN %s/%s" % (resp.get("t"), resp.get("11"))
        tid = resp.get("41")
        if tid is not None and fields.get("41") is not None and tid != fields["41"]:
            return "HST-03", True, "TID %s" % tid
        rc = _rc(resp.get("39"))
        if rc is None:
            return "HST-02", True, "no response code (field 39)"
        if rc == messages.RC_PARTIAL and ok_rcs is messages.RC_APPROVED:
            return "HST-09", True, "partial approval %s of %s" % (resp.get("4"), fields.get("4"))
        f4 = resp.get("4")
        if f4 is not None and fields.get("4") is not None and _amount(f4) != _amount(fields["4"]):
            return "HST-03", True, "amount %s for %s" % (f4, fields["4"])
        if rc in ok_rcs:
            return None, False, rc
        code = "ISS-" + rc
        if codes.known(code):
            return code, False, rc
        return "HST-02", True, "unknown response code %s" % rc

    def _answered(self, t, fields, resp):
        ref = t["ref"]
        code, ambiguous, why = self._judge(fields, resp, messages.RC_APPROVED)
        upd = {"rc": _rc(resp.get("39")), "rrn": resp.get("37"), "auth": resp.get("38")}
        if ambiguous:
            self._fail(code, "host", "%s %s: %s" % (t.get("kind"), ref, why))
            return self._unsure(t, code, upd)
        if code is None:
            upd["st"] = "approved"
            # On flash before the customer is told: if this raises, the caller reverses.
            t = self.journal.update(ref, upd)
            if t.get("kind") == "void":
                self.mark(t["orig"], {"voided": ref})  # also derived from this record (is_voided)
        else:
            upd["st"] = "declined"
            upd["code"] = code
            self._fail(code, "host", "%s %s" % (t.get("kind"), ref))
            t = self.mark(ref, upd) or t  # RAM if flash refuses: a boot then reverses it (harmless)
        self._done(ref)
        return self._result(t, code is None, code)

    def _offline(self, t, f, offline_ok, fields=None, txn=None):
        """The request never left: approve offline (SAF) or decline with the reason. Never raises.

        An online PIN cannot be checked offline (PIN-05). With keys, the card data the
        advice needs is stored encrypted under this transaction's data key first
        (payterm.txn.cardstore); no offline approval without it.
        """
        ref = t["ref"]
        code = f.code
        if offline_ok and t.get("pin"):
            code = "PIN-05"
            self._fail(code, "txn", "%s offline: %s" % (ref, f.code))
        elif offline_ok and self.saf.floor_limit > 0:
            stored = False
            try:
                keep = self._deferred(t)
                self.saf.check(t["amt"])
                upd = {"kind": "saf", "st": "pending", "tries": 0, "auth": "Y1" + t["stan"][-4:], "code": None}
                if txn is not None and self.cards is not None and fields is not None:
                    # The card data the advice needs (field 55 with its ARQC included) is kept
                    # encrypted in the card store, never in the journal.
                    self.cards.put(ref, _cards.pack(txn, fields))
                    stored = True
                    upd["cd"] = 1
                elif keep is not None:
                    upd["req"] = keep  # no keys (money-rule tests only): the ARQC travels in the journal's req
                t = self.journal.update(ref, upd)
                self._done(ref)
                return self._result(t, True, None, offline=True)
            except Exception as g:
                code = g.code if isinstance(g, Fault) else "SYS-09"
                self._fail(code, "txn", ref)
                if stored:
                    self.forget_card(ref)
        t = self.mark(ref, {"st": "failed", "code": code}) or t
        self._done(ref)
        return self._result(t, False, code)

    def _deferred(self, t):
        """EMV: whether this tap may be approved offline (raises if not); the request to journal
        with its ARQC (None: nothing to add).

        The card decides (a cryptogram type or AID that forbids deferred authorization: its
        code), then the AID's floor limit; the advice then carries the tap's field 55.
        """
        deny, floor, icc = self._emv.get(t["ref"]) or (None, None, None)
        if deny:
            raise Fault(deny, "card forbids deferred authorization", "txn")
        if floor is not None and t["amt"] > floor:
            raise Fault("SYS-08", "offline and %d above the AID floor limit %d" % (t["amt"], floor), "txn")
        if not icc:
            return None
        req = dict(t["req"])
        req["icc"] = messages.icc_text(icc)
        return req

    async def void(self, ref):
        """Void `ref` (payterm.txn.void: online, dropped from the queue, or its advice reversed)."""
        r = await self._guarded("void", self._voids.void(ref))
        if r.orig is None:
            r.orig = ref
        return r

    def check_void(self, ref):
        """(record, None) when `ref` can be voided now, else (record or None, failure code); sends nothing.

        The cashier shows the record (amount, masked card) for confirmation before `void(ref)`,
        which checks again under the transaction's claim.
        """
        try:
            o = self.lookup(ref)
        except Fault as f:
            return None, f.code
        code, _ = self._voids._voidable(o)
        return o, code

    def lookup(self, ref):
        """Journal record for `ref` (technician/refund status look-up); OPR-04 if unknown."""
        t = self.journal.get(ref) if ref[:1] != "~" else None
        if t is None and ref.isdigit() and len(ref) < 6:
            t = self.journal.get("%06d" % int(ref))
        if t is None:
            raise Fault("OPR-04", "no transaction %s" % ref, "txn")
        return t

    def status_of(self, t):
        """Status a person reads: refunds pending/approved/declined/reversed, SAF as queued, voids."""
        st = t.get("st")
        kind = t.get("kind")
        if kind == "void" and t.get("adv"):
            # A void of an uploaded offline sale: its reversal of the advice is the void.
            if st in ("pending", "reversing"):
                return "pending"
            return "approved" if st == "reversed" else st
        if st == "reversing":
            return "pending" if kind == "refund" else "reversal pending"
        if kind in ("sale", "refund", "saf"):
            if self.journal.is_voided(t):
                return "voided"
            if st == "voiding" or any(v.get("adv") and _jr.void_open(v) for v in self.journal.voids_of(t["ref"])):
                return "void pending"
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

    # ------------------------------------------------------------ claims and marks
    def claim(self, ref):
        """`async with engine.claim(ref):` one holder per transaction at a time.

        Every flow that changes a transaction (customer flows, and the background
        reversal and advice workers around each attempt) holds its claim, and
        re-reads the record after claiming: what was true before the wait may no
        longer be (a void may have cancelled the advice, an upload may have left).
        Not re-entrant: a holder must not claim the same ref again.
        """
        return _Claim(self._claims, ref)

    def mark(self, ref, fields):
        """Journal update that never raises; returns the transaction (None for an unknown ref).

        On a storage Fault (or any error) the update is kept in RAM: the journal's
        in-memory record shows it, so `reversals()` lists a RAM-only reversing
        transaction and the reversal goes out without a reboot, and the next
        `mark` of the same ref writes it again with its own fields (the fault is
        logged). When the void of an uploaded offline sale is acknowledged
        (approved, or its repeats reversed), the sale is marked cancelled too.
        """
        j = self.journal
        keys = self._unsaved.pop(ref, None)
        upd = {}
        if keys:
            cur = j.get(ref) or {}
            for k in keys:
                upd[k] = cur.get(k)  # RAM holds the newest value of what flash missed
        for k in fields:
            upd[k] = fields[k]
        try:
            t = j.update(ref, upd)
        except Exception as e:
            t = j.remember(ref, upd)
            if t is not None:
                self._unsaved[ref] = list(upd)
            self._fail(e.code if isinstance(e, Fault) else "SYS-09", "txn",
                       "%s kept in RAM: %s" % (ref, e if isinstance(e, Fault) else repr(e)))
        if t is not None and t.get("adv") and t.get("kind") == "void" and _jr.void_done(t):
            o = j.get(t.get("orig"))
            if o is not None and (o.get("st") != "reversed" or o.get("voided") != ref):
                self.mark(o["ref"], {"st": "reversed", "voided": ref})
                self.forget_card(o["ref"])
        return t

    # ------------------------------------------------------------ numbering at boot
    def _seed(self):
        """Continue STANs and refs after the newest in the journal and in the state.

        The newest is the one of the latest record (creation order), not the
        largest number: after the wrap 000002 is newer than 999997.
        """
        last = {"stan": 0, "ref": 0}
        for t in self.journal.records():
            n = _num(t.get("ref"))
            if n:
                last["ref"] = n
            n = _num(t.get("stan"))
            if n and not t.get("adv"):  # a void of an advice reuses its sale's STAN
                last["stan"] = n
        st = self.state
        lost = getattr(st, "lost", False) or (st.get(self.stan.key) is None and bool(self.journal.records()))
        upd = {}
        for seq, key in ((self.stan, "stan"), (self.refs, "ref")):
            v = seq.seed(last[key], _LOST_GAP if lost else 0)
            if v is not None:
                upd[seq.key] = v
        if not upd:
            return
        if lost:
            self._fail("SYS-02", "txn", "state lost: numbers continue at %r" % (upd,))
        try:
            st.update(upd)
        except Fault as f:
            st.data.update(upd)  # RAM at least: each number is saved again before its use
            self._fail(f.code, "txn", "seed: %s" % f.detail)

    # ------------------------------------------------------------ safe diagnostics
    def _waited(self, ref, t0):
        try:
            self.diag.wait(ref, "host", self._ticks_diff(self.ticks(), t0))
        except Exception:
            pass

    def _status(self, text):
        try:
            self.status(text)
        except Exception:
            pass

    # ------------------------------------------------------------ boot
    async def recover(self):
        """Boot: anything journaled as in flight may have reached the host, so it is reversed.

        A void whose outcome and its original's mark were cut apart is made
        whole again (the void record decides). Returns how many were in flight.
        """
        n = 0
        for t in self.journal.records(st="pending"):
            if t.get("kind") in ("sale", "refund", "void"):
                upd = {"st": "reversing", "code": "HST-05"}
                if t.get("adv"):  # its 0400 may have left: repeats are 0401
                    upd = {"st": "reversing", "code": "HST-05", "rv_out": max(1, t.get("rv_out", 0))}
                self.mark(t["ref"], upd)
                self._fail("HST-05", "txn", "in flight at power loss %s" % t["ref"])
                n += 1
        self._voids.repair()
        self.sweep_cards()
        return n

    def sweep_cards(self):
        """Erase stored card data no queued advice needs (a cut left it behind). Never raises."""
        if self.cards is None:
            return
        keep = set()
        for t in self.journal.records("saf"):
            if t.get("st") in ("pending", "failed", "voiding"):
                keep.add(t["ref"])
        try:
            n = self.cards.sweep(keep)
            if n:
                self._fail("SYS-02", "txn", "%d card data record(s) no advice needs: erased" % n)
        except Exception as e:
            self._fail(e.code if isinstance(e, Fault) else "SYS-09", "txn", "card data sweep: %s" % e)

    def reversals(self):
        return self.journal.records(st="reversing")

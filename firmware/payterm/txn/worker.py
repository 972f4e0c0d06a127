"""Background work: reversals and store-and-forward advices, each on its own retry schedule.

Every item (a transaction to reverse; the oldest offline sale to advise) sits
in a `recqueue.DeadlineQueue` under the time its next attempt is due. An
attempt without a settling answer puts the item back after an exponential
pause with equal jitter (retry_base_ms doubling up to retry_cap_ms, per item),
so a fleet never retries in lockstep and nothing spins in a fixed loop.

Money rules:
- A reversal is done only on the matching 0410 with rc 00, or 25 (the host
  has no such original, so it holds nothing). Any other answer (another rc,
  no field 39, not the matching 0410) or none: it repeats as 0401.
- An advice is "sent" on the matching 0230 with an approval rc, "declined"
  with another well-formed rc (its code logged as a fault). A 0230 without
  field 39, or not the matching answer, is ambiguous: it repeats as 0221.
- Only attempts that left the terminal count toward saf_max_tries; after that
  many the advice is "failed" with HST-07 in the fault log, listed for the
  technician (tech menu STATUS, console `saf`), who can `retry` it.
- While the link is offline the worker waits for the supervisor to bring it
  back (`sup.wait_online()`) instead of spending attempts.
- Each attempt holds `engine.claim(ref)` and re-reads the record first (a
  void may have changed it); journal writes go through `engine.mark`.
- Every attempt is sealed with a DUKPT counter of its own (engine.seal: field
  53 and the MAC; a bad host MAC is no answer). An advice carries its sale's
  encrypted card data (field 62, from engine.cards), erased once a 0230 answered it.
- The customer comes first: attempts are background requests, which a
  customer request cancels (HST-08). The item stays queued, and since the
  request may have left, the next attempt is flagged as a repeat.
"""
import time

import asyncio
import recqueue
from micropython import const

from payterm import codes
from payterm.errors import Fault
from payterm.link import messages
from payterm.link.iso8583 import response_mti
from payterm.link.backoff import Backoff

_ITEM = const(12)  # record: kind, generation, ref (ASCII, space padded)
_REF_MAX = const(10)
_CAPACITY = const(64)
_REVERSAL = const(0x52)  # "R"
_ADVICE = const(0x41)  # "A"
_KINDS = {_REVERSAL: "reversal", _ADVICE: "advice"}

# ISO 8583:1987 field 39: reversal acknowledged (00) or original not found (25, nothing to undo).
_REVERSED_RC = ("00", "25")
# Link faults that mean the request may have reached the host, when not flagged.
_AMBIGUOUS = ("HST-01", "HST-02", "HST-03", "NET-05")
_PREEMPTED = "HST-08"
_RC_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _sent(f):
    return getattr(f, "sent", f.code in _AMBIGUOUS)


def _clean_rc(rc):
    """A well-formed field 39: two alphanumeric characters."""
    if not isinstance(rc, str) or len(rc) != 2:
        return False
    for ch in rc:
        if ch not in _RC_CHARS:
            return False
    return True


def _matches(resp, fields):
    """The answer to this very request: response MTI and STAN (the link also checks them)."""
    return resp.get("t") == response_mti(fields["t"]) and resp.get("11") == fields["11"]


class Worker:
    """engine: the txn Engine (journal, saf, cfg, diag, claim, mark, reversals);
    sup: the Supervisor; on_change(): the offline queue or reversal list changed."""

    def __init__(self, engine, sup, ticks=None, rand=None, on_change=None, capacity=_CAPACITY):
        self.engine = engine
        self.sup = sup
        self.ticks = ticks or engine.ticks
        c = engine.cfg
        self.wait_ms = c["worker_wait_ms"]
        self.scan_ms = c["worker_scan_ms"]
        self.retry_backoff = Backoff(c["retry_base_ms"], c["retry_cap_ms"], rand)
        self.on_change = on_change
        self._q = recqueue.DeadlineQueue(capacity, _ITEM)
        self._rec = bytearray(_ITEM)
        self._out = bytearray(_ITEM)
        self._queued = {}  # ref -> (kind, generation, due) of its one live record in the queue
        self._gen = 0
        self._fails = {}  # ref -> attempts in a row that left without a settling answer
        self._kick = asyncio.Event()
        self.attempts = 0
        self.dropped = 0
        if hasattr(sup, "watch"):
            sup.watch(self.kick)

    # ------------------------------------------------------------ schedule
    def kick(self):
        """Something may have been queued (or the link came back): look now."""
        self._kick.set()

    def _push(self, ref, kind, due):
        if len(ref) > _REF_MAX:
            self.dropped += 1
            return False
        self._gen = (self._gen + 1) & 0xFF
        r = self._rec
        r[0] = kind
        r[1] = self._gen
        b = ref.encode()
        for i in range(_REF_MAX):
            r[2 + i] = b[i] if i < len(b) else 0x20
        if not self._q.push(due, r):
            self.dropped += 1  # full: picked up again by the next scan
            return False
        self._queued[ref] = (kind, self._gen, due)
        return True

    def _again(self, ref, kind, counted):
        """Back on the schedule after an attempt; only an attempt that left grows the pause."""
        n = self._fails.get(ref, 0)
        if counted:
            self._fails[ref] = n + 1
        self._push(ref, kind, time.ticks_add(self.ticks(), self.retry_backoff.equal(n)))

    def _settled(self, ref):
        self._fails.pop(ref, None)
        self._queued.pop(ref, None)
        if self.on_change is not None:
            self.on_change()

    def sync(self):
        """Schedule (due now) every reversal and the oldest pending advice not yet on the schedule."""
        now = self.ticks()
        for t in self.engine.reversals():
            if t["ref"] not in self._queued:
                self._push(t["ref"], _REVERSAL, now)
        for live in self._queued.values():
            if live[0] == _ADVICE:
                return
        t = self.engine.saf.next()
        if t is not None and t["ref"] not in self._queued:
            self._push(t["ref"], _ADVICE, now)

    def _pop_due(self):
        """(ref, kind) of the earliest item due now, skipping records a reschedule made stale."""
        buf = self._out
        while self._q.pop_due_into(self.ticks(), buf):
            ref = bytes(buf[2:]).decode().rstrip()
            live = self._queued.get(ref)
            if live is not None and live[0] == buf[0] and live[1] == buf[1]:
                del self._queued[ref]
                return ref, buf[0]
        return None, None

    def next_due_ms(self):
        """ms until the next attempt is due (0: now), None when nothing is scheduled."""
        nd = self._q.next_due()
        if nd is None:
            return None
        return max(0, time.ticks_diff(nd, self.ticks()))

    # ------------------------------------------------------------ work
    async def work_once(self):
        """Schedule what is new, then one attempt of the earliest item due; True when the host settled it."""
        self.sync()
        ref, kind = self._pop_due()
        if ref is None or kind is None:
            return False
        self.attempts += 1
        try:
            if kind == _REVERSAL:
                done = await self._reverse(ref)
            else:
                done = await self._advise(ref)
        except Fault as f:
            # Storage or another local failure around the attempt: logged, tried again later.
            self.engine.diag.fault(f.code, "worker", "%s %s" % (_KINDS[kind], ref))
            done = False
            self._again(ref, kind, False)
        except Exception as e:
            # A bug must not lose the item nor spin on it.
            self.engine.diag.fault("SYS-09", "worker", repr(e))
            done = False
            self._again(ref, kind, False)
        return bool(done)

    def _find_reversal(self, ref):
        for t in self.engine.reversals():
            if t["ref"] == ref:
                return t
        return None

    async def _reverse(self, ref):
        e = self.engine
        async with e.claim(ref):
            t = self._find_reversal(ref)  # re-read: a void or another path may have settled it
            if t is None:
                self._settled(ref)
                return None
            n = t.get("rv", 0) + 1
            out = t.get("rv_out", 0)
            fields = messages.reversal(t["req"], repeat=out > 0)
            txn, sec = e.seal(fields)  # every attempt has its own KSN; KEY-0x: tried again later
            try:
                return await self._reverse_sealed(ref, t, n, out, fields, sec)
            finally:
                e.unseal(txn, sec)

    async def _reverse_sealed(self, ref, t, n, out, fields, sec):
        e = self.engine
        # Write-ahead: counted as possibly delivered before it leaves; taken back if it provably did not.
        e.mark(ref, {"rv": n, "rv_out": out + 1})
        try:
            resp = await self._request(fields, sec)
        except asyncio.CancelledError:
            self._again(ref, _REVERSAL, False)
            raise
        except Fault as f:
            sent = _sent(f)
            if not sent:
                e.mark(ref, {"rv_out": out})
            if f.code != _PREEMPTED:
                e.diag.fault(f.code, "retry", "reversal %s try %d" % (ref, n))
            self._again(ref, _REVERSAL, sent and f.code != _PREEMPTED)
            return False
        rc = resp.get("39")
        if _matches(resp, fields) and rc in _REVERSED_RC:
            e.mark(ref, {"st": "reversed", "rv_rc": rc})
            self._settled(ref)
            return True
        # Answered, but not an acknowledgement: the host may still hold the charge.
        e.mark(ref, {"rv_rc": rc})
        code = "HST-03" if not _matches(resp, fields) else (codes.for_rc(rc) or "HST-03")
        e.diag.fault(code, "retry", "reversal %s answered %s: repeating" % (ref, rc))
        self._again(ref, _REVERSAL, True)
        return False

    async def _advise(self, ref):
        e = self.engine
        async with e.claim(ref):
            t = e.journal.get(ref)  # re-read: a void may have dropped it from the queue
            if t is None or t.get("kind") != "saf" or t.get("st") != "pending":
                self._settled(ref)
                return None
            tries = t.get("tries", 0)
            out = t.get("out", 0)
            card = None
            if t.get("cd") and e.cards is not None:
                card = e.cards.get(ref)
                if card is None:
                    # Lost or damaged on flash: sent without, the host will refuse it (technician case).
                    e.diag.fault("KEY-09", "worker", "advice %s without its card data" % ref)
            fields = messages.advice(t["req"], t.get("auth"), repeat=out > 0, card_data=card)
            txn, sec = e.seal(fields)  # every attempt has its own KSN; KEY-0x: tried again later
            try:
                return await self._advise_sealed(ref, tries, out, fields, sec)
            finally:
                e.unseal(txn, sec)

    async def _advise_sealed(self, ref, tries, out, fields, sec):
        e = self.engine
        # Write-ahead: counted as delivered before it leaves; taken back if it provably did not.
        e.mark(ref, {"tries": tries + 1, "out": out + 1})
        try:
            resp = await self._request(fields, sec)
        except asyncio.CancelledError:
            self._again(ref, _ADVICE, False)
            raise
        except Fault as f:
            if not _sent(f):
                e.mark(ref, {"tries": tries, "out": out})
                if f.code != _PREEMPTED:
                    e.diag.fault(f.code, "retry", "advice %s not sent" % ref)
                self._again(ref, _ADVICE, False)
                return False
            if f.code == _PREEMPTED:
                # It may have left (so the next one is a 0221), but it got no chance to be answered.
                e.mark(ref, {"tries": tries})
                self._again(ref, _ADVICE, False)
                return False
            return self._unanswered(ref, tries + 1, f.code, "%s" % f.code)
        rc = resp.get("39")
        if not _matches(resp, fields) or not _clean_rc(rc):
            return self._unanswered(ref, tries + 1, "HST-02" if rc is None else "HST-03",
                                    "answer %s rc %r" % (resp.get("t"), rc))
        code = codes.for_rc(rc)
        upd = {"rc": rc, "rrn": resp.get("37")}
        if code is None:
            upd["st"] = "sent"
        else:
            upd["st"] = "declined"
            upd["code"] = code
            e.diag.fault(code, "host", "advice %s" % ref)
        e.mark(ref, upd)
        e.forget_card(ref)  # the host has answered it: the ciphertext goes
        self._settled(ref)
        return True

    def _request(self, fields, sec):
        if sec is None:
            return self.sup.request(fields, self.wait_ms, background=True)
        return self.sup.request(fields, self.wait_ms, background=True, sec=sec)

    def _unanswered(self, ref, tries, code, why):
        """The advice left but got no clean answer: repeat (0221), or give up after saf_max_tries."""
        e = self.engine
        e.diag.fault(code, "retry", "advice %s try %d: %s" % (ref, tries, why))
        if tries >= e.saf.max_tries:
            e.mark(ref, {"st": "failed", "code": "HST-07"})
            e.diag.fault("HST-07", "txn", "advice %s: %d tries, last %s" % (ref, tries, code))
            self._settled(ref)
            return False
        self._again(ref, _ADVICE, True)
        return False

    # ------------------------------------------------------------ technician
    def items(self):
        """Open background work: [(kind, record, ms until its next attempt or None)], reversals first."""
        e = self.engine
        now = self.ticks()
        out = []

        def due(ref):
            live = self._queued.get(ref)
            return None if live is None else max(0, time.ticks_diff(live[2], now))

        for t in e.reversals():
            out.append(("reversal", t, due(t["ref"])))
        for t in e.journal.records("saf"):
            if t.get("st") in ("pending", "failed"):
                out.append(("advice", t, due(t["ref"])))
        return out

    def failed(self):
        return self.engine.journal.records("saf", "failed")

    async def retry(self, ref):
        """Technician: send a failed advice again (as a repeat), or try a queued item now. OPR-04 if nothing to do."""
        e = self.engine
        if ref.isdigit() and len(ref) < 6:
            ref = "%06d" % int(ref)
        async with e.claim(ref):
            t = e.journal.get(ref)
            rv = self._find_reversal(ref)
            if rv is not None:
                kind = _REVERSAL
            elif t is not None and t.get("kind") == "saf" and t.get("st") in ("pending", "failed"):
                kind = _ADVICE
                if t.get("st") == "failed":
                    e.mark(ref, {"st": "pending", "tries": 0, "code": None})
                    e.diag.fault("HST-07", "tech", "advice %s retried by technician" % ref)
            else:
                raise Fault("OPR-04", "nothing to retry for %s" % ref, "txn")
        self._fails.pop(ref, None)
        self._push(ref, kind, self.ticks())
        self.kick()
        if self.on_change is not None:
            self.on_change()
        return ref

    # ------------------------------------------------------------ task
    async def run(self):
        """The background task: attempts as they fall due, only while the link is online."""
        while True:
            await self.sup.wait_online()
            self._kick.clear()
            if await self.work_once():
                continue
            wait = self.next_due_ms()
            wait = self.scan_ms if wait is None else min(wait, self.scan_ms)
            if wait > 0:
                try:
                    await asyncio.wait_for_ms(self._kick.wait(), wait)
                except asyncio.TimeoutError:
                    pass

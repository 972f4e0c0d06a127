"""The cashier's flows on the panel: sale, refund, void, status, reprint, training, technician menu.

Every outcome ends on a result screen that says what happened in the
catalog's words (display text, code, the customer message paged over the
display: payterm.ui.screens), and on a console event, so a merchant never
faces a silent terminal. A result screen stays at least `result_min_ms`:
keys pressed while the transaction was processed are dropped when it
appears (they were not meant for it), a key pressed sooner than the minimum
waits and then acts, and the key that closes it is not lost: a digit starts
the next sale with that digit, F opens the function menu.

Merchant flows: refund, void and training mode ask the merchant (supervisor)
PIN (`merchant_pin_hash`, its own lockout, separate from the technician's);
a void shows the transaction's amount and masked card and asks OK, a refund
shows its amount and the card it goes to and asks OK, both before anything
is sent. The keypad refuses an amount above `max_amount` as it is typed, and
an amount at or above `confirm_amount` is asked again.

Receipts: the printer's paper is checked before the card is asked for
(when the printer can tell), and the cashier may go on without a receipt.
F 4 prints the last receipt again (DUPLICATE).

Training mode (F 5): the flows run on a training engine whose host is inside
the firmware (payterm.txn.training): nothing reaches the acquirer, the
terminal's journal and diagnostics never see it, and every screen and
receipt says TRAINING. F 5 again ends it; a restart ends it too.

Wait analysis: the flow times what the customer does (amount entry,
presenting the card, confirmations) apart from what the terminal does
(reading the card, connecting, waiting for the host, retry pauses,
printing), using the link's status texts to split the engine's host wait,
and closes each transaction's wait record with its failure code.

Card presentment (payterm.card.service) drives the card prompt: PRESENT
CARD once the readers wait for this sale, REMOVE CARD while a card lies on
the contactless reader that will not be read (left from before, or just
read), the read error and TRY AGAIN while the sale waits for another try.
A swipe or a tap while no sale waits shows NO SALE IN PROGRESS on the idle screen
for a moment; the card itself is discarded by the reader's owner task.
"""
import asyncio
import time

from micropython import const

from payterm import codes, printer
from payterm.diag import waits
from payterm.errors import Fault
from payterm.txn.currency import alpha, format_amount
from payterm.ui import pinentry, screens
from payterm.ui.reprint import LastReceipt

_REF_DIGITS = const(6)
_PIN_MAX = const(12)
_NOTICE_MS = const(2000)  # how long NO SALE IN PROGRESS stays before the idle screen returns
_SWIPE_ONLY = ("CRD-14", "CRD-15")  # INSERT OR SWIPE CARD / CARD REFUSED TAP
_INPUT_MS = const(60000)  # an input screen left alone this long is cancelled (operator walked away)
_ASK_MS = const(30000)  # a yes/no question left alone this long is answered no
_MENU_MS = const(10000)
_DIGITS = "0123456789"
# The link's status texts (payterm.link.supervisor) -> the wait-analysis stage they time.
_LINK_STAGES = (("CONNECTING", "connect"), ("RETRY", "retry"))


def wrap(text, width=20, rows=2):
    """The first `rows` lines of a text broken between words (screens.pages gives all of it)."""
    out = screens.wrap(text, width)[:rows]
    while len(out) < rows:
        out.append("")
    return out


def _cvm_note(r):
    """` cvm=signature` on the console TXN line when the receipt needs more than the card."""
    cvm = getattr(r, "cvm", None) or "none"
    return "" if cvm == "none" else " cvm=" + cvm


def _display(code):
    return codes.lookup(code)[codes.DISPLAY]


class Cashier:
    def __init__(self, app):
        self.app = app
        self.panel = app.panel
        self.cfg = app.cfg
        self.at_idle = False
        self.training = None  # the training Engine while training mode is on
        self.screen = None  # name of the layout on the display ("idle", "processing", ...)
        self._notice = 0
        self._head = ""
        self._err = None
        self._remove = False
        self._next = None  # the key that closed the last result screen: acted on next
        self._receipts = LastReceipt(app.hal.storage, app.diag)  # the last receipt, for a reprint
        self._proc = None  # processing screen: [head, masked, status, remove card]
        self._stages = {}  # wait analysis of the transaction in progress: stage -> ms
        self._segs = None  # link stage -> ms while a request is timed
        self._seg = None  # (stage, ticks) being timed
        self._anon = 0
        self.panel.on_status = self._status
        cards = getattr(app, "cards", None)
        if cards is not None:
            cards.on_ignored = self.card_ignored
            cards.on_field_empty = self._field_empty

    # ------------------------------------------------------------ display
    @property
    def engine(self):
        return self.training if self.training is not None else self.app.engine

    def _ticks(self):
        return self.app.hal.ticks()

    def show(self, rows, name=None):
        """One layout of payterm.ui.screens on the display, marked TRAINING in training mode."""
        self.screen = name
        self.panel.show(screens.mark(rows) if self.training is not None else rows)

    def idle(self):
        # Offline sales the host has not booked yet: queued ones and those that ran out of tries (HST-07,
        # waiting for the technician's retry). Either way the merchant's money is not with the host.
        pend = 0
        if self.training is None:
            q = self.app.engine.saf.summary()
            pend = q["pending"] + q["failed"]
        self.show(screens.idle(self.cfg.get("merchant_name"), alpha(self.cfg["currency"]), pend), "idle")

    def queue_changed(self):
        """The offline queue changed (background worker): the idle screen shows its count."""
        if self.screen == "idle":
            self.idle()

    def _money(self, minor):
        return format_amount(minor, self.cfg["currency"])

    def _event(self, text):
        self.app.event(text + (" training" if self.training is not None else ""))

    # ------------------------------------------------------------ reader input outside a sale
    def card_ignored(self, source):
        """A reader delivered a card while no sale waited for one: it was discarded."""
        self.app.event("CARD IGNORED %s: no sale in progress" % source)
        if self.at_idle:
            self._notice += 1
            self.show(screens.no_sale(self.cfg.get("merchant_name")), "notice")
            asyncio.create_task(self._end_notice(self._notice))

    async def _end_notice(self, n):
        await asyncio.sleep_ms(_NOTICE_MS)
        if self.at_idle and n == self._notice:
            self.idle()

    def _field_empty(self):
        """The card that was read has left the field: drop REMOVE CARD from the processing screen."""
        p = self._proc
        if p is not None and p[3] and not self.app.cards.armed:
            p[3] = False
            if self.screen == "processing":
                self._show_proc()

    # ------------------------------------------------------------ main loop
    async def run(self):
        self.idle()
        while True:
            k = self._next
            self._next = None
            if k is None:
                self.at_idle = True
                try:
                    k = await self.panel.key()
                finally:
                    self.at_idle = False
            if k in _DIGITS:
                await self.payment("sale", first=k)
            elif k == "F":
                await self.function()
            # any other key (C: clear) just redraws the idle screen
            self.idle()

    async def function(self):
        self.show(screens.function_menu(self.training is not None), "menu")
        k = await self.panel.key(_MENU_MS)
        if k == "1":
            await self.payment("refund")
        elif k == "2":
            await self.void()
        elif k == "3":
            await self.lookup()
        elif k == "4":
            await self.reprint()
        elif k == "5":
            await self.toggle_training()
        elif k == "9":
            await self.technician()

    # ------------------------------------------------------------ input
    async def _amount(self, title, first=None):
        """Amount in minor units, or a failure code: OPR-01 (C, or left alone), OPR-02 (zero)."""
        mx = self.cfg["max_amount"]
        s = first if first and first != "0" else ""
        note = ""
        t0 = self._ticks()
        while True:
            self.show(screens.amount_entry(title, self._money(int(s or "0")), note), "amount")
            note = ""
            k = await self.panel.key(_INPUT_MS)
            if k is None or k == "C":
                return "OPR-01"
            if k == "E":
                break
            if k == "B":
                s = s[:-1]
            elif k in _DIGITS and len(k) == 1:
                if not s and k == "0":
                    continue
                if int(s + k) > mx:
                    note = "MAX " + self._money(mx)
                    self.panel.beep()
                else:
                    s += k
        self._stage("amount", time.ticks_diff(self._ticks(), t0))
        amount = int(s or "0")
        if amount <= 0:
            return "OPR-02"
        if amount > mx:
            return "OPR-10"
        conf = self.cfg["confirm_amount"]
        if conf and amount >= conf:
            t0 = self._ticks()
            self.show(screens.confirm_amount(title, self._money(amount)), "confirm")
            self.panel.beep()
            ok = await self._yes()
            self._stage("confirm", time.ticks_diff(self._ticks(), t0))
            if not ok:
                return "OPR-01"
        return amount

    async def _yes(self, timeout_ms=_ASK_MS):
        """E: yes; C or no answer: no. Other keys are ignored."""
        while True:
            k = await self.panel.key(timeout_ms)
            if k is None or k == "C":
                return False
            if k == "E":
                return True

    async def _ref_input(self, title):
        s = ""
        note = ""
        while True:
            self.show(screens.ref_entry(title, s, note), "ref")
            note = ""
            k = await self.panel.key(_INPUT_MS)
            if k is None or k == "C":
                return None
            if k == "E":
                if s:
                    return "%06d" % int(s)
                note = "TYPE THE REF"
            elif k == "B":
                s = s[:-1]
            elif k in _DIGITS and len(k) == 1:
                if len(s) >= _REF_DIGITS:
                    note = "REF IS 6 DIGITS"
                    self.panel.beep()
                else:
                    s += k

    async def _merchant(self, title, kind):
        """Ask the merchant (supervisor) PIN; False (after saying why) when it is not given."""
        gate = getattr(self.app, "merchant_pin", None)
        if gate is None:
            await self._failed(kind, "OPR-09", "input")
            return False
        if gate.locked_for():
            await self._failed(kind, "OPR-08", "pin")  # no PIN asked while it is locked out
            return False
        pin = ""
        note = ""
        while True:
            self.show(screens.pin_entry(title, len(pin), note), "pin")
            k = await self.panel.key(_ASK_MS)
            if k is None or k == "C":
                await self._failed(kind, "OPR-01", "input")
                return False
            if k == "B":
                pin = pin[:-1]
            elif k in _DIGITS and len(k) == 1:
                if len(pin) < _PIN_MAX:
                    pin += k
            elif k == "E":
                try:
                    if gate.check(pin):
                        return True
                except Fault as f:
                    if f.code != "OPR-07":
                        await self._failed(kind, f.code, "pin")
                        return False
                    note = _display(f.code)
                    self.panel.beep()
                pin = ""

    # ------------------------------------------------------------ wait analysis
    def _stage(self, stage, ms):
        """The current transaction spent `ms` in `stage` (0 counts: the stage happened)."""
        self._stages[stage] = self._stages.get(stage, 0) + max(0, ms)

    def _time_link(self, on):
        """Time the link's statuses while a request runs (on), or stop and fold them in (off)."""
        now = self._ticks()
        if self._seg is not None and self._segs is not None:
            st, t = self._seg
            self._segs[st] = self._segs.get(st, 0) + time.ticks_diff(now, t)
        if on:
            self._segs = {}
            self._seg = ("host", now)
        else:
            self._seg = None

    def _status(self, text):
        """The engine's / link's status for a customer request: timed, and shown on the processing screen only."""
        if self._seg is not None and self._segs is not None:
            stage = "host"
            for prefix, st in _LINK_STAGES:
                if text.startswith(prefix):
                    stage = st
            now = self._ticks()
            prev, t = self._seg
            self._segs[prev] = self._segs.get(prev, 0) + time.ticks_diff(now, t)
            self._seg = (stage, now)
        if self._proc is not None and self.screen == "processing":
            self._proc[2] = text
            self._show_proc()

    def _close_waits(self, ref, code):
        """Hand the transaction's stages to the wait analysis, with its failure code."""
        stages, segs = self._stages, self._segs or {}
        self._stages, self._segs, self._seg = {}, None, None
        if self.training is not None or not (stages or ref):
            return  # training is not the terminal's life; nothing to record
        d = self.app.diag
        if not ref:
            self._anon += 1
            ref = "-%d" % self._anon  # never got a ref (no card, card failed, cancelled at the card)
        for st, ms in stages.items():
            d.wait(ref, st, ms)
        for st in ("connect", "retry"):
            d.wait_move(ref, "host", st, segs.get(st, 0))
        rec = d.txn_done(ref, code)
        if rec:
            # Live for the technician: how long this customer waited, on whose side, and where.
            cust = term = 0
            parts = []
            for st in waits.CUSTOMER + waits.TERMINAL:
                if st in rec:
                    parts.append("%s=%d" % (st, rec[st]))
            for st, ms in rec.items():
                if waits.side(st) == "customer":
                    cust += ms
                else:
                    term += ms
            self._event("WAIT %s customer=%dms terminal=%dms %s" % (ref, cust, term, " ".join(parts)))

    # ------------------------------------------------------------ flows
    async def payment(self, kind, first=None):
        title = "SALE" if kind == "sale" else "REFUND"
        self._stages = {}
        if kind == "refund" and not await self._merchant(title, kind):
            return
        amount = await self._amount(title, first)
        if isinstance(amount, str):
            self._stages = {}
            return await self._failed(kind, amount, "input")
        paper = await self._paper()
        if paper is None:
            self._stages = {}
            return await self._failed(kind, "OPR-01", "input")
        cur = self.cfg["currency"]
        app = self.app
        self._head = title + " " + format_amount(amount, cur)
        self._err = None
        self._remove = False
        t0 = self._ticks()
        card = await self._card(amount, cur)
        waited = time.ticks_diff(self._ticks(), t0)
        read = min(waited, getattr(app.cards, "read_ms", 0) or 0)
        self._stage("present", waited - read)
        self._stage("read", read)
        if isinstance(card, str):
            self._close_waits(None, card)
            return await self._failed(kind, card, "card")
        t1 = self._ticks()
        pin = await pinentry.ask(app, kind, card, self._head, self.training is not None)  # None: no PIN asked
        if pin is not None:
            self._stage("pin", time.ticks_diff(self._ticks(), t1))
        if isinstance(pin, str):
            self._close_waits(None, pin)
            return await self._failed(kind, pin, "pin")
        if pin is not None and self.training is not None:
            # The training host takes no PIN block (no keys): the cashier practised the entry, it is dropped.
            for i in range(len(pin)):
                pin[i] = 0
            pin = None
        if kind == "refund":
            t1 = self._ticks()
            self.show(screens.confirm_card(title, self._money(amount), card.masked), "confirm")
            ok = await self._yes()
            self._stage("confirm", time.ticks_diff(self._ticks(), t1))
            if not ok:
                card.wipe()
                self._close_waits(None, "OPR-01")
                return await self._failed(kind, "OPR-01", "input")
        lift = card.source == "tap" and app.cards.awaiting_removal
        if card.source == "tap":
            self.panel.beep()  # the read is done: the card may leave the field (EMV Book A 8.2)
        self._proc = [self._head, card.masked, "PROCESSING", lift]
        self._show_proc()
        self._event("CARD %s %s" % (card.source, card.masked))
        self._time_link(True)
        if kind == "sale":
            result = await self.engine.sale(card, amount, cur, pin=pin)
        else:
            result = await self.engine.refund(card, amount, cur)
        self._time_link(False)
        await self._finish(result, receipt=paper)

    def _show_proc(self):
        p = self._proc
        if p is None:
            return
        self.show(screens.processing(p[0], p[1], p[2], p[3]), "processing")

    async def _paper(self):
        """True: print as usual; False: the cashier goes on without a receipt; None: stop."""
        code = await printer.paper_state(self.app.hal.printer)
        if not code:
            return True
        t0 = self._ticks()
        self.app.diag.fault(code, "print", "before sale")  # the technician sees it before any receipt is lost
        self.app.event("PRINTER %s before sale" % code)
        self.show(screens.paper_out(code), "confirm")
        self.panel.beep()
        ok = await self._yes()
        self._stage("confirm", time.ticks_diff(self._ticks(), t0))
        return False if ok else None

    async def _card(self, amount, cur):
        """Card or a failure code; C on the keypad cancels the wait."""
        task = asyncio.create_task(self._present(amount, cur))
        while not task.done():
            k = await self.panel.key(100)
            if k == "C":
                task.cancel()
                await asyncio.sleep_ms(0)
                return "OPR-01"
        return await task

    async def _present(self, amount, cur):
        try:
            return await self.app.cards.present(amount, cur, self.cfg["card_timeout_ms"], self._prompt)
        except Fault as f:
            self.app.diag.fault(f.code, f.stage or "card", f.detail)
            return f.code

    def _prompt(self, event, fault=None):
        """The card prompt as presentment goes: present / remove / read error."""
        if event == "error" and fault is not None:
            self._err = fault.code
            self.app.diag.fault(fault.code, fault.stage or "card", fault.detail)
            self.app.event("CARD RETRY code=%s" % fault.code)
            self.panel.beep()
        elif event == "remove":
            self._remove = True
            self.app.event("CARD REMOVE")
        elif event == "present":
            self._remove = False
        err = _display(self._err) if self._err else None
        # Above the contactless limit / card refused the tap (CRD-14/15): only a swipe can pay now.
        swipe_only = self._err in _SWIPE_ONLY
        self.show(screens.card_prompt(self._head, err, self._remove, swipe_only), "card")

    async def void(self):
        if not await self._merchant("VOID", "void"):
            return
        ref = await self._ref_input("VOID: REF")
        if ref is None:
            return await self._failed("void", "OPR-01", "input")
        eng = self.engine
        o, code = eng.check_void(ref)
        if code or o is None:
            # Refused without asking (not found, voided already, a void in flight): the engine says why, sends nothing.
            return await self._finish(await eng.void(ref), refused=True)
        okind = o.get("kind") or "sale"
        okind = "sale" if okind == "saf" else okind
        amt = format_amount(o.get("amt", 0), o.get("cur") or self.cfg["currency"])
        self._stages = {}
        t0 = self._ticks()
        self.show(screens.confirm_void(ref, okind, amt, o.get("pan", "")), "confirm")
        ok = await self._yes()
        self._stage("confirm", time.ticks_diff(self._ticks(), t0))
        if not ok:
            self._stages = {}
            return await self._failed("void", "OPR-01", "input")
        self._proc = ["VOID %s %s" % (okind.upper(), ref), o.get("pan", ""), "PROCESSING", False]
        self._show_proc()
        self._time_link(True)
        r = await eng.void(ref)
        self._time_link(False)
        await self._finish(r, orig_kind=okind)

    async def lookup(self):
        ref = await self._ref_input("STATUS: REF")
        if ref is None:
            return
        eng = self.engine
        try:
            t = eng.lookup(ref)
        except Fault as f:
            return await self._failed("lookup", f.code, "input")
        amt = format_amount(t.get("amt", 0), t.get("cur") or self.cfg["currency"])
        st = eng.status_of(t)
        kind = t.get("kind", "")
        self.app.event("LOOKUP %s %s %s" % (t["ref"], kind, st))
        self.panel.clear_keys()
        await self._hold([screens.lookup(t["ref"], "sale" if kind == "saf" else kind, amt, st)], self._ticks())

    async def reprint(self):
        last = self._receipts.last(self.training is not None)
        if last is None:
            return await self._failed("reprint", "OPR-12", "input")
        r, when = last
        self.app.event("REPRINT %s" % r.ref)
        failed = await self._print(r, duplicate=True, when=when)
        self.panel.clear_keys()
        if failed:
            page = screens.print_failed(failed, "NOT PRINTED AGAIN")
        else:
            page = screens.notice("RECEIPT PRINTED", "AGAIN: REF %s" % (r.ref or "-"))
        await self._hold([page], self._ticks())

    async def toggle_training(self):
        if self.training is not None:
            self.training = None
            self.app.event("TRAINING OFF")
            self.show(screens.notice("TRAINING MODE OFF", "PAYMENTS ARE LIVE"), "notice")
            self._receipts.end_training()
            await self.panel.key(self.cfg["result_ms"])
            return
        if not await self._merchant("TRAINING", "training"):
            return
        from payterm.txn import training

        app = self.app
        self.training = training.engine(self.cfg, app.hal.storage, app.hal.clock, app.hal.ticks, self.panel.status)
        self._receipts.end_training()
        self.app.event("TRAINING ON")
        self.show(screens.notice("TRAINING MODE ON", "NOTHING IS CHARGED", "F 5: END TRAINING"), "notice")
        await self.panel.key(self.cfg["result_ms"])

    async def technician(self):
        if self.training is not None:
            return await self._failed("techmenu", "OPR-11", "input")
        from payterm.ui.techmenu import TechMenu

        app = self.app
        self.app.event("TECHMENU")
        self.screen = "techmenu"
        menu = TechMenu(self.panel, self.panel.key, app.diag, app.selftests, app.pin.check, app.info,
                        getattr(app, "worker", None), recent=self.recent, link=getattr(app, "link_info", None))
        await menu.run()

    def recent(self, n=10):
        """The newest transactions of the terminal's journal (masked), newest first."""
        eng = self.app.engine
        out = []
        for t in eng.journal.records()[-n:]:
            out.append({"ref": t["ref"], "kind": "sale" if t.get("kind") == "saf" else t.get("kind", ""),
                        "status": eng.status_of(t), "amt": t.get("amt", 0), "cur": t.get("cur") or self.cfg["currency"],
                        "pan": t.get("pan", ""), "code": t.get("code") or "", "ts": t.get("ts", 0),
                        "offline": t.get("kind") == "saf"})
        out.reverse()
        return out

    # ------------------------------------------------------------ outcomes
    async def _finish(self, r, receipt=True, orig_kind="sale", refused=False):
        """The result screen(s), the event, the receipt (False: the cashier chose none as the paper is
        out, kept for F 4; refused: a request refused before anything was sent, nothing to print), the
        wait record, then the hold."""
        kind = r.kind or "sale"
        event_kind = kind.upper()
        if r.approved:
            amt = r.amount_text() if r.currency else ""
            pages = [screens.approved(kind, amt, r.auth_code, r.ref, r.offline, r.orig, orig_kind)]
            status = "APPROVED" + ("_OFFLINE" if r.offline else "")
            self._event("TXN %s %s %s stan=%s auth=%s%s%s" % (r.ref, event_kind, status, r.stan, r.auth_code,
                                                              " offline" if r.offline else "", _cvm_note(r)))
        else:
            code = r.code or "SYS-09"
            pages = screens.declined(code)
            self._event("TXN %s %s DECLINED code=%s rc=%s stan=%s" % (r.ref, event_kind, code, r.rc, r.stan))
        self._proc = None
        self.panel.clear_keys()  # keys pressed while it was processed were not meant for the result
        shown = self._ticks()
        self.show(pages[0], "result")
        self.panel.beep()
        if refused:
            pass
        elif receipt:
            failed = await self._print(r)
            if failed:
                what = screens.approved_title(kind, r.offline) if r.approved else kind.upper() + " DECLINED"
                pages = pages + [screens.print_failed(failed, what)]
        elif self.app.hal.printer is not None:
            self._receipts.keep(r, self.training is not None, time.localtime())  # no paper now: printable later (F 4)
        self._close_waits(r.ref, r.code if not r.approved else None)
        await self._hold(pages, shown)

    async def _hold(self, pages, shown):
        """Keep a result on the display: at least result_min_ms, pages turning every page_ms,
        until a key or result_ms (longer when there are more pages). The key that closed it is
        acted on next when it starts something (a digit: a sale with that digit; F: the menu)."""
        cfg = self.cfg
        min_ms, page_ms = cfg["result_min_ms"], max(500, cfg["page_ms"])
        total = max(cfg["result_ms"], min_ms, page_ms * len(pages))
        i = 0
        turn = time.ticks_add(shown, page_ms)
        if self.screen != "result":
            self.show(pages[0], "result")
        while True:
            now = self._ticks()
            el = time.ticks_diff(now, shown)
            if el >= total:
                return None
            wait = total - el
            if len(pages) > 1:
                wait = min(wait, time.ticks_diff(turn, now))
            if el < min_ms:
                await asyncio.sleep_ms(max(1, min(wait, min_ms - el)))
            else:
                k = await self.panel.key(max(1, wait))
                if k is not None:
                    if k in _DIGITS or k == "F":
                        self._next = k
                    return k
            if len(pages) > 1 and time.ticks_diff(self._ticks(), turn) >= 0:
                i = (i + 1) % len(pages)
                self.show(pages[i], "result")
                turn = time.ticks_add(self._ticks(), page_ms)

    async def _print(self, r, duplicate=False, when=None):
        """Print the receipt's copies (a duplicate with its original time `when`); the failure code when the
        printer failed, else None."""
        app = self.app
        p = app.hal.printer
        if p is None:
            return None
        training = self.training is not None
        if when is None:
            when = time.localtime()
        if not duplicate:
            self._receipts.keep(r, training, when)
        t0 = self._ticks()
        failed = None
        for copy in printer.copies(r, self.cfg):
            try:
                await p.print_lines(printer.receipt(r, self.cfg, when, copy, training, duplicate))
            except Fault as f:
                # The payment stands; only the paper failed. Say so, and log it for the technician.
                app.diag.fault(f.code, "print", "receipt %s" % r.ref)
                app.event("PRINTER %s" % f.code)
                failed = f.code
                break
        if not duplicate:
            self._stage("print", time.ticks_diff(self._ticks(), t0))
        return failed

    async def _failed(self, kind, code, stage):
        self._event("FAIL %s code=%s stage=%s" % (kind.upper(), code, stage))
        self._proc = None
        self.panel.clear_keys()
        shown = self._ticks()
        pages = screens.declined(code)
        self.show(pages[0], "result")
        self.panel.beep()
        await self._hold(pages, shown)

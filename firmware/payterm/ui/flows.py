"""The cashier's flows on the panel: sale, refund, void, refund status, technician menu.

Every outcome ends on a screen that says what happened in the catalog's
words (display text on row 1, customer message on rows 2-3), and on a
console event, so a merchant never faces a silent terminal.

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

from payterm import codes
from payterm.errors import Fault
from payterm.printer import receipt
from payterm.ui import pinentry
from payterm.txn.currency import alpha, format_amount

_MAX_DIGITS = const(9)
_REF_DIGITS = const(6)
_NOTICE_MS = const(2000)  # how long NO SALE IN PROGRESS stays before the idle screen returns
_REMOVE = "REMOVE CARD"
_SWIPE_ONLY = ("CRD-14", "CRD-15")  # INSERT OR SWIPE CARD / CARD REFUSED TAP


def wrap(text, width=20, rows=2):
    """Customer message on the display rows, broken between words."""
    out = [""]
    for w in text.split():
        cur = out[-1]
        if not cur:
            out[-1] = w[:width]
        elif len(cur) + 1 + len(w) <= width:
            out[-1] = cur + " " + w
        elif len(out) < rows:
            out.append(w[:width])
        else:
            break
    while len(out) < rows:
        out.append("")
    return out


def _cvm_note(r):
    """` cvm=signature` on the console TXN line when the receipt needs more than the card."""
    cvm = getattr(r, "cvm", "none")
    return "" if cvm == "none" else " cvm=" + cvm


def _cust(code):
    return wrap(codes.lookup(code)[codes.CUSTOMER])


class Cashier:
    def __init__(self, app):
        self.app = app
        self.panel = app.panel
        self.cfg = app.cfg
        self.at_idle = False
        self._notice = 0
        self._head = ""
        self._err = None
        self._remove = False
        cards = getattr(app, "cards", None)
        if cards is not None:
            cards.on_ignored = self.card_ignored
            cards.on_field_empty = self._field_empty

    def idle(self):
        cur = self.cfg["currency"]
        pend = self.app.engine.saf.summary()["pending"]
        self.panel.show(["PAYTERM", "READY", "ENTER AMOUNT (%s)" % alpha(cur),
                         "OFFLINE QUEUE %d" % pend if pend else "F:MENU"])

    # ------------------------------------------------------------ reader input outside a sale
    def card_ignored(self, source):
        """A reader delivered a card while no sale waited for one: it was discarded."""
        self.app.event("CARD IGNORED %s: no sale in progress" % source)
        if self.at_idle:
            self._notice += 1
            self.panel.show(["PAYTERM", "NO SALE IN PROGRESS", "ENTER AMOUNT FIRST", ""])
            asyncio.create_task(self._end_notice(self._notice))

    async def _end_notice(self, n):
        await asyncio.sleep_ms(_NOTICE_MS)
        if self.at_idle and n == self._notice:
            self.idle()

    def _field_empty(self):
        """The card that was read has left the field: drop REMOVE CARD from the processing screen."""
        if self.panel.rows[3] == _REMOVE and not self.app.cards.armed:
            self.panel.show(self.panel.rows[:3] + [""])

    async def run(self):
        self.idle()
        while True:
            self.at_idle = True
            try:
                k = await self.panel.key()
            finally:
                self.at_idle = False
            if k in "0123456789":
                await self.payment("sale", first=k)
            elif k == "F":
                await self.function()
            # any other key (C: clear) just redraws the idle screen
            self.panel.clear_keys()
            self.idle()

    async def function(self):
        self.panel.show(["FUNCTION", "1 REFUND  2 VOID", "3 REFUND STATUS", "9 TECHNICIAN"])
        k = await self.panel.key(10000)
        if k == "1":
            await self.payment("refund")
        elif k == "2":
            await self.void()
        elif k == "3":
            await self.lookup()
        elif k == "9":
            await self.technician()

    # ------------------------------------------------------------ input
    async def _digits(self, title, render, first=None, maxlen=_MAX_DIGITS):
        """Collect digits until E; None on C or a 60 s pause (operator walked away)."""
        s = first or ""
        while True:
            self.panel.show([title, render(s), "", "E:OK C:CANCEL"])
            k = await self.panel.key(60000)
            if k is None or k == "C":
                return None
            if k == "E":
                return s
            if k == "B":
                s = s[:-1]
            elif k in "0123456789" and len(s) < maxlen:
                s += k

    def _money(self, s):
        cur = self.cfg["currency"]
        return format_amount(int(s or "0"), cur)

    # ------------------------------------------------------------ flows
    async def payment(self, kind, first=None):
        title = "SALE" if kind == "sale" else "REFUND"
        s = await self._digits(title, self._money, first)
        if s is None:
            return await self._failed(kind, "OPR-01", "input")
        amount = int(s or "0")
        if amount <= 0:
            return await self._failed(kind, "OPR-02", "input")
        cur = self.cfg["currency"]
        app = self.app
        self._head = title + " " + format_amount(amount, cur)
        self._err = None
        self._remove = False
        t0 = app.hal.ticks()
        card = await self._card(amount, cur)
        if isinstance(card, str):
            return await self._failed(kind, card, "card")
        waited = time.ticks_diff(app.hal.ticks(), t0)
        pin = await pinentry.ask(app, kind, card, self._head)  # None: no PIN asked
        if isinstance(pin, str):
            return await self._failed(kind, pin, "pin")
        lift = _REMOVE if card.source == "tap" and app.cards.awaiting_removal else ""
        if card.source == "tap":
            self.panel.beep()  # the read is done: the card may leave the field (EMV Book A 8.2)
        self.panel.show([self._head, "CARD " + card.masked[-8:], "PROCESSING", lift])
        app.event("CARD %s %s" % (card.source, card.masked))
        if kind == "sale":
            result = await app.engine.sale(card, amount, cur, pin=pin)
        else:
            result = await app.engine.refund(card, amount, cur)
        if result.ref:
            app.diag.wait(result.ref, "card", waited)
        await self._finish(result)

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
        head, err = self._head, self._err
        if err in _SWIPE_ONLY:
            # Above the contactless limit / card refused the tap: only a swipe can pay now.
            rows = [head, codes.lookup(err)[codes.DISPLAY], _REMOVE if self._remove else "", "C:CANCEL"]
        elif self._remove:
            if err:
                rows = [head, codes.lookup(err)[codes.DISPLAY], _REMOVE, "THEN TRY AGAIN"]
            else:
                rows = [head, _REMOVE, "THEN SWIPE OR TAP", "C:CANCEL"]
        elif err:
            rows = [head, codes.lookup(err)[codes.DISPLAY], "TRY AGAIN", "C:CANCEL"]
        else:
            rows = [head, "PRESENT CARD", "SWIPE OR TAP", "C:CANCEL"]
        self.panel.show(rows)

    async def void(self):
        ref = await self._digits("VOID: REF NO", lambda s: s or "_", maxlen=_REF_DIGITS)
        if ref is None:
            return await self._failed("void", "OPR-01", "input")
        self.panel.show(["VOID REF " + ref, "PROCESSING", "", ""])
        await self._finish(await self.app.engine.void(self._ref(ref)))

    async def lookup(self):
        ref = await self._digits("STATUS: REF NO", lambda s: s or "_", maxlen=_REF_DIGITS)
        if ref is None:
            return
        eng = self.app.engine
        try:
            t = eng.lookup(self._ref(ref))
        except Fault as f:
            return await self._failed("lookup", f.code, "input")
        amt = format_amount(t.get("amt", 0), t.get("cur") or self.cfg["currency"])
        st = eng.status_of(t)
        self.panel.show(["REF %s %s" % (t["ref"], t.get("kind", "").upper()), amt, "STATUS " + str(st).upper(),
                         "E:OK"])
        self.app.event("LOOKUP %s %s %s" % (t["ref"], t.get("kind", ""), st))
        await self.panel.key(self.cfg["result_ms"])

    def _ref(self, s):
        return "%06d" % int(s) if s.isdigit() else s

    async def technician(self):
        from payterm.ui.techmenu import TechMenu

        self.app.event("TECHMENU")
        menu = TechMenu(self.panel, self.panel.key, self.app.diag, self.app.selftests, self.app.pin.check,
                        self.app.info, getattr(self.app, "worker", None))
        await menu.run()

    # ------------------------------------------------------------ outcomes
    async def _finish(self, r):
        app = self.app
        kind = (r.kind or "sale").upper()
        if r.approved:
            head = "APPROVED" + (" OFFLINE" if r.offline else "")
            self.panel.show([head, r.amount_text() if r.currency else "", "AUTH %s" % (r.auth_code or "-"),
                             "REF %s" % (r.ref or "-")])
            app.event("TXN %s %s %s stan=%s auth=%s%s%s" % (r.ref, kind, head.replace(" ", "_"), r.stan, r.auth_code,
                                                            " offline" if r.offline else "",
                                                            _cvm_note(r)))
        else:
            code = r.code or "SYS-09"
            e = codes.lookup(code)
            self.panel.show([e[codes.DISPLAY], code] + _cust(code))
            app.event("TXN %s %s DECLINED code=%s rc=%s stan=%s" % (r.ref, kind, code, r.rc, r.stan))
        self.panel.beep()
        await self._print(r)
        if r.ref:
            app.diag.txn_done(r.ref)  # card, host and print stages are all in now
        await self.panel.key(self.cfg["result_ms"])

    async def _print(self, r):
        app = self.app
        p = app.hal.printer
        if p is None:
            return
        t0 = app.hal.ticks()
        try:
            await p.print_lines(receipt(r, self.cfg, time.localtime()))
        except Fault as f:
            # The payment stands; only the paper failed. Say so, and log it for the technician.
            app.diag.fault(f.code, "print", "receipt %s" % r.ref)
            app.event("PRINTER %s" % f.code)
            self.panel.show([codes.lookup(f.code)[codes.DISPLAY], f.code, "RECEIPT NOT PRINTED",
                             "PAYMENT " + ("APPROVED" if r.approved else "DECLINED")])
        if r.ref:
            app.diag.wait(r.ref, "print", time.ticks_diff(app.hal.ticks(), t0))

    async def _failed(self, kind, code, stage):
        e = codes.lookup(code)
        self.panel.show([e[codes.DISPLAY], code] + _cust(code))
        self.app.event("FAIL %s code=%s stage=%s" % (kind.upper(), code, stage))
        self.panel.beep()
        await self.panel.key(self.cfg["result_ms"])

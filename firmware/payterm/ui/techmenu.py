"""Technician menu on the terminal's own display and keypad.

Opened by the app after `F` `9`; asks the technician PIN first (lockout is
shared with the console through the same pin check). Pages:

1 STATUS   link quality (link, host, breaker, retries, last echo), offline
           queue, reversals, each failed advice (E retries them), version, uptime
2 FAULTS   the last faults, newest first, with their display text
3 QUEUE    pending reversals and advices, tries and when the next goes (E: send now)
4 RECENT   the newest transactions (masked card, amount, status, code)
5 WAITS    why customers waited: customer vs terminal time, the top cause of
           terminal time with its code and remedy, p50/p95 per stage (units)
6 COUNTS   failures per category and code (background work apart), link counters
7 TESTS    self-tests (E runs them)

Keys: `#` next page, `*` previous page, `8`/`2` scroll down/up within a page
(the title row says `8:MORE` while there is more below, `2:UP` at the end),
`E` the page's action, `C` exit. Each page is a title row plus three content
rows of at most 20 characters, so a long page scrolls instead of being cut.
"""
from micropython import const

from payterm import codes
from payterm.errors import Fault
from payterm.txn.currency import format_amount

_COLS = const(20)  # panel protocol: at most 20 characters a row (docs/architecture.md)
_ROWS = const(4)  # panel protocol: rows 0..3
_BODY = const(3)
_PIN_MAX = const(8)
_PAGES = ("STATUS", "FAULTS", "QUEUE", "RECENT", "WAITS", "COUNTS", "TESTS")
P_STATUS, P_FAULTS, P_QUEUE, P_RECENT, P_WAITS, P_COUNTS, P_TESTS = 0, 1, 2, 3, 4, 5, 6
_STATUS_KEYS = (("saf_pending", "SAF PENDING"), ("saf_failed", "SAF FAILED"), ("reversals_pending", "REVERSALS"),
                ("version", "VERSION"), ("board", "BOARD"))
_KINDS = {"sale": "SALE", "refund": "RFND", "void": "VOID"}
HELP = "#*:PAGE 8/2:SCROLL"


def _cut(s):
    s = str(s)
    return s[:_COLS]


def fmt_ms(ms):
    """A duration a person reads at a glance: 850ms, 4.1s, 2m05s."""
    ms = int(ms)
    if ms < 1000:
        return "%dms" % ms
    if ms < 60000:
        return "%d.%ds" % (ms // 1000, (ms % 1000) // 100)
    s = ms // 1000
    return "%dm%02ds" % (s // 60, s % 60)


def wrap(text, width=_COLS, indent=" "):
    """Lines of at most width, broken between words, continuation lines indented."""
    out = []
    cur = ""
    for w in text.split():
        if not cur:
            cur = (indent if out else "") + w
        elif len(cur) + 1 + len(w) <= width:
            cur += " " + w
        else:
            out.append(cur[:width])
            cur = indent + w
    if cur:
        out.append(cur[:width])
    return out


def wait_lines(w):
    """The wait-analysis page (also the basis of the console's `wait`): customer vs terminal first."""
    out = ["TXNS %d" % w.get("txns", 0)]
    for sd in ("customer", "terminal"):
        s = w.get(sd) or {}
        out.append("%s %d%% OF WAIT" % (sd.upper(), s.get("share", 0)))
        out.append(" p50 %s p95 %s" % (fmt_ms(s.get("p50", 0)), fmt_ms(s.get("p95", 0))))
    top = w.get("top") or []
    if top:
        t = top[0]
        out.append("MOST WAIT: %s" % t["stage"].upper())
        code = t.get("code")
        if code:
            e = codes.lookup(code)
            if t.get("normal"):
                out.append(" MOSTLY NO FAILURE")
                out.append("ADDS MOST %s %d%%" % (code, t.get("code_share", 0)))
            else:
                out.append("CAUSE %s %d%%" % (code, t.get("code_share", t["share"])))
            out.append(" " + e[codes.DISPLAY])
            out += wrap("DO: " + e[codes.REMEDY])
        else:
            out.append(" NO FAILURE CODE")
    stages = w.get("stages") or {}
    for st in sorted(stages, key=lambda k: (stages[k].get("side", "") != "customer", -stages[k]["total"])):
        s = stages[st]
        out.append("%s %s" % (st.upper(), "(CUST)" if s.get("side") == "customer" else "(TERM)"))
        out.append(" p50 %s p95 %s" % (fmt_ms(s["p50"]), fmt_ms(s["p95"])))
    return out


class TechMenu:
    def __init__(self, display, keys, diag, selftests, pin_check, info=None, queue=None, recent=None, link=None):
        """queue: the background worker (`items()`, `failed()`, `async retry(ref)`);
        recent(n): newest transactions (masked) as dicts; link(): link quality dict."""
        self.display = display
        self.keys = keys
        self.diag = diag
        self.selftests = selftests
        self.pin_check = pin_check
        self._info = info or (lambda: {})
        self.queue = queue
        self._recent = recent
        self._link = link
        self._results = None
        self._note = None

    async def run(self):
        """Returns True when the technician got in and left with `C`, False if the PIN failed or was cancelled."""
        if self.pin_check is not None and not await self._ask_pin():
            return False
        page = 0
        top = 0
        while True:
            body = self._page(page)
            if top > max(0, len(body) - _BODY):
                top = max(0, len(body) - _BODY)
            title = "%d/%d %s" % (page + 1, len(_PAGES), _PAGES[page])
            hint = "8:MORE" if top + _BODY < len(body) else "2:UP" if top else ""
            rows = [_cut(title + " " * (_COLS - len(title) - len(hint)) + hint if hint else title)]
            rows += [_cut(r) for r in body[top:top + _BODY]]
            while len(rows) < _ROWS:
                rows.append("")
            self.display.show(rows)
            k = await self.keys()
            if k == "C":
                self.display.show(["", "", "", ""])
                return True
            if k == "#":
                page = (page + 1) % len(_PAGES)
                top = 0
            elif k == "*":
                page = (page - 1) % len(_PAGES)
                top = 0
            elif k == "8":
                if top + _BODY < len(body):
                    top += 1
            elif k == "2":
                if top:
                    top -= 1
            elif k == "E" and page == P_TESTS:
                self.display.show([_cut(title), "RUNNING...", "", ""])
                self._results = await self.selftests.run()
                top = 0
            elif k == "E" and page == P_STATUS:
                await self._retry(failed_only=True)
                top = 0
            elif k == "E" and page == P_QUEUE:
                await self._retry(failed_only=False)
                top = 0

    async def _retry(self, failed_only):
        """Send failed advices again (each as a repeat, so the host books it once), or every queued item now."""
        if self.queue is None:
            return
        items = self.queue.failed() if failed_only else [t for _, t, _ in self.queue.items()]
        n = 0
        for t in items:
            try:
                await self.queue.retry(t["ref"])
                n += 1
            except Fault as f:
                self.diag.fault(f.code, "tech", "retry %s" % t["ref"])
        self._note = ("RETRYING %d" if failed_only else "SENDING %d NOW") % n

    async def _ask_pin(self):
        pin = ""
        msg = ""
        while True:
            self.display.show(["TECHNICIAN", "ENTER PIN:", "*" * len(pin), msg])
            k = await self.keys()
            if k == "C":
                return False
            if k == "B":
                pin = pin[:-1]
            elif "0" <= k <= "9" and len(k) == 1:
                if len(pin) < _PIN_MAX:
                    pin += k
            elif k == "E":
                try:
                    if self.pin_check(pin):
                        return True
                    msg = codes.lookup("OPR-05")[codes.DISPLAY]
                except Fault as f:
                    msg = codes.lookup(f.code)[codes.DISPLAY]
                    if f.code == "OPR-03":
                        self.display.show(["TECHNICIAN", msg, f.detail[:_COLS], "C: EXIT"])
                        while await self.keys() != "C":
                            pass
                        return False
                pin = ""

    # ------------------------------------------------------------ pages
    def _page(self, i):
        return (self._status, self._faults, self._queue, self._recent_page, self._waits, self._counts,
                self._tests)[i]()

    def _status(self):
        d = self._info()
        st = self.diag.stats()
        out = [HELP]
        if self._note:
            out.append(self._note)
            self._note = None
        failed = self.queue.failed() if self.queue is not None else ()
        for t in failed:  # first: what needs the technician
            out.append("FAILED %s %s" % (t["ref"], t.get("code") or ""))
        if failed:
            out.append("E: RETRY FAILED")
        ln = self._link() if self._link is not None else {}
        if ln:
            out.append("LINK %s" % ln.get("link", "?"))
            out.append("HOST %s" % ln.get("host", "?"))
            out.append("BREAKER %s" % ln.get("breaker", "?"))
            out.append("RETRIES %d TRIPS %d" % (ln.get("retries", 0), ln.get("breaker_trips", 0)))
            out.append("ECHO %s" % ln.get("last_echo", "-"))
        elif "link" in d:
            out.append("LINK %s" % d["link"])
        for k, label in _STATUS_KEYS:
            if k in d:
                out.append("%s %s" % (label, d[k]))
        out.append("UP %s BOOTS %d" % (fmt_ms(st.get("uptime_s", 0) * 1000), st.get("boot_count", 0)))
        lf = self.diag.last_fault()
        out.append("LAST %s" % (lf["code"] if lf else "-"))
        return out

    def _faults(self):
        out = []
        for f in self.diag.faults(10):
            out.append("%s x%d %s" % (f["code"], f["count"], f["stage"]))
            out.append(" " + codes.lookup(f["code"])[codes.DISPLAY])
        return out or ["NO FAULTS"]

    def _queue(self):
        if self.queue is None:
            return ["NO WORKER"]
        out = []
        if self._note:
            out.append(self._note)
            self._note = None
        items = self.queue.items()
        for kind, t, due in items:
            tries = t.get("rv_out", 0) if kind == "reversal" else t.get("tries", 0)
            out.append("%s %s" % ("REVERSAL" if kind == "reversal" else "ADVICE", t["ref"]))
            out.append(" %s TRY %d" % ((t.get("st") or "").upper(), tries))
            amt = t.get("amt", 0)
            try:
                amt = format_amount(amt, t.get("cur") or 978)
            except Fault:
                amt = str(amt)
            out.append(" %s NEXT %s" % (amt, "-" if due is None else fmt_ms(due)))
            if t.get("code"):
                out.append(" %s" % t["code"])
        if items:
            out.append("E: SEND ALL NOW")
        return out or ["NOTHING QUEUED"]

    def _recent_page(self):
        if self._recent is None:
            return ["NO JOURNAL"]
        out = []
        for t in self._recent(10):
            out.append("%s %s %s" % (t["ref"], _KINDS.get(t["kind"], t["kind"][:4].upper()), str(t["status"]).upper()))
            try:
                amt = format_amount(t["amt"], t["cur"])
            except Fault:
                amt = str(t["amt"])
            pan = t.get("pan") or ""
            out.append(" %s %s" % (amt, ("*" + pan[-4:]) if pan else ""))
            if t.get("code"):
                out.append(" %s" % t["code"])
                out.append(" " + codes.lookup(t["code"])[codes.DISPLAY])
        return out or ["NO TRANSACTIONS"]

    def _waits(self):
        return wait_lines(self.diag.wait_summary())

    def _counts(self):
        st = self.diag.stats()
        bg = st.get("background", {})
        out = []
        for k, v in sorted(st["categories"].items(), key=lambda kv: -kv[1]):
            out.append("%s %d" % (k.upper(), v))
        for k, v in sorted(st["codes"].items(), key=lambda kv: (-kv[1], kv[0])):
            b = bg.get(k, 0)
            out.append("%s %d" % (k, v - b) + (" BG %d" % b if b else ""))
        for k, v in sorted(st["counters"].items()):
            out.append("%s %d" % (k.upper(), v))
        for k, v in sorted(st["boots"].items()):
            out.append("BOOT %s %d" % (k.upper(), v))
        return out or ["NO COUNTS"]

    def _tests(self):
        res = self._results
        if res is None:
            return ["E: RUN SELF-TESTS"] + [n.upper() for n in self.selftests.names()]
        out = []
        for name, ok, code, _ in res:
            out.append(("%s PASS" % name.upper()) if ok else ("%s %s" % (name.upper(), code)))
        return out + ["E: RUN AGAIN"]

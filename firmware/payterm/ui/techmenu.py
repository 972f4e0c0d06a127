"""Technician menu on the terminal's own display and keypad.

Opened by the app after `F` `9`; asks the technician PIN first (lockout is
shared with the console through the same pin check). Pages: status (link,
offline queue, reversals, each failed advice), last faults, counts, wait
analysis, self-tests. Keys: `#` next page, `*` previous page, `8`/`2` scroll
down/up within a page, `E` run (self-test page) or retry the failed advices
(status page), `C` exit. Each page is a title row plus three content rows of at most 20
characters, so a long page scrolls instead of being cut.
"""
from micropython import const

from payterm import codes
from payterm.errors import Fault

_COLS = const(20)  # panel protocol: at most 20 characters a row (docs/architecture.md)
_ROWS = const(4)  # panel protocol: rows 0..3
_BODY = const(3)
_PIN_MAX = const(8)
_PAGES = ("STATUS", "LAST FAULTS", "COUNTS", "WAIT ANALYSIS", "SELF-TESTS")
_STATUS_KEYS = (("version", "VERSION"), ("board", "BOARD"), ("link", "LINK"), ("saf_pending", "SAF PENDING"),
                ("saf_failed", "SAF FAILED"), ("reversals_pending", "REVERSALS"))


def _cut(s):
    s = str(s)
    return s[:_COLS]


class TechMenu:
    def __init__(self, display, keys, diag, selftests, pin_check, info=None, queue=None):
        """queue: the background worker (`failed()`, `async retry(ref)`), for the failed advices."""
        self.display = display
        self.keys = keys
        self.diag = diag
        self.selftests = selftests
        self.pin_check = pin_check
        self._info = info or (lambda: {})
        self.queue = queue
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
            rows = [_cut(title)] + [_cut(r) for r in body[top:top + _BODY]]
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
            elif k == "E" and page == 4:
                self.display.show([_cut(title), "RUNNING...", "", ""])
                self._results = await self.selftests.run()
                top = 0
            elif k == "E" and page == 0:
                await self._retry_failed()
                top = 0

    async def _retry_failed(self):
        """Send every failed advice again (each goes as a repeat, so the host books it once)."""
        if self.queue is None:
            return
        n = 0
        for t in self.queue.failed():
            try:
                await self.queue.retry(t["ref"])
                n += 1
            except Fault as f:
                self.diag.fault(f.code, "tech", "retry %s" % t["ref"])
        self._note = "RETRYING %d" % n

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

    def _page(self, i):
        if i == 0:
            d = self._info()
            st = self.diag.stats()
            out = []
            if self._note:
                out.append(self._note)
                self._note = None
            for k, label in _STATUS_KEYS:
                if k in d:
                    out.append("%s %s" % (label, d[k]))
            failed = self.queue.failed() if self.queue is not None else ()
            for t in failed:
                out.append("FAILED %s %s" % (t["ref"], t.get("code") or ""))
            if failed:
                out.append("E: RETRY FAILED")
            out.append("UP %ds BOOTS %d" % (st.get("uptime_s", 0), st.get("boot_count", 0)))
            lf = self.diag.last_fault()
            out.append("LAST %s" % (lf["code"] if lf else "-"))
            return out
        if i == 1:
            out = []
            for f in self.diag.faults(10):
                out.append("%s x%d %s" % (f["code"], f["count"], f["stage"]))
                out.append(" " + codes.lookup(f["code"])[codes.DISPLAY])
            return out or ["NO FAULTS"]
        if i == 2:
            st = self.diag.stats()
            out = []
            for k, v in sorted(st["categories"].items(), key=lambda kv: -kv[1]):
                out.append("%s %d" % (k.upper(), v))
            for k, v in sorted(st["codes"].items(), key=lambda kv: (-kv[1], kv[0])):
                out.append("%s %d" % (k, v))
            for k, v in sorted(st["counters"].items()):
                out.append("%s %d" % (k.upper(), v))
            for k, v in sorted(st["boots"].items()):
                out.append("BOOT %s %d" % (k.upper(), v))
            return out or ["NO COUNTS"]
        if i == 3:
            w = self.diag.wait_summary()
            out = ["TXNS %d" % w["txns"]]
            for c in w["top"]:
                s = w["stages"].get(c["stage"], {})
                out.append("%s %d%%" % (c["stage"].upper(), c["share"]))
                out.append(" P50 %d P95 %d" % (s.get("p50", 0), s.get("p95", 0)))
            return out
        res = self._results
        if res is None:
            return ["E: RUN SELF-TESTS"] + [n.upper() for n in self.selftests.names()]
        out = []
        for name, ok, code, _ in res:
            out.append(("%s PASS" % name.upper()) if ok else ("%s %s" % (name.upper(), code)))
        return out + ["E: RUN AGAIN"]

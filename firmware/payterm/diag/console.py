"""Technician line protocol on the USB-serial console UART.

One command per line; the answer is zero or more lines, then `OK` or
`ERR <code> <text>` (docs/architecture.md, console UART protocol). Reading
commands are open (nothing here can show a full PAN: fault contexts are
scrubbed before they are stored); commands that destroy evidence (`clear`)
need the technician PIN, with the lockout of payterm.diag.pin. `export`
prints JSON lines for `payterm diag`, including the catalog entries of the
codes seen, so the host tool needs no copy of the firmware.

`LineReader` turns the UART's bytes into command lines and is strict about
them: a line longer than MAX_LINE bytes is dropped whole (up to its newline)
and answered with one ERR, invalid UTF-8 and stray control characters give
an ERR for that line, backspace/DEL edit the line, Ctrl-C/Ctrl-U discard it
and terminal escape sequences (arrow keys) are skipped. `handle` accepts a
command word only if it is short and plain, never echoes input raw, and
masks in its answer every run of 12 or more digits the line contained (a
pasted card number) and anything else that looks like a PAN. `serve` runs
both on a stream and survives any byte sequence.
"""
from micropython import const
import json
import time

from payterm import codes
from payterm.errors import Fault
from payterm.mask import mask_pan, pan_run, scrub

_AUTH_S = const(300)  # a PIN unlocks `clear` for this long
_FAULTS_DEFAULT = const(10)
_FAULTS_MAX = const(64)
_ERR_USAGE = "USAGE"
MAX_LINE = const(512)  # bytes in one command line (the longest command is far shorter)
MAX_WORD = const(16)  # characters in a command word
_LF = const(0x0A)
_CR = const(0x0D)
_BS = const(0x08)
_DEL = const(0x7F)
_TAB = const(0x09)
_ESC = const(0x1B)
_ETX = const(0x03)  # Ctrl-C: discard the line
_NAK = const(0x15)  # Ctrl-U: discard the line

HELP = (
    "help                 this list",
    "status               version, board, uptime, link, SAF, last fault",
    "faults [n]           last n faults (newest first)",
    "stats                counts per code/category, link quality, reboots",
    "link                 link quality: host, breaker, retries, last echo",
    "wait                 why customers waited: customer vs terminal time, p50/p95 per stage, causes",
    "recent [n]           newest transactions (masked card), newest first",
    "selftest [name]      run self-tests",
    "code <id>            catalog entry for a failure code",
    "export               everything as JSON lines",
    "pin <pin>            technician login (needed for clear)",
    "clear [faults|stats|all]  erase diagnostics (PIN)",
    "logout               end technician login",
    "saf                  reversals and offline sales not yet settled with the host",
    "retry <ref>          send a failed offline sale again now (as a repeat)",
    "mem                  heap after a collection: free, alloc, highest alloc so far",
)


def fmt_time(t):
    if not t:
        return "-"
    try:
        y, mo, d, h, mi, s = time.gmtime(t)[:6]
    except (OverflowError, ValueError):
        return str(t)
    return "%04d-%02d-%02d %02d:%02d:%02d" % (y, mo, d, h, mi, s)


def fault_line(f):
    e = codes.lookup(f["code"])
    s = "%s %s x%d %s %s" % (fmt_time(f["time"]), f["code"], f["count"], f["stage"] or "-", e[codes.DISPLAY])
    if f.get("ctx"):
        s += " [" + f["ctx"] + "]"
    return s


def utf8_error(buf, n):
    """Offset of the first invalid UTF-8 sequence in buf[:n] (RFC 3629), or -1.

    Written out because MicroPython's decode has no error handlers: with
    unicode checks it raises, without them it keeps the bytes.
    """
    i = 0
    while i < n:
        c = buf[i]
        if c < 0x80:
            i += 1
            continue
        lo, hi = 0x80, 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif c == 0xE0:
            k, lo = 2, 0xA0
        elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
            k = 2
        elif c == 0xED:
            k, hi = 2, 0x9F  # no UTF-16 surrogates
        elif c == 0xF0:
            k, lo = 3, 0x90
        elif 0xF1 <= c <= 0xF3:
            k = 3
        elif c == 0xF4:
            k, hi = 3, 0x8F
        else:
            return i
        if i + k >= n:
            return i
        if not (lo <= buf[i + 1] <= hi):
            return i
        for j in range(i + 2, i + k + 1):
            if not (0x80 <= buf[j] <= 0xBF):
                return i
        i += k + 1
    return -1


def why_line(w):
    """The answer to "why did the customer wait?": where, the failure code behind it, and what to do."""
    top = w.get("top") or []
    if not top:
        return ""
    t = top[0]
    s = "customers wait most at %s (%d%% of terminal time)" % (t["stage"], t["share"])
    code = t.get("code")
    if code:
        e = codes.lookup(code)
        if t.get("normal"):
            s += "; mostly without a failure; the failure adding most is %s %s (%d%%); do: %s" % (
                code, e[codes.DISPLAY], t.get("code_share", 0), e[codes.REMEDY])
        else:
            s += "; the cause is %s %s; do: %s" % (code, e[codes.DISPLAY], e[codes.REMEDY])
    else:
        s += "; no failure code behind it"
    c = w.get("customer") or {}
    if c.get("total"):
        stages = w.get("stages") or {}
        own = [(v["total"], k) for k, v in stages.items() if v.get("side") == "customer"]
        s += " (customers' own time: %d%% of all waiting%s)" % (
            c.get("share", 0), ", most at %s" % max(own)[1] if own else "")
    return s


def recent_line(t):
    """One transaction for the console: ref, kind, status, amount, masked card, code."""
    line = "%s %s %s amt=%d cur=%s pan=%s" % (t["ref"], t["kind"], str(t["status"]).replace(" ", "_"),
                                             t.get("amt", 0), t.get("cur", ""), t.get("pan") or "-")
    if t.get("code"):
        line += " code=%s" % t["code"]
    return line


class LineReader:
    """Console bytes -> ("line", text) and ("err", answer) items, one per line ended.

    Keeps at most MAX_LINE bytes of a line in a preallocated buffer.
    """

    def __init__(self, max_line=MAX_LINE):
        self.max = max_line
        self.buf = bytearray(max_line)
        self.n = 0
        self._long = False
        self._bad = None
        self._esc = 0  # 1 after ESC, 2 in a CSI sequence, 3 before the SS3 final byte

    def _reset(self):
        for i in range(self.n):
            self.buf[i] = 0
        self.n = 0
        self._long = False
        self._bad = None
        self._esc = 0

    def feed(self, data):
        out = []
        for b in data:
            if self._esc and b != _LF and b != _CR:
                if self._esc == 1:
                    self._esc = 2 if b == 0x5B else 3 if b == 0x4F else 0  # '[' CSI, 'O' SS3
                elif self._esc == 2:
                    if 0x40 <= b <= 0x7E:
                        self._esc = 0
                else:
                    self._esc = 0
                continue
            if b == _LF or b == _CR:
                r = self._end()
                if r is not None:
                    out.append(r)
                continue
            if self._long:
                continue
            if b == _BS or b == _DEL:
                self._backspace()
            elif b == _ETX or b == _NAK:
                self._reset()
            elif b == _ESC:
                self._esc = 1
            elif b < 0x20:
                if b == _TAB:
                    self._put(0x20)
                elif self._bad is None:
                    self._bad = "control character 0x%02x" % b
            else:
                self._put(b)
        return out

    def _put(self, b):
        if self.n >= self.max:
            self._long = True
            return
        self.buf[self.n] = b
        self.n += 1

    def _backspace(self):
        while self.n:
            self.n -= 1
            c = self.buf[self.n]
            self.buf[self.n] = 0
            if c & 0xC0 != 0x80:  # stop after the first byte of a character
                break

    def _end(self):
        n = self.n
        try:
            if self._long:
                return "err", "ERR %s line too long (max %d bytes)" % (_ERR_USAGE, self.max)
            if self._bad is not None:
                return "err", "ERR %s %s" % (_ERR_USAGE, self._bad)
            if not n:
                return None
            k = utf8_error(self.buf, n)
            if k >= 0:
                return "err", "ERR %s invalid UTF-8 at byte %d" % (_ERR_USAGE, k + 1)
            try:
                text = str(bytes(memoryview(self.buf)[:n]), "utf-8")
            except UnicodeError:
                return "err", "ERR %s invalid UTF-8" % _ERR_USAGE
            return "line", text
        finally:
            self._reset()


def _word_ok(w):
    """A command word: ASCII letters, digits and '_' only, at most MAX_WORD long."""
    if not w or len(w) > MAX_WORD:
        return False
    for ch in w:
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch == "_"):
            return False
    return True


def _echoed_runs(line):
    """Digit runs of 12 or more in a command line: never printed back unmasked."""
    out = []
    pos = 0
    while True:
        r = pan_run(line, pos, True)
        if r is None:
            return out
        out.append(line[r[0]:r[1]])
        pos = r[1]


def _mask_run(run):
    return mask_pan(run) if len(run) <= 19 else "*" * len(run)


class Console:
    def __init__(self, diag, selftests, pin_store, clock, info=None, queue=None, link=None, recent=None):
        """queue: the background worker (`saf`, `retry`); link(): link quality (`link`);
        recent(n): the newest transactions, masked (`recent`)."""
        self.diag = diag
        self.selftests = selftests
        self.pin = pin_store
        self._clock = clock
        self._info = info or (lambda: {})
        self._auth_until = 0
        self._peak = 0
        self.queue = queue  # the background worker (txn.worker.Worker): `saf` and `retry <ref>`
        self.link = link
        self.recent = recent

    def _status(self):
        d = dict(self._info())
        st = self.diag.stats()
        d["uptime_s"] = st.get("uptime_s", 0)
        d["boot_count"] = st.get("boot_count", 0)
        lf = self.diag.last_fault()
        d["last_fault"] = fault_line(lf) if lf else "-"
        return d

    async def handle(self, line):
        """One command line -> answer lines (the last is OK or ERR ...)."""
        out = await self._dispatch(line)
        runs = _echoed_runs(line)
        safe = []
        for o in out:
            if not o.startswith("{"):  # export's JSON comes from scrubbed stores; masking would break it
                for r in runs:
                    if r in o:
                        o = o.replace(r, _mask_run(r))
                o = scrub(o, False)
            safe.append(o)
        return safe

    async def _dispatch(self, line):
        parts = line.strip().split()
        if not parts:
            return []
        word = parts[0]
        if not _word_ok(word):
            return ["ERR %s unknown command (try help)" % _ERR_USAGE]
        cmd = word.lower()
        args = parts[1:]
        fn = getattr(self, "_c_" + cmd, None)
        if fn is None:
            return ["ERR %s unknown command %s (try help)" % (_ERR_USAGE, scrub(cmd))]
        try:
            out = fn(args)
            if out is not None and hasattr(out, "send"):
                out = await out
        except Fault as f:
            return ["ERR %s %s" % (f.code, codes.lookup(f.code)[codes.DISPLAY])]
        except ValueError:
            return ["ERR %s bad argument" % _ERR_USAGE]
        out = list(out or [])
        if out and (out[-1] == "OK" or out[-1].startswith("ERR ")):
            return out
        out.append("OK")
        return out

    async def serve(self, stream):
        """Run the line protocol on an asyncio stream (the console UART) forever.

        Whatever arrives, the task goes on: bad lines get an ERR, a command
        that raises gets ERR SYS-09 (and a fault the technician sees).
        """
        import asyncio

        rd = LineReader()
        while True:
            data = await stream.read(64)
            if not data:
                await asyncio.sleep_ms(20)
                continue
            for kind, text in rd.feed(data):
                if kind == "line":
                    try:
                        out = await self.handle(text)
                    except Exception as e:  # a console bug must not kill the console
                        self.diag.fault("SYS-09", "console", type(e).__name__)
                        out = ["ERR SYS-09 internal error"]
                else:
                    out = [text]
                for o in out:
                    stream.write(o.encode() + b"\n")
                    await stream.drain()

    def _c_mem(self, args):
        """`mem free=<n> alloc=<n> peak=<n>`: bytes of the GC heap after gc.collect().

        peak is the highest alloc this command has measured since boot (the live
        heap's high-water mark as sampled here, not a trace of every allocation).
        """
        import gc

        gc.collect()
        free, alloc = gc.mem_free(), gc.mem_alloc()
        if alloc > self._peak:
            self._peak = alloc
        return ["mem free=%d alloc=%d peak=%d" % (free, alloc, self._peak)]

    def _c_help(self, args):
        return list(HELP)

    def _c_status(self, args):
        d = self._status()
        return ["%s: %s" % (k, d[k]) for k in sorted(d)]

    def _c_faults(self, args):
        n = int(args[0]) if args else _FAULTS_DEFAULT
        n = max(1, min(n, _FAULTS_MAX))
        fs = self.diag.faults(n)
        if not fs:
            return ["no faults"]
        return [fault_line(f) for f in fs]

    def _c_stats(self, args):
        st = self.diag.stats()
        out = ["uptime_s %d total_s %d boots %d" % (st["uptime_s"], st["uptime_total_s"], st["boot_count"])]
        for k, v in sorted(st["boots"].items()):
            out.append("reboot %s %d" % (k, v))
        for k, v in sorted(st["categories"].items(), key=lambda kv: -kv[1]):
            out.append("category %s %d" % (k, v))
        for k, v in sorted(st["codes"].items(), key=lambda kv: (-kv[1], kv[0])):
            out.append("code %s %d %s" % (k, v, codes.lookup(k)[codes.DISPLAY]))
        for k, v in sorted(st["counters"].items()):
            out.append("link %s %d" % (k, v))
        return out

    def _c_wait(self, args):
        w = self.diag.wait_summary()
        out = ["txns %d" % w["txns"]]
        for sd in ("customer", "terminal"):
            s = w.get(sd) or {}
            out.append("%s share=%d%% p50=%dms p95=%dms total=%dms" % (sd, s.get("share", 0), s.get("p50", 0),
                                                                       s.get("p95", 0), s.get("total", 0)))
        for st in sorted(w["stages"]):
            s = w["stages"][st]
            out.append("stage %s %s n=%d p50=%dms p95=%dms max=%dms" % (st, s.get("side", "terminal"), s["n"],
                                                                       s["p50"], s["p95"], s["max"]))
        for c in w["top"]:
            out.append("top %s %d%% %dms %s" % (c["stage"], c["share"], c["total"], c.get("code") or "-"))
        for c in w.get("causes", ()):
            out.append("cause %s %s %d%% %dms" % (c["stage"], c.get("code") or "-", c["share"], c["total"]))
        why = why_line(w)
        if why:
            out.append("why " + why)
        return out

    def _c_link(self, args):
        fn = self.link
        if fn is None:
            return ["ERR %s no link" % _ERR_USAGE]
        d = fn()
        return ["%s: %s" % (k, d[k]) for k in sorted(d)]

    def _c_recent(self, args):
        fn = self.recent
        if fn is None:
            return ["ERR %s no journal" % _ERR_USAGE]
        n = int(args[0]) if args else _FAULTS_DEFAULT
        n = max(1, min(n, _FAULTS_MAX))
        out = [recent_line(t) for t in fn(n)]
        return out or ["no transactions"]

    async def _c_selftest(self, args):
        res = await self.selftests.run(args[0] if args else None)
        if not res:
            return ["no self-tests"]
        out = []
        for name, ok, code, detail in res:
            if ok:
                out.append(("PASS %s %s" % (name, detail)).rstrip())
            else:
                out.append(("FAIL %s %s %s %s" % (name, code, codes.lookup(code)[codes.DISPLAY], detail or "")).rstrip())
        return out

    def _c_code(self, args):
        if not args:
            return ["ERR %s code <id>" % _ERR_USAGE]
        cid = args[0].upper()
        if not codes.known(cid) and not cid.startswith("ISS-"):
            return ["ERR %s unknown code %s" % (_ERR_USAGE, cid[:8])]
        e = codes.lookup(cid)
        return ["%s: %s" % (k, v) for k, v in zip(codes.FIELDS, e)]

    def _c_export(self, args):
        out = []
        d = self._status()
        d["kind"] = "status"
        d["now"] = int(self._clock())  # the terminal's clock: `payterm diag` windows the per-day counts with it
        out.append(json.dumps(d))
        fs = self.diag.faults(_FAULTS_MAX)
        seen = {}
        if d.get("reversals_pending"):
            seen["HST-05"] = 1  # the report's warnings quote their remedies
        if d.get("saf_failed"):
            seen["HST-07"] = 1
        for f in fs:
            f = dict(f)
            f["kind"] = "fault"
            out.append(json.dumps(f))
            seen[f["code"]] = 1
        st = self.diag.stats()
        st["kind"] = "stats"
        out.append(json.dumps(st))
        for c in st["codes"]:
            seen[c] = 1
        w = self.diag.wait_summary()
        w["kind"] = "waits"
        w["why"] = why_line(w)
        w["history"] = self.diag.wait_history()
        out.append(json.dumps(w))
        for c in list(w.get("top") or []) + list(w.get("causes") or []):
            if c.get("code"):
                seen[c["code"]] = 1
        if self.link is not None:
            d = dict(self.link())
            d["kind"] = "link"
            out.append(json.dumps(d))
        q = self.queue
        if q is not None:
            for qkind, t, due in q.items():
                out.append(json.dumps({"kind": "queue", "what": qkind, "ref": t["ref"], "st": t.get("st"),
                                       "amt": t.get("amt", 0), "cur": t.get("cur", 0), "code": t.get("code"),
                                       "tries": t.get("rv_out", 0) if qkind == "reversal" else t.get("tries", 0),
                                       "next_ms": due}))
                if t.get("code"):
                    seen[t["code"]] = 1
        if self.recent is not None:
            for t in self.recent(_FAULTS_DEFAULT):
                t = dict(t)
                t["kind"], t["txn"] = "txn", t["kind"]
                out.append(json.dumps(t))
        for c in sorted(seen):
            e = {k: v for k, v in zip(codes.FIELDS, codes.lookup(c))}
            e["kind"] = "code"
            out.append(json.dumps(e))
        return out

    def _c_pin(self, args):
        if not args:
            return ["ERR %s pin <pin>" % _ERR_USAGE]
        self.pin.check(args[0])
        self._auth_until = self._clock() + _AUTH_S
        return ["technician login for %ds" % _AUTH_S]

    def _c_logout(self, args):
        self._auth_until = 0
        return []

    def _c_clear(self, args):
        if self._clock() >= self._auth_until:
            left = self.pin.locked_for() if hasattr(self.pin, "locked_for") else 0
            if left:
                raise Fault("OPR-03", "", "console")
            return ["ERR OPR-05 PIN required (pin <pin>)"]
        what = args[0] if args else "all"
        if what not in ("faults", "stats", "all"):
            return ["ERR %s clear [faults|stats|all]" % _ERR_USAGE]
        self.diag.clear(what)
        return ["cleared %s" % what]

    def _c_saf(self, args):
        q = self.queue
        if q is None:
            return ["ERR %s no background worker" % _ERR_USAGE]
        out = []
        for kind, t, due in q.items():
            tries = t.get("rv_out", 0) if kind == "reversal" else t.get("tries", 0)
            line = "%s %s %s tries=%d amt=%s" % (kind, t["ref"], t.get("st"), tries, t.get("amt", 0))
            if t.get("code"):
                line += " code=%s" % t["code"]
            line += " next=%s" % ("-" if due is None else "%dms" % due)
            out.append(line)
        return out or ["nothing queued"]

    async def _c_retry(self, args):
        q = self.queue
        if q is None:
            return ["ERR %s no background worker" % _ERR_USAGE]
        if len(args) != 1:
            return ["ERR %s retry <ref>" % _ERR_USAGE]
        ref = await q.retry(args[0])
        return ["retry %s queued" % ref]

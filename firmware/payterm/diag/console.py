"""Technician line protocol on the USB-serial console UART.

One command per line; the answer is zero or more lines, then `OK` or
`ERR <code> <text>` (docs/architecture.md, console UART protocol). Reading
commands are open (nothing here can show a full PAN: fault contexts are
scrubbed before they are stored); commands that destroy evidence (`clear`)
need the technician PIN, with the lockout of payterm.diag.pin. `export`
prints JSON lines for `payterm diag`, including the catalog entries of the
codes seen, so the host tool needs no copy of the firmware.
"""
from micropython import const
import json
import time

from payterm import codes
from payterm.errors import Fault

_AUTH_S = const(300)  # a PIN unlocks `clear` for this long
_FAULTS_DEFAULT = const(10)
_FAULTS_MAX = const(64)
_ERR_USAGE = "USAGE"

HELP = (
    "help                 this list",
    "status               version, board, uptime, link, SAF, last fault",
    "faults [n]           last n faults (newest first)",
    "stats                counts per code/category, link quality, reboots",
    "wait                 wait per stage p50/p95, top causes",
    "selftest [name]      run self-tests",
    "code <id>            catalog entry for a failure code",
    "export               everything as JSON lines",
    "pin <pin>            technician login (needed for clear)",
    "clear [faults|stats|all]  erase diagnostics (PIN)",
    "logout               end technician login",
    "saf                  reversals and offline sales not yet settled with the host",
    "retry <ref>          send a failed offline sale again now (as a repeat)",
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


class Console:
    def __init__(self, diag, selftests, pin_store, clock, info=None):
        self.diag = diag
        self.selftests = selftests
        self.pin = pin_store
        self._clock = clock
        self._info = info or (lambda: {})
        self._auth_until = 0

    def _status(self):
        d = dict(self._info())
        st = self.diag.stats()
        d["uptime_s"] = st.get("uptime_s", 0)
        d["boot_count"] = st.get("boot_count", 0)
        lf = self.diag.last_fault()
        d["last_fault"] = fault_line(lf) if lf else "-"
        return d

    async def handle(self, line):
        parts = line.strip().split()
        if not parts:
            return []
        cmd = parts[0].lower()
        args = parts[1:]
        fn = getattr(self, "_c_" + cmd, None)
        if fn is None:
            return ["ERR %s unknown command %s (try help)" % (_ERR_USAGE, cmd[:16])]
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
        for st in sorted(w["stages"]):
            s = w["stages"][st]
            out.append("stage %s n=%d p50=%dms p95=%dms max=%dms" % (st, s["n"], s["p50"], s["p95"], s["max"]))
        for c in w["top"]:
            out.append("top %s %d%% %dms" % (c["stage"], c["share"], c["total"]))
        return out

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
        out.append(json.dumps(d))
        fs = self.diag.faults(_FAULTS_MAX)
        seen = {}
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
        w["history"] = self.diag.wait_history()
        out.append(json.dumps(w))
        for c in sorted(seen):
            e = dict(zip(codes.FIELDS, codes.lookup(c)))
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
        q = getattr(self, "queue", None)
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
        q = getattr(self, "queue", None)
        if q is None:
            return ["ERR %s no background worker" % _ERR_USAGE]
        if len(args) != 1:
            return ["ERR %s retry <ref>" % _ERR_USAGE]
        ref = await q.retry(args[0])
        return ["retry %s queued" % ref]

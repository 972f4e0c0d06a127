"""`payterm diag`: read a terminal's diagnostics over its console UART.

Works on a real device's USB-serial port and on the emulator's console pty
(pyserial opens both). Sends `export`, parses the JSON lines and prints a
report a technician can read on the phone to support: warnings first
(failed advices, pending reversals, offline sales), why customers waited
(customer time against terminal time, the top cause with its code and
remedy), wait per stage, failures in a window (`--days`), link quality, the
offline queue, recent transactions and the last faults. `--html` also
writes a self-contained page with charts to attach to a ticket.
"""
import json
import os
import sys
import time

from payterm_tools import report


class ConsoleError(Exception):
    pass


class ConsoleClient:
    """Line protocol client: a command, then answer lines up to `OK`/`ERR ...`.

    Unsolicited `# ` lines and the echo of the command are skipped.
    """

    def __init__(self, port, baud=115200, timeout=10.0):
        import serial

        if "://" not in port and not os.path.exists(port):
            raise ConsoleError("no such port %s: check the cable and the port name (ls /dev/ttyUSB* /dev/ttyACM*; "
                               "`payterm emulate` prints its console port)" % port)
        try:
            self.ser = serial.serial_for_url(port, baudrate=baud, timeout=0.2)
        except (serial.SerialException, OSError, ValueError) as e:
            raise ConsoleError("cannot open %s: %s (check the port name, that no other program holds it, and your "
                               "permission on it: the dialout group)" % (port, _reason(e)))
        # Whatever the terminal printed before we opened the port (boot lines, answers
        # to someone else's commands) must not be read as the answer to ours: neither what
        # is buffered now nor what is still in flight (USB and UART buffers, the tail of an
        # answer), so wait for the line to go quiet too.
        self.ser.reset_input_buffer()
        self.timeout = timeout
        self._buf = b""
        self._drain(min(2.0, timeout))

    def _read(self):
        """What the port has (up to its 0.2 s timeout); a failed port is a ConsoleError."""
        import serial

        try:
            return self.ser.read(4096)
        except (serial.SerialException, OSError) as e:
            raise ConsoleError("the console port failed: %s (cable unplugged?)" % _reason(e))

    def _drain(self, limit, quiet=0.4):
        """Read and drop until nothing arrived for `quiet` seconds (at most `limit` seconds)."""
        end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            if self._read():
                last = time.monotonic()
        self.ser.reset_input_buffer()

    def close(self):
        self.ser.close()

    def _line(self, deadline):
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise ConsoleError("no answer from the terminal within %.0f s: is it powered and is this its console "
                                   "port? (try --timeout, or --baud if it is not 115200)" % self.timeout)
            self._buf += self._read()
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def command(self, cmd):
        """Answer lines (without the final OK); raises ConsoleError on ERR."""
        self.ser.write((cmd + "\n").encode())
        self.ser.flush()
        deadline = time.monotonic() + self.timeout
        out = []
        while True:
            line = self._line(deadline)
            if line.startswith("# ") or line == cmd or not line.strip():
                continue
            if line.startswith("> "):  # prompt + echo some consoles add
                continue
            if line == "OK":
                return out
            if line.startswith("ERR "):
                raise ConsoleError(line)
            out.append(line)


def _reason(e):
    s = str(e)
    if "[Errno" in s and "]" in s:
        s = s.split("]", 1)[1].strip().split(":")[0]
    return s or type(e).__name__


def parse_export(lines):
    """JSON lines of `export` -> {"status", "faults", "stats", "waits", "codes", "link", "queue", "recent", "now"}."""
    exp = {"status": {}, "faults": [], "stats": {}, "waits": {}, "codes": {}, "link": {}, "queue": [], "recent": [],
           "now": None}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        kind = obj.pop("kind", None)
        if kind == "fault":
            exp["faults"].append(obj)
        elif kind == "code":
            exp["codes"][obj["id"]] = obj
        elif kind == "queue":
            exp["queue"].append(obj)
        elif kind == "txn":
            exp["recent"].append(obj)
        elif kind in ("status", "stats", "waits", "link"):
            if kind == "status" and "now" in obj:
                exp["now"] = obj.pop("now")
            exp[kind] = obj
    return exp


def read_export(port, baud=115200, pin=None, timeout=10.0):
    c = ConsoleClient(port, baud, timeout)
    try:
        if pin:
            c.command("pin " + pin)
        exp = parse_export(c.command("export"))
        if not exp["status"]:
            # an export always starts with the status line: this answer was something else
            raise ConsoleError("the answer to export held no status line: another program is using the console "
                               "port, or this is not a payterm terminal")
        return exp
    finally:
        c.close()


def text_report(exp, days=report.DEFAULT_DAYS):
    st, w, s = exp["stats"], exp["waits"], exp["status"]
    codes = exp["codes"]
    out = ["payterm diagnostics", "==================="]
    for sev, text in report.warnings(exp):
        out.append("%s: %s" % (sev.upper(), text))
    for k, label, f in report.STATUS_LABELS:
        if k in s:
            out.append("  %-30s %s" % (label, f(s[k])))
    shown = {k for k, _, _ in report.STATUS_LABELS}
    for k in sorted(s):
        if k not in shown:
            out.append("  %-30s %s" % (report.humanize(k), s[k]))
    out += ["", "Why customers waited (%d payments)" % w.get("txns", 0)]
    for sd in ("customer", "terminal"):
        v = w.get(sd) or {}
        out.append("  %-9s %3d%% of all waiting  p50 %6d ms  p95 %6d ms per payment" % (
            sd, v.get("share", 0), v.get("p50", 0), v.get("p95", 0)))
    if w.get("why"):  # the terminal's own answer (payterm.diag.console.why_line)
        out.append("  " + w["why"])
    for c in w.get("causes") or []:
        out.append("  cause %-9s %-7s %3d%% of terminal time (%d ms)" % (c["stage"], c.get("code") or "-", c["share"],
                                                                      c["total"]))
    out += ["", "Wait per stage"]
    stages = w.get("stages", {})
    for name in sorted(stages, key=lambda k: (stages[k].get("side", "terminal") != "customer", -stages[k]["total"])):
        v = stages[name]
        out.append("  %-9s %-8s p50 %6d ms  p95 %6d ms  max %6d ms  (n=%d)" % (
            name, v.get("side", ""), v["p50"], v["p95"], v["max"], v["n"]))
    counts, window = report.window_counts(st, days, exp.get("now"))
    out += ["", "Top failures, %s (customer-facing + background)" % window]
    top = sorted(counts.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
    if not top:
        out.append("  none")
    for cid, (fg, bg) in top[:10]:
        e = codes.get(cid, {})
        out.append("  %5d  %-7s %-20s %s%s" % (fg + bg, cid, e.get("display", ""), e.get("category", ""),
                                               " (%d background)" % bg if bg else ""))
        if e.get("remedy"):
            out.append("                  remedy: %s" % e["remedy"])
    out += ["", "Failures per category (all time)"]
    for cat, n in sorted(st.get("categories", {}).items(), key=lambda kv: -kv[1]):
        out.append("  %5d  %s" % (n, cat))
    out += ["", "Link quality"]
    link = exp.get("link") or {}
    for k, label, f in report.LINK_LABELS:
        if k in link:
            out.append("  %-30s %s" % (label, f(link[k])))
    counters = st.get("counters", {})
    if not counters and not link:
        out.append("  no retries, breaker trips or host switches")
    for k, n in sorted(counters.items()):
        out.append("  %5d  %s (all time)" % (n, k))
    if exp.get("queue"):
        out += ["", "Offline queue and reversals"]
        for q in exp["queue"]:
            out.append("  %-8s %s %-8s %10s  tries %d  %s" % (q["what"], q["ref"], q.get("st", ""), report._amount(q),
                                                               q.get("tries", 0), q.get("code") or ""))
    if exp.get("recent"):
        out += ["", "Recent transactions (newest first)"]
        for t in exp["recent"]:
            out.append("  %s %-6s %-16s %10s  %s %s" % (t["ref"], t.get("txn", ""), t.get("status", ""),
                                                        report._amount(t), t.get("pan", ""), t.get("code") or ""))
    out += ["", "Reboots (%d, up %s, total %s)" % (st.get("boot_count", 0), report.fmt_s(st.get("uptime_s", 0)),
                                                   report.fmt_s(st.get("uptime_total_s", 0)))]
    for k, n in sorted(st.get("boots", {}).items(), key=lambda kv: -kv[1]):
        out.append("  %5d  %s" % (n, k))
    out += ["", "Last faults (newest first)"]
    for f in exp["faults"][:10]:
        e = codes.get(f["code"], {})
        out.append("  %s  %-7s x%-4d %-10s %-20s %s" % (report.fmt_time(f["time"]), f["code"], f["count"],
                                                      f["stage"] or "-", e.get("display", ""), f.get("ctx", "")))
    if not exp["faults"]:
        out.append("  none")
    return "\n".join(out)


def add_arguments(p):
    p.add_argument("--port", required=True, help="console UART (e.g. /dev/ttyUSB0 or the emulator's pty)")
    p.add_argument("--baud", type=int, default=115200, help="console baud rate (default 115200)")
    p.add_argument("--pin", help="technician PIN (logs in before reading)")
    p.add_argument("--days", type=int, default=report.DEFAULT_DAYS,
                   help="window of the failure counts, in days (default %d)" % report.DEFAULT_DAYS)
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report")
    p.add_argument("--json", metavar="PATH", help="also save the raw export")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer (default 10)")


def run(args):
    try:
        exp = read_export(args.port, args.baud, args.pin, args.timeout)
    except ConsoleError as e:
        print("payterm diag: %s" % e, file=sys.stderr)
        return 2
    print(text_report(exp, args.days))
    for path, write in ((args.json, lambda f: json.dump(exp, f, indent=1)),
                        (args.html, lambda f: f.write(report.html(exp, days=args.days)))):
        if not path:
            continue
        try:
            with open(path, "w") as f:
                write(f)
        except OSError as e:
            print("payterm diag: cannot write %s: %s (check the directory exists and is writable)"
                  % (path, e.strerror or e), file=sys.stderr)
            return 2
    if args.html:
        print("\nwrote %s" % args.html)
    return 0

"""`payterm diag`: read a terminal's diagnostics over its console UART.

Works on a real device's USB-serial port and on the emulator's console pty
(pyserial opens both). Sends `export`, parses the JSON lines and prints a
report a technician can read on the phone to support; `--html` also writes a
self-contained page with charts to attach to a ticket.
"""
import json
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

        self.ser = serial.serial_for_url(port, baudrate=baud, timeout=0.2)
        # Whatever the terminal printed before we opened the port (boot lines, answers
        # to someone else's commands) must not be read as the answer to ours.
        self.ser.reset_input_buffer()
        self.timeout = timeout
        self._buf = b""

    def close(self):
        self.ser.close()

    def _line(self, deadline):
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                raise ConsoleError("timeout waiting for the console")
            self._buf += self.ser.read(4096)
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


def parse_export(lines):
    """JSON lines of `export` -> {"status", "faults", "stats", "waits", "codes"}."""
    exp = {"status": {}, "faults": [], "stats": {}, "waits": {}, "codes": {}}
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
        elif kind in ("status", "stats", "waits"):
            exp[kind] = obj
    return exp


def read_export(port, baud=115200, pin=None, timeout=10.0):
    c = ConsoleClient(port, baud, timeout)
    try:
        if pin:
            c.command("pin " + pin)
        return parse_export(c.command("export"))
    finally:
        c.close()


def text_report(exp):
    st, w, s = exp["stats"], exp["waits"], exp["status"]
    codes = exp["codes"]
    out = ["payterm diagnostics", "==================="]
    for k in sorted(s):
        out.append("  %-12s %s" % (k, s[k]))
    out += ["", "Top failures"]
    top = sorted(st.get("codes", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    if not top:
        out.append("  none")
    for cid, n in top[:10]:
        e = codes.get(cid, {})
        out.append("  %5d  %-7s %-20s %s" % (n, cid, e.get("display", ""), e.get("category", "")))
        if e.get("remedy"):
            out.append("                  remedy: %s" % e["remedy"])
    out += ["", "Failures per category"]
    for cat, n in sorted(st.get("categories", {}).items(), key=lambda kv: -kv[1]):
        out.append("  %5d  %s" % (n, cat))
    out += ["", "Link quality"]
    counters = st.get("counters", {})
    if not counters:
        out.append("  no retries, breaker trips or host switches")
    for k, n in sorted(counters.items()):
        out.append("  %5d  %s" % (n, k))
    out += ["", "Reboots (%d, uptime %ds, total %ds)" % (st.get("boot_count", 0), st.get("uptime_s", 0),
                                                         st.get("uptime_total_s", 0))]
    for k, n in sorted(st.get("boots", {}).items(), key=lambda kv: -kv[1]):
        out.append("  %5d  %s" % (n, k))
    out += ["", "Wait per stage (%d transactions)" % w.get("txns", 0)]
    stages = w.get("stages", {})
    for name in sorted(stages, key=lambda k: -stages[k]["total"]):
        v = stages[name]
        out.append("  %-10s p50 %6d ms  p95 %6d ms  max %6d ms  (n=%d)" % (name, v["p50"], v["p95"], v["max"], v["n"]))
    if w.get("top"):
        out.append("  customers waited most on: " + ", ".join("%s %d%%" % (c["stage"], c["share"]) for c in w["top"]))
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
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--pin", help="technician PIN (logs in before reading)")
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report")
    p.add_argument("--json", metavar="PATH", help="also save the raw export")
    p.add_argument("--timeout", type=float, default=10.0)


def run(args):
    try:
        exp = read_export(args.port, args.baud, args.pin, args.timeout)
    except ConsoleError as e:
        print("payterm diag: %s" % e, file=sys.stderr)
        return 2
    print(text_report(exp))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(exp, f, indent=1)
    if args.html:
        with open(args.html, "w") as f:
            f.write(report.html(exp))
        print("\nwrote %s" % args.html)
    return 0

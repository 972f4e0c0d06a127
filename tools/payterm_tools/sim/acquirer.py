"""Acquirer simulator: ISO 8583 (pyiso8583, spec87 `default`) over TCP.

Frames carry a 2-byte big-endian length header, like the terminal's Link.
Each test scripts how the next requests are answered (approve, decline,
delay, drop, close, reset, garbage, truncated, duplicate, late, wrong STAN)
and reads back the ledger: what the host authorized, reversed, voided and
received by store-and-forward, to reconcile with the terminal's journal.
Full PANs never leave this module: the ledger and the log hold masked PANs.
"""
import itertools
import socket
import struct
import threading
import time

import iso8583
from iso8583.specs import default as SPEC

_HDR = struct.Struct(">H")
_MAX_FRAME = 4096

_KINDS_BY_MTI = {
    "0400": "reversal", "0401": "reversal", "0420": "reversal", "0421": "reversal",
    "0220": "advice", "0221": "advice",
    "0800": "echo", "0801": "echo",
}
# Fields copied from the request into the response (ISO 8583:1987 usage).
_ECHOED = ("3", "4", "7", "11", "12", "13", "22", "24", "41", "42", "49", "90")


def mask_pan(pan):
    """First 6 / last 4, as payterm.mask does on the terminal."""
    if not pan:
        return ""
    n = len(pan)
    if n < 13:
        return "*" * n
    return pan[:6] + "*" * (n - 10) + pan[-4:]


def response_mti(mti):
    return mti[:2] + str(int(mti[2]) + 1) + "0"


def _norm(action):
    """Action as a tuple (name, arg...)."""
    if isinstance(action, str):
        return (action,)
    return tuple(action)


def _kind(mti, pcode):
    k = _KINDS_BY_MTI.get(mti)
    if k:
        return k
    if pcode.startswith("20"):
        return "refund"
    if pcode.startswith("02"):
        return "void"
    return "auth"


def _orig_stan(req):
    """STAN of the transaction a reversal/void refers to (field 90, else 11)."""
    f90 = req.get("90", "")
    if len(f90) >= 10 and f90[4:10].isdigit() and f90[4:10] != "000000":
        return f90[4:10]
    return req.get("11", "")


class _Conn:
    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr
        self.lock = threading.Lock()
        self.open = True

    def send(self, data):
        with self.lock:
            if not self.open:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False

    def close(self, reset=False):
        with self.lock:
            if not self.open:
                return
            self.open = False
            try:
                if reset:
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


class AcquirerSim:
    """Actions for script(): "approve", ("decline", rc), ("delay", ms[, action]), "no_answer",
    "close", "reset", "garbage", "truncated", "duplicate", ("late", ms), "wrong_stan"
    (("wrong_stan", False): only the wrong one), "approve_close" (answer, then hang up).
    """

    def __init__(self, host="127.0.0.1", port=0, name="primary", auth_code="A1B2C3", on_request=None, tls=None):
        self.tls = tls  # (certfile, keyfile) to serve TLS
        self._tls_ctx = None
        self.tls_failures = 0
        self.host = host
        self.port = port
        self.name = name
        self.auth_code = auth_code
        self.on_request = on_request  # callable(entry) for the CLI log
        self.ledger = []
        self.requests = []  # raw log: {"t", "stan", "hex" (masked), "action", "error"}
        self._script = []
        self._lock = threading.Lock()
        self._rrn = itertools.count(1)
        self._conns = []
        self._threads = []
        self._timers = []
        self._srv = None
        self._running = False
        self.connections = 0

    # ------------------------------------------------------------ lifecycle
    @property
    def address(self):
        return (self.host, self.port)

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        self._srv = s
        if self.tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls[0], self.tls[1])
            self._tls_ctx = ctx
        self._running = True
        t = threading.Thread(target=self._accept_loop, name="acq-%s" % self.name, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._running = False
        for t in self._timers:
            t.cancel()
        if self._srv is not None:
            self._srv.close()
            self._srv = None
        for c in list(self._conns):
            c.close()
        for t in self._threads:
            t.join(timeout=2)
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ scripting
    def script(self, *actions, mti=None):
        """Queue behaviours for the next requests (only requests of `mti` if given)."""
        with self._lock:
            for a in actions:
                self._script.append((mti, _norm(a)))

    def _next_action(self, req_mti):
        with self._lock:
            for i, (want, action) in enumerate(self._script):
                if want is None or want == req_mti or (isinstance(want, (tuple, list)) and req_mti in want):
                    del self._script[i]
                    return action
        return ("approve",)

    # ------------------------------------------------------------ ledger views
    def authorized(self):
        """Approved sales (auth) not reversed or voided: what the host will settle."""
        cancelled = self.reversed_stans() | self.voided_stans()
        return [e for e in self.ledger
                if e["kind"] == "auth" and e["rc"] == "00" and not e["repeat"] and e["stan"] not in cancelled]

    def reversed_stans(self):
        return {e["orig_stan"] for e in self.ledger if e["kind"] == "reversal" and e["rc"] == "00"}

    def voided_stans(self):
        return {e["orig_stan"] for e in self.ledger if e["kind"] == "void" and e["rc"] == "00"}

    def advices(self):
        """Store-and-forward advices accepted, one per STAN (repeats collapsed)."""
        seen = {}
        for e in self.ledger:
            if e["kind"] == "advice" and e["rc"] == "00" and e["stan"] not in seen:
                seen[e["stan"]] = e
        return list(seen.values())

    def refunds(self):
        return [e for e in self.ledger if e["kind"] == "refund" and e["rc"] == "00" and not e["repeat"]]

    # ------------------------------------------------------------ server
    def _accept_loop(self):
        while self._running:
            try:
                sock, addr = self._srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(sock, addr)
            self.connections += 1
            self._conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _recv_exact(self, c, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = c.sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, c):
        if self._tls_ctx is not None:
            try:
                c.sock.settimeout(5)
                c.sock = self._tls_ctx.wrap_socket(c.sock, server_side=True)
                c.sock.settimeout(None)
            except OSError:
                self.tls_failures += 1
                c.close()
                return
        try:
            while self._running and c.open:
                hdr = self._recv_exact(c, 2)
                if hdr is None:
                    break
                (n,) = _HDR.unpack(hdr)
                body = self._recv_exact(c, n) if 0 < n <= _MAX_FRAME else None
                if body is None:
                    self.requests.append({"t": None, "error": "bad frame length %d" % n})
                    break
                self._handle(c, body)
        finally:
            c.close()

    def _frame(self, resp):
        data, _ = iso8583.encode(dict(resp), SPEC)
        return _HDR.pack(len(data)) + bytes(data)

    def _handle(self, c, body):
        try:
            req, _ = iso8583.decode(bytes(body), SPEC)
        except iso8583.DecodeError as e:
            self.requests.append({"t": None, "error": "decode: %s" % e.msg, "len": len(body)})
            c.close()
            return
        mti = req["t"]
        action = self._next_action(mti)
        name = action[0]
        if name == "delay":
            time.sleep(action[1] / 1000.0)
            action = _norm(action[2]) if len(action) > 2 else ("approve",)
            name = action[0]
        rc = action[1] if name == "decline" else "00"
        entry = self._record(req, rc, name)
        self.requests.append({"t": mti, "stan": req.get("11"), "action": name,
                              "pan_masked": entry["pan_masked"], "len": len(body)})
        if self.on_request:
            self.on_request(entry)
        resp = self._response(req, rc, entry)
        if name in ("approve", "decline"):
            c.send(self._frame(resp))
        elif name == "approve_close":
            # One-shot connections: answer, then hang up before the next request.
            c.send(self._frame(resp))
            time.sleep(0.05)
            c.close()
        elif name == "no_answer":
            pass
        elif name == "close":
            c.close()
        elif name == "reset":
            c.close(reset=True)
        elif name == "garbage":
            c.send(_HDR.pack(12) + b"\xffGARBAGE\x00\x01\x02\x03")
        elif name == "truncated":
            data, _ = iso8583.encode(dict(resp), SPEC)
            cut = bytes(data[: max(len(data) * 2 // 3, 5)])
            c.send(_HDR.pack(len(cut)) + cut)
        elif name == "duplicate":
            frame = self._frame(resp)
            c.send(frame)
            c.send(frame)
        elif name == "late":
            t = threading.Timer(action[1] / 1000.0, c.send, args=(self._frame(resp),))
            t.daemon = True
            self._timers.append(t)
            t.start()
        elif name == "wrong_stan":
            wrong = dict(resp)
            wrong["11"] = "%06d" % ((int(req.get("11", "0") or 0) + 500000) % 1000000)
            c.send(self._frame(wrong))
            if len(action) < 2 or action[1]:
                c.send(self._frame(resp))
        else:
            raise ValueError("unknown acquirer action %r" % (name,))

    def _record(self, req, rc, action):
        mti = req["t"]
        stan = req.get("11", "")
        kind = _kind(mti, req.get("3", ""))
        seen = any(e["stan"] == stan and e["kind"] == kind for e in self.ledger)
        amount = req.get("4")
        entry = {
            "mti": mti,
            "stan": stan,
            "amount": int(amount) if amount and amount.isdigit() else 0,
            "currency": req.get("49", ""),
            "pan_masked": mask_pan(req.get("2", "")),
            "rc": rc,
            "kind": kind,
            "repeat": mti[3] in "13" or seen,
            "outcome": "approved" if rc == "00" else "declined",
            "delivery": action,
            "rrn": "",
            "auth_code": "",
            "tid": req.get("41", ""),
            "orig_stan": _orig_stan(req) if kind in ("reversal", "void") else "",
            "host": self.name,
        }
        if kind != "echo":
            # A repeat of a known request gets the original RRN back.
            prior = next((e for e in self.ledger if e["stan"] == stan and e["kind"] == kind and e["rrn"]), None)
            entry["rrn"] = prior["rrn"] if prior else "%012d" % next(self._rrn)
            if rc == "00" and kind in ("auth", "refund", "void", "advice"):
                entry["auth_code"] = prior["auth_code"] if prior and prior["auth_code"] else self.auth_code
        self.ledger.append(entry)
        return entry

    def _response(self, req, rc, entry):
        resp = {"t": response_mti(req["t"])}
        for k in _ECHOED:
            if k in req:
                resp[k] = req[k]
        if req["t"].startswith("08"):
            if "70" in req:
                resp["70"] = req["70"]
        else:
            if entry["rrn"]:
                resp["37"] = entry["rrn"]
            if entry["auth_code"]:
                resp["38"] = entry["auth_code"]
        resp["39"] = rc
        return resp


# ---------------------------------------------------------------- CLI
def add_arguments(p):
    p.add_argument("--port", type=int, default=5000, help="TCP port on 127.0.0.1 (default 5000)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--name", default="primary")
    p.add_argument("--decline", metavar="RC", default=None, help="answer every request with this response code")
    p.add_argument("--delay", type=int, default=0, metavar="MS", help="answer every request after MS milliseconds")


def _print_entry(e):
    print("%s %s stan=%s kind=%s amount=%d %s pan=%s rc=%s rrn=%s%s" % (
        time.strftime("%H:%M:%S"), e["mti"], e["stan"], e["kind"], e["amount"], e["currency"],
        e["pan_masked"] or "-", e["rc"], e["rrn"] or "-", " repeat" if e["repeat"] else ""), flush=True)


class _Forever(AcquirerSim):
    """CLI variant: the configured behaviour applies to every request."""

    def __init__(self, args):
        super().__init__(args.host, args.port, args.name, on_request=_print_entry)
        base = ("decline", args.decline) if args.decline else ("approve",)
        self._default = ("delay", args.delay, base) if args.delay else base

    def _next_action(self, req_mti):
        with self._lock:
            if self._script:
                return super()._next_action(req_mti)
        return self._default


def run(args):
    sim = _Forever(args).start()
    print("acquirer %s listening on %s:%d (Ctrl-C to stop)" % (sim.name, sim.host, sim.port), flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        print("authorized=%d reversed=%d advices=%d" % (len(sim.authorized()), len(sim.reversed_stans()), len(sim.advices())))
    return 0

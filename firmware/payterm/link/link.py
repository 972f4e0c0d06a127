"""Framed ISO 8583 exchange with the acquirer over TCP (optionally TLS).

One request, one matching response. What matters for the money is whether
the request may have reached the host: every Fault raised here carries
`sent` (True = the host may have it, the outcome is unknown and the engine
must reverse; False = provably not delivered, safe to retry). The
Supervisor retries only `sent == False`.

MicroPython's asyncio.open_connection returns before the TCP handshake has
finished (a refused connect shows up on the first write), and with TLS the
handshake runs inside the first write/drain. So "connected" is only known
when the first write on a fresh connection has been accepted; an error there
means nothing was delivered.
"""
import asyncio
import errno
import time

from micropython import const

from payterm.errors import Fault
from payterm.link import iso8583

# Frame on TCP (docs/architecture.md "link"): 2-byte big-endian length, then the message.
_HDR = const(2)
_MAX_FRAME = const(4096)
_PEEK = const(64)  # bytes _idle_check looks at on a kept connection (the rest stays in the socket, in order)

_CONNECT_ERRNOS = tuple(
    getattr(errno, n)
    for n in ("ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "ENOTCONN", "ECONNABORTED")
    if hasattr(errno, n)
)


def _LinkFault(code, detail, sent):
    f = Fault(code, detail, "link")
    f.sent = sent
    return f


def _first_line(e):
    text = str(e).strip()
    return text.split("\n")[-1] if text else type(e).__name__


def _is_tls_error(e):
    # mbedTLS errors surface as OSError with a negative code (or a text arg).
    code = e.args[0] if e.args else None
    return not isinstance(code, int) or code < 0


def _der_certs(ca):
    """MicroPython's mbedTLS binding takes DER only: PEM blocks are converted."""
    if not ca.startswith(b"-----BEGIN"):
        return [ca]
    import binascii

    out = []
    for block in ca.split(b"-----BEGIN CERTIFICATE-----")[1:]:
        b64 = block.split(b"-----END CERTIFICATE-----")[0]
        out.append(binascii.a2b_base64(b"".join(b64.split())))
    return out


class Link:
    """Connection to the first reachable of `hosts`, kept open between exchanges.

    hosts: [(host, port), ...] primary first; a failed connect moves to the next.
    open_connection(host, port, ssl=None, server_hostname=None): asyncio.open_connection
    or a HAL equivalent. tls: None or {"ca": path or PEM/DER bytes,
    "server_hostname": name to verify, "ssl": the ssl module (from the HAL)}
    or {"context": a ready SSLContext, "server_hostname": ...}.
    """

    def __init__(self, hosts, open_connection, ticks, connect_timeout_ms, read_timeout_ms, tls=None, codec=None):
        if not hosts:
            raise ValueError("no acquirer hosts")
        self.hosts = list(hosts)
        self._open = open_connection
        self._ticks = ticks
        self.connect_timeout_ms = connect_timeout_ms
        self.read_timeout_ms = read_timeout_ms
        self.tls = tls
        self._ctx = None
        self.codec = codec or iso8583.codec()
        self.current = 0
        self._r = None
        self._w = None
        self._fresh = False
        self._pending = b""
        self._peek = bytearray(_PEEK)  # _idle_check reads into it: no 4 KB allocation per request
        self._lock = asyncio.Lock()
        self.ignored = 0
        self.host_switches = 0
        self.connects = 0
        self.stale = 0
        # Optional callable(key, n) for diagnostics counters (Diag.count).
        self.count = None
        # Optional callable() once a request is on its way (display: waiting for host).
        self.on_sent = None

    @property
    def host(self):
        return self.hosts[self.current]

    @property
    def connected(self):
        return self._w is not None

    def ready(self):
        """True when a connection is open and usable; drops one the host closed while idle."""
        if self._w is None:
            return False
        if self._fresh or self._idle_check():
            return True
        self.stale += 1
        self._note("stale_connection")
        w = self._w
        self._r = self._w = None
        self._pending = b""
        s = getattr(w, "s", None)
        try:
            (s or w).close()
        except Exception:
            pass
        return False

    def _note(self, key, n=1):
        if self.count is not None:
            self.count(key, n)

    def _switch_host(self):
        if len(self.hosts) > 1:
            self.current = (self.current + 1) % len(self.hosts)
            self.host_switches += 1
            self._note("host_switch")

    # ------------------------------------------------------------ TLS
    def _tls_context(self, tls):
        """SSL context from the `tls` dict; the ssl module comes from the HAL."""
        if self._ctx is not None:
            return self._ctx
        ctx = tls.get("context")
        if ctx is None:
            ssl = tls["ssl"]
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ca = tls.get("ca")
            if isinstance(ca, str):
                with open(ca, "rb") as f:
                    ca = f.read()
            if ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                for der in _der_certs(ca):
                    ctx.load_verify_locations(cadata=der)
        self._ctx = ctx
        return ctx

    # ------------------------------------------------------------ connection
    async def connect(self, timeout_ms=None):
        """Open a connection to the current host (NET-03/NET-04, never sent)."""
        timeout_ms = min(timeout_ms or self.connect_timeout_ms, self.connect_timeout_ms)
        if self._w is not None:
            return
        host, port = self.hosts[self.current]
        kw = {}
        tls = self.tls
        if tls:
            try:
                kw["ssl"] = self._tls_context(tls)
            except (OSError, ValueError) as e:
                raise _LinkFault("NET-04", "TLS setup: %s" % e, False)
            if tls.get("server_hostname"):
                kw["server_hostname"] = tls["server_hostname"]
        try:
            r, w = await asyncio.wait_for_ms(self._open(host, port, **kw), timeout_ms)
        except asyncio.TimeoutError:
            self._switch_host()
            raise _LinkFault("NET-03", "connect timeout %s:%d" % (host, port), False)
        except OSError as e:
            self._switch_host()
            if self.tls and _is_tls_error(e):
                raise _LinkFault("NET-04", "TLS %s:%d %s" % (host, port, e), False)
            raise _LinkFault("NET-03", "connect %s:%d %s" % (host, port, e), False)
        self._r, self._w = r, w
        self._fresh = True
        self.connects += 1

    async def close(self):
        w = self._w
        self._r = self._w = None
        self._pending = b""
        if w is not None:
            try:
                w.close()
                await w.wait_closed()
            except Exception:
                pass

    async def _send(self, frame):
        """Write one frame; returns once the bytes are handed to the stream."""
        w = self._w
        fresh = self._fresh
        self._fresh = False
        host, port = self.hosts[self.current]
        if w is None:  # closed under us (a cancelled exchange) before anything was written
            raise _LinkFault("NET-05", "connection closed before the send", False)
        try:
            w.write(frame)
        except ValueError as e:
            # mbedTLS reports certificate verification failures as ValueError.
            await self.close()
            if not self.tls:
                raise
            self._switch_host()
            raise _LinkFault("NET-04", "TLS %s:%d %s" % (host, port, _first_line(e)), False)
        except OSError as e:
            await self.close()
            if fresh:
                # Nothing was accepted by the kernel: the connect itself failed.
                self._switch_host()
                if self.tls and _is_tls_error(e):
                    raise _LinkFault("NET-04", "TLS %s:%d %s" % (host, port, e), False)
                raise _LinkFault("NET-03", "connect %s:%d %s" % (host, port, e), False)
            raise _LinkFault("NET-05", "write: %s" % e, False)
        try:
            await asyncio.wait_for_ms(w.drain(), self.connect_timeout_ms)
        except asyncio.TimeoutError:
            await self.close()
            if fresh:
                self._switch_host()
                raise _LinkFault("NET-04" if self.tls else "NET-03", "handshake timeout %s:%d" % (host, port), False)
            raise _LinkFault("NET-05", "write timeout", True)
        except ValueError as e:
            await self.close()
            if not (self.tls and fresh):
                raise
            self._switch_host()
            raise _LinkFault("NET-04", "TLS %s:%d %s" % (host, port, _first_line(e)), False)
        except OSError as e:
            await self.close()
            if fresh and self.tls and _is_tls_error(e):
                # The handshake runs in drain: no application data can have left.
                self._switch_host()
                raise _LinkFault("NET-04", "TLS %s:%d %s" % (host, port, e), False)
            if fresh and e.args and e.args[0] in _CONNECT_ERRNOS:
                self._switch_host()
                raise _LinkFault("NET-03", "connect %s:%d %s" % (host, port, e), False)
            raise _LinkFault("NET-05", "write: %s" % e, True)

    def _idle_check(self):
        """Look at a kept connection before reusing it.

        Hosts close idle connections; writing a request into such a socket
        would only show on the read (NET-05, ambiguous, a needless reversal).
        EOF here means: reconnect first. Bytes waiting here are answers to
        abandoned requests; they are kept and met (and ignored) by the next
        read. Needs the non-blocking socket of MicroPython's Stream (`.s`).
        """
        s = getattr(self._r, "s", None)
        if s is None:
            return True
        try:
            n = s.readinto(self._peek)
        except OSError:
            return False
        if n is None:
            return True
        if not n:
            return False
        self._pending += bytes(memoryview(self._peek)[:n])
        return True

    async def _readexactly(self, n, remaining):
        r = self._r
        if r is None:  # closed under us while the answer was awaited: the outcome is unknown
            raise _LinkFault("NET-05", "connection closed before the answer", True)
        p = self._pending
        if p:
            take = p[:n]
            self._pending = p[n:]
            if len(take) == n:
                return take
            return take + await asyncio.wait_for_ms(r.readexactly(n - len(take)), remaining)
        return await asyncio.wait_for_ms(r.readexactly(n), remaining)

    async def _read_frame(self, remaining):
        hdr = await self._readexactly(_HDR, remaining)
        n = (hdr[0] << 8) | hdr[1]
        if n == 0 or n > _MAX_FRAME:
            raise _LinkFault("HST-02", "frame length %d" % n, True)
        return await self._readexactly(n, remaining)

    # ------------------------------------------------------------ exchange
    async def exchange(self, fields, read_timeout_ms=None, sec=None):
        """Send `fields`, return the decoded matching response.

        sec: None, or the request's message keys (payterm.crypto.msgmac.Seal): the
        request goes out with its MAC as the last field, and the matching answer
        counts only with a valid host MAC over the bytes received. An answer
        without one (KEY-08) or with a wrong one (KEY-07) is no answer the terminal
        may act on: the outcome is unknown (`sent`), and the engine reverses.
        """
        async with self._lock:
            return await self._exchange(fields, read_timeout_ms or self.read_timeout_ms, sec)

    async def _exchange(self, fields, read_timeout_ms, sec=None):
        want_mti = iso8583.response_mti(fields["t"])
        want_stan = fields.get("11")
        want_tid = fields.get("41")
        self.ready()
        await self.connect()
        # Encoded last: the frame is a view of the codec's shared buffer and
        # Stream.write sends it or copies the rest before returning. The
        # buffer held the PAN/track/ICC data: zeroed as soon as it is sent.
        try:
            await self._send(self.codec.frame(fields, None if sec is None else sec.mac))
        finally:
            self.codec.wipe()
        if self.on_sent is not None:
            self.on_sent()
        deadline = time.ticks_add(self._ticks(), read_timeout_ms)
        mismatched = 0
        while True:
            remaining = time.ticks_diff(deadline, self._ticks())
            if remaining <= 0:
                await self.close()
                if mismatched:
                    raise _LinkFault("HST-03", "%d non-matching responses, none for STAN %s" % (mismatched, want_stan), True)
                raise _LinkFault("HST-01", "no response in %d ms" % read_timeout_ms, True)
            try:
                data = await self._read_frame(remaining)
            except asyncio.TimeoutError:
                # A cancelled read may have eaten half a frame: never reuse the stream.
                deadline = self._ticks()
                continue
            except EOFError:
                await self.close()
                raise _LinkFault("NET-05", "host closed the connection", True)
            except OSError as e:
                await self.close()
                raise _LinkFault("NET-05", "read: %s" % e, True)
            except Fault:
                await self.close()
                raise
            try:
                resp = self.codec.decode(data)
            except Fault as f:
                await self.close()
                f.sent = True
                raise
            if resp.get("t") != want_mti or resp.get("11") != want_stan or (want_tid is not None and resp.get("41") != want_tid):
                # Late answer to an abandoned request, a duplicate, or someone else's.
                mismatched += 1
                self.ignored += 1
                self._note("ignored_frame")
                continue
            if sec is not None:
                self._check_mac(sec, data, resp)
            return resp

    def _check_mac(self, sec, data, resp):
        """The host's MAC over the received bytes (the MAC field is the last 8)."""
        tag = iso8583.mac_of(resp)
        if tag is None:
            raise _LinkFault("KEY-08", "answer %s without a MAC" % resp.get("t"), True)
        try:
            if bytes(memoryview(data)[len(data) - len(tag):]) != tag:
                raise Fault("KEY-07", "MAC not the last field", "link")
            sec.check(memoryview(data)[:len(data) - len(tag)], tag)
        except Fault as f:
            raise _LinkFault(f.code, "answer %s: %s" % (resp.get("t"), f.detail), True)

"""A CPython ISO 8583 client that plays the terminal's security role against the acquirer simulator.

Each request gets a fresh AES DUKPT KSN of the simulator's test BDK in field 53,
an optional PIN block in field 52 and its MAC as the last field (64, or 128 with
a secondary bitmap), as payterm.link does (docs/keys.md); `ask` checks the
answer's MAC under the MAC-verification key of the request's KSN. Built on the
host HSM (tools/payterm_tools/sim/hsm.py), which test_hsm checks against the
published vectors and the firmware.
"""
import socket
import struct

import iso8583

from payterm_tools.sim import hsm
from payterm_tools.sim.acquirer import SPEC


class SealedClient:
    def __init__(self, addr, ikid=hsm.TEST_IKID, box=None, first_counter=1):
        self.s = socket.create_connection(addr, timeout=5)
        self.box = box or hsm.Hsm()
        self.ikid = ikid
        self.tc = first_counter - 1
        self.last_ksn = None
        self.last_raw = None

    def next_ksn(self):
        self.tc += 1
        while bin(self.tc).count("1") > hsm.MAX_WORK:
            self.tc += self.tc & -self.tc
        return hsm.ksn_hex(self.ikid, self.tc)

    def encode(self, msg, pin=None, mac=True, ksn=None, corrupt=False):
        """Wire bytes of `msg` sealed like the terminal's (pin: PIN digits for field 52)."""
        m = dict(msg)
        k = ksn or self.next_ksn()
        self.last_ksn = k
        m.setdefault("53", k)
        if pin is not None:
            pan = m.get("2") or m["35"].split("=")[0]
            m["52"] = self.box.encipher_pin(k, pin, pan).hex().upper()  # pyiso8583: binary fields as hex
        if not mac:
            data, _ = iso8583.encode(m, SPEC)
            return bytes(data)
        field = "128" if any(x.isdigit() and int(x) > 64 for x in m) else "64"
        m[field] = "00" * 8
        data, _ = iso8583.encode(m, SPEC)
        data = bytes(data)
        tag = self.box.request_mac(k, data[:-8])
        if corrupt:
            tag = bytes([tag[0] ^ 1]) + tag[1:]
        return data[:-8] + tag

    def send_raw(self, data):
        self.s.sendall(struct.pack(">H", len(data)) + data)

    def recv(self):
        hdr = self._exact(2)
        if hdr is None:
            return None
        raw = self._exact(struct.unpack(">H", hdr)[0])
        self.last_raw = raw
        return iso8583.decode(raw, SPEC)[0]

    def ask(self, msg, **kw):
        self.send_raw(self.encode(msg, **kw))
        return self.recv()

    def answer_mac_ok(self, resp=None):
        """True when the last answer carries a valid host MAC for the last request's KSN."""
        raw = self.last_raw
        tag = hsm.mac_tag(resp if resp is not None else iso8583.decode(raw, SPEC)[0])
        if tag is None or raw[-8:] != tag:
            return False
        return self.box.response_mac(self.last_ksn, raw[:-8]) == tag

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def close(self):
        self.s.close()

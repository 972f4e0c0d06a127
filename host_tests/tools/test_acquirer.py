"""Acquirer simulator seen from a plain CPython client (pyiso8583 + sockets)."""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import iso8583
import pytest
from iso8583.specs import default as SPEC

import mpy_runtimes
from payterm_tools.sim.acquirer import AcquirerSim

PAN = "5413330089010608"


class Client:
    def __init__(self, addr):
        self.s = socket.create_connection(addr, timeout=3)

    def send(self, msg):
        data, _ = iso8583.encode(dict(msg), SPEC)
        self.s.sendall(struct.pack(">H", len(data)) + bytes(data))

    def recv(self):
        hdr = self._exact(2)
        if hdr is None:
            return None
        return iso8583.decode(self._exact(struct.unpack(">H", hdr)[0]), SPEC)[0]

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def ask(self, msg):
        self.send(msg)
        return self.recv()

    def close(self):
        self.s.close()


def msg(t, stan, pcode="000000", amount=1500, **extra):
    m = {"t": t, "2": PAN, "3": pcode, "4": "%012d" % amount, "11": "%06d" % stan, "41": "TERM0001", "49": "840"}
    m.update(extra)
    return m


@pytest.fixture
def sim():
    s = AcquirerSim().start()
    yield s
    s.stop()


def test_script_is_per_mti_and_defaults_to_approve(sim):
    sim.script(("decline", "05"), mti="0220")
    c = Client(sim.address)
    a = c.ask(msg("0200", 1))
    assert a["t"] == "0210" and a["39"] == "00" and len(a["38"]) == 6 and len(a["37"]) == 12
    adv = c.ask(msg("0220", 2))
    assert adv["t"] == "0230" and adv["39"] == "05"
    assert c.ask(msg("0220", 3))["39"] == "00", "script consumed"
    c.close()


def test_ledger_reconciliation(sim):
    c = Client(sim.address)
    c.ask(msg("0200", 10))
    c.ask(msg("0200", 11, amount=999))
    c.ask(msg("0200", 12, amount=700))
    orig = "0200" + "000011" + "0" * 32
    assert c.ask(msg("0400", 13, **{"90": orig}))["t"] == "0410"
    assert c.ask(msg("0401", 13, **{"90": orig}))["39"] == "00", "repeat answered again"
    assert c.ask(msg("0200", 14, pcode="020000", **{"90": "0200000012" + "0" * 32}))["39"] == "00"  # void of 12
    c.ask(msg("0200", 15, pcode="200000", amount=300))  # refund
    c.ask(msg("0220", 16, amount=450))
    c.ask(msg("0221", 16, amount=450))
    echo = c.ask({"t": "0800", "11": "000017", "70": "301"})
    assert echo["t"] == "0810" and echo["70"] == "301" and "38" not in echo
    c.close()
    assert [(e["stan"], e["amount"], e["currency"]) for e in sim.authorized()] == [("000010", 1500, "840")]
    assert sim.reversed_stans() == {"000011"}
    assert sim.voided_stans() == {"000012"}
    assert [e["amount"] for e in sim.refunds()] == [300]
    assert [(e["stan"], e["amount"]) for e in sim.advices()] == [("000016", 450)]
    kinds = [(e["mti"], e["kind"], e["repeat"]) for e in sim.ledger]
    assert ("0401", "reversal", True) in kinds and ("0221", "advice", True) in kinds and ("0800", "echo", False) in kinds
    adv = [e for e in sim.ledger if e["kind"] == "advice"]
    assert adv[0]["rrn"] == adv[1]["rrn"], "a repeat gets the original RRN"
    assert all(e["pan_masked"] in ("541333******0608", "") for e in sim.ledger)
    assert PAN not in repr(sim.ledger) + repr(sim.requests)


def test_duplicate_wrong_stan_and_no_answer(sim):
    sim.script("duplicate", "wrong_stan", "no_answer")
    c = Client(sim.address)
    c.send(msg("0200", 20))
    assert c.recv()["11"] == "000020" and c.recv()["11"] == "000020"
    c.send(msg("0200", 21))
    assert c.recv()["11"] != "000021"
    assert c.recv()["11"] == "000021"
    c.send(msg("0200", 22))
    c.s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        c.recv()
    c.close()
    assert [e["stan"] for e in sim.authorized()] == ["000020", "000021", "000022"], "the host approved the silent one"


def test_close_reset_garbage_truncated(sim):
    sim.script("close", "reset", "garbage", "truncated")
    c = Client(sim.address)
    c.send(msg("0200", 30))
    assert c.recv() is None, "closed without an answer"
    c = Client(sim.address)
    c.send(msg("0200", 31))
    with pytest.raises(ConnectionResetError):
        c.recv()
    c = Client(sim.address)
    c.send(msg("0200", 32))
    n = struct.unpack(">H", c._exact(2))[0]
    with pytest.raises(iso8583.DecodeError):
        iso8583.decode(c._exact(n), SPEC)
    c.send(msg("0200", 33))
    n = struct.unpack(">H", c._exact(2))[0]
    with pytest.raises(iso8583.DecodeError):
        iso8583.decode(c._exact(n), SPEC)
    c.close()


def test_late_answer_arrives_after_delay(sim):
    sim.script(("late", 300), ("delay", 200, ("decline", "91")))
    c = Client(sim.address)
    t0 = time.monotonic()
    c.send(msg("0200", 40))
    assert c.recv()["11"] == "000040" and time.monotonic() - t0 >= 0.28
    t0 = time.monotonic()
    assert c.ask(msg("0200", 41))["39"] == "91" and time.monotonic() - t0 >= 0.18
    c.close()


def test_undecodable_request_is_logged_and_dropped(sim):
    c = Client(sim.address)
    c.s.sendall(struct.pack(">H", 6) + b"\x01\x02junk")
    assert c.recv() is None
    assert sim.requests[-1]["t"] is None and "decode" in sim.requests[-1]["error"]
    assert sim.ledger == []


def test_cli_serves_and_prints_masked(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ, PYTHONPATH=os.path.join(mpy_runtimes.REPO, "tools"), PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "payterm_tools.cli", "acquirer", "--port", str(port), "--decline", "51"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "listening on 127.0.0.1:%d" % port in p.stdout.readline()
        c = Client(("127.0.0.1", port))
        assert c.ask(msg("0200", 50))["39"] == "51"
        line = p.stdout.readline()
        c.close()
    finally:
        p.send_signal(signal.SIGINT)
        out = p.communicate(timeout=10)[0]
    assert "stan=000050" in line and "541333******0608" in line and "rc=51" in line
    assert PAN not in line + out
    assert "authorized=0" in out

"""Acquirer simulator seen from a plain CPython client (pyiso8583 + sockets)."""
import os
import re
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
from sealclient import SealedClient
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
    # security=False: raw, unsealed clients: the host rules; its HSM: test_acquirer_security.py
    s = AcquirerSim(security=False).start()
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
    assert c.ask(msg("0200", 14, pcode="020000", amount=700, **{"90": "0200000012" + "0" * 32}))["39"] == "00"  # void of 12
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
    # --port 0: the CLI binds a free port itself and says which (a port found free here and closed
    # again may be taken by another test's socket before the CLI binds it).
    env = dict(os.environ, PYTHONPATH=os.path.join(mpy_runtimes.REPO, "tools"), PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "payterm_tools.cli", "acquirer", "--port", "0", "--decline", "51"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = p.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", first)
        assert m and int(m.group(1)) > 0, first
        c = SealedClient(("127.0.0.1", int(m.group(1))))  # the CLI host checks MACs, as an acquirer does
        assert c.ask(msg("0200", 50))["39"] == "51"
        line = p.stdout.readline()
        c.close()
    finally:
        p.send_signal(signal.SIGINT)
        out = p.communicate(timeout=10)[0]
    assert "stan=000050" in line and "541333******0608" in line and "rc=51" in line and "mac=ok" in line
    assert PAN not in line + out
    assert "authorized=0" in out


# ---------------------------------------------------------------- the host's rules
F7 = "1201103000"


def fin(stan, amount=1500, pcode="000000", f7=F7, **extra):
    """A sale (or, by processing code, refund/void) as the terminal sends it, with field 7."""
    m = msg("0200", stan, pcode=pcode, amount=amount, **{"7": f7})
    m.update(extra)
    return m


def f90(stan, mti="0200", f7=F7):
    return mti + "%06d" % stan + f7 + "0" * 22


def rev(stan, mti="0400", orig_mti="0200", **extra):
    m = {"t": mti, "3": "000000", "4": "%012d" % 1500, "11": "%06d" % stan, "41": "TERM0001", "7": F7,
         "90": f90(stan, orig_mti)}
    m.update(extra)
    return m


def void(stan, orig, amount=1500, orig_mti="0200"):
    return {"t": "0200", "3": "020000", "4": "%012d" % amount, "11": "%06d" % stan, "41": "TERM0001", "49": "840",
            "7": F7, "90": f90(orig, orig_mti)}


def advice(stan, amount=450, mti="0220"):
    m = fin(stan, amount)
    m["t"] = mti
    return m


def held(sim, stan):
    return sim.held("TERM0001", "%06d" % stan)


def test_duplicate_transmission_is_answered_94_and_not_booked(sim):
    c = Client(sim.address)
    assert c.ask(fin(1))["39"] == "00"
    dup = c.ask(fin(1))
    assert dup["39"] == "94" and "38" not in dup
    assert held(sim, 1) == 1500, "booked once"
    first, second = sim.ledger
    assert (second["rc"], second["booked"], second["repeat"]) == ("94", False, False)
    assert second["rrn"] != first["rrn"]
    assert c.ask(fin(1, f7="1202090000"))["39"] == "00", "the same STAN on another day is a new transaction"
    assert c.ask(fin(2, pcode="200000", amount=300))["39"] == "00"
    assert c.ask(fin(2, pcode="200000", amount=300))["39"] == "94", "refunds alike"
    assert held(sim, 2) == -300
    c.close()


def test_reversal_of_an_unknown_original_is_25(sim):
    c = Client(sim.address)
    r = c.ask(rev(5))
    assert (r["t"], r["39"]) == ("0410", "25")
    c.ask(fin(6))
    assert c.ask(rev(6, f7="0101000000", **{"90": f90(6, f7="0101000000")}))["39"] == "25", "field 7 must match"
    assert c.ask(rev(6, orig_mti="0220"))["39"] == "25", "there is no advice 6"
    assert held(sim, 6) == 1500
    assert [e["booked"] for e in sim.ledger if e["kind"] == "reversal"] == [False, False, False]
    c.close()


def test_reversal_is_idempotent(sim):
    c = Client(sim.address)
    c.ask(fin(10))
    assert c.ask(rev(10))["39"] == "00"
    assert held(sim, 10) == 0
    assert c.ask(rev(10, "0401"))["39"] == "00"
    assert c.ask(rev(10))["39"] == "00", "a second 0400 is acknowledged, nothing reversed twice"
    revs = [e for e in sim.ledger if e["kind"] == "reversal"]
    assert [(e["booked"], e["repeat"]) for e in revs] == [(True, False), (False, True), (False, True)]
    assert revs[1]["note"] == "already reversed" and revs[0]["rrn"] == revs[1]["rrn"] == revs[2]["rrn"]
    # a 0401 whose 0400 never arrived reverses
    c.ask(fin(11))
    assert c.ask(rev(11, "0401"))["39"] == "00" and held(sim, 11) == 0
    # the original was declined: acknowledged, nothing held
    sim.script(("decline", "51"))
    assert c.ask(fin(12))["39"] == "51"
    assert c.ask(rev(12))["39"] == "00"
    assert sim.ledger[-1]["booked"] is False and "declined" in sim.ledger[-1]["note"]
    assert sim.holdings() == {("TERM0001", "000010"): 0, ("TERM0001", "000011"): 0, ("TERM0001", "000012"): 0}
    c.close()


def test_void_rules(sim):
    c = Client(sim.address)
    c.ask(fin(20, amount=700))
    assert c.ask(void(21, 99, 700))["39"] == "25", "unknown original"
    assert c.ask(void(22, 20, 701))["39"] == "13", "amount differs"
    assert c.ask(void(23, 20, 700))["39"] == "00"
    assert held(sim, 20) == 0 and sim.voided_stans() == {"000020"}
    assert c.ask(void(24, 20, 700))["39"] == "12", "already voided"
    assert c.ask(void(25, 23, 700))["39"] == "12", "a void is not voided, it is reversed"
    # the void reversed: the sale stands again and may be voided again
    assert c.ask(rev(23))["39"] == "00"
    assert held(sim, 20) == 700 and sim.voided_stans() == set()
    assert c.ask(void(26, 20, 700))["39"] == "00" and held(sim, 20) == 0
    # a reversed original cannot be voided; a declined one neither
    c.ask(fin(27, amount=50))
    c.ask(rev(27))
    assert c.ask(void(28, 27, 50))["39"] == "12"
    sim.script(("decline", "05"))
    c.ask(fin(29, amount=50))
    assert c.ask(void(30, 29, 50))["39"] == "12"
    bad = void(31, 20, 700)
    del bad["90"]
    assert c.ask(bad)["39"] == "30", "a void must name its original"
    booked = [e["stan"] for e in sim.ledger if e["kind"] == "void" and e["booked"]]
    assert booked == ["000023", "000026"]
    c.close()


def test_void_of_an_offline_sale_finds_its_advice(sim):
    c = Client(sim.address)
    assert c.ask(advice(40, 450))["39"] == "00"
    assert c.ask(void(41, 40, 450))["39"] == "00", "the terminal names the sale (0200); the host has the advice"
    assert held(sim, 40) == 0
    c.close()


def test_advice_booked_once_as_0220_and_0221_or_0221_only(sim):
    c = Client(sim.address)
    assert c.ask(advice(50))["39"] == "00"
    assert c.ask(advice(50, mti="0221"))["39"] == "00"
    assert c.ask(advice(50))["39"] == "00", "a second 0220 is a repeat too"
    assert c.ask(advice(51, mti="0221"))["39"] == "00"
    assert c.ask(advice(51, mti="0221"))["39"] == "00"
    assert held(sim, 50) == 450 and held(sim, 51) == 450
    assert [(e["stan"], e["booked"], e["repeat"]) for e in sim.ledger] == [
        ("000050", True, False), ("000050", False, True), ("000050", False, True),
        ("000051", True, True), ("000051", False, True)]
    assert len(sim.advices()) == 2
    # an advice the host declined is booked when it comes again
    sim.script(("decline", "96"), mti="0220")
    assert c.ask(advice(52))["39"] == "96" and held(sim, 52) == 0
    assert c.ask(advice(52, mti="0221"))["39"] == "00" and held(sim, 52) == 450
    # a reversal naming an advice un-books it
    assert c.ask(rev(50, orig_mti="0220"))["39"] == "00" and held(sim, 50) == 0
    c.close()


@pytest.mark.parametrize("what", ["no_card", "no_currency", "no_amount", "letters_in_amount", "reversal_no_90",
                                  "reversal_no_tid", "advice_no_amount", "advice_no_pcode"])
def test_missing_mandatory_fields_are_format_errors(sim, what):
    m = fin(60)
    if what == "no_card":
        del m["2"]
    elif what == "no_currency":
        del m["49"]
    elif what == "no_amount":
        del m["4"]
    elif what == "letters_in_amount":
        m["4"] = "00000000015A"
    elif what.startswith("reversal"):
        c = Client(sim.address)
        c.ask(fin(60))
        c.close()
        m = rev(60)
        del m["90" if what == "reversal_no_90" else "41"]
    else:
        m = advice(60)
        del m["4" if what == "advice_no_amount" else "3"]
    c = Client(sim.address)
    r = c.ask(m)
    c.close()
    assert r["39"] == "30" and "38" not in r
    assert sim.ledger[-1]["note"].startswith("format") and sim.ledger[-1]["booked"] is False
    expect = 1500 if what.startswith("reversal") else 0
    assert sum(sim.holdings().values()) == expect


def test_track2_alone_is_card_data(sim):
    m = fin(61)
    del m["2"]
    m["35"] = PAN + "=30122011143804400000"
    c = Client(sim.address)
    assert c.ask(m)["39"] == "00"
    c.close()
    assert sim.ledger[-1]["pan_masked"] == "541333******0608"
    assert PAN not in repr(sim.ledger)


def test_partial_approval(sim):
    sim.script(("partial", 600))
    c = Client(sim.address)
    r = c.ask(fin(70, amount=1500))
    assert (r["39"], r["4"]) == ("10", "000000000600") and r["38"]
    e = sim.ledger[-1]
    assert (e["amount"], e["requested"], e["rc"], e["outcome"], e["booked"]) == (600, 1500, "10", "approved", True)
    assert held(sim, 70) == 600
    assert c.ask(void(71, 70, 1500))["39"] == "13", "the host holds 600"
    assert c.ask(void(72, 70, 600))["39"] == "00" and held(sim, 70) == 0
    c.close()
    with pytest.raises(ValueError):
        sim.script(("partial", 0))


def test_no_rc_is_booked_and_answered_without_field_39(sim):
    sim.script("no_rc")
    c = Client(sim.address)
    r = c.ask(fin(80))
    c.close()
    assert r["t"] == "0210" and "39" not in r and r["11"] == "000080"
    assert held(sim, 80) == 1500 and sim.ledger[-1]["delivery"] == "no_rc"


def test_declined_reversal_leaves_the_charge_held(sim):
    c = Client(sim.address)
    c.ask(fin(90))
    sim.script(("decline", "96"), mti=("0400", "0401"))
    r = c.ask(rev(90))
    assert (r["t"], r["39"]) == ("0410", "96")
    assert held(sim, 90) == 1500 and sim.ledger[-1]["booked"] is False
    assert c.ask(rev(90, "0401"))["39"] == "00" and held(sim, 90) == 0
    c.close()


@pytest.mark.parametrize("action", ["approve_drop", "close"])
def test_approve_drop_books_then_drops_unanswered(sim, action):
    sim.script(action)
    c = Client(sim.address)
    c.send(fin(100))
    assert c.recv() is None, "closed without an answer"
    assert held(sim, 100) == 1500 and sim.ledger[-1]["outcome"] == "approved"
    c = Client(sim.address)
    assert c.ask(rev(100))["39"] == "00" and held(sim, 100) == 0


@pytest.mark.parametrize("action,field,bad", [("wrong_mti", "t", "0230"), ("wrong_tid", "41", "TERM9999")])
def test_wrong_mti_and_wrong_tid(sim, action, field, bad):
    sim.script(action, (action, False))
    c = Client(sim.address)
    c.send(fin(110))
    assert c.recv()[field] == bad
    right = c.recv()
    assert (right["t"], right["41"], right["39"]) == ("0210", "TERM0001", "00")
    c.send(fin(111))
    assert c.recv()[field] == bad
    c.s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        c.recv()
    c.close()
    assert held(sim, 110) == held(sim, 111) == 1500, "the host booked both"


def test_half_open_never_answers_and_ignores_the_connection(sim):
    sim.script("half_open")
    c = Client(sim.address)
    c.send(fin(120))
    c.s.settimeout(0.4)
    with pytest.raises(socket.timeout):
        c.recv()
    c.send(fin(121))
    with pytest.raises(socket.timeout):
        c.recv()
    assert [e["stan"] for e in sim.ledger] == ["000120"], "the first was booked, the next never reached the host"
    assert held(sim, 120) == 1500
    assert [r["action"] for r in sim.requests] == ["half_open", "ignored (half_open)"]
    d = Client(sim.address)
    assert d.ask(fin(122))["39"] == "00", "a new connection is served"
    c.close()
    d.close()


@pytest.mark.parametrize("action,length", [("huge_len", 0xFFFF), ("zero_len", 0)])
def test_bad_length_headers(sim, action, length):
    sim.script(action)
    c = Client(sim.address)
    c.send(fin(130))
    assert struct.unpack(">H", c._exact(2))[0] == length
    c.s.settimeout(0.4)
    got = b""
    with pytest.raises(socket.timeout):
        while True:
            chunk = c.s.recv(100)
            assert chunk, "the connection stays open"
            got += chunk
    assert len(got) == (20 if action == "huge_len" else 0)
    c.close()
    assert held(sim, 130) == 1500


def test_script_rejects_unknown_actions_and_arguments(sim):
    for bad in ("approve_maybe", ("decline", "999"), ("decline",), ("late",), ("partial", "x"), ("approve", 1),
                ("delay", 10, "nope")):
        with pytest.raises(ValueError):
            sim.script(bad)
    assert sim._script == []


def test_ledger_survives_a_restart(tmp_path):
    path = str(tmp_path / "state.acquirer.jsonl")
    with AcquirerSim(ledger_path=path, security=False) as a:
        c = Client(a.address)
        c.ask(fin(140))
        c.ask(fin(141, amount=200))
        c.ask(advice(142))
        c.close()
        rrns = [e["rrn"] for e in a.ledger]
    text = open(path).read()
    assert PAN not in text and "541333******0608" in text
    with AcquirerSim(ledger_path=path, security=False) as b:
        assert len(b.ledger) == 3 and held(b, 140) == 1500
        c = Client(b.address)
        assert c.ask(fin(140))["39"] == "94", "a duplicate is still a duplicate"
        assert c.ask(advice(142, mti="0221"))["39"] == "00"
        assert c.ask(rev(141))["39"] == "00", "the original is still known"
        r = c.ask(fin(143))
        c.close()
        assert r["37"] not in rrns and int(r["37"]) > max(int(x) for x in rrns)
        assert held(b, 141) == 0 and held(b, 142) == 450 and held(b, 143) == 1500
    with AcquirerSim(ledger_path=path, security=False) as again:
        assert len(again.ledger) == 7 and again.holdings() == b.holdings()
    with open(path, "a") as f:
        f.write('{"kind": "auth", "st')  # a line torn by a crash
    assert len(AcquirerSim(ledger_path=path, security=False).ledger) == 7


def test_two_addresses_of_one_host_share_the_book(sim):
    second = AcquirerSim(name="secondary", backend=sim, security=False).start()
    try:
        c = Client(sim.address)
        c.ask(fin(150))
        c.close()
        c = Client(second.address)
        assert c.ask(rev(150))["39"] == "00", "the secondary knows what the primary booked"
        c.close()
    finally:
        second.stop()
    assert held(sim, 150) == 0 and second.ledger is sim.ledger
    assert [e["host"] for e in sim.ledger] == ["primary", "secondary"]

"""The firmware's Link with message keys (MicroPython) against the acquirer simulator's HSM over TCP.

The terminal side loads the simulator's test BDK's initial key into real key
registers; every request gets its KSN and MAC, the simulator's HSM checks them
(ledger mac=ok) and MACs its answer, which the Link checks over the bytes it
received: a wrong or missing host MAC is an answer the terminal may not act on.
"""
import json
import subprocess

import pytest

import mpy_runtimes
from payterm_tools.emulate import ledger_line
from payterm_tools.sim.acquirer import AcquirerSim

DRIVER = r'''
import sys, json, asyncio, time
from binascii import unhexlify
from payterm.crypto import dukpt
from payterm.crypto.msgmac import Seal
from payterm.errors import Fault
from payterm.link.link import Link
from payterm.txn.state import State

BDK = unhexlify("FEDCBA9876543210F1F1F1F1F1F1F1F1")


async def main(cfg):
    ikid = unhexlify(cfg["ikid"])
    keys = dukpt.Dukpt(State(cfg["dir"], "keys"))
    keys.install(dukpt.initial_key(BDK, ikid), ikid)
    link = Link([tuple(cfg["host"])], asyncio.open_connection, time.ticks_ms, 1000, 1500)
    for op in cfg["ops"]:
        fields = dict(op["fields"])
        sec = None
        with keys.begin() as t:
            if op.get("seal", True):
                fields["53"] = t.field53()
                sec = Seal(t)
        try:
            r = await link.exchange(fields, sec=sec if op.get("check", True) else None)
            out = {"ok": True, "t": r["t"], "rc": r.get("39"), "mac": "64" in r or "128" in r}
        except Fault as f:
            out = {"ok": False, "code": f.code, "sent": getattr(f, "sent", None)}
        if sec is not None:
            sec.wipe()
        print("@@" + json.dumps(out))
    await link.close()


with open(sys.argv[1]) as _f:
    asyncio.run(main(json.load(_f)))
'''

PAN = "4761739001010010"


def sale(stan, amount=1000):
    return {"t": "0200", "2": PAN, "3": "000000", "4": "%012d" % amount, "11": "%06d" % stan,
            "41": "TERM0001", "49": "978", "35": PAN + "=30121010000000000000"}


def run(tmp_path, sim, ops, ikid="12345678A0B1C2D3"):
    cfg = {"host": list(sim.address), "ops": ops, "dir": str(tmp_path), "ikid": ikid}
    (tmp_path / "drv.py").write_text(DRIVER)
    (tmp_path / "link_cfg.json").write_text(json.dumps(cfg))
    p = subprocess.run([mpy_runtimes.binary("unix"), str(tmp_path / "drv.py"), str(tmp_path / "link_cfg.json")],
                       env=mpy_runtimes.env_for("unix"), cwd=mpy_runtimes.REPO, capture_output=True, text=True,
                       timeout=60)
    out = [json.loads(l[2:]) for l in p.stdout.splitlines() if l.startswith("@@")]
    assert p.returncode == 0 and len(out) == len(ops), p.stdout + p.stderr
    return out


@pytest.fixture
def sim():
    s = AcquirerSim(name="primary").start()
    yield s
    s.stop()


def test_sealed_request_is_verified_and_the_answer_mac_checked(tmp_path, sim):
    rev = {"t": "0400", "2": PAN, "3": "000000", "4": "000000001000", "11": "000001", "41": "TERM0001",
           "90": "0200000001" + "0" * 32}
    (a, b) = run(tmp_path, sim, [{"fields": sale(1)}, {"fields": rev}])
    assert a == {"ok": True, "t": "0210", "rc": "00", "mac": True}
    assert b["ok"] and b["t"] == "0410" and b["rc"] == "00", b  # field 90 -> both MACs in field 128
    assert [(e["mti"], e["mac"], e["booked"]) for e in sim.ledger] == [("0200", "ok", True), ("0400", "ok", True)]
    assert ledger_line(sim.ledger[0]).endswith(" pin=- mac=ok card=ok")


def test_wrong_or_missing_host_mac_is_an_ambiguous_answer(tmp_path, sim):
    sim.script("bad_mac", "no_mac")
    a, b = run(tmp_path, sim, [{"fields": sale(1)}, {"fields": sale(2)}])
    assert a == {"ok": False, "code": "KEY-07", "sent": True}
    assert b == {"ok": False, "code": "KEY-08", "sent": True}
    assert [e["booked"] for e in sim.ledger] == [True, True], "the host booked them: the terminal must reverse"


def test_host_refuses_what_it_cannot_authenticate(tmp_path, sim):
    out = run(tmp_path, sim, [
        {"fields": sale(1), "seal": False, "check": False},       # no field 53, no MAC
        {"fields": dict(sale(2), **{"53": "12345678A0B1C2D300000001"}), "seal": False, "check": False},  # no MAC
    ])
    assert [o["rc"] for o in out] == ["30", "63"]
    assert [(e["mac"], e["booked"]) for e in sim.ledger] == [("bad", False), ("bad", False)]
    assert [o["mac"] for o in out] == [False, True], "the answer is MACed when the KSN is usable"


def test_unknown_bdk_gets_an_answer_without_mac(tmp_path, sim):
    (a,) = run(tmp_path, sim, [{"fields": sale(1)}], ikid="99999999A0B1C2D3")
    assert a == {"ok": False, "code": "KEY-08", "sent": True}
    assert [(e["rc"], e["mac"], e["booked"]) for e in sim.ledger] == [("30", "bad", False)]

"""Link + Supervisor in MicroPython against the acquirer simulator over real TCP.

Each test starts AcquirerSim(s) in CPython, then one MicroPython process runs
a list of operations through Supervisor/Link with asyncio.open_connection and
prints one JSON line per operation.
"""
import json
import socket
import subprocess
import threading

import pytest

import mpy_runtimes
from payterm_tools.sim.acquirer import AcquirerSim

DRIVER = r'''
import sys, json, asyncio, time
from payterm.errors import Fault
from payterm.link.link import Link
from payterm.link.backoff import Backoff
from payterm.link.breaker import Breaker
from payterm.link.supervisor import Supervisor


class Diag:
    def __init__(self):
        self.counts = {}

    def count(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n


def _jsonable(d):
    out = {}
    for k, v in d.items():
        out[k] = ("hex:" + v.hex()) if isinstance(v, (bytes, bytearray)) else v
    return out


async def main(cfg):
    tls = cfg.get("tls")
    if tls:
        import ssl
        ca = tls["ca"]
        if tls.get("inline"):
            with open(ca, "rb") as f:
                ca = f.read()
        tls = {"ca": ca, "server_hostname": tls.get("server_hostname"), "ssl": ssl}
    link = Link([tuple(h) for h in cfg["hosts"]], asyncio.open_connection, time.ticks_ms,
                cfg.get("connect_ms", 1000), cfg.get("read_ms", 1000), tls=tls)
    statuses = []
    diag = Diag()
    sup = Supervisor(link, Backoff(cfg.get("base_ms", 50), cfg.get("cap_ms", 400)),
                     Breaker(cfg.get("threshold", 5), cfg.get("open_ms", 1000), time.ticks_ms),
                     time.ticks_ms, statuses.append, max_attempts=cfg.get("attempts", 4),
                     max_wait_ms=cfg.get("max_wait_ms", 10000), diag=diag,
                     min_read_ms=cfg.get("min_read_ms", 1000))
    for op in cfg["ops"]:
        if op.get("sleep"):
            await asyncio.sleep_ms(op["sleep"])
        t0 = time.ticks_ms()
        try:
            if op.get("echo"):
                r = await sup.echo()
            elif op.get("build"):
                from payterm.link import messages
                r = await sup.request(getattr(messages, op["build"])(*op.get("args", ()), **op.get("kw", {})))
            elif op.get("raw"):
                r = await link.exchange(op["fields"])
            else:
                r = await sup.request(op["fields"], op.get("deadline_ms"))
            out = {"ok": True, "resp": _jsonable(r)}
        except Fault as f:
            out = {"ok": False, "code": f.code, "sent": getattr(f, "sent", None), "detail": f.detail}
        out["ms"] = time.ticks_diff(time.ticks_ms(), t0)
        out["status"] = statuses[:]
        del statuses[:]
        out["counters"] = sup.counters()
        out["diag"] = diag.counts
        print("@@" + json.dumps(out))


with open(sys.argv[1]) as _f:
    _cfg = json.load(_f)
asyncio.run(main(_cfg))
'''

PAN = "4761739001010010"


def sale(stan, amount=1000):
    return {"t": "0200", "2": PAN, "3": "000000", "4": "%012d" % amount, "11": "%06d" % stan,
            "41": "TERM0001", "49": "978"}


def run_ops(tmp_path, hosts, ops, timeout=60, after=None, **cfg):
    """Run ops in one MicroPython process; after[i]() runs once op i has answered."""
    cfg.update(hosts=[list(h) for h in hosts], ops=ops)
    drv = tmp_path / "link_driver.py"
    drv.write_text(DRIVER)
    cfg_path = tmp_path / "link_cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    p = subprocess.Popen([mpy_runtimes.binary("unix"), str(drv), str(cfg_path)], env=mpy_runtimes.env_for("unix"),
                         cwd=mpy_runtimes.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    out, text = [], []
    try:
        for line in p.stdout:
            text.append(line)
            if line.startswith("@@"):
                out.append(json.loads(line[2:]))
                if after and len(out) - 1 in after:
                    after[len(out) - 1]()
        p.wait()
    finally:
        timer.cancel()
    assert p.returncode == 0 and len(out) == len(ops), "".join(text)
    return out


def free_port():
    """A port nobody listens on (connect is refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def sim():
    # security=False: MACs and keys: test_link_mac.py
    s = AcquirerSim(name="primary", security=False).start()
    yield s
    s.stop()


def test_approve_keeps_connection_and_ledger(tmp_path, sim):
    r = run_ops(tmp_path, [sim.address], [{"fields": sale(1)}, {"fields": sale(2, 2550)}])
    assert [x["ok"] for x in r] == [True, True]
    assert r[0]["resp"]["t"] == "0210" and r[0]["resp"]["39"] == "00" and r[0]["resp"]["11"] == "000001"
    assert r[0]["resp"]["37"] == sim.ledger[0]["rrn"] and r[0]["resp"]["38"]
    assert r[0]["status"] == ["CONNECTING", "WAITING FOR HOST"]
    assert r[1]["status"] == ["WAITING FOR HOST"], "second request reuses the connection"
    assert sim.connections == 1
    assert [(e["stan"], e["amount"], e["pan_masked"]) for e in sim.authorized()] == [
        ("000001", 1000, "476173******0010"), ("000002", 2550, "476173******0010")]
    assert PAN not in json.dumps(sim.ledger) + json.dumps(sim.requests)


def test_connection_closed_by_host_while_idle_is_reopened(tmp_path, sim):
    sim.script("approve_close")
    r = run_ops(tmp_path, [sim.address], [{"fields": sale(8)}, {"fields": sale(9), "sleep": 200}])
    assert r[1]["ok"], "not an ambiguous NET-05: the request was never written to the dead socket"
    assert r[1]["status"] == ["CONNECTING", "WAITING FOR HOST"]
    assert r[1]["counters"]["stale_connections"] == 1 and r[1]["counters"]["ambiguous"] == 0
    assert sim.connections == 2 and len(sim.ledger) == 2


def test_decline_passes_response_code(tmp_path, sim):
    sim.script(("decline", "51"))
    (r,) = run_ops(tmp_path, [sim.address], [{"fields": sale(7)}])
    assert r["ok"] and r["resp"]["39"] == "51" and "38" not in r["resp"]
    assert sim.authorized() == []


def test_no_answer_is_ambiguous_hst01_and_not_resent(tmp_path, sim):
    sim.script("no_answer")
    r = run_ops(tmp_path, [sim.address], [{"fields": sale(3)}, {"fields": sale(4)}], read_ms=400)
    assert r[0]["ok"] is False and r[0]["code"] == "HST-01" and r[0]["sent"] is True
    assert 350 <= r[0]["ms"] < 2000
    assert r[0]["counters"]["retries"] == 0
    assert [e["stan"] for e in sim.ledger] == ["000003", "000004"], "the timed-out request went out once"
    assert r[1]["ok"], "the next request reconnects"
    assert sim.connections == 2


@pytest.mark.parametrize("action,code", [("close", "NET-05"), ("reset", "NET-05"),
                                         ("garbage", "HST-02"), ("truncated", "HST-02")])
def test_broken_answers(tmp_path, sim, action, code):
    sim.script(action)
    r = run_ops(tmp_path, [sim.address], [{"fields": sale(5)}, {"fields": sale(6)}], read_ms=1500)
    assert r[0]["ok"] is False and r[0]["code"] == code and r[0]["sent"] is True, r[0]
    assert r[0]["ms"] < 1000, "reported at once, not after the read timeout"
    assert r[1]["ok"]
    assert len(sim.ledger) == 2


def test_wrong_stan_is_ignored_and_counted(tmp_path, sim):
    sim.script("wrong_stan", ("wrong_stan", False))
    r = run_ops(tmp_path, [sim.address], [{"fields": sale(10)}, {"fields": sale(11)}], read_ms=500)
    assert r[0]["ok"] and r[0]["resp"]["11"] == "000010"
    assert r[0]["counters"]["ignored_frames"] == 1 and r[0]["diag"]["ignored_frame"] == 1
    assert r[1]["ok"] is False and r[1]["code"] == "HST-03" and r[1]["sent"] is True


def test_duplicate_answer_is_ignored_by_next_exchange(tmp_path, sim):
    sim.script("duplicate")
    r = run_ops(tmp_path, [sim.address], [{"fields": sale(20)}, {"fields": sale(21)}])
    assert r[0]["resp"]["11"] == "000020" and r[1]["resp"]["11"] == "000021"
    assert r[1]["counters"]["ignored_frames"] == 1


def test_late_answer_after_timeout_does_not_confuse_next(tmp_path, sim):
    sim.script(("late", 600))
    r = run_ops(tmp_path, [sim.address], [{"fields": sale(30)}, {"fields": sale(31), "sleep": 500}], read_ms=300)
    assert r[0]["code"] == "HST-01" and r[0]["sent"] is True
    assert r[1]["ok"] and r[1]["resp"]["11"] == "000031"
    assert len(sim.authorized()) == 2, "host approved the late one: the engine must reverse it"


def test_delay_within_timeout_is_approved(tmp_path, sim):
    sim.script(("delay", 300))
    (r,) = run_ops(tmp_path, [sim.address], [{"fields": sale(40)}], read_ms=2000)
    assert r["ok"] and 250 <= r["ms"] < 2000


def test_primary_down_switches_to_secondary(tmp_path, sim):
    dead = ("127.0.0.1", free_port())
    r = run_ops(tmp_path, [dead, sim.address], [{"fields": sale(50)}, {"fields": sale(51)}])
    assert r[0]["ok"] and r[0]["counters"]["host_switches"] == 1
    assert r[0]["counters"]["host"] == "127.0.0.1:%d" % sim.port
    assert r[0]["status"] == ["CONNECTING", "RETRY 2/4", "WAITING FOR HOST"]
    assert r[0]["diag"] == {"host_switch": 1, "retry": 1}
    assert r[1]["ok"] and r[1]["status"] == ["WAITING FOR HOST"], "stays on the secondary"


def test_reversal_void_advice_refund_echo_reconcile(tmp_path, sim):
    s1, s2 = sale(60), sale(61, 2500)
    ops = [
        {"fields": s1},
        {"fields": s2},
        {"build": "reversal", "args": [s1]},
        {"build": "reversal", "args": [s1], "kw": {"repeat": True}},
        {"build": "void", "args": ["000062", s2]},
        {"build": "advice", "args": [sale(63, 700)], "kw": {"auth_code": "Y1OFFL"}},
        {"build": "advice", "args": [sale(63, 700)], "kw": {"repeat": True}},
        {"build": "refund", "args": ["000064", "TERM0001", 300, "978"], "kw": {"card": {"2": PAN}}},
        {"build": "network", "args": ["000065", "TERM0001"]},
        {"echo": True},
    ]
    r = run_ops(tmp_path, [sim.address], ops)
    assert all(x["ok"] for x in r), r
    assert [x["resp"]["t"] for x in r] == ["0210", "0210", "0410", "0410", "0210", "0230", "0230", "0210", "0810", "0810"]
    assert [e["kind"] for e in sim.ledger] == ["auth", "auth", "reversal", "reversal", "void", "advice", "advice",
                                               "refund", "echo", "echo"]
    assert sim.ledger[3]["repeat"] is True and sim.ledger[6]["repeat"] is True
    assert sim.reversed_stans() == {"000060"} and sim.voided_stans() == {"000061"}
    assert sim.authorized() == [], "the host settles nothing: one reversed, one voided"
    assert [(e["stan"], e["amount"]) for e in sim.advices()] == [("000063", 700)]
    assert [e["amount"] for e in sim.refunds()] == [300]


def test_breaker_opens_then_probe_closes_it(tmp_path):
    port = free_port()
    late_sim = AcquirerSim(port=port, name="late", security=False)
    try:
        ops = [{"fields": sale(70)}, {"fields": sale(71)}, {"fields": sale(72), "sleep": 1200}]
        r = run_ops(tmp_path, [("127.0.0.1", port)], ops, after={1: late_sim.start},
                    threshold=3, open_ms=1000, attempts=4, base_ms=20, cap_ms=40)
    finally:
        late_sim.stop()
    assert r[0]["code"] == "NET-03" and r[0]["sent"] is False
    assert r[0]["counters"]["breaker"] == "open" and r[0]["counters"]["breaker_trips"] == 1
    assert r[0]["counters"]["retries"] == 2, "third connect failure tripped the breaker"
    assert r[0]["diag"]["breaker_trip"] == 1
    assert r[1]["code"] == "HST-04" and r[1]["ms"] < 50, "open breaker fails fast"
    assert r[2]["ok"] and r[2]["counters"]["breaker"] == "closed"
    assert [e["kind"] for e in late_sim.ledger] == ["echo", "auth"], "echo probe before the sale"


def test_max_wait_bounds_the_answer(tmp_path):
    dead = [("127.0.0.1", free_port()), ("127.0.0.1", free_port())]
    (r,) = run_ops(tmp_path, dead, [{"fields": sale(80)}], attempts=50, threshold=100, base_ms=100, cap_ms=400,
                   max_wait_ms=1200, min_read_ms=100)
    assert r["code"] == "NET-03" and r["sent"] is False
    assert r["ms"] <= 1300
    assert r["counters"]["retries"] >= 3 and r["counters"]["host_switches"] >= 3


def test_connect_timeout_is_net03(tmp_path):
    # A listener whose backlog is full never completes the handshake.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(s.getsockname())
        fillers.append(c)
    try:
        (r,) = run_ops(tmp_path, [s.getsockname()], [{"fields": sale(90)}], connect_ms=300, attempts=1)
    finally:
        for c in fillers:
            c.close()
        s.close()
    assert r["code"] == "NET-03" and r["sent"] is False, r

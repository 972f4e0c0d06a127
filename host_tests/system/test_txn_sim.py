"""Transaction engine (MicroPython) against the acquirer simulator over real TCP.

The firmware's Engine, Supervisor and Link run in the unix MicroPython port
with a real state directory; the simulator (CPython, 127.0.0.1) scripts the
host's behaviour. After every test the simulator's ledger is reconciled with
the journal the terminal left on its "flash".
"""
import json
import os
import subprocess
import sys
import time

import pytest

import mpy_runtimes
from payterm_tools.sim.acquirer import AcquirerSim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ledger import read_journal, reconcile  # noqa: E402

DRIVER = r'''
import sys, json, time, asyncio
from payterm.errors import Fault
from payterm.link.link import Link
from payterm.link.backoff import Backoff
from payterm.link.breaker import Breaker
from payterm.link.supervisor import Supervisor
from payterm.txn.engine import Engine
from payterm.txn.journal import Journal
from payterm.txn.state import State
from payterm.txn.saf import Saf
from payterm.txn.worker import Worker


class Diag:
    def fault(self, code, stage="", ctx=""):
        print(json.dumps({"fault": code, "stage": stage}))
    def count(self, key, n=1):
        pass
    def wait(self, ref, stage, ms):
        pass
    def txn_done(self, ref):
        pass


async def main(state, hosts, ops, read_ms):
    # PAYTERM_CUT_AT / PAYTERM_FLASH_LOG: the host HAL's power cut at a flash operation.
    from payterm.hal.host import flash_hook_from_env
    flash_hook_from_env()
    hosts = [(h.split(":")[0], int(h.split(":")[1])) for h in hosts.split(",")]
    link = Link(hosts, asyncio.open_connection, time.ticks_ms, 1000, read_ms)
    sup = Supervisor(link, Backoff(20, 100), Breaker(3, 300, time.ticks_ms), time.ticks_ms, lambda t: None,
                     max_attempts=3, max_wait_ms=read_ms + 2000)
    j = Journal(state)
    cfg = {"terminal_id": "TERM0001", "merchant_id": "MERCHANT0000001", "currency": 978,
           "floor_limit": 3000, "saf_max_count": 5, "saf_max_total": 10000, "worker_wait_ms": read_ms + 1000,
           "retry_base_ms": 100, "retry_cap_ms": 400}
    e = Engine(sup, j, State(state), Saf(j), cfg, Diag(), time.time, time.ticks_ms, lambda t: None)
    w = Worker(e, sup, time.ticks_ms)
    last = None
    for op in ops:
        name = op[0]
        if name in ("sale", "refund"):
            print(json.dumps({"op": name, "sending": 1}))
            r = await getattr(e, name)(Card(), op[1], 978)
            last = r.ref
            print(json.dumps({"op": name, "approved": r.approved, "code": r.code, "rc": r.rc, "ref": r.ref,
                              "stan": r.stan, "offline": r.offline, "text": r.text}))
        elif name == "void":
            r = await e.void(last if op[1] == "last" else op[1])
            print(json.dumps({"op": name, "approved": r.approved, "code": r.code, "ref": r.ref, "stan": r.stan}))
        elif name == "recover":
            print(json.dumps({"op": name, "n": await e.recover()}))
        elif name == "work":
            for _ in range(op[1] if len(op) > 1 else 30):
                if not e.reversals() and not e.saf.pending():
                    break
                if not await w.work_once():
                    await asyncio.sleep_ms(min(w.next_due_ms() or 0, 400))
            print(json.dumps({"op": name, "reversals": len(e.reversals()), "saf": len(e.saf.pending())}))
        elif name == "lookup":
            t = e.lookup(last if op[1] == "last" else op[1])
            print(json.dumps({"op": name, "status": e.status_of(t), "kind": t["kind"]}))
        elif name == "record":
            t = e.lookup(op[1])
            print(json.dumps({"op": name, "status": e.status_of(t), "kind": t["kind"], "st": t.get("st")}))
        elif name == "sleep":
            await asyncio.sleep_ms(op[1])
    await link.close()


class Card:
    masked = "476173******0010"
    entry_mode = "901"
    def auth_fields(self):
        return {"2": "4761739001010010", "14": "3012", "35": "4761739001010010=30122011143804400000"}
    def wipe(self):
        pass


asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])))
'''


@pytest.fixture
def host():
    # security=False: the engine here has no keys (the money rules); sealed: unit/test_engine_sealed.py, system/test_pin_system.py
    a = AcquirerSim(name="primary", security=False).start()
    yield a
    a.stop()


@pytest.fixture
def host2():
    a = AcquirerSim(name="secondary", auth_code="Z9Y8X7", security=False).start()
    yield a
    a.stop()


class Terminal:
    def __init__(self, tmp_path, hosts):
        self.state = str(tmp_path / "flash")
        os.makedirs(self.state, exist_ok=True)
        self.driver = str(tmp_path / "txn_driver.py")
        with open(self.driver, "w") as f:
            f.write(DRIVER)
        self.hosts = hosts

    def _args(self, ops, read_ms):
        addr = ",".join("%s:%d" % h.address for h in self.hosts)
        return [mpy_runtimes.binary("unix"), self.driver, self.state, addr, json.dumps(ops), str(read_ms)]

    def run(self, *ops, read_ms=1500, cut=None):
        """Run ops in one boot; with cut="k[:mode]" the power goes at flash operation k (None if it did)."""
        env = mpy_runtimes.env_for("unix")
        if cut:
            env["PAYTERM_CUT_AT"] = cut
        p = subprocess.run(self._args(ops, read_ms), env=env, cwd=mpy_runtimes.REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        if cut and p.returncode == -9:
            assert "4761739001010010" not in p.stdout
            return None
        assert p.returncode == 0, p.stdout
        out = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        assert "4761739001010010" not in p.stdout
        return [o for o in out if "op" in o and "sending" not in o], [o["fault"] for o in out if "fault" in o]

    def start(self, *ops, read_ms=1500):
        return subprocess.Popen(self._args(ops, read_ms), env=mpy_runtimes.env_for("unix"), cwd=mpy_runtimes.REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def journal(self):
        return read_journal(self.state)


def _reconcile(term, *hosts):
    ledger = [e for h in hosts for e in h.ledger]
    with open(os.path.join(term.state, "journal.log"), "rb") as f:
        assert b"4761739001010010" not in f.read()
    return reconcile(term.journal(), ledger)


def test_approval(tmp_path, host):
    t = Terminal(tmp_path, [host])
    (r,), faults = t.run(["sale", 1234])
    assert r["approved"] and r["rc"] == "00" and not r["offline"]
    e = host.ledger[0]
    assert (e["mti"], e["amount"], e["currency"], e["stan"], e["pan_masked"]) == \
        ("0200", 1234, "978", r["stan"], "476173******0010")
    assert faults == []
    assert _reconcile(t, host) == {"sale_approved": 1}


@pytest.mark.parametrize("rc", ["05", "51", "14", "54", "57", "91", "96", "N7", "82"])
def test_decline_maps_to_issuer_code(tmp_path, host, rc):
    host.script(("decline", rc))
    t = Terminal(tmp_path, [host])
    (r,), faults = t.run(["sale", 500])
    assert (r["approved"], r["code"], r["rc"]) == (False, "ISS-" + rc, rc)
    assert faults == ["ISS-" + rc]
    assert _reconcile(t, host) == {"sale_declined": 1}


def test_timeout_leads_to_reversal_repeated_until_acknowledged(tmp_path, host):
    host.script("no_answer")
    host.script("no_answer", "no_answer", mti=("0400", "0401"))
    t = Terminal(tmp_path, [host])
    (r, w), faults = t.run(["sale", 2500], ["work"], read_ms=800)
    assert (r["approved"], r["code"]) == (False, "HST-01")
    assert w["reversals"] == 0
    revs = [e for e in host.ledger if e["kind"] == "reversal"]
    assert [e["mti"] for e in revs] == ["0400", "0401", "0401"]
    assert {e["orig_stan"] for e in revs} == {r["stan"]}
    assert _reconcile(t, host) == {"sale_reversed": 1}


def test_outage_then_saf_upload_in_order_exactly_once(tmp_path, host):
    t = Terminal(tmp_path, [host])
    host.stop()
    out, faults = t.run(["sale", 1000], ["sale", 2000], ["sale", 3001], ["refund", 100])
    assert [(o["approved"], o["offline"], o["code"]) for o in out[:3]] == [
        (True, True, None), (True, True, None), (False, False, "SYS-08")]
    # refunds are never approved offline; by now the breaker may have opened
    assert (out[3]["approved"], out[3]["code"] in ("NET-03", "HST-04")) == (False, True)
    assert host.ledger == []
    host.start()
    host.script("no_answer", mti="0220")  # first upload attempt lost: repeated as 0221
    (w,), _ = t.run(["work"], read_ms=800)
    assert (w["saf"], w["reversals"]) == (0, 0)
    adv = [(e["mti"], e["stan"]) for e in host.ledger if e["kind"] == "advice"]
    assert adv == [("0220", out[0]["stan"]), ("0221", out[0]["stan"]), ("0220", out[1]["stan"])]
    t.run(["work"])
    assert len([e for e in host.ledger if e["kind"] == "advice"]) == 3
    assert _reconcile(t, host) == {"saf_sent": 2, "sale_failed": 1, "refund_failed": 1}


def test_duplicate_response_is_ignored(tmp_path, host):
    host.script("duplicate")
    t = Terminal(tmp_path, [host])
    out, _ = t.run(["sale", 700], ["sale", 800])
    assert [o["approved"] for o in out] == [True, True]
    assert [e["stan"] for e in host.ledger] == [out[0]["stan"], out[1]["stan"]]
    assert _reconcile(t, host) == {"sale_approved": 2}


def test_late_response_is_reversed_and_ignored(tmp_path, host):
    host.script(("late", 1500))
    t = Terminal(tmp_path, [host])
    out, _ = t.run(["sale", 900], ["sleep", 1000], ["work"], ["sale", 901], read_ms=700)
    assert (out[0]["approved"], out[0]["code"]) == (False, "HST-01")
    assert out[2]["approved"] is True
    assert _reconcile(t, host) == {"sale_reversed": 1, "sale_approved": 1}


def test_wrong_stan_is_ignored(tmp_path, host):
    host.script("wrong_stan")
    t = Terminal(tmp_path, [host])
    (r,), _ = t.run(["sale", 450])
    assert r["approved"] is True
    assert _reconcile(t, host) == {"sale_approved": 1}


def test_only_wrong_stan_is_a_mismatch_and_reversal(tmp_path, host):
    host.script(("wrong_stan", False))
    t = Terminal(tmp_path, [host])
    (r, _w), _ = t.run(["sale", 450], ["work"], read_ms=800)
    assert (r["approved"], r["code"]) == (False, "HST-03")
    assert _reconcile(t, host) == {"sale_reversed": 1}


def test_host_switch_to_secondary(tmp_path, host, host2):
    host.stop()
    t = Terminal(tmp_path, [host, host2])
    (r,), _ = t.run(["sale", 1500])
    assert r["approved"] and not r["offline"]
    assert [e["host"] for e in host2.ledger] == ["secondary"]
    assert _reconcile(t, host, host2) == {"sale_approved": 1}


def test_power_cut_in_flight_is_reversed_at_boot(tmp_path, host):
    host.script("no_answer")
    t = Terminal(tmp_path, [host])
    p = t.start(["sale", 1800], read_ms=20000)
    deadline = time.time() + 10
    while not host.ledger and time.time() < deadline:
        time.sleep(0.02)
    assert host.ledger, "request never reached the host"
    p.kill()
    p.wait()
    stan = host.ledger[0]["stan"]
    assert [x["st"] for x in t.journal()] == ["pending"]
    out, faults = t.run(["recover"], ["work"], ["sale", 10])
    assert out[0]["n"] == 1 and "HST-05" in faults
    assert [(e["mti"], e["orig_stan"]) for e in host.ledger if e["kind"] == "reversal"] == [("0400", stan)]
    assert int(out[2]["stan"]) > int(stan)
    assert _reconcile(t, host) == {"sale_reversed": 1, "sale_approved": 1}


def test_void_and_refund_status(tmp_path, host):
    t = Terminal(tmp_path, [host])
    out, _ = t.run(["sale", 600], ["void", "last"], ["refund", 300], ["lookup", "last"])
    assert [o.get("approved") for o in out[:3]] == [True, True, True]
    assert out[3] == {"op": "lookup", "status": "approved", "kind": "refund"}
    assert host.voided_stans() == {out[0]["stan"]}
    assert host.authorized() == []
    assert _reconcile(t, host) == {"sale_approved": 1, "void_approved": 1, "refund_approved": 1}


def test_stans_unique_across_reboots(tmp_path, host):
    t = Terminal(tmp_path, [host])
    stans = []
    for _ in range(3):
        out, _ = t.run(["sale", 100], ["sale", 200])
        stans += [o["stan"] for o in out]
    assert len(set(stans)) == 6
    _reconcile(t, host)


# ---------------------------------------------------------------- strict-host answers
def _sim_knows(action):
    """The simulator is being made stricter in parallel: skip until it has this action."""
    import inspect

    if ('"%s"' % action) not in inspect.getsource(AcquirerSim):
        pytest.skip("acquirer simulator has no %r action yet" % action)


def test_response_without_field_39_is_reversed(tmp_path, host):
    _sim_knows("no_rc")
    host.script("no_rc")
    t = Terminal(tmp_path, [host])
    (r, w), faults = t.run(["sale", 1500], ["work"], read_ms=800)
    assert (r["approved"], r["code"]) == (False, "HST-02")
    assert w["reversals"] == 0
    assert [e["orig_stan"] for e in host.ledger if e["kind"] == "reversal"] == [r["stan"]]
    assert _reconcile(t, host) == {"sale_reversed": 1}


def test_partial_approval_is_reversed_and_declined(tmp_path, host):
    _sim_knows("partial")
    host.script(("partial", 500))
    t = Terminal(tmp_path, [host])
    (r, w), faults = t.run(["sale", 1500], ["work"], read_ms=800)
    assert (r["approved"], r["code"], r["text"]) == (False, "HST-09", "PARTIAL APPROVAL")
    revs = [e for e in host.ledger if e["kind"] == "reversal"]
    assert [(e["orig_stan"], e["amount"]) for e in revs] == [(r["stan"], 1500)]
    assert _reconcile(t, host) == {"sale_reversed": 1}


# ---------------------------------------------------------------- void of an offline sale the host may hold
def test_void_of_attempted_offline_sale_reverses_the_advice(tmp_path, host):
    t = Terminal(tmp_path, [host])
    host.stop()
    (s,), _ = t.run(["sale", 1200])
    assert (s["approved"], s["offline"]) == (True, True)
    host.start()
    host.script("no_answer", mti="0220")  # the upload reaches the host, the answer is lost
    (w,), _ = t.run(["work", 1], read_ms=800)
    assert w["saf"] == 1 and [e["mti"] for e in host.ledger] == ["0220"]
    (v, look), _ = t.run(["void", s["ref"]], ["record", s["ref"]])
    assert v["approved"] is True, v
    assert (look["status"], look["st"]) == ("voided", "reversed")
    rev = host.ledger[-1]
    assert (rev["mti"], rev["kind"], rev["orig_stan"], rev["amount"], rev["rc"]) == ("0400", "reversal", s["stan"], 1200, "00")
    (_w, again), _ = t.run(["work"], ["void", s["ref"]])
    assert (again["approved"], again["code"]) == (False, "OPR-06")
    # never uploaded after its reversal, and not voided twice
    assert [e["mti"] for e in host.ledger] == ["0220", "0400"]
    assert _reconcile(t, host) == {"saf_reversed": 1, "void_approved": 1}


def test_void_of_offline_sale_while_host_unreachable_keeps_the_sale(tmp_path, host):
    t = Terminal(tmp_path, [host])
    host.stop()
    (s,), _ = t.run(["sale", 900])
    host.start()
    host.script("no_answer", mti="0220")
    t.run(["work", 1], read_ms=800)
    host.stop()
    (v, look), _ = t.run(["void", s["ref"]], ["record", s["ref"]])
    assert (v["approved"], v["code"] in ("NET-03", "HST-04")) == (False, True)
    assert look["status"] == "pending"  # the sale stands, its advice goes up later
    host.start()
    (w,), _ = t.run(["work"])
    assert w["saf"] == 0
    assert [(e["mti"], e["stan"]) for e in host.ledger] == [("0220", s["stan"]), ("0221", s["stan"])]
    assert _reconcile(t, host) == {"saf_sent": 1, "void_failed": 1}


# ---------------------------------------------------------------- power cut at every flash operation
# The invariant: whatever flash operation the power is cut at (before it, after it, or
# half-way through a write), after the reboot (recover, then the background work) the
# terminal's journal and the host's ledger agree: an approval the terminal keeps stands
# at the host exactly once, anything else is not charged, no STAN is used twice, and a
# sale is voided at most once at the host (exactly once once the merchant retried).
def _cut_every_op(tmp_path, setup, flow, after, check):
    ks = 0
    k = 1
    while True:
        finished = False
        for mode in ("before", "after", "partial"):
            host = AcquirerSim(name="primary", security=False).start()
            try:
                t = Terminal(tmp_path / ("k%d_%s" % (k, mode)), [host])
                pre, _ = t.run(*setup)
                if t.run(*[op(pre) if callable(op) else op for op in flow], cut="%d:%s" % (k, mode)) is not None:
                    finished = True  # fewer flash operations than k: nothing was cut
                    break
                out, _ = t.run(*[op(pre) if callable(op) else op for op in after])
                check(t, host, pre, out, "cut at %d %s" % (k, mode))
            finally:
                host.stop()
        if finished:
            return ks
        ks = k
        k += 1


def test_power_cut_at_every_flash_operation_of_a_sale(tmp_path):
    def check(t, host, pre, out, what):
        counts = _reconcile(t, host)
        # the sales before and after stand; the cut one is approved, reversed, or was never journaled
        assert set(counts) <= {"sale_approved", "sale_reversed"}, (what, counts)
        assert counts["sale_approved"] + counts.get("sale_reversed", 0) in (2, 3), (what, counts)
        assert counts["sale_approved"] >= 2, (what, counts)
        stans = [e["stan"] for e in host.ledger if e["kind"] == "auth"]
        assert len(stans) == len(set(stans)), (what, stans)

    n = _cut_every_op(tmp_path, [["sale", 100]], [["sale", 2500]], [["recover"], ["work"], ["sale", 10]], check)
    assert n >= 6, n


def test_power_cut_at_every_flash_operation_of_a_void(tmp_path):
    ref = lambda pre: ["void", pre[0]["ref"]]  # noqa: E731

    def check(t, host, pre, out, what):
        sale = pre[0]["stan"]
        undone = {e["orig_stan"] for e in host.ledger if e["kind"] == "reversal"}
        voids = [e["stan"] for e in host.ledger if e["kind"] == "void" and e["orig_stan"] == sale and e["rc"] == "00"]
        net = [v for v in voids if v not in undone]
        assert len(net) == 1, (what, host.ledger)
        assert out[-1]["status"] == "voided", (what, out)
        assert sale not in undone, what
        assert _reconcile(t, host)["void_approved"] == 1, what

    n = _cut_every_op(tmp_path, [["sale", 1500]], [ref],
                      [["recover"], ["work"], ref, ref, ref, ["work"], lambda pre: ["lookup", pre[0]["ref"]]], check)
    assert n >= 8, n

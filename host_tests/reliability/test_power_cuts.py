"""Power cuts: at every flash operation of every flow, and at random moments in the emulated terminal.

Deterministic (`test_cut_at_every_flash_operation[flow]`): the firmware's transaction core in the
MicroPython VM (rel_common.EngineTerminal) runs one flow (a sale, a refund, a void, a host timeout
and its reversal, an offline sale, its upload, the voids of offline sales, the boot's recovery, a
journal compaction, ...) with the host HAL's power cut (PAYTERM_CUT_AT=k:mode, payterm.hal.host.
FlashCut) at flash operation k, before it, after it, or after half of its bytes; then the terminal
boots on the same flash, recovers, settles its reversals and advices with the host, and takes one
more sale. Every k of the flow is cut (short: one mode per k in turn; full: all three).

Random (`test_random_power_cuts[i]`): the whole firmware in the emulator, driven through its panel
and card reader, is killed (SIGKILL) at a random moment of a random flow, or while it boots, then
restarted on the same flash; the seed is printed (PAYTERM_SEED replays it).

After every cut: the boot succeeds, nothing is left pending once the host is back, and the
money-level reconciler (host_tests/system/ledger.py) finds no approval lost, no double charge
(per original, what the host holds equals what the terminal shows), no STAN reused, and every
approval the terminal showed before the cut still stands (or was voided by a later void).
"""
import concurrent.futures
import os
import random
import shutil
import sys
import time

import pytest

pytestmark = pytest.mark.reliability("powercut")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rel_common as R  # noqa: E402
from ledger import HostView, Reconciler, read_journal  # noqa: E402
from payterm_tools.sim.acquirer import AcquirerSim  # noqa: E402

CFG = {
    "terminal_id": "TERM0001", "merchant_id": "MERCHANT0000001", "currency": 978,
    "connect_timeout_ms": 400, "read_timeout_ms": 400, "max_wait_ms": 2000, "min_read_ms": 250,
    "backoff_base_ms": 20, "backoff_cap_ms": 80, "max_attempts": 3,
    "breaker_threshold": 3, "breaker_open_ms": 200, "breaker_open_max_ms": 400,
    "worker_wait_ms": 900, "retry_base_ms": 30, "retry_cap_ms": 150, "worker_scan_ms": 500,
    "floor_limit": 3000, "saf_max_count": 10, "saf_max_total": 20000, "saf_max_tries": 10,
}
MODES = ("before", "after", "partial")
AFTER = [["recover"], ["work"], ["sale", 10], ["work"]]


# ---------------------------------------------------------------- deterministic: every flash operation
class Flow:
    """One flow to cut: `setup(base)` builds the flash and the host's book it starts from (once),
    `ops(ctx)` runs with the cut, `after(ctx)` runs after the reboot, `check` adds flow rules."""

    def __init__(self, name, ops, after=AFTER, setup=None, down=False, script=(), check=None, journal_max=65536):
        self.name = name
        self._ops = ops
        self._after = after
        self.setup = setup
        self.down = down
        self.script = script
        self.check = check
        self.journal_max = journal_max

    def ops(self, ctx):
        return self._ops(ctx) if callable(self._ops) else self._ops

    def after(self, ctx):
        return self._after(ctx) if callable(self._after) else self._after


class Base:
    """What a flow starts from: a flash directory and the host's ledger file, copied for each cut."""

    def __init__(self, d, journal_max):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.ledger_path = os.path.join(self.dir, "ledger.jsonl")
        open(self.ledger_path, "a").close()
        self.sim = AcquirerSim(name="primary", ledger_path=self.ledger_path).start()
        self.term = R.EngineTerminal(self.dir, [self.sim], cfg=CFG, journal_max=journal_max)
        self.approved = []
        self.ctx = {}

    def run(self, ops, down=False, **kw):
        r = self.term.run(ops, hosts=[R.dead_address()] if down else None, **kw)
        self.approved += r.approved()
        return r

    def close(self):
        self.sim.stop()
        self.records = read_journal(self.term.state)


def _setup_sale(base):
    r = base.run([["sale", 1500]])
    base.ctx["sale"] = r.of("sale")[0]


def _setup_offline(n=1):
    def setup(base):
        r = base.run([["sale", 1200 + 100 * i] for i in range(n)], down=True)
        assert all(d["offline"] for d in r.of("sale")), r.ops
        base.ctx["sale"] = r.of("sale")[0]
    return setup


def _setup_offline_attempted(base):
    _setup_offline(1)(base)
    base.sim.script("no_answer", mti="0220")
    base.run([["work", 1]])  # the upload left, its answer was lost: the host may hold it


def _cut_at(base, ops, pick, mode="before", script=()):
    """Run `ops` on `base` with the power cut at the flash operation pick(rows) chooses from a dry run's
    flash log (rows of [k, op, path])."""
    d = os.path.join(base.dir, "probe-%d" % base.term.runs)
    term, sim = _copy(base, d)
    try:
        for a, mti in script:
            sim.script(a, mti=mti)
        log = term.run(ops, flash_log=os.path.join(d, "flash.log")).flash_ops
    finally:
        sim.stop()
    k = pick(log)
    for a, mti in script:
        base.sim.script(a, mti=mti)
    r = base.run(ops, cut="%d:%s" % (k, mode))
    assert r.cut, "no cut at flash operation %d" % k
    return r


def _cut_after_nth_append(base, ops, n, script=(), mode="before"):
    """Run `ops` with the power cut at the n-th append to the journal (before it, or torn: partial)."""
    def pick(log):
        return [int(k) for k, op, path in log if op == "append" and path.endswith("journal.log")][n - 1]
    return _cut_at(base, ops, pick, mode, script)


def _setup_torn_tail(base):
    """A sale whose outcome record was torn by the power cut: the boot finds a torn journal tail."""
    _cut_after_nth_append(base, [["sale", 1500]], 2, mode="partial")
    base.ctx["sale"] = {"ref": read_journal(base.term.state)[0]["ref"]}


def _setup_state_cut_apart(base):
    """The state save cut between its two renames: main moved to the backup, the new copy still .tmp."""
    base.run([["sale", 700]])

    def pick(log):
        return [int(k) for k, op, path in log if op == "rename" and path.endswith("state.json")][0]
    _cut_at(base, [["sale", 1500]], pick)
    names = os.listdir(base.term.state)
    assert "state.tmp" in names and "state.json" not in names, names


def _setup_refund(base):
    r = base.run([["refund", 800]])
    base.ctx["sale"] = r.of("refund")[0]


def _setup_in_flight(base):
    """A sale whose request reached the host (approved there) and whose answer the power cut lost."""
    r = _cut_after_nth_append(base, [["sale", 1500]], 2)
    recs = read_journal(base.term.state)
    assert [t["st"] for t in recs] == ["pending"], recs
    base.ctx["sale"] = {"ref": recs[0]["ref"], "stan": recs[0]["stan"]}
    assert r.cut


def _setup_void_cut_apart(base):
    """A void approved by the host whose sale's `voided` mark the power cut kept off flash."""
    _setup_sale(base)
    _cut_after_nth_append(base, [["void", base.ctx["sale"]["ref"]]], 3)
    recs = {t["ref"]: t for t in read_journal(base.term.state)}
    sale = recs[base.ctx["sale"]["ref"]]
    voids = [t for t in recs.values() if t.get("kind") == "void"]
    assert voids and voids[0]["st"] == "approved" and not sale.get("voided"), recs


def _setup_full_journal(base):
    for i in range(8):
        base.run([["sale", 100 + i], ["sale", 200 + i]])
    size = os.path.getsize(os.path.join(base.term.state, "journal.log"))
    base.term.journal_max = size + 200  # the next transaction's records do not fit: it compacts
    base.ctx["journal_max"] = base.term.journal_max


def _void_retry(ctx):
    ref = ctx["sale"]["ref"]
    return [["recover"], ["work"], ["void", ref], ["work"], ["sale", 10], ["work"], ["record", ref]]


def _check_voided_once(term, sim, ctx, flow_run, after_run):
    """The merchant retried the void after the boot: the sale is voided, once, at both ends."""
    out = []
    ref, stan = ctx["sale"]["ref"], ctx["sale"]["stan"]
    rec = after_run.of("record")[-1]
    if rec.get("status") != "voided":
        out.append("sale %s ends %s, not voided" % (ref, rec.get("status")))
    host = HostView(sim.ledger)
    standing = [b for b in host.bookings if b.kind == "void" and not b.reversed and b.target is not None
                and b.target.stan == stan]
    if len(standing) > 1:
        out.append("double void: %d standing voids of STAN %s at the host" % (len(standing), stan))
    recs = read_journal(term.state)
    done = [t for t in recs if t.get("kind") == "void" and t.get("orig") == ref
            and (t.get("st") == "approved" or (t.get("adv") and t.get("st") == "reversed"))]
    if len(done) > 1:
        out.append("double void: %d void records took effect for %s" % (len(done), ref))
    return out


def _check_final(states, amount=1500):
    """The flow's own transaction (the setup's sale, else the one of `amount`) ends in one of `states`."""
    def check(term, sim, ctx, flow_run, after_run):
        recs = read_journal(term.state)
        ref = ctx.get("sale", {}).get("ref")
        mine = [x for x in recs if (x.get("ref") == ref if ref else
                                    x.get("kind") in ("sale", "refund", "saf") and x.get("amt") == amount)]
        if not mine:
            return []  # cut before its first record: nothing happened, nothing is held (the reconciler checks)
        t = mine[0]
        if t.get("st") not in states:
            return ["%s %s ends %s (want %s)" % (t.get("kind"), t.get("ref"), t.get("st"), "/".join(states))]
        return []
    return check


def _check_uploaded(term, sim, ctx, flow_run, after_run):
    out = []
    for t in read_journal(term.state):
        if t.get("kind") == "saf" and t.get("st") != "sent":
            out.append("offline sale %s ends %s, not sent" % (t.get("ref"), t.get("st")))
    return out


FLOWS = [
    Flow("sale", [["sale", 1500]]),
    Flow("refund", [["refund", 700]]),
    Flow("sale_declined", [["sale", 1500]], script=[(("decline", "51"), "0200")],
         check=_check_final(("declined", "reversed"))),
    Flow("void", lambda c: [["void", c["sale"]["ref"]]], after=_void_retry, setup=_setup_sale,
         check=_check_voided_once),
    Flow("void_timeout", lambda c: [["void", c["sale"]["ref"]], ["work"]], after=_void_retry, setup=_setup_sale,
         script=[("no_answer", "0200")], check=_check_voided_once),
    Flow("timeout_reversal", [["sale", 1500], ["work"]], script=[("no_answer", "0200")],
         check=_check_final(("reversed", "failed"))),
    Flow("reversal_repeated", [["sale", 1500], ["work"]],
         script=[("no_answer", "0200"), (("decline", "96"), "0400")], check=_check_final(("reversed", "failed"))),
    Flow("offline_sale", [["sale", 1500]], down=True, check=_check_uploaded),
    Flow("upload", [["work"]], setup=_setup_offline(2), check=_check_uploaded),
    Flow("upload_repeated", [["work"]], setup=_setup_offline(1), script=[("no_answer", "0220")],
         check=_check_uploaded),
    Flow("void_offline_unsent", lambda c: [["void", c["sale"]["ref"]]], after=_void_retry, down=True,
         setup=_setup_offline(1), check=_check_voided_once),
    Flow("void_offline_attempted", lambda c: [["void", c["sale"]["ref"]]], after=_void_retry,
         setup=_setup_offline_attempted, check=_check_voided_once),
    Flow("boot_recovery", [["recover"], ["work"]], setup=_setup_in_flight, check=_check_final(("reversed",))),
    Flow("boot_void_repair", lambda c: [["recover"], ["work"]], after=_void_retry, setup=_setup_void_cut_apart,
         check=_check_voided_once),
    Flow("compaction", [["sale", 1500], ["sale", 1600]], setup=_setup_full_journal),
    Flow("void_refund", lambda c: [["void", c["sale"]["ref"]]], after=_void_retry, setup=_setup_refund,
         check=_check_voided_once),
    # The boot itself repairs flash: a torn journal tail is cut off by a rewrite, a state save cut
    # between its renames is finished. The power goes again during that repair.
    Flow("boot_torn_tail", [["recover"], ["work"]], setup=_setup_torn_tail, check=_check_final(("reversed",))),
    Flow("boot_state_promote", [["recover"], ["work"]], setup=_setup_state_cut_apart),
]


def _copy(base, d):
    """A terminal and a host in `d` that start where `base` is: its flash and the host's book."""
    os.makedirs(d)
    ledger = os.path.join(d, "ledger.jsonl")
    shutil.copytree(base.term.state, os.path.join(d, "flash"))
    shutil.copy(base.ledger_path, ledger)
    sim = AcquirerSim(name="primary", ledger_path=ledger).start()
    return R.EngineTerminal(d, [sim], cfg=CFG, journal_max=base.term.journal_max), sim


def _one_cut(flow, base, d, k, mode):
    """Cut `flow` at flash operation k (mode) on a copy of `base`; None when the flow has no operation k."""
    term, sim = _copy(base, d)
    try:
        rec = Reconciler().observe(base.records)  # records a compaction may drop are still judged
        for action, mti in flow.script:
            sim.script(action, mti=mti)
        r = term.run(flow.ops(base.ctx), cut="%d:%s" % (k, mode), hosts=[R.dead_address()] if flow.down else None)
        if not r.cut:
            return None
        approved = base.approved + r.approved()
        problems = []
        R.clear_script(sim)  # the host answers normally after the boot
        try:
            a = term.run(flow.after(base.ctx))
        except AssertionError as e:
            return ["boot failed: %s" % str(e)[-600:]], {"boot_failed": 1}
        approved += a.approved()
        follow = [d for d in a.of("sale") if d.get("ref") and d["ref"] not in base.approved]
        if not follow or not follow[-1]["approved"] or follow[-1]["offline"]:
            problems.append("the sale after the boot was not approved online: %r" % (follow[-1:],))
        judged, counts = R.judge(read_journal(term.state), sim.ledger, approved, reconciler=rec)
        problems += judged
        if flow.check:
            extra = flow.check(term, sim, base.ctx, r, a)
            problems += extra
            counts["double"] += sum(1 for p in extra if "double" in p)
            counts["other"] += sum(1 for p in extra if "double" not in p)
        R.assert_no_card_data(term.state)
        return problems, counts
    finally:
        sim.stop()


def _flash_ops(flow, base, d):
    """The flow's flash operations, from a run without a cut (PAYTERM_FLASH_LOG)."""
    term, sim = _copy(base, d)
    try:
        for action, mti in flow.script:
            sim.script(action, mti=mti)
        r = term.run(flow.ops(base.ctx), hosts=[R.dead_address()] if flow.down else None,
                     flash_log=os.path.join(d, "flash.log"))
        return r.flash_ops
    finally:
        sim.stop()


def _tally(plan, results, describe):
    """Figures, failure lines and the number of cuts made, from each cut's (problems, counts) in
    results (None: no cut was made); describe(key, problems) words a failure."""
    figures = dict.fromkeys(("lost", "double", "stan_reuse", "pending_forever", "other", "boot_failed"), 0)
    failures, kills = [], 0
    for key in plan:
        res = results.get(key)
        if res is None or res[0] == "uncut":
            continue
        kills += 1
        problems, counts = res
        for k, n in counts.items():
            figures[k] = figures.get(k, 0) + n
        if problems:
            failures.append(describe(key, problems))
    return figures, failures, kills


def _at_op(ops):
    def describe(km, problems):
        k, m = km
        return "cut at %d:%s (%s %s): %s" % (k, m, ops[k - 1][1], os.path.basename(ops[k - 1][2]), "; ".join(problems))
    return describe


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_cut_at_every_flash_operation(tmp_path, flow):
    R.banner("power cut at every flash operation: " + flow.name)
    base = Base(tmp_path / "base", flow.journal_max)
    try:
        if flow.setup:
            flow.setup(base)
    finally:
        base.close()
    ops = _flash_ops(flow, base, str(tmp_path / "dry"))
    assert ops, "the flow wrote nothing to flash"
    if flow.name == "compaction":
        assert any(p.endswith("journal.tmp") for _, _, p in ops), "the flow did not compact the journal"
    plan = [(k, m) for k in range(1, len(ops) + 1) for i, m in enumerate(MODES) if R.FULL or (k + i) % 3 == 0]
    t0 = time.monotonic()
    results = {}

    def one(km):
        k, m = km
        try:
            results[km] = _one_cut(flow, base, str(tmp_path / ("k%d-%s" % km)), k, m)
        except Exception as e:
            results[km] = (["%s: %s" % (type(e).__name__, str(e)[-800:])], {"other": 1})

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, plan))
    figures, failures, kills = _tally(plan, results, _at_op(ops))
    print("%s: %d flash operations (%s), %d cuts, %.1fs" % (
        flow.name, len(ops), " ".join("%s:%s" % (op, os.path.basename(p)) for _, op, p in ops), kills,
        time.monotonic() - t0))
    R.record("power_cuts_flash_" + flow.name, kind="deterministic", flow=flow.name, flash_ops=len(ops),
             kill_points=kills, boots=kills - figures["boot_failed"], lost=figures["lost"], double=figures["double"],
             stan_reuse=figures["stan_reuse"], pending_forever=figures["pending_forever"],
             other=figures["other"], boot_failed=figures["boot_failed"], failures=failures[:20])
    assert kills >= len(ops), "only %d cuts for %d operations" % (kills, len(ops))
    assert not failures, "%d of %d cuts broke the rules:\n  %s" % (len(failures), kills, "\n  ".join(failures[:15]))


# ---------------------------------------------------------------- random: the emulated terminal
RANDOM_FUNCS = R.size(2, 4)  # test functions (xdist spreads them), each on its own flash and host
RANDOM_KILLS = R.size(10, 50)  # kill points per function: 20 in make test, 200 in make reliability
# scenario -> (weight, how long the part that can be cut lasts, in seconds)
SCENARIOS = {
    "sale": (25, 0.2),
    "declined": (5, 0.2),
    "refund": (10, 0.3),
    "void": (15, 0.3),
    "timeout": (12, 1.6),
    "offline": (12, 0.4),
    "upload": (11, 1.2),
    "boot": (10, 0.35),
}


def _pick(rng):
    names = sorted(SCENARIOS)
    return rng.choices(names, weights=[SCENARIOS[n][0] for n in names])[0]


class _Killer:
    """Cuts the power `delay` seconds after arm(), from another thread, as a power loss would."""

    def __init__(self, rig):
        self.rig = rig
        self.timer = None

    def arm(self, delay):
        import threading

        self.timer = threading.Timer(delay, self.rig.kill)
        self.timer.start()

    def wait(self):
        if self.timer is not None:
            self.timer.join()
            self.timer = None
        self.rig.kill()  # the flow ended before the cut: the power goes now, idle or in background work


def _voidable(rig, voided):
    shown = rig.shown()
    voids = {ref for ref, kind, out in shown if kind == "VOID"}
    refs = [ref for ref, kind, out in shown if kind in ("SALE", "REFUND") and out.startswith("APPROVED")
            and ref not in voided and ref not in voids]
    return refs


def _scenario(rig, rng, name, killer, voided):
    """Run one flow with the power cut armed at a random moment of it."""
    amount = rng.randint(100, 4900)
    card = rng.choice(["visa", "mastercard"])
    cut = rng.uniform(0, SCENARIOS[name][1] * 1.2)
    try:
        if name == "boot":
            rig.kill()  # the power goes while the terminal is idle (or busy in the background) ...
            rig.start()  # ... comes back, and goes again while it boots
            killer.arm(cut)
            return
        if name in ("sale", "declined", "timeout", "offline"):
            if name == "declined":
                rig.acq.script(("decline", rng.choice(["05", "51", "54"])), mti="0200")
            elif name == "timeout":
                rig.acq.script("no_answer", mti="0200")
            elif name == "offline":
                rig.host(False)
            rig.idle()
            rig.emu.console.skip()
            rig._keys("%dE" % amount)
            rig._screen("PRESENT CARD")
            killer.arm(cut)
            rig.reader.swipe(card)
            rig._expect(rig.emu.console, R.TXN_RE.pattern, 15)
        elif name == "refund":
            killer.arm(cut + 0.1)
            rig.payment(amount, "refund", card)
        elif name == "void":
            refs = _voidable(rig, voided)
            if not refs:
                killer.arm(cut)
                rig.payment(amount, "sale", card)
                return
            ref = rng.choice(refs)
            voided.add(ref)
            killer.arm(cut + 0.1)
            rig.void(ref)
        elif name == "upload":
            rig.host(False)
            for _ in range(rng.randint(1, 2)):
                m = rig.payment(rng.randint(100, 2000), "sale", card)
                assert b"APPROVED_OFFLINE" in m.group(0), m.group(0)
            rig.host(True)
            killer.arm(cut)
    except R.Died:
        pass


@pytest.mark.parametrize("part", range(RANDOM_FUNCS))
def test_random_power_cuts(tmp_path, part):
    seed = R.SEED * 1000 + part
    rng = random.Random(seed)
    R.banner("random power cuts %d/%d" % (part + 1, RANDOM_FUNCS), kill_points=RANDOM_KILLS, part_seed=seed)
    rig = R.EmuRig(tmp_path)
    rec = Reconciler()
    history = []
    voided = set()
    figures = dict.fromkeys(("lost", "double", "stan_reuse", "pending_forever", "other", "boot_failed"), 0)
    t0 = time.monotonic()
    try:
        _random_cuts(rig, rng, rec, history, voided, figures)
        R.assert_no_card_data(rig.state_dir, rig.emu.console.buf, rig.emu.panel.buf)
    except Exception as e:
        tail = "\n".join(["", "panel (last lines):"] + rig.emu.panel.buf[-1500:].decode("utf-8", "replace").splitlines()[-25:]
                         + ["console (last lines):"] + rig.emu.console.buf[-2500:].decode("utf-8", "replace").splitlines()[-30:])
        raise AssertionError("%s (seed %d, flows %s)%s" % (e, seed, " ".join(history[-8:]), tail))
    finally:
        counts = rec.counts()
        R.record("power_cuts_random_%d" % part, kind="random", seed=seed, kill_points=rig.kills, boots=rig.boots,
                 lost=figures["lost"], double=figures["double"], boot_failed=figures["boot_failed"],
                 stan_reuse=figures["stan_reuse"], pending_forever=figures["pending_forever"], other=figures["other"],
                 flows={n: history.count(n) for n in sorted(set(history))}, journal=counts,
                 seconds=round(time.monotonic() - t0, 1))
        print("random power cuts %d: %d kills, %d boots in %.0fs; flows %s; journal %s" % (
            part, rig.kills, rig.boots, time.monotonic() - t0,
            " ".join("%s=%d" % (n, history.count(n)) for n in sorted(set(history))), counts))
        rig.close()


def _random_cuts(rig, rng, rec, history, voided, figures):
    """Kill points until RANDOM_KILLS: a flow, the cut, maybe a cut during the boot, the boot, settle, judge."""
    rig.boot()
    while rig.kills < RANDOM_KILLS:
        name = _pick(rng)
        killer = _Killer(rig)
        _scenario(rig, rng, name, killer, voided)
        killer.wait()
        history.append(name)
        R.clear_script(rig.acq)
        if rng.random() < 0.2 and rig.kills < RANDOM_KILLS:
            # The power comes back and goes again while the terminal boots (recovery in progress).
            rig.host(True)
            rig.start()
            time.sleep(rng.uniform(0, 0.4))
            rig.kill()
            history.append("boot")
        try:
            rig.boot()
        except AssertionError as e:
            figures["boot_failed"] += 1
            raise AssertionError("boot failed after kill %d: %s" % (rig.kills, e))
        settled = rig.settle(30)
        problems, counts = R.judge(rig.journal(), rig.acq.ledger, rig.approvals(), reconciler=rec)
        for k, n in counts.items():
            figures[k] += n
        if not settled:
            problems.append("not settled 30 s after the boot")
        if problems:
            raise AssertionError("after kill %d:\n  %s" % (rig.kills, "\n  ".join(problems)))


# ---------------------------------------------------------------- deterministic: the emulated terminal
def _emu_flow(rig):
    """Boot (the cut may hit the boot), a sale and a refund through the panel and the card reader, up to
    the refund's wait record (its last flash write: the journal, the receipt and the wait analysis are
    saved by then, so every run makes the same writes)."""
    end = time.monotonic() + 20
    while True:  # the boot: READY on the console, or the cut
        if not rig.alive():
            raise R.Died()
        try:
            rig.emu.console.expect(r"# READY payterm", 0.1)
            break
        except AssertionError:
            if time.monotonic() > end:
                raise
    rig.payment(1500, "sale", "visa")
    m = rig.payment(700, "refund", "mastercard")
    rig._expect(rig.emu.console, rb"# WAIT %s " % m.group(1), 10)


def _emu_cut(d, k, mode):
    rig = R.EmuRig(d)
    log = os.path.join(d, "ops.log")  # beside the flash, not in it
    try:
        rig.start(env={"PAYTERM_CUT_AT": "%d:%s" % (k, mode), "PAYTERM_FLASH_LOG": log})
        try:
            _emu_flow(rig)
            with open(log) as f:
                return "uncut", sum(1 for l in f if l.strip())  # this run made fewer than k flash operations
        except R.Died:
            pass
        rig.kill()
        problems = []
        try:
            rig.boot()
        except AssertionError as e:
            return ["boot failed: %s" % str(e)[-500:]], {"boot_failed": 1}
        m = rig.payment(900, "sale", "mastercard")
        if b"SALE APPROVED " not in m.group(0):
            problems.append("the sale after the boot: %s" % m.group(0).decode())
        if not rig.settle(30):
            problems.append("not settled 30 s after the boot")
        judged, counts = R.judge(rig.journal(), rig.acq.ledger, rig.approvals())
        R.assert_no_card_data(rig.state_dir, rig.emu.console.buf, rig.emu.panel.buf)
        return problems + judged, counts
    finally:
        rig.close()


def test_emulator_cut_at_every_flash_operation(tmp_path):
    """The whole firmware: power on, a sale and a refund through the panel, the power cut at flash
    operation k counted from the boot (Emulator.start(env={"PAYTERM_CUT_AT": ...})), the boot, one
    more sale."""
    R.banner("emulated terminal: power cut at every flash operation of boot + sale + refund")
    dry = R.EmuRig(tmp_path / "dry")
    log = str(tmp_path / "flash.log")
    try:
        dry.start(env={"PAYTERM_FLASH_LOG": log})
        _emu_flow(dry)
        dry.kill()
    finally:
        dry.close()
    with open(log) as f:
        ops = [l.split() for l in f if l.strip()]
    assert len(ops) >= 8, ops
    plan = [(k, m) for k in range(1, len(ops) + 1) for i, m in enumerate(MODES) if R.FULL or (k + i) % 3 == 0]
    results = {}

    def one(km):
        try:
            results[km] = _emu_cut(str(tmp_path / ("k%d-%s" % km)), *km)
        except Exception as e:
            results[km] = (["%s: %s" % (type(e).__name__, str(e)[-800:])], {"other": 1})

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(one, plan))
    figures, failures, kills = _tally(plan, results, _at_op(ops))
    print("emulator boot + sale + refund: %d flash operations (%s), %d cuts, %.1fs" % (
        len(ops), " ".join("%s:%s" % (op, os.path.basename(p)) for _, op, p in ops), kills, time.monotonic() - t0))
    R.record("power_cuts_flash_emulator", kind="deterministic", flow="emulator boot + sale + refund", flash_ops=len(ops),
             kill_points=kills, boots=kills - figures["boot_failed"], lost=figures["lost"], double=figures["double"],
             stan_reuse=figures["stan_reuse"], pending_forever=figures["pending_forever"], other=figures["other"],
             boot_failed=figures["boot_failed"], failures=failures[:20])
    # A run makes fewer operations than the dry run only when the dry run had a timed counter save
    # (diag.stats, every 10 s: write, sync, rename, sync) that it did not: then the cuts past its end
    # are not made. Anything else is a cut lost.
    uncut = sorted((km, res[1]) for km, res in results.items() if res and res[0] == "uncut")
    assert all(n < km[0] and len(ops) - n <= 4 for km, n in uncut), "cuts not made (cut, that run's flash operations): %s" % uncut
    assert kills + len(uncut) == len(plan), "only %d cuts of %d planned" % (kills, len(plan))
    assert not failures, "%d of %d cuts broke the rules:\n  %s" % (len(failures), kills, "\n  ".join(failures[:15]))


# ---------------------------------------------------------------- random: flash cuts in mixed traffic
MIXED_RUNS = R.size(16, 200)


def _mixed_run(d, rng):
    """25 transactions of the soak's mix (the worker and link probes running as tasks, a small journal
    that compacts often), the power cut at a random flash operation; the boot settles; judged."""
    sim = AcquirerSim(name="primary").start()
    try:
        term = R.EngineTerminal(d, [sim], cfg=R.MIX_CFG, background=True, journal_max=6000, journal_keep=5,
                                audit_drops=True)
        rec = Reconciler()
        ops, acts = [], {}
        for j, (op, action) in enumerate(R.mixed_plan(rng, 25, outage=0.04)):
            if op[0] == "down":
                ops += [["sync", "down"]] + [["sale", rng.randint(100, 4000)] for _ in range(op[1])] + [["sync", "up"]]
            else:
                if action is not None:
                    acts[j] = action
                    ops.append(["sync", "s%d" % j])
                ops.append(op)
        ops.append(["settle", 5000])

        on_sync = R.host_sync(sim, lambda j: acts[j])

        def on_line(line):
            if "dropped" in line:
                rec.observe([line["dropped"]])

        cut = "%d:%s" % (rng.randint(1, 120), rng.choice(MODES))
        r = term.run(ops, on_sync=on_sync, on_line=on_line, cut=cut)
        if not r.cut:
            return None, cut
        if not sim.running:
            sim.start()
        R.clear_script(sim)
        try:
            a = term.run([["recover"], ["settle", 8000], ["sale", 10], ["settle", 8000]], on_line=on_line)
        except AssertionError as e:
            return (["boot failed: %s" % str(e)[-500:]], {"boot_failed": 1}), cut
        problems, counts = R.judge(term.journal(), sim.ledger, r.approved() + a.approved(), reconciler=rec)
        if not a.of("sale")[-1]["approved"]:
            problems.append("the sale after the boot: %r" % a.of("sale")[-1])
        return (problems, counts), cut
    finally:
        sim.stop()


def test_random_flash_cuts_in_mixed_traffic(tmp_path):
    """The transaction core under the soak's mix with its background tasks: cut at a random flash
    operation (seeded), then the boot; the interleavings of customer flows, reversals, uploads, probes
    and compactions that a single flow does not have."""
    seed = R.SEED * 1000 + 999
    R.banner("random flash cuts in mixed traffic", runs=MIXED_RUNS, part_seed=seed)
    rngs = [random.Random("%d/%d" % (seed, i)) for i in range(MIXED_RUNS)]
    results = {}

    def one(i):
        try:
            results[i] = _mixed_run(str(tmp_path / ("run%d" % i)), rngs[i])
        except Exception as e:
            results[i] = ((["%s: %s" % (type(e).__name__, str(e)[-800:])], {"other": 1}), "?")

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(MIXED_RUNS)))
    figures, failures, kills = _tally(range(MIXED_RUNS), {i: results[i][0] for i in range(MIXED_RUNS)},
                                      lambda i, problems: "run %d (seed %d/%d) cut at %s: %s" % (
                                          i, seed, i, results[i][1], "; ".join(problems)))
    print("mixed traffic: %d runs, %d cut, %.1fs" % (MIXED_RUNS, kills, time.monotonic() - t0))
    R.record("power_cuts_core_random", kind="random", seed=seed, runs=MIXED_RUNS, kill_points=kills,
             boots=kills - figures["boot_failed"], lost=figures["lost"], double=figures["double"],
             stan_reuse=figures["stan_reuse"], pending_forever=figures["pending_forever"], other=figures["other"],
             boot_failed=figures["boot_failed"], failures=failures[:20])
    assert kills >= MIXED_RUNS // 2, "only %d of %d runs were cut" % (kills, MIXED_RUNS)
    assert not failures, "%d of %d cuts broke the rules:\n  %s" % (len(failures), kills, "\n  ".join(failures[:15]))

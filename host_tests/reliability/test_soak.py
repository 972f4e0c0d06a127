"""Soak: thousands of transactions back to back, a mix of approvals, declines, timeouts, refunds, voids
and offline sales, while the heap, the files and the latency per stage are watched.

- `test_soak_engine`: the firmware's transaction core (rel_common.EngineTerminal: Engine, Worker and
  Supervisor probes as background tasks, Link over TCP, Journal, State, Diag on a state directory)
  in one MicroPython VM: 10,000 transactions in `make reliability`, 300 in `make test`. The whole
  firmware through the panel takes ~0.13 s a sale (22 minutes for 10,000), the core ~4 ms.
- `test_soak_emulator`: the whole firmware in the emulator, driven through its panel and card
  reader like a cashier (1,500 in `make reliability`, 150 in `make test`); the heap comes from the
  console's `mem` (after gc.collect()), the firmware's own wait analysis from `wait`.

Per window (1,000 transactions in full, 100 in short; the emulator: 250 and 20): the heap allocated after gc.collect(), the
file sizes in the state directory, p50/p95 per stage of the approved sales, the outcomes. Checked:
once the journal has filled up to its bound the heap does not grow any more (the short emulator run
ends before that: its heap is reported, not judged), every file stays within its bound, p95 stays
flat (judged at the full size; the short one reports it), nothing internal fails, and at the end (host up, everything settled) the money-level
reconciler finds nothing wrong with any of the transactions.
"""
import os
import random
import re
import sys
import time

import pytest

pytestmark = pytest.mark.reliability("soak")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rel_common as R  # noqa: E402
from ledger import Reconciler  # noqa: E402
from payterm_tools.emulator import flash_files  # noqa: E402
from payterm_tools.sim.acquirer import AcquirerSim  # noqa: E402

ENGINE_N = R.size(300, 10000)
EMU_N = R.size(60, 1500)
WINDOW = R.size(100, 1000)
EMU_WINDOW = R.size(20, 250)
JOURNAL_MAX = R.size(16384, 65536)  # short: the journal reaches its steady state within the run
HEAP_SLACK = 16384  # bytes the heap may differ by between windows (buffers, dict growth steps)
CFG = R.MIX_CFG
# Files and their bounds: the journal's max_bytes, the fault log's 64 slots of 64 bytes; the state,
# statistics and wait analysis are small fixed-size records.
FILE_BOUNDS = {"journal.log": None, "faults.bin": 64 * 64, "state.json": 512, "state.bak": 512,
               "stats.json": 4096, "waits.json": 8192, "pin.json": 512, "provision.json": 4096}


def _pct(v, p):
    v = sorted(v)
    if not v:
        return 0
    return v[min(len(v) - 1, max(0, (len(v) * p + 99) // 100 - 1))]


def _check_files(sizes, journal_max):
    bad = []
    for name, n in sorted(sizes.items()):
        bound = journal_max if name == "journal.log" else FILE_BOUNDS.get(name, 4096)
        if n > bound:
            bad.append("%s is %d bytes (bound %d)" % (name, n, bound))
    return bad


def _flat(first, last, what):
    """p95 of the last window within twice the first's, plus a little for the clock's resolution.

    Judged at the full size only (windows of 1,000 / 250): the short run's windows are too few
    transactions for a p95 that a shared machine's load does not move; there it is reported."""
    if not R.FULL:
        return []
    return [] if last <= 2 * first + 10 else ["%s p95 grew from %d to %d ms" % (what, first, last)]


def _heap_flat(rows, journal_max):
    """The heap after gc.collect() grows while the journal fills up to its bound (the journal keeps its
    records in RAM), then rises and falls with it between compactions. From the first window after the
    journal came near its bound on: the later half of the windows must not reach higher than the
    earlier half did (plus HEAP_SLACK). (problems, windows judged)."""
    start = next((i for i, r in enumerate(rows) if r["journal_bytes"] >= journal_max * 0.7), None)
    if start is None or len(rows) - start < 3:
        return [], 0
    heap = [r["heap_alloc"] for r in rows[start:]]
    h = len(heap) // 2
    early, late = max(heap[:h]), max(heap[h:])
    bad = [] if late <= early + HEAP_SLACK else ["heap grew: up to %d bytes early, %d late (%s)" % (
        early, late, " ".join(str(x) for x in heap))]
    return bad, len(heap)


@pytest.mark.timeout(R.size(300, 1500))
def test_soak_engine(tmp_path):
    seed = R.SEED
    rng = random.Random(seed)
    R.banner("soak (transaction core)", transactions=ENGINE_N, window=WINDOW)
    sim = AcquirerSim(name="primary").start()
    term = R.EngineTerminal(tmp_path, [sim], cfg=CFG, background=True, journal_max=JOURNAL_MAX, audit_drops=True)
    plan = R.mixed_plan(rng, ENGINE_N)
    actions = {}
    rec = Reconciler()

    def ops():
        count = 0
        nxt = WINDOW
        for j, (op, action) in enumerate(plan):
            if op[0] == "down":
                yield ["sync", "down"]
                for _ in range(op[1]):
                    yield ["sale", rng.randint(100, 4000)]
                yield ["sync", "up"]
                yield ["settle", 20000]
                count += op[1]
            else:
                if action is not None:
                    actions[j] = action
                    yield ["sync", "s%d" % j]
                yield op
                count += 1
            if count >= nxt or j == len(plan) - 1:
                yield ["settle", 20000]
                yield ["mem", 1]
                yield ["files"]
                yield ["window", count]
                nxt += WINDOW

    on_sync = R.host_sync(sim, lambda j: actions.pop(j))

    def on_line(d):
        if "dropped" in d:
            rec.observe([d["dropped"]])  # each record as compaction drops it: every transaction is judged

    t0 = time.monotonic()
    try:
        r = term.run(list(ops()), on_sync=on_sync, on_line=on_line, timeout=3000)
        seconds = time.monotonic() - t0
        problems, counts = R.judge(term.journal(), sim.ledger, reconciler=rec)
        R.assert_no_card_data(term.state)
    finally:
        sim.stop()
    mems = r.of("mem")
    frees = [int(x) for x in re.findall(r"max free sz: (\d+)", r.text)]
    files = r.of("files")
    rows = []
    for i, w in enumerate(r.windows):
        st = w["stages"]
        rows.append({
            "transactions": w["window"], "heap_alloc": mems[i]["alloc"], "heap_free": mems[i]["free"],
            "max_free_block": frees[i] * 16 if i < len(frees) else None,
            "journal_bytes": files[i]["sizes"].get("journal.log", 0), "compactions": files[i]["compactions"],
            "files_bytes": sum(files[i]["sizes"].values()),
            "p50_ms": {k: v["p50"] for k, v in st.items()}, "p95_ms": {k: v["p95"] for k, v in st.items()},
            "outcomes": w["outcomes"],
        })
    print("\n%-6s %9s %9s %8s %6s %-28s %-28s %s" % ("txns", "heap", "max_blk", "journal", "files", "p50 ms (host/local/total)",
                                                    "p95 ms (host/local/total)", "outcomes"))
    for row in rows:
        def hlt(d):
            return "/".join(str(d.get(k, "-")) for k in ("host", "local", "total"))
        print("%-6d %9d %9s %8d %6d %-28s %-28s %s" % (
            row["transactions"], row["heap_alloc"], row["max_free_block"], row["journal_bytes"], row["files_bytes"],
            hlt(row["p50_ms"]), hlt(row["p95_ms"]),
            " ".join("%s=%d" % kv for kv in sorted(row["outcomes"].items()))))
    bad = list(problems)
    internal = [f for f in r.faults if f.startswith("SYS-")]
    if internal:
        bad.append("internal failures: %s" % sorted(set(internal)))
    for f in files:
        bad += _check_files(f["sizes"], JOURNAL_MAX)
    first, last = rows[0], rows[-1]
    heap_bad, judged = _heap_flat(rows, JOURNAL_MAX)
    bad += heap_bad
    if not judged:
        bad.append("too few windows after the journal reached its bound to judge the heap")
    for k in ("local", "total"):
        bad += _flat(first["p95_ms"].get(k, 0), last["p95_ms"].get(k, 0), k)
    total = sum(sum(w["outcomes"].values()) for w in r.windows)
    R.record("soak_engine", driver="engine", transactions=total, seconds=round(seconds, 1),
             heap_first=first["heap_alloc"], heap_last=last["heap_alloc"],
             p95_first_ms=first["p95_ms"].get("total", 0), p95_last_ms=last["p95_ms"].get("total", 0),
             rows=rows, journal=counts, problems=bad[:20])
    print("soak (core): %d transactions in %.0fs; journal %s" % (total, seconds, rec.counts()))
    assert total >= ENGINE_N, total
    assert not bad, "\n  ".join(["soak found:"] + bad[:20])


# ---------------------------------------------------------------- the whole firmware in the emulator
def _emu_plan(rng, n):
    out = []
    last_ok = False
    i = 0
    while i < n:
        r = rng.random()
        if r < 0.01 and n - i > 6:
            k = rng.randint(2, 4)
            out.append(("down", k))
            i += k
            last_ok = False
            continue
        if r < 0.06 and last_ok:
            out.append(("void", None))
            last_ok = False
        elif r < 0.12:
            out.append(("refund", None))
            last_ok = True
        elif r < 0.18:
            out.append(("sale", ("decline", rng.choice(["05", "51", "54"]))))
            last_ok = False
        elif r < 0.19:
            out.append(("sale", "no_answer"))
            last_ok = False
        else:
            out.append(("sale", None))
            last_ok = True
        i += 1
    return out


def _console_mem(lines):
    """The console's `mem free=<n> alloc=<n> peak=<n>` as ints."""
    for l in lines:
        if l.startswith("mem "):
            return {k: int(v) for k, v in (w.split("=") for w in l.split()[1:])}
    raise AssertionError("no mem line in %r" % (lines,))


@pytest.mark.timeout(R.size(300, 1500))
@pytest.mark.reliability("soak_emu")
def test_soak_emulator(tmp_path):
    """The whole firmware, panel and card reader: the heap from the console's `mem`, files, latency."""
    seed = R.SEED + 1
    rng = random.Random(seed)
    R.banner("soak (emulator, panel-driven)", transactions=EMU_N, window=EMU_WINDOW, part_seed=seed)
    rig = R.EmuRig(tmp_path)
    rec = Reconciler()
    rows = []
    t0 = time.monotonic()
    try:
        rig.boot()
        lat = {"card": [], "txn": [], "idle": []}
        outcomes = {}
        count = 0
        nxt = EMU_WINDOW
        last_ref = None
        for kind, action in _emu_plan(rng, EMU_N):
            if kind == "down":
                rig.host(False)
                for _ in range(action):
                    m = rig.payment(rng.randint(100, 4000), "sale", rng.choice(["visa", "mastercard"]))
                    key = "sale:" + m.group(3).decode().lower()
                    outcomes[key] = outcomes.get(key, 0) + 1
                    rec.observe(rig.journal())
                rig.host(True)
                rig.idle()
                assert rig.settle(30), "the offline sales were not uploaded within 30 s"
                count += action
                last_ref = None
            else:
                R.clear_script(rig.acq)
                if action is not None:
                    rig.acq.script(action, mti="0200")
                amount = rng.randint(100, 9000)
                t1 = time.monotonic()
                if kind == "void":
                    m = rig.void(last_ref)
                    t2 = t1
                else:
                    shown = []
                    m = rig.payment(amount, kind, rng.choice(["visa", "mastercard"]), timeout=20, card_shown=shown)
                    t2 = shown[0]
                t3 = time.monotonic()
                rig.idle()
                t4 = time.monotonic()
                res = m.group(3).decode()
                code = re.search(rb"code=(\S+)", m.group(4))
                key = "%s:%s" % (kind, res.lower() if res.startswith("APPROVED") else code.group(1).decode())
                outcomes[key] = outcomes.get(key, 0) + 1
                if res == "APPROVED" and kind != "void":
                    lat["card"].append((t2 - t1) * 1000)
                    lat["txn"].append((t3 - t2) * 1000)
                    lat["idle"].append((t4 - t3) * 1000)
                last_ref = m.group(1).decode() if res == "APPROVED" and kind != "void" else None
                count += 1
                rec.observe(rig.journal())
            if count >= nxt:
                assert rig.settle(30), "reversals/advices not settled within 30 s"
                mem = _console_mem(rig.command("mem"))
                waits = [l for l in rig.command("wait") if l.startswith("stage ")]
                sizes = {n: len(b) for n, b in flash_files(rig.state_dir, logs=True).items() if os.sep not in n}
                rows.append({
                    "transactions": count, "heap_alloc": mem["alloc"], "heap_free": mem["free"],
                    "journal_bytes": sizes.get("journal.log", 0),
                    "files_bytes": sum(v for k, v in sizes.items() if k not in ("firmware.log", "printer.out")),
                    "p50_ms": {k: round(_pct([int(x) for x in v], 50)) for k, v in lat.items()},
                    "p95_ms": {k: round(_pct([int(x) for x in v], 95)) for k, v in lat.items()},
                    "firmware_waits": waits, "outcomes": outcomes, "sizes": sizes,
                })
                lat = {"card": [], "txn": [], "idle": []}
                outcomes = {}
                nxt += EMU_WINDOW
        assert rig.settle(30), "not settled at the end"
        problems, counts = R.judge(rig.journal(), rig.acq.ledger, reconciler=rec)
        R.assert_no_card_data(rig.state_dir, rig.emu.console.buf, rig.emu.panel.buf)
    finally:
        seconds = time.monotonic() - t0
        rig.close()
    print("\n%-6s %9s %8s %6s %-22s %-22s %s" % ("txns", "heap", "journal", "files", "p50 ms card/txn/idle",
                                              "p95 ms card/txn/idle", "outcomes"))
    for row in rows:
        def cti(d):
            return "/".join(str(d.get(k, "-")) for k in ("card", "txn", "idle"))
        print("%-6d %9d %8d %6d %-22s %-22s %s" % (
            row["transactions"], row["heap_alloc"], row["journal_bytes"], row["files_bytes"], cti(row["p50_ms"]),
            cti(row["p95_ms"]), " ".join("%s=%d" % kv for kv in sorted(row["outcomes"].items()))))
        print("       firmware wait analysis: " + "; ".join(row["firmware_waits"]))
    bad = list(problems)
    for row in rows:
        bad += _check_files({k: v for k, v in row["sizes"].items() if k not in ("firmware.log", "printer.out")},
                            65536)
        bad += ["%s declined with %s" % (k, k) for k in row["outcomes"] if ":SYS-" in k]
    heap_bad, judged = _heap_flat(rows, 65536)  # the firmware's journal bound (payterm.txn.journal)
    bad += heap_bad
    if not judged:
        print("heap: the journal did not reach its bound in %d transactions: reported, not judged" % count)
    first, last = rows[0], rows[-1]
    for k in ("txn",):
        bad += _flat(first["p95_ms"].get(k, 0), last["p95_ms"].get(k, 0), "panel " + k)
    R.record("soak_emulator", driver="emulator (panel, card reader, console)", transactions=count,
             seconds=round(seconds, 1), heap_first=first["heap_alloc"], heap_last=last["heap_alloc"],
             p95_first_ms=first["p95_ms"].get("txn", 0), p95_last_ms=last["p95_ms"].get("txn", 0),
             rows=[{k: v for k, v in r.items() if k != "sizes"} for r in rows], journal=counts, problems=bad[:20])
    print("soak (emulator): %d transactions in %.0fs; journal %s" % (count, seconds, rec.counts()))
    assert count >= EMU_N
    assert not bad, "\n  ".join(["soak found:"] + bad[:20])

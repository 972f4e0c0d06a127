#!/usr/bin/env python3
"""recqueue benchmark: C module vs pure-Python fallback vs collections.deque
vs micropython.RingIO, side by side in one run of the core runtime (same VM,
same heap), with ratios and the targets from docs/recqueue.md.

    python tools/bench_recqueue.py --core build/core/micropython-core [--markdown]

ops/s counts one logical operation (a push+pop pair, a 32-record drain, a
deadline push+pop_due); each case runs 5 times interleaved with the others
and the best run counts. Drain queues are filled before the clock starts.
bytes/op is micropython.mem_total() growth per op, i.e.
every heap allocation, whether or not the GC later reclaims it.
"""
import argparse
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs inside MicroPython. Prints "R <case> <ops_per_s> <bytes_per_op>".
MP_BENCH = r'''
import gc, sys, time, micropython, collections
import recqueue as rq_c

from mpt import recqueue_fallback

py = recqueue_fallback()
assert rq_c.IMPL == "c" and py["IMPL"] == "py"
ISZ = 16
K = 32
REC = bytes(range(ISZ))
SCALE = int(sys.argv[1]) if len(sys.argv) > 1 else 1
REPS = 5
out = bytearray(ISZ)
big = bytearray(ISZ * K)

# Every contender is called the way firmware calls it (obj.method(...)) in
# the same kind of loop, with the record and buffers in locals as a hot loop
# would hold them. Each loop takes (obj, n) and does n logical ops.

def pair_rq(q, n):  # C and fallback RecordQueue
    rec = REC
    o = out
    for _ in range(n):
        q.push(rec)
        q.pop_into(o)

def pair_deque(d, n):
    rec = REC
    for _ in range(n):
        d.append(rec)
        d.popleft()

def pair_ringio(r, n):
    rec = REC
    o = out
    for _ in range(n):
        r.write(rec)
        r.readinto(o)

# Drains: the queue is filled before the clock starts (see timed_drain).
def drain_many(q, n):
    b = big
    for _ in range(n):
        q.pop_many_into(b, K)

def drain_loop(q, n):
    o = out
    for _ in range(n):
        for _ in range(K):
            q.pop_into(o)

def deadline(dq, n):
    rec = REC
    o = out
    add = time.ticks_add
    now = dq.next_due()
    for _ in range(n):
        dq.push(add(now, 16), rec)
        dq.pop_due_into(now, o)
        now = add(now, 1)

def timed(fn, obj, n):
    if fn is drain_many or fn is drain_loop:
        obj.clear()
        obj.push_many(BLOCK, n * K)
    gc.collect()
    t0 = time.ticks_us()
    fn(obj, n)
    return time.ticks_diff(time.ticks_us(), t0)

def alloc_per_op(fn, obj):
    # The difference between two run lengths cancels fixed costs of the
    # harness (a call frame, a bound method), leaving what each op allocates.
    n1, n2 = (10, 20) if fn is drain_many or fn is drain_loop else (1000, 2000)
    if n1 == 10:
        obj.clear()
        obj.push_many(BLOCK, (n1 + n2) * K)
    gc.collect()
    a0 = micropython.mem_total()
    fn(obj, n1)
    a1 = micropython.mem_total()
    fn(obj, n2)
    a2 = micropython.mem_total()
    return ((a2 - a1) - (a1 - a0)) / (n2 - n1)

def make_dq(cls):
    dq = cls(64, ISZ)
    now = time.ticks_add(0, -5000)  # run across the ticks wrap-around
    for i in range(16):
        dq.push(time.ticks_add(now, i), REC)
    return dq

N = 200000 * SCALE
DRAINS = 250  # 32-record chunks a drain queue holds
BLOCK = REC * (K * DRAINS)
cases = [
    # name, loop, object, iterations
    ("pair_c", pair_rq, rq_c.RecordQueue(64, ISZ), N),
    ("pair_py", pair_rq, py["RecordQueue"](64, ISZ), N // 8),
    ("pair_deque", pair_deque, collections.deque((), 64), N),
    ("pair_ringio", pair_ringio, micropython.RingIO(64 * ISZ + 1), N),
    ("drain32_c", drain_many, rq_c.RecordQueue(K * DRAINS, ISZ), DRAINS),
    ("drain32_py_many", drain_many, py["RecordQueue"](K * DRAINS, ISZ), DRAINS),
    ("drain32_py_loop", drain_loop, py["RecordQueue"](K * DRAINS, ISZ), DRAINS // 4),
    ("deadline_c", deadline, make_dq(rq_c.DeadlineQueue), N),
    ("deadline_py", deadline, make_dq(py["DeadlineQueue"]), N // 16),
]
best = {}
for rep in range(REPS):  # interleaved, best of REPS: other load only slows runs
    for name, fn, obj, n in cases:
        us = timed(fn, obj, n)
        if name not in best or us < best[name]:
            best[name] = us
for name, fn, obj, n in cases:
    print("T", name, n, best[name], alloc_per_op(fn, obj))
print("DONE")
'''

ROWS = [
    # (section, label, case)
    ("push + pop_into (16-byte records)", "recqueue C", "pair_c"),
    ("push + pop_into (16-byte records)", "recqueue fallback", "pair_py"),
    ("push + pop_into (16-byte records)", "collections.deque append+popleft", "pair_deque"),
    ("push + pop_into (16-byte records)", "micropython.RingIO write+readinto", "pair_ringio"),
    ("drain 32 records", "C pop_many_into(buf, 32)", "drain32_c"),
    ("drain 32 records", "fallback pop_many_into(buf, 32)", "drain32_py_many"),
    ("drain 32 records", "fallback loop of 32 pop_into", "drain32_py_loop"),
    ("DeadlineQueue push + pop_due_into", "recqueue C", "deadline_c"),
    ("DeadlineQueue push + pop_due_into", "recqueue fallback", "deadline_py"),
]

# (description, numerator case, denominator case, minimum ratio)
TARGETS = [
    ("C push+pop_into vs deque append+popleft", "pair_c", "pair_deque", 1.0),
    ("C push+pop_into vs fallback", "pair_c", "pair_py", 4.0),
    ("C pop_many_into(32) vs fallback pop_into loop", "drain32_c", "drain32_py_loop", 20.0),
    ("C DeadlineQueue vs fallback", "deadline_c", "deadline_py", 10.0),
]

C_CASES = ("pair_c", "drain32_c", "deadline_c")


def run_bench(core, scale):
    env = dict(os.environ)
    env["MICROPYPATH"] = os.path.join(REPO, "firmware") + ":" + os.path.join(REPO, "host_tests", "unit")
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "bench_recqueue_mp.py")
        with open(script, "w") as f:
            f.write(MP_BENCH)
        res = subprocess.run([core, script, str(scale)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=600)
    if res.returncode != 0 or "DONE" not in res.stdout:
        sys.stderr.write(res.stdout)
        raise SystemExit("benchmark failed on %s (exit %d)" % (core, res.returncode))
    raw = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "T":
            raw[parts[1]] = (int(parts[2]), int(parts[3]), float(parts[4]))
    results = {}
    for name, (n, us, bpo) in raw.items():
        results[name] = (int(n * 1e6 / max(us, 1)), bpo)
    return results


def render(results, markdown):
    lines = []
    ref = {
        "push + pop_into (16-byte records)": "pair_c",
        "drain 32 records": "drain32_c",
        "DeadlineQueue push + pop_due_into": "deadline_c",
    }
    if markdown:
        lines.append("| case | implementation | ops/s | bytes/op | C is x faster |")
        lines.append("|---|---|---:|---:|---:|")
    else:
        lines.append("%-36s %-36s %12s %9s %10s" % ("case", "implementation", "ops/s", "bytes/op", "C is x"))
    for section, label, case in ROWS:
        ops, bpo = results[case]
        ratio = results[ref[section]][0] / max(ops, 1)
        if markdown:
            lines.append("| %s | %s | %d | %.1f | %.1f |" % (section, label, ops, bpo, ratio))
        else:
            lines.append("%-36s %-36s %12d %9.1f %10.1f" % (section, label, ops, bpo, ratio))
    lines.append("")
    ok = True
    for desc, num, den, want in TARGETS:
        r = results[num][0] / max(results[den][0], 1)
        good = r >= want
        ok &= good
        lines.append("%s %s: %.1fx (target >= %.0fx)" % ("PASS" if good else "FAIL", desc, r, want))
    for case in C_CASES:
        good = results[case][1] == 0
        ok &= good
        lines.append("%s 0 bytes/op for %s: %.1f" % ("PASS" if good else "FAIL", case, results[case][1]))
    return "\n".join(lines), ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--core", default=os.path.join(REPO, "build", "core", "micropython-core"))
    ap.add_argument("--scale", type=int, default=1, help="multiply iteration counts")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)
    if not os.path.exists(args.core):
        raise SystemExit("%s missing: run `make core`" % args.core)
    results = run_bench(args.core, args.scale)
    text, ok = render(results, args.markdown)
    print(text)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())

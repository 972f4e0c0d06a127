"""`make memory`: where the firmware's heap goes, measured in the emulator (MicroPython unix port, 64-bit).

Prints, for the deployed form (.mpy compiled for the host, host HAL included), for source and, when
build/unix-frozen32 exists (`make emulator-frozen MPY_DIR=...`), for the firmware frozen into a 32-bit
unix port as in a terminal's image:
- boot heap: `mem` alloc (after gc.collect()) once the terminal says READY, in the default 2 MiB heap;
- the smallest heap (-X heapsize, 4 KB steps) in which the firmware boots, and in which it boots and
  approves --peak-sales sales; the data-heap peak per transaction is that heap's usable bytes
  (free + alloc) less the post-boot baseline;
- heap after gc.collect() every 100 sales across --sales sales (first, last, least-squares slope);
- the frozen image only: --budget-sales sales in each board's heap budget, untranslated (32-bit);
- the .mpy total of every TERMINAL_* board against its code_budget_bytes;
- the heap budget of each board translated for the emulator (payterm_tools.memory), and the 64/32-bit
  ratio measured again when build/core-m32 (make core-m32) and build/core exist.
Sales go through the panel and the card reader simulator (every 4th tapped, the others swiped) against
the acquirer simulator, every one approved (a decline stops the run).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "host_tests", "system"))

from payterm_tools import FIRMWARE, FROZEN_EMULATOR, build, memory  # noqa: E402
from payterm_tools.emulator import Emulator  # noqa: E402
from payterm_tools.sim.acquirer import AcquirerSim  # noqa: E402
from payterm_tools.sim.cardsim import TEST_CARDS, CardReaderSim  # noqa: E402

# The system tests' short waits (the card and host waits of the emulator's defaults: a loaded machine
# must not turn a sale into CRD-01), with the result screen cut short so sales follow each other quickly.
PARAMS = {"connect_timeout_ms": 2000, "read_timeout_ms": 5000, "max_wait_ms": 15000, "card_timeout_ms": 30000,
          "result_ms": 100, "backoff_base_ms": 50, "backoff_cap_ms": 400, "breaker_open_ms": 2000,
          "breaker_open_max_ms": 4000, "min_read_ms": 1000, "worker_wait_ms": 3000, "retry_base_ms": 300,
          "retry_cap_ms": 1200, "worker_scan_ms": 1000}


def parse_mem(line):
    """`mem free=<n> alloc=<n> peak=<n>` -> dict of ints."""
    words = line.split()
    if not words or words[0] != "mem":
        raise ValueError("not a mem line: %r" % line)
    return {k: int(v) for k, v in (w.split("=") for w in words[1:])}


class Terminal:
    """The emulator with the simulators, for one measurement run."""

    def __init__(self, form, heap, workdir):
        """form: the Emulator's keywords for the firmware's form ({"mpy": True}, {}, {"frozen": path})."""
        self.dir = tempfile.mkdtemp(prefix="mem", dir=workdir)
        self.acq = AcquirerSim(host="127.0.0.1", port=0, name="primary")
        self.acq.start()
        self.emu = Emulator(os.path.join(self.dir, "flash"), [self.acq.address], config=dict(PARAMS),
                            heap=heap, **form)
        self.reader = CardReaderSim(self.emu.ptys["mag"].fd, self.emu.ptys["nfc"].fd)
        self.reader.start()
        self.n = 0

    def start(self):
        self.emu.start(timeout=60)
        self.emu.panel.wait_screen("READY", 20)

    def mem(self):
        return parse_mem(self.emu.console.command("mem", 30)[0])

    def sale(self):
        """One sale from the keypad, every 4th tapped (EMV), the others swiped; raises unless approved."""
        self.n += 1
        p = self.emu.panel
        p.wait_screen("READY", 20)
        p.press("%dE" % (100 + self.n % 900))
        p.wait_screen("PRESENT CARD", 20)
        tap = self.n % 4 == 0
        if tap:
            self.reader.tap(TEST_CARDS["mastercard"])
        else:
            self.reader.swipe(TEST_CARDS["visa"])
        m = self.emu.console.expect(r"# (TXN|FAIL) [^\n]*", 30)
        if tap:
            self.reader.remove()
        line = m.group(0).decode()
        if " APPROVED" not in line:
            raise AssertionError("sale %d: %s" % (self.n, line))

    def close(self):
        self.emu.close()
        self.reader.stop()
        self.acq.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.dir + ".mpy", ignore_errors=True)
        shutil.rmtree(self.dir + ".frozen", ignore_errors=True)


def runs_in(heap, form, sales, workdir):
    """True when the firmware boots in `heap` bytes and approves `sales` sales; also its mem line."""
    t = Terminal(form, heap, workdir)
    try:
        t.start()
        for _ in range(sales):
            t.sale()
        return True, t.mem()
    except (AssertionError, OSError, ValueError):
        return False, None
    finally:
        t.close()


def smallest_heap(form, sales, lo, hi, workdir, step=4096):
    """Smallest heap (multiple of step) in [lo, hi] that runs; (heap, mem at that heap)."""
    ok, m = runs_in(hi, form, sales, workdir)
    if not ok:
        return None, None
    best = (hi, m)
    lo = lo // step
    hi = hi // step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok, m = runs_in(mid * step, form, sales, workdir)
        if ok:
            hi, best = mid, (mid * step, m)
        else:
            lo = mid
    return best


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    d = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / d if d else 0.0


def soak(form, sales, every, workdir):
    """Heap after gc.collect() every `every` sales: [(sales, alloc)], boot mem."""
    t = Terminal(form, None, workdir)
    try:
        t.start()
        boot = t.mem()
        pts = []
        for i in range(1, sales + 1):
            t.sale()
            if i % every == 0:
                pts.append((i, t.mem()["alloc"]))
        return boot, pts
    finally:
        t.close()


def mpy_totals(workdir):
    """[(board, chip arch, .mpy bytes, code budget)] for every TERMINAL_* board."""
    out = []
    for b in memory.terminal_boards():
        arch = build.board_arch(b)
        d = os.path.join(workdir, "mpy-" + b)
        files = build.build(d, arch, device=True)
        total = sum(os.path.getsize(os.path.join(d, f)) for f in files if f.endswith(".mpy"))
        out.append((b, arch, total, memory.board_memory(b)["code_budget_bytes"]))
    return out


_STUBS = ("json", "time", "os", "binascii", "hashlib", "random", "re", "select", "socket", "termios", "ssl",
          "cryptolib")
_IMPORTS = ("payterm.errors payterm.codes payterm.mask payterm.config payterm.flash payterm.hal payterm.hal.base "
            "payterm.card.tlv payterm.card.card payterm.card.magstripe payterm.card.pn532 payterm.card.emv "
            "payterm.card.service payterm.diag payterm.diag.console payterm.diag.pin payterm.diag.selftest "
            "payterm.link.backoff payterm.link.breaker payterm.link.spec87 payterm.link.iso8583 "
            "payterm.link.messages payterm.link.link payterm.link.supervisor payterm.txn.currency "
            "payterm.txn.result payterm.txn.journal payterm.txn.state payterm.txn.stan payterm.txn.saf "
            "payterm.txn.engine payterm.txn.worker payterm.ui.keys payterm.ui.panel payterm.ui.flows "
            "payterm.app").split()


def word_ratio(core64, core32, workdir):
    """Live heap of the firmware's imports on the 64-bit and the 32-bit core runtime (same configuration).

    The core runtime has no json/os/asyncio...: empty stand-ins are imported first (the same on both), so
    only the firmware's own module objects are counted. Returns (bytes 64-bit, bytes 32-bit).
    """
    d = tempfile.mkdtemp(prefix="ratio", dir=workdir)
    for m in _STUBS:
        with open(os.path.join(d, m + ".py"), "w") as f:
            f.write("def __getattr__(name):\n    return None\n")
    with open(os.path.join(d, "asyncio.py"), "w") as f:
        f.write("class Event:\n    pass\nclass Lock:\n    pass\nclass StreamReader:\n    pass\n"
                "class CancelledError(Exception):\n    pass\nclass TimeoutError(Exception):\n    pass\n"
                "def __getattr__(name):\n    return None\n")
    script = os.path.join(d, "imports.py")
    with open(script, "w") as f:
        f.write("import gc\nimport " + ", ".join(_STUBS + ("asyncio",)) + "\n"
                "gc.collect()\nbase = gc.mem_alloc()\n"
                "for m in %r:\n    __import__(m)\n"
                "gc.collect()\nprint(gc.mem_alloc() - base)\n" % (_IMPORTS,))
    env = dict(os.environ, MICROPYPATH=d + ":" + FIRMWARE)
    out = []
    for exe in (core64, core32):
        r = subprocess.run([exe, script], env=env, capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError("%s: %s" % (exe, r.stderr[-500:]))
        out.append(int(r.stdout.split()[-1]))
    shutil.rmtree(d, ignore_errors=True)
    return out[0], out[1]


def kb(n):
    return "%.1f KB" % (n / 1000.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sales", type=int, default=1000, help="sales for the flatness run (default 1000)")
    ap.add_argument("--every", type=int, default=100, help="read the heap every N sales (default 100)")
    ap.add_argument("--peak-sales", type=int, default=10, help="sales the smallest-heap search runs (default 10)")
    ap.add_argument("--no-source", action="store_true", help="measure the .mpy form only")
    ap.add_argument("--forms", default="mpy,source,frozen",
                    help="which forms of the firmware to run, of mpy,source,frozen (default all)")
    ap.add_argument("--frozen", default=FROZEN_EMULATOR, metavar="PROGRAM",
                    help="the 32-bit unix port with the firmware frozen in (make emulator-frozen), measured too "
                         "when it exists; '' leaves it out (default %(default)s)")
    ap.add_argument("--budget-sales", type=int, default=100,
                    help="sales the frozen image runs in each board's heap budget (default 100)")
    ap.add_argument("--core", default=os.path.join(REPO, "build", "core", "micropython-core"))
    ap.add_argument("--core32", default=os.path.join(REPO, "build", "core-m32", "micropython-core"))
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the peak per transaction is under 64 KB, the heap is flat "
                         "(second half's slope under 2 KB per 100 sales) and every board's .mpy fits its budget")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="payterm-memory-")
    failed = []
    try:
        print("payterm memory (MicroPython unix port, 64-bit; figures in bytes, KB = 1000 bytes)")
        print()
        print("## budgets")
        print("heap translated for the emulator: x%.3f (payterm_tools.memory.HEAP_64_PER_32)" % memory.HEAP_64_PER_32)
        if os.path.exists(args.core) and os.path.exists(args.core32):
            b64, b32 = word_ratio(args.core, args.core32, work)
            print("measured again: firmware imports take %d bytes on the 64-bit core runtime, %d on the 32-bit one:"
                  " x%.3f" % (b64, b32, b64 / float(b32)))
        else:
            print("(make core-m32 builds the 32-bit core runtime that measures the ratio again)")
        for b in memory.terminal_boards():
            m = memory.board_memory(b)
            print("%-18s heap budget %7d -> emulator %7d   code budget %7d" % (
                b, m["heap_budget_bytes"], memory.emulator_heap(b), m["code_budget_bytes"]))
        print()
        print("## .mpy total per board (payterm build --board: the board's arch, no host HAL)")
        for b, arch, total, budget in mpy_totals(work):
            ok = total <= budget
            print("%-18s %-9s %7d of %7d (%3d%%) %s" % (b, arch, total, budget, 100 * total // budget,
                                                       "ok" if ok else "OVER BUDGET"))
            if not ok:
                failed.append("%s .mpy over budget" % b)
        print()
        want = set(args.forms.split(","))
        if args.no_source:
            want.discard("source")
        forms = [(n, f) for n, f in (("mpy", {"mpy": True}), ("source", {})) if n in want]
        if args.frozen and "frozen" in want:
            if os.access(args.frozen, os.X_OK):
                forms.append(("frozen, 32-bit", {"frozen": args.frozen}))
            else:
                print("(no %s: `make emulator-frozen MPY_DIR=...` builds the frozen 32-bit emulator)" % args.frozen)
                print()
        for name, form in forms:
            print("## %s" % name)
            t0 = time.time()
            boot, pts = soak(form, args.sales, args.every, work)
            print("boot heap (alloc after gc.collect() at READY): %d (%s); free %d of the default heap"
                  % (boot["alloc"], kb(boot["alloc"]), boot["free"]))
            lo = boot["alloc"]
            hb, _ = smallest_heap(form, 0, lo, lo + 256 * 1024, work)
            hs, ms = smallest_heap(form, args.peak_sales, hb or lo, (hb or lo) + 256 * 1024, work)
            print("smallest heap that boots: %s" % (hb if hb else "none up to +256 KB"))
            if hs:
                usable = ms["free"] + ms["alloc"]
                peak = usable - boot["alloc"]
                print("smallest heap that boots and approves %d sales: %d (usable %d); data-heap peak per "
                      "transaction above the post-boot baseline: %d (%s, target < 64 KB)"
                      % (args.peak_sales, hs, usable, peak, kb(peak)))
                if peak >= 64000:
                    failed.append("%s peak per transaction %d" % (name, peak))
            else:
                print("no heap up to +256 KB over boot approves %d sales" % args.peak_sales)
                failed.append("%s: sales fail" % name)
            if pts:
                s = slope(pts) * 100
                print("heap after gc.collect() every %d sales (%d sales): %s" % (
                    args.every, args.sales, " ".join("%d:%d" % p for p in pts)))
                print("first %d, last %d, change %+d; slope %+.1f bytes per 100 sales" % (
                    pts[0][1], pts[-1][1], pts[-1][1] - pts[0][1], s))
                half = pts[len(pts) // 2:]
                if len(half) >= 2:
                    s2 = slope(half) * 100
                    print("second half (%d..%d sales): slope %+.1f bytes per 100 sales" % (half[0][0], half[-1][0], s2))
                    if args.check and abs(s2) >= 2048:
                        failed.append("%s heap not flat" % name)
            if "frozen" in form:
                # a 32-bit VM: each board's heap budget applies as it is
                for b in memory.terminal_boards():
                    budget = memory.board_memory(b)["heap_budget_bytes"]
                    ok, m = runs_in(budget, form, args.budget_sales, work)
                    print("%-18s heap budget %7d: %d sales %s" % (
                        b, budget, args.budget_sales,
                        "all approved, heap after gc.collect() %d, free %d" % (m["alloc"], m["free"]) if ok
                        else "FAIL"))
                    if not ok:
                        failed.append("%s: %d sales in the frozen image's heap budget" % (b, args.budget_sales))
            print("(%s measured in %.0f s)" % (name, time.time() - t0))
            print()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        print("targets missed: " + "; ".join(failed))
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The reliability suite's frame: size knob, seeds, figures, one summary block, the leak scan.

Loaded as a pytest plugin by host_tests/conftest.py, so it works for every
run (`make test`, `make reliability`, a single file). What a reliability test
gets and must do:

- the size knob: `--reliability short|full` (default: $PAYTERM_RELIABILITY,
  else short). `make test` runs the short sizes, `make reliability` the full
  ones. A test picks its size with `rel.size(short, full)`.
- seeds: `--seed N` (default: $PAYTERM_SEED, else a fresh random seed per
  session, printed in the header and the summary). Each test draws from
  `rel.seed` (derived from the session seed and the test's node id) or
  `rel.rng()`; a failed test's report says how to rerun it with the same seed.
- figures: `rel.record(part, **figures)` writes what a test measured to
  build/reliability/<run>/ (JSON, one file per call). At the end of the
  session the controller (xdist or not) reads them all and prints ONE
  summary block with a line per part; parts no test recorded print "not run".
  Numbers add up across records, `*_first` keeps the earliest and `*_last`
  the latest value, `max_*` the largest, dicts merge. Mark tests with
  `@pytest.mark.reliability("<part>")` so their pass/fail shows on the line.
- the leak scan: when the session ran the leak-scan test (part "leakscan"),
  the controller scans every file the session's tests left under the pytest
  base temp directory (both xdist workers' trees), plus a planted control,
  for full card numbers and track data (payterm_tools.leakscan); a hit, or a
  control it misses, fails the session.
"""
import json
import os
import random
import shutil
import time
import zlib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "build", "reliability")

# (part, title, [(figure key, label)]): the summary block, in order.
PARTS = (
    ("powercut", "power cuts", (("kill_points", "kill points"), ("boots", "boots"), ("lost", "lost"),
                                ("double", "double"), ("stan_reuse", "STAN reuse"),
                                ("pending_forever", "pending forever"), ("boot_failed", "failed boots"))),
    ("matrix", "network matrix", (("cells_passed", "cells passed"), ("cells", "of"))),
    ("fuzz", "fuzz (parsers)", (("inputs", "inputs"), ("crashes", "crashes"), ("hangs", "hangs"),
                                ("known", "known"))),
    ("fuzz_uart", "fuzz (UARTs)", (("writes", "writes"), ("bytes", "bytes"), ("restarts", "task restarts"),
                                   ("deaths", "process deaths"), ("sales_approved", "sales approved"),
                                   ("sales", "of"))),
    ("soak", "soak", (("transactions", "transactions"), ("heap_first", "heap first"), ("heap_last", "heap last"),
                      ("p95_first", "p95 ms first"), ("p95_last", "p95 ms last"))),
    ("soak_emu", "soak (emulator)", (("transactions", "transactions"), ("heap_first", "heap first"),
                                     ("heap_last", "heap last"), ("p95_first", "p95 ms first"),
                                     ("p95_last", "p95 ms last"))),
    ("security", "security", (("pin_lockout", "PIN lockout"), ("tls", "TLS"))),
    ("leakscan", "leak scan", (("files", "files"), ("hits", "hits"), ("control", "control found"))),
)
PART_NAMES = tuple(p[0] for p in PARTS)

# What the end-of-session scan skips, and why: inputs the tests themselves wrote for the terminal
# (driver scripts, link configurations and fuzz vectors hold test card numbers or their hex on purpose,
# the scanner's own tests plant card numbers in leakscan-planted/ directories)
# and build or browser products that are no terminal output (bytecode, object files, C build trees, the
# screenshot test's PNG and Chromium profile: compressed or machine code, where digits are noise).
LEAKSCAN_EXCLUDE = ("*.py", "link_cfg.json", "fuzz-vectors.json", "*/leakscan-planted/*", "*.mpy", "*.o", "*.a", "*.elf", "*.png",
                    "*/profile/*", "*/genhdr/*", "*.qstr", "*.i.last", "*.h", "*.c", "*.d", "*.pem", "*.key",
                    "*.csr", "*.srl")


# ---------------------------------------------------------------- options
def pytest_addoption(parser):
    g = parser.getgroup("payterm reliability")
    g.addoption("--reliability", choices=("short", "full"), default=os.environ.get("PAYTERM_RELIABILITY") or "short",
                help="size of the reliability suite (short: in make test; full: make reliability)")
    g.addoption("--seed", type=int, default=int(os.environ["PAYTERM_SEED"]) if os.environ.get("PAYTERM_SEED") else None,
                help="session seed of the reliability tests (default: random, printed)")


class _Session:
    def __init__(self, mode, seed, run, worker):
        self.mode = mode
        self.seed = seed
        self.run = run
        self.worker = worker
        self.dir = os.path.join(OUT, run)
        self.outcomes = {}  # part -> {nodeid: outcome}
        self.leakscan = None


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability(part): a reliability test; its outcome shows on that part's summary line")
    wi = getattr(config, "workerinput", None)
    if wi is not None and "payterm_rel" in wi:
        d = wi["payterm_rel"]
        config._payterm_rel = _Session(d["mode"], d["seed"], d["run"], wi.get("workerid"))
        _export(config._payterm_rel)
        return
    seed = config.getoption("--seed")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 2 ** 31)
    run = "run-%s-%d" % (time.strftime("%Y%m%d-%H%M%S"), os.getpid())
    config._payterm_rel = _Session(config.getoption("--reliability"), seed, run, None)
    _export(config._payterm_rel)
    _clean_old_runs()


def _export(s):
    """The size, seed and run directory for tests that read them from the environment (rel_common.py)."""
    os.environ["PAYTERM_RELIABILITY"] = s.mode
    os.environ["PAYTERM_SEED"] = str(s.seed)
    os.environ["PAYTERM_REL_RUN"] = s.dir


def _clean_old_runs(keep_s=6 * 3600):
    try:
        names = os.listdir(OUT)
    except OSError:
        return
    now = time.time()
    for n in names:
        p = os.path.join(OUT, n)
        if n.startswith("run-") and os.path.isdir(p) and now - os.path.getmtime(p) > keep_s:
            shutil.rmtree(p, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    s = node.config._payterm_rel
    node.workerinput["payterm_rel"] = {"mode": s.mode, "seed": s.seed, "run": s.run}


def pytest_report_header(config):
    s = config._payterm_rel
    return "payterm reliability: %s sizes, seed %d (rerun with --reliability %s --seed %d)" % (
        s.mode, s.seed, s.mode, s.seed)


def pytest_collection_modifyitems(config, items):
    for item in items:
        m = item.get_closest_marker("reliability")
        if m is not None:
            part = m.args[0] if m.args else "other"
            item.user_properties.append(("reliability_part", part))


# ---------------------------------------------------------------- the fixture
class Rel:
    """What a reliability test uses: sizes, its seed, and where its figures go."""

    def __init__(self, session, nodeid, part):
        self._s = session
        self.nodeid = nodeid
        self.part = part
        self.mode = session.mode
        self.full = session.mode == "full"
        self.session_seed = session.seed
        self.seed = (zlib.crc32(nodeid.encode()) ^ session.seed) & 0x7FFFFFFF
        self._n = 0

    def size(self, short, full):
        return full if self.full else short

    def rng(self, salt=""):
        return random.Random("%d/%s" % (self.seed, salt))

    def rerun(self):
        return "pytest '%s' --reliability %s --seed %d" % (self.nodeid, self.mode, self.session_seed)

    def record(self, part=None, **figures):
        """Add this test's figures to its part of the summary block (JSON in build/reliability/<run>/)."""
        part = part or self.part
        os.makedirs(self._s.dir, exist_ok=True)
        self._n += 1
        name = "%s--%s--%d.json" % (part, "".join(c if c.isalnum() else "_" for c in self.nodeid)[-120:], self._n)
        rec = {"part": part, "test": self.nodeid, "time": time.time(), "seed": self.seed, "mode": self.mode,
               "figures": figures}
        tmp = os.path.join(self._s.dir, name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(rec, f, sort_keys=True)
        os.replace(tmp, os.path.join(self._s.dir, name))


@pytest.fixture
def rel(request):
    m = request.node.get_closest_marker("reliability")
    return Rel(request.config._payterm_rel, request.node.nodeid, m.args[0] if m and m.args else "other")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and ("rel" in getattr(item, "fixturenames", ()) or item.get_closest_marker("reliability")):
        s = item.config._payterm_rel
        rep.sections.append(("payterm reliability", "session seed %d, %s sizes; rerun: pytest '%s' --reliability %s --seed %d"
                             % (s.seed, s.mode, item.nodeid, s.mode, s.seed)))


# ---------------------------------------------------------------- outcomes (controller)
def pytest_runtest_logreport(report):
    part = dict(report.user_properties).get("reliability_part") if report.user_properties else None
    if part is None:
        return
    cfg = _CONFIG.get("config")
    if cfg is None:
        return
    outs = cfg._payterm_rel.outcomes.setdefault(part, {})
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            o = "xfailed" if report.skipped else "xpassed"
        else:
            o = report.outcome
        if o == "failed" and report.when == "setup":
            o = "error"
        outs[report.nodeid] = o
    elif report.when == "teardown" and report.failed:
        outs[report.nodeid] = "error"


_CONFIG = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _CONFIG["config"] = session.config


# ---------------------------------------------------------------- summary
def _merge(acc, figures):
    for k, v in figures.items():
        if isinstance(v, bool):
            acc[k] = v if k not in acc else (acc[k] and v)
        elif isinstance(v, (int, float)):
            if k.endswith("_first"):
                acc.setdefault(k, v)
            elif k.endswith("_last"):
                acc[k] = v
            elif k.startswith("max_"):
                acc[k] = max(acc.get(k, v), v)
            else:
                acc[k] = acc.get(k, 0) + v
        elif isinstance(v, dict):
            sub = acc.setdefault(k, {})
            _merge(sub, v)
        else:
            vals = acc.setdefault(k, [])
            for x in v if isinstance(v, list) else [v]:
                if x not in vals:
                    vals.append(x)


def collect(run_dir):
    """{part: merged figures} from a run directory's records (in time order)."""
    recs = []
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        names = []
    for n in names:
        if not n.endswith(".json"):
            continue
        try:
            with open(os.path.join(run_dir, n)) as f:
                recs.append(json.load(f))
        except (OSError, ValueError):
            continue
    recs.sort(key=lambda r: r.get("time", 0))
    parts = {}
    for r in recs:
        _merge(parts.setdefault(r["part"], {}), r.get("figures", {}))
    return parts


def _fmt(v):
    if isinstance(v, bool):
        return "ok" if v else "FAILED"
    if isinstance(v, float):
        return "%.1f" % v
    if isinstance(v, int):
        return "{:,}".format(v)
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, dict):
        return " ".join("%s=%s" % (k, _fmt(v[k])) for k in sorted(v))
    return str(v)


def _printable(text):
    """`text` with control characters escaped (\\n, \\x00): an outcome stays on its line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def summary_lines(mode, seed, parts, outcomes, leak=None):
    lines = ["payterm reliability: %s sizes, seed %d (rerun: --reliability %s --seed %d)" % (mode, seed, mode, seed)]
    failed = False
    for part, title, keys in PARTS:
        figs = dict(parts.get(part, {}))
        if part == "leakscan" and leak is not None:
            figs.update({k: leak[k] for k in ("files", "hits", "control", "skipped", "seconds")})
        outs = outcomes.get(part, {})
        if not figs and not outs:
            lines.append("  %-16s not run" % title)
            continue
        bits = []
        for k, label in keys:
            if k in figs:
                if label == "of" and bits:
                    bits[-1] += " of %s" % _fmt(figs.pop(k))
                else:
                    bits.append("%s %s" % (label, _fmt(figs.pop(k))))
        for k in sorted(figs):
            if k in ("outcomes", "detail"):
                continue
            bits.append("%s %s" % (k.replace("_", " "), _fmt(figs[k])))
        counts = {}
        for o in outs.values():
            counts[o] = counts.get(o, 0) + 1
        bad = counts.get("failed", 0) + counts.get("error", 0)
        if part == "leakscan" and leak is not None and not leak.get("ok", True):
            bad += 1
        failed = failed or bad > 0
        state = ", ".join("%d %s" % (counts[k], k) for k in sorted(counts))
        lines.append("  %-16s %s%s%s" % (title, "  ".join(bits) or "-", "  [%s]" % state if state else "",
                                          "  FAILED" if bad else ""))
        if part == "fuzz" and "outcomes" in parts.get(part, {}):
            for target, oc in sorted(parts[part]["outcomes"].items()):
                top = sorted(oc.items(), key=lambda kv: -kv[1])
                # an outcome may quote fuzzed bytes (rc=<two of them>): escaped, one line per target
                lines.append("    %-10s %s" % (target, " ".join("%s:%s" % (_printable(k), _fmt(n)) for k, n in top)))
    xfailed = sum(1 for outs in outcomes.values() for o in outs.values() if o == "xfailed")
    lines.append("  %-16s %s%s" % ("result", "FAILED" if failed else "PASS",
                                   "  (%d xfailed on known issues, see the short test summary)" % xfailed
                                   if xfailed else ""))
    return lines, failed


def _controller(config):
    return getattr(config, "_payterm_rel", None) is not None and not hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if not _controller(config):
        return
    s = config._payterm_rel
    if "leakscan" in s.outcomes:
        s.leakscan = _leakscan(config)
        if not s.leakscan["ok"]:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if s.outcomes or os.path.isdir(s.dir):
        parts = collect(s.dir)
        lines, failed = summary_lines(s.mode, s.seed, parts, s.outcomes, s.leakscan)
        s.lines = lines
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, "summary.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(OUT, "summary.json"), "w") as f:
            json.dump({"mode": s.mode, "seed": s.seed, "run": s.run, "parts": parts, "outcomes": s.outcomes,
                       "leakscan": s.leakscan, "failed": failed}, f, indent=1, sort_keys=True)


def pytest_unconfigure(config):
    """The summary block comes last, after pytest's own summary line: the tail of a CI log shows it."""
    s = getattr(config, "_payterm_rel", None)
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if s is None or not getattr(s, "lines", None) or terminalreporter is None:
        return
    terminalreporter.section("payterm reliability summary")
    for line in s.lines:
        terminalreporter.write_line(line)
    leak = s.leakscan
    if leak and leak.get("hit_list"):
        terminalreporter.write_line("  leak scan hits (masked):")
        for h in leak["hit_list"][:30]:
            terminalreporter.write_line("    %s:%d %s %s" % (h["path"], h["offset"], h["kind"], h["masked"]))


# ---------------------------------------------------------------- the end-of-session leak scan
CONTROL_PAN = "4761739001010010"


def plant_control(d):
    """Files with a full PAN as text, as packed BCD and as track 2: the scan must find all three."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "control-text.log"), "w") as f:
        f.write("# CARD swipe %s\n" % CONTROL_PAN)
    with open(os.path.join(d, "control-bcd.bin"), "wb") as f:
        f.write(b"\xaa\xbb\xcc" + bytes.fromhex(CONTROL_PAN) + b"\xdd\xee")
    with open(os.path.join(d, "control-track.log"), "w") as f:
        f.write(";%s=30121010000000?\n" % CONTROL_PAN)
    return {"control-text.log": "pan-text", "control-bcd.bin": "pan-bcd", "control-track.log": "track2"}


def _leakscan(config):
    from payterm_tools import leakscan
    from payterm_tools.sim.cardsim import TEST_CARDS

    root = str(config._tmp_path_factory.getbasetemp())
    control_dir = os.path.join(root, "leakscan-control")
    want = plant_control(control_dir)
    t0 = time.monotonic()
    rep = leakscan.scan_paths([root], exclude=LEAKSCAN_EXCLUDE, known=[c.pan for c in TEST_CARDS.values()])
    found, hits = set(), []
    for h in rep.hits:
        if h.path.startswith(control_dir + os.sep):
            name = os.path.basename(h.path)
            if want.get(name) == h.kind:
                found.add(name)
        else:
            hits.append(h.as_dict())
    skipped = sum(1 for _ in leakscan.iter_files([root])) - rep.files
    ok = not hits and len(found) == len(want) and not rep.errors
    return {"files": rep.files - len(want), "hits": len(hits), "control": "%d/%d" % (len(found), len(want)),
            "skipped": skipped, "seconds": round(time.monotonic() - t0, 1), "root": root, "ok": ok,
            "hit_list": hits, "errors": rep.errors[:10]}

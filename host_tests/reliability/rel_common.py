"""Shared parts of the power-cut, network-fault and soak tests (CPython).

- Sizes and seeds: the session's (`--reliability short|full`, `--seed N`; the frame,
  payterm_reliability.py, exports them as PAYTERM_RELIABILITY and PAYTERM_SEED before the tests are
  imported; DEFAULT_SEED when this module runs outside pytest); every test prints the seed it used.
- Figures: `record(name, **figures)` writes build/reliability/<name>.json (the whole record) and adds
  its summary figures to the session's summary block (the frame's run directory, PAYTERM_REL_RUN).
- EngineTerminal: the firmware's transaction core (Engine, Worker, Supervisor, Link, Journal,
  State, Diag) in the MicroPython unix VM (mp_engine_driver.py) against the acquirer simulator,
  with the host HAL's power cut at the k-th flash operation (PAYTERM_CUT_AT).
- EmuRig: the whole firmware in the emulator (panel, card readers, console) with the acquirer and
  card simulators, driven like a cashier; kill() is a power cut (SIGKILL) on the same flash.
- The oracle: `judge()` runs the money-level reconciler (host_tests/system/ledger.py) and sorts its
  problems into lost approvals, double charges, STAN reuse and transactions left pending.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST_TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(HOST_TESTS)
for _p in (HOST_TESTS, os.path.join(HOST_TESTS, "system"), os.path.join(REPO, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import mpy_runtimes  # noqa: E402
from ledger import SUMMARY_REF, Reconciler, read_journal  # noqa: E402
from payterm_tools import keyinject  # noqa: E402
from payterm_tools.emulator import flash_files  # noqa: E402
from payterm_tools.sim.cardsim import TEST_CARDS  # noqa: E402

DRIVER = os.path.join(HERE, "mp_engine_driver.py")
OUT = os.path.join(REPO, "build", "reliability")
DEFAULT_SEED = 8583
PANS = [c.pan for c in TEST_CARDS.values()]

MODE = os.environ.get("PAYTERM_RELIABILITY") or "short"
if MODE not in ("short", "full"):
    raise ValueError("PAYTERM_RELIABILITY=%r: full or short" % MODE)
FULL = MODE == "full"
SEED = int(os.environ.get("PAYTERM_SEED") or DEFAULT_SEED)


def size(short, full):
    """The short size in `make test`, the full one in `make reliability` (PAYTERM_RELIABILITY=full)."""
    return full if FULL else short


def banner(what, **extra):
    bits = " ".join("%s=%s" % kv for kv in sorted(extra.items()))
    print("\n[reliability] %s: mode=%s seed=%d %s (replay: PAYTERM_RELIABILITY=%s PAYTERM_SEED=%d)"
          % (what, MODE, SEED, bits, MODE, SEED))


# record name prefix -> (summary part, {summary figure: record figure})
_SUMMARY = (
    ("power_cuts_", "powercut", {"kill_points": "kill_points", "boots": "boots", "lost": "lost", "double": "double",
                                 "stan_reuse": "stan_reuse", "pending_forever": "pending_forever",
                                 "boot_failed": "boot_failed"}),
    ("fault_matrix", "matrix", {"cells_passed": "passed", "cells": "cells"}),
    ("soak_engine", "soak", {"transactions": "transactions", "heap_first": "heap_first", "heap_last": "heap_last",
                             "p95_first": "p95_first_ms", "p95_last": "p95_last_ms"}),
    ("soak_emulator", "soak_emu", {"transactions": "transactions", "heap_first": "heap_first",
                                   "heap_last": "heap_last", "p95_first": "p95_first_ms", "p95_last": "p95_last_ms"}),
)


def _summary_record(name, figures):
    run = os.environ.get("PAYTERM_REL_RUN")
    if not run:
        return
    for prefix, part, keys in _SUMMARY:
        if name.startswith(prefix):
            break
    else:
        return
    figs = {k: figures[v] for k, v in keys.items() if v in figures}
    rec = {"part": part, "test": name, "time": time.time(), "seed": SEED, "mode": MODE, "figures": figs}
    _write_json(run, "%s--%s.json" % (part, name), rec)


def _write_json(d, name, obj, indent=None):
    """d/name holds obj whole or not at all (a concurrent reader never sees half a file)."""
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=True)
    os.replace(tmp, os.path.join(d, name))


def record(name, **figures):
    """One JSON file per test in build/reliability/, and its figures on the summary block's line."""
    figures.setdefault("mode", MODE)
    figures.setdefault("seed", SEED)
    figures.setdefault("time", round(time.time(), 1))
    _write_json(OUT, name + ".json", figures, indent=1)
    _summary_record(name, figures)
    return os.path.join(OUT, name + ".json")


def assert_no_card_data(*paths_or_text):
    for x in paths_or_text:
        if isinstance(x, str) and os.path.isdir(x):
            for data in flash_files(x, logs=True).values():
                assert_no_card_data(data)
            continue
        data = x.encode() if isinstance(x, str) else x
        for pan in PANS:
            assert pan.encode() not in data, "a full card number reached %r" % (data[:80],)


# ---------------------------------------------------------------- the oracle
PROBLEM_KINDS = ("lost", "double", "stan_reuse", "pending_forever", "other")


def classify(problem):
    """Which figure a reconciler problem counts toward."""
    if problem.startswith("stan reused") or "started again" in problem or "started " in problem and "times" in problem:
        return "stan_reuse"
    if problem.startswith("pending:"):
        return "pending_forever"
    if problem.startswith("advice:"):
        return "double"
    m = re.search(r"shows (-?\d+) to the merchant; the host holds (-?\d+)", problem)
    if m:
        shown, held = int(m.group(1)), int(m.group(2))
        return "double" if abs(held) > abs(shown) else "lost"
    if problem.startswith("money: host holds") or problem.startswith("unknown:") or problem.startswith("compacted:"):
        return "double"
    return "other"


def lost_approvals(records, approved, seen=None):
    """Approvals the terminal showed (refs) that its journal no longer shows as approved (or voided since).

    seen: records observed earlier (Reconciler.seen): one a compaction dropped since is judged by its
    last state; one never observed is only in the compaction summary, which the reconciler judges.
    """
    by = dict(seen or {})
    by.update({t.get("ref"): t for t in records})
    compacted = any(t.get("ref") == SUMMARY_REF for t in records)
    voided = {t.get("orig") for t in records if t.get("kind") == "void"
              and (t.get("st") == "approved" or (t.get("adv") and t.get("st") == "reversed"))}
    out = []
    for ref in approved:
        t = by.get(ref)
        if t is None:
            if not compacted:
                out.append("lost: approval %s is not in the journal" % ref)
            continue
        kind, st = t.get("kind"), t.get("st")
        ok = (kind in ("sale", "refund") and st == "approved") or (kind == "saf" and st in ("pending", "sent", "failed")) \
            or (kind == "void" and (st == "approved" or (t.get("adv") and st == "reversed")))
        if not ok and (ref in voided or (t.get("voided") == ref and st == "voided")):
            ok = True  # voided since by a void the journal holds, or an offline sale dropped by its void
        if not ok:
            out.append("lost: approval %s is %s %s in the journal" % (ref, kind, st))
    return out


def terminal_stan_reuse(records):
    """STANs the terminal's journal gave to two transactions (a void of an advice reuses its sale's by rule)."""
    by = {}
    for t in records:
        if t.get("kind") in ("sale", "refund", "saf", "void") and t.get("stan") and not t.get("adv"):
            by.setdefault(t["stan"], []).append(t.get("ref"))
    return ["stan reused: STAN %s numbers journal records %s" % (s, ", ".join(sorted(refs)))
            for s, refs in sorted(by.items()) if len(refs) > 1]


def judge(records, ledger, approved=(), reconciler=None, pending_ok=False):
    """(problems, {figure: count}) for a journal snapshot against the host's ledger."""
    r = reconciler or Reconciler()
    r.observe(records)
    problems = r.problems(list(ledger), pending_ok) + lost_approvals(records, approved, r.seen) \
        + terminal_stan_reuse(r.seen.values())
    counts = dict.fromkeys(PROBLEM_KINDS, 0)
    for p in problems:
        counts["lost" if p.startswith("lost:") else classify(p)] += 1
    return problems, counts


# ---------------------------------------------------------------- engine-level terminal
class RunResult:
    def __init__(self, lines, rc, cut, text=""):
        self.lines = lines
        self.text = text
        self.rc = rc
        self.cut = cut
        self.ops = [d for d in lines if "op" in d]
        self.faults = [d["fault"] for d in lines if "fault" in d]
        self.windows = [d for d in lines if "window" in d]
        self.done = any(d.get("done") for d in lines)
        self.flash_ops = []

    def of(self, name):
        return [d for d in self.ops if d["op"] == name]

    def approved(self):
        """Refs the terminal reported approved to the customer (sales, refunds, voids)."""
        return [d["ref"] for d in self.ops if d.get("approved") and d.get("ref")]


def host_sync(sim, action_of):
    """on_sync for EngineTerminal.run: "down"/"up" stop and start the host, "s<j>" scripts the host's
    answer to the next 0200 with action_of(j)."""
    def on_sync(name):
        if name == "down":
            sim.stop()
        elif name == "up":
            sim.start()
        else:
            clear_script(sim)
            sim.script(action_of(int(name[1:])), mti="0200")
    return on_sync


class EngineTerminal:
    """The firmware's transaction core in one MicroPython VM per run, on a state directory that persists."""

    def __init__(self, root, hosts, cfg=None, tls=None, background=False, journal_max=65536, journal_keep=100,
                 audit_drops=False):
        self.root = str(root)
        self.state = os.path.join(self.root, "flash")
        os.makedirs(self.state, exist_ok=True)
        if not keyinject.has_keys(self.state):
            keyinject.inject(self.state)  # the initial key the acquirer simulator's HSM derives from
        self.hosts = hosts
        self.cfg = dict(cfg or {})
        self.tls = tls
        self.background = background
        self.journal_max = journal_max
        self.journal_keep = journal_keep
        self.audit_drops = audit_drops
        self.runs = 0

    def spec(self, hosts=None):
        hosts = hosts or [h.address for h in self.hosts]
        return {"state": self.state, "hosts": ["%s:%d" % tuple(h) for h in hosts], "cfg": self.cfg,
                "tls": self.tls, "background": self.background, "journal_max": self.journal_max,
                "journal_keep": self.journal_keep, "audit_drops": self.audit_drops}

    def run(self, ops, cut=None, on_sync=None, on_line=None, timeout=120, hosts=None, flash_log=None):
        """Run `ops` (a list, or an iterable written to the ops file) in a fresh VM (one boot).

        cut="k[:before|after|partial]": the power goes at flash operation k (result.cut True when it did).
        on_sync(name) runs when the driver reaches ["sync", name]; on_line(d) sees every output line.
        hosts: other (host, port) addresses for this run (dead_address(): the host is unreachable).
        flash_log: file that gets "k op path" per flash write operation (result.flash_ops).
        """
        self.runs += 1
        spec_path = os.path.join(self.root, "spec.json")
        ops_path = os.path.join(self.root, "ops-%d.jsonl" % self.runs)
        with open(spec_path, "w") as f:
            json.dump(self.spec(hosts), f)
        with open(ops_path, "w") as f:
            for o in ops:
                f.write(json.dumps(o) + "\n")
        env = mpy_runtimes.env_for("unix")
        env.pop("PAYTERM_CUT_AT", None)
        env.pop("PAYTERM_FLASH_LOG", None)
        if cut:
            env["PAYTERM_CUT_AT"] = cut
        if flash_log:
            env["PAYTERM_FLASH_LOG"] = flash_log
        p = subprocess.Popen([mpy_runtimes.binary("unix"), DRIVER, spec_path, ops_path], env=env,
                             cwd=mpy_runtimes.REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        lines, raw = [], []
        try:
            for line in p.stdout:
                raw.append(line)
                s = line.decode("utf-8", "replace").strip()
                if not s.startswith("{"):
                    continue
                try:
                    d = json.loads(s)
                except ValueError:
                    continue
                lines.append(d)
                if on_line is not None:
                    on_line(d)
                if "sync" in d:
                    if on_sync is not None:
                        on_sync(d["sync"])
                    p.stdin.write(b"\n")
                    p.stdin.flush()
            p.wait()
        finally:
            timer.cancel()
            try:
                p.stdin.close()
            except OSError:
                pass
            os.remove(ops_path)
        text = b"".join(raw)
        assert_no_card_data(text)
        was_cut = bool(cut) and p.returncode == -9
        if not was_cut:
            assert p.returncode == 0 and any(d.get("done") for d in lines), \
                "driver exited %s:\n%s" % (p.returncode, text.decode("utf-8", "replace")[-4000:])
        res = RunResult(lines, p.returncode, was_cut, text.decode("utf-8", "replace"))
        if flash_log and os.path.exists(flash_log):
            with open(flash_log) as f:
                res.flash_ops = [l.split() for l in f if l.strip()]
        return res

    def journal(self):
        return read_journal(self.state)


# ---------------------------------------------------------------- network helpers
TLS_HOSTNAME = "acquirer.test"


def make_cert(d, name, cn=TLS_HOSTNAME):
    """A self-signed P-256 certificate for `cn` (its own CA) with the openssl CLI: (pem, key)."""
    key, pem = os.path.join(str(d), name + ".key"), os.path.join(str(d), name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:" + cn], check=True, capture_output=True)
    return pem, key


def dead_address():
    """A 127.0.0.1 port nothing listens on: connections are refused (the host is down)."""
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    addr = s.getsockname()
    s.close()
    return addr


def restart_sim(sim, tls="keep"):
    """Stop and start the simulator on the same port (optionally with other TLS credentials)."""
    sim.stop()
    if tls != "keep":
        sim.tls = tls
        sim._tls_ctx = None
    sim.start()


def clear_script(sim):
    """Forget the simulator's scripted answers not yet used (a cut may have left them unused)."""
    with sim._lock:
        del sim._script[:]


# ---------------------------------------------------------------- the whole firmware in the emulator
# Short waits so a power cut, a timeout and the upload after an outage each take about a second; every
# value is a real terminal parameter (payterm.config.DEFAULTS).
EMU_CFG = {
    "connect_timeout_ms": 500, "read_timeout_ms": 1000, "max_wait_ms": 4000, "min_read_ms": 400,
    "card_timeout_ms": 8000, "result_ms": 30, "result_min_ms": 30, "page_ms": 500, "mag_gap_ms": 15,
    "backoff_base_ms": 20, "backoff_cap_ms": 100, "max_attempts": 3,
    "breaker_open_ms": 300, "breaker_open_max_ms": 600,
    "worker_wait_ms": 1500, "retry_base_ms": 100, "retry_cap_ms": 400, "worker_scan_ms": 500,
    "saf_max_count": 20, "saf_max_total": 60000, "floor_limit": 5000,
}
MERCHANT_PIN = "1234"  # the emulator's (payterm_tools.emulator.MERCHANT_PIN)
TXN_RE = re.compile(rb"# TXN (\d{6}) (SALE|REFUND|VOID) (APPROVED(?:_OFFLINE)?|DECLINED)([^\n]*)")


class Died(Exception):
    """The terminal lost power while a step waited for it."""


class EmuRig:
    """The emulated terminal with its acquirer and card reader simulators, on one flash directory."""

    def __init__(self, root, config=None):
        from payterm_tools.emulator import Emulator
        from payterm_tools.sim.acquirer import AcquirerSim
        from payterm_tools.sim.cardsim import CardReaderSim

        self.root = str(root)
        self.acq = AcquirerSim(name="primary").start()
        cfg = dict(EMU_CFG)
        cfg.update(config or {})
        self.emu = Emulator(os.path.join(self.root, "flash"), [self.acq.address], config=cfg)
        self.reader = CardReaderSim(self.emu.ptys["mag"].fd, self.emu.ptys["nfc"].fd)
        self.reader.start()
        self.boots = 0
        self.kills = 0
        self.host_up = True

    @property
    def state_dir(self):
        return self.emu.state_dir

    # ------------------------------------------------------------ power
    def start(self, env=None):
        """Power on without waiting (the boot can then be cut). Never a second terminal on the same UARTs."""
        assert not self.alive(), "the terminal is still running"
        self.emu.start(wait_ready=False, env=env)

    def boot(self, env=None):
        """Power on and wait for the idle screen; AssertionError when the terminal does not come up."""
        assert not self.alive(), "the terminal is still running"
        self.emu.start(env=env)
        self.emu.panel.wait_screen("READY", 20)
        self.boots += 1

    def kill(self):
        """Power cut: SIGKILL; what was on its way to the terminal's UARTs is lost with the power."""
        import termios

        if self.emu.running():
            self.emu.kill()
            self.kills += 1
        for p in self.emu.ptys.values():
            try:
                termios.tcflush(p.slave_fd, termios.TCIFLUSH)
            except (OSError, termios.error):
                pass  # closed already

    def alive(self):
        return self.emu.running()

    # ------------------------------------------------------------ host
    def host(self, up):
        if up and not self.host_up:
            self.acq.start()
        elif not up and self.host_up:
            self.acq.stop()
        self.host_up = up

    # ------------------------------------------------------------ the cashier
    def _expect(self, ch, pattern, timeout):
        end = time.monotonic() + timeout
        while True:
            try:
                return ch.expect(pattern, 0.1)
            except AssertionError:
                if not self.alive():
                    raise Died()
                if time.monotonic() > end:
                    raise

    def _screen(self, pattern, timeout=5.0):
        end = time.monotonic() + timeout
        while True:
            try:
                return self.emu.panel.wait_screen(pattern, 0.1)
            except AssertionError:
                if not self.alive():
                    raise Died()
                if time.monotonic() > end:
                    raise

    def _keys(self, keys):
        if not self.alive():
            raise Died()
        self.emu.panel.press(keys, gap=0.004)

    def idle(self, timeout=10.0):
        self._screen("READY", timeout)

    def _merchant_pin(self, title):
        self._screen(r"^%s\b[^|]* \| MERCHANT PIN:" % title)
        self._keys(MERCHANT_PIN + "E")

    def payment(self, amount, kind="sale", card="visa", timeout=15.0, card_shown=None):
        """Key a sale (or refund: the merchant PIN, then OK on its confirmation) of `amount` minor units,
        swipe `card`; the console's TXN match. card_shown: a list that gets the moment PRESENT CARD showed."""
        self.idle()
        self.emu.console.skip()
        if kind == "refund":
            self._keys("F")
            self._screen("FUNCTION")
            self._keys("1")
            self._merchant_pin("REFUND")
            self._screen(r"REFUND \| EUR")
        self._keys("%dE" % amount)
        self._screen("PRESENT CARD")
        if card_shown is not None:
            card_shown.append(time.monotonic())
        self.reader.swipe(card)
        if kind == "refund":
            self._screen(r"REFUND\? \| .* \| TO CARD", timeout)
            self._keys("E")
        return self._expect(self.emu.console, TXN_RE.pattern, timeout)

    def void(self, ref, timeout=15.0):
        """F 2, the merchant PIN, the ref, OK on the confirmation (amount and card); the TXN match."""
        self.idle()
        self.emu.console.skip()
        self._keys("F")
        self._screen("FUNCTION")
        self._keys("2")
        self._merchant_pin("VOID")
        self._screen("VOID: REF")
        self._keys(ref + "E")
        screen = self._screen(r"E:YES C:NO|^\S.* \| (OPR|HST)-\d\d", timeout)
        if "E:YES" in screen:
            self._keys("E")
        return self._expect(self.emu.console, TXN_RE.pattern, timeout)

    def command(self, cmd, timeout=15.0):
        if not self.alive():
            raise Died()
        return self.emu.console.command(cmd, timeout)

    # ------------------------------------------------------------ what happened
    def shown(self):
        """(ref, kind, outcome) of every TXN line the console showed, across all boots."""
        return [(m.group(1).decode(), m.group(2).decode(), m.group(3).decode())
                for m in TXN_RE.finditer(self.emu.console.buf)]

    def approvals(self):
        return [ref for ref, _, outcome in self.shown() if outcome.startswith("APPROVED")]

    def journal(self):
        return read_journal(self.state_dir)

    def settled(self):
        """Nothing in flight, no reversal and no advice left in the journal."""
        for t in self.journal():
            if t.get("st") in ("pending", "reversing", "voiding"):
                return False
        return True

    def settle(self, timeout=30.0):
        """Wait (host up) until the terminal has nothing left to settle with the host; False on timeout."""
        self.host(True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.settled():
                return True
            time.sleep(0.1)
        return self.settled()

    def close(self):
        try:
            self.emu.close()
        finally:
            self.reader.stop()
            self.acq.stop()


# ---------------------------------------------------------------- the soak's traffic
# The transaction core's parameters for mixed traffic: short timeouts, so a host timeout costs 0.3 s.
MIX_CFG = {
    "terminal_id": "TERM0001", "merchant_id": "MERCHANT0000001", "currency": 978,
    "connect_timeout_ms": 300, "read_timeout_ms": 300, "max_wait_ms": 1500, "min_read_ms": 200,
    "backoff_base_ms": 10, "backoff_cap_ms": 50, "max_attempts": 3,
    "breaker_threshold": 3, "breaker_open_ms": 150, "breaker_open_max_ms": 300,
    "worker_wait_ms": 800, "retry_base_ms": 30, "retry_cap_ms": 150, "worker_scan_ms": 200,
    "floor_limit": 5000, "saf_max_count": 20, "saf_max_total": 60000, "saf_max_tries": 20,
}


def mixed_plan(rng, n, outage=0.008):
    """Ops and the host's answer for each: (op, action or None). A host outage with k offline sales
    ("down", k) starts at an op with probability `outage`; otherwise a void of the last approval 6%
    (a refund when there is none), a refund 6%, a decline 6%, a host timeout 1.5%, an approved sale."""
    out = []
    last_ok = False
    i = 0
    while i < n:
        r = rng.random()
        if r < outage and n - i > 10:
            k = rng.randint(3, 8)
            out.append((("down", k), None))
            i += k
            last_ok = False
            continue
        r = (r - outage) / (1 - outage) if r >= outage else rng.random()
        if r < 0.06 and last_ok:
            out.append((["void", "last"], None))
            last_ok = False
        elif r < 0.12:
            out.append((["refund", rng.randint(100, 3000)], None))
            last_ok = True
        elif r < 0.18:
            out.append((["sale", rng.randint(100, 9000)], ("decline", rng.choice(["05", "51", "54", "57"]))))
            last_ok = False
        elif r < 0.195:
            out.append((["sale", rng.randint(100, 9000)], "no_answer"))
            last_ok = False
        else:
            out.append((["sale", rng.randint(100, 9000)], None))
            last_ok = True
        i += 1
    return out

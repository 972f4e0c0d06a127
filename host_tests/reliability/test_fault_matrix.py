"""The network fault matrix: every fault the acquirer simulator injects, crossed with sale, refund, void,
reversal and advice upload, each cell with its expected end state and failure code.

Each cell runs the firmware's transaction core (Engine, Worker, Supervisor, Link, Journal, State and
Diag in the MicroPython unix VM: rel_common.EngineTerminal) on its own flash against its own strict
acquirer simulator. The fault hits the column's message (the 0200 of a sale, refund or void, the
first 0400 of a reversal, the first 0220 of an upload); afterwards the host behaves and the
terminal's worker settles everything. A cell passes when the end state and the failure code are
the expected ones, the money-level reconciler (host_tests/system/ledger.py) finds nothing (what the
host holds per original equals what the terminal shows, no STAN reused, an advice booked once,
nothing pending), and a follow-up sale on the same link is approved. The matrix is printed with
pass/fail per cell and recorded in build/reliability/fault_matrix.json.

End states: approved, declined (code), reversed (the customer saw the code; the host holds
nothing), sent once (an offline approval or advice that reached the host exactly once),
voided, void reversed / void declined (the void did not take; the sale stands).
"""
import concurrent.futures
import os
import sys
import time

import pytest

pytestmark = pytest.mark.reliability("matrix")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rel_common as R  # noqa: E402
from payterm_tools.sim.acquirer import AcquirerSim  # noqa: E402

READ_MS = 500
CFG = {
    "terminal_id": "TERM0001", "merchant_id": "MERCHANT0000001", "currency": 978,
    "connect_timeout_ms": 500, "read_timeout_ms": READ_MS, "max_wait_ms": 2000, "min_read_ms": 300,
    "backoff_base_ms": 20, "backoff_cap_ms": 100, "max_attempts": 3,
    "breaker_threshold": 3, "breaker_open_ms": 300, "breaker_open_max_ms": 600,
    "worker_wait_ms": 1000, "retry_base_ms": 50, "retry_cap_ms": 200, "worker_scan_ms": 500,
    "floor_limit": 3000, "saf_max_count": 10, "saf_max_total": 20000, "saf_max_tries": 8,
}
AMOUNT = 1500  # under the floor limit: a sale that never left is approved offline
COLUMNS = ("sale", "refund", "void", "reversal", "advice")

# (row, what the issue calls it, simulator action applied to the column's message)
FAULTS = (
    ("delay", "delay past the timeout", ("delay", READ_MS + 700)),
    ("drop_before", "drop before the request", None),     # the host closes the idle connection first
    ("drop_after", "drop after the request", "close"),
    ("reset_mid", "reset mid-frame", "reset_mid"),
    ("half_open", "half-open connection", "half_open"),
    ("garbage", "garbage", "garbage"),
    ("truncated", "truncated frame", "truncated"),
    ("huge_len", "huge length header", "huge_len"),
    ("zero_len", "zero length header", "zero_len"),
    ("duplicate", "duplicate response", "duplicate"),
    ("wrong_stan", "wrong STAN", ("wrong_stan", False)),
    ("wrong_mti", "wrong MTI", ("wrong_mti", False)),
    ("wrong_tid", "wrong TID", ("wrong_tid", False)),
    ("no_rc", "no field 39", "no_rc"),
    ("late", "answer after the reversal", ("late", READ_MS + 1500)),
    ("rev_declined", "reversal declined", ("decline", "96")),  # on the 0400 that undoes the column's message
    ("approve_close", "approve-then-close", "approve_close"),
    ("tls_wrong_ca", "TLS certificate from the wrong CA", None),  # the host presents a certificate of another CA
)

# Expected (end state, failure code) per cell. The code is the customer's (sale, refund, void) or the
# first one the worker logged (reversal, advice upload); None: no failure.
_REV = ("reversed", None)
EXPECT = {}
for _row, _code in (("delay", "HST-01"), ("drop_after", "NET-05"), ("reset_mid", "NET-05"), ("half_open", "HST-01"),
                    ("garbage", "HST-02"), ("truncated", "HST-02"), ("huge_len", "HST-02"), ("zero_len", "HST-02"),
                    ("wrong_stan", "HST-03"), ("wrong_mti", "HST-03"), ("wrong_tid", "HST-03"), ("no_rc", "HST-02"),
                    ("late", "HST-01"), ("rev_declined", "HST-01")):
    EXPECT[(_row, "sale")] = ("reversed", _code)
    EXPECT[(_row, "refund")] = ("reversed", _code)
    EXPECT[(_row, "void")] = ("void reversed, sale stands", _code)
    EXPECT[(_row, "reversal")] = ("reversed", _code)
    EXPECT[(_row, "advice")] = ("sent once", _code)
for _row in ("drop_before", "duplicate", "approve_close"):
    EXPECT[(_row, "sale")] = ("approved", None)
    EXPECT[(_row, "refund")] = ("approved", None)
    EXPECT[(_row, "void")] = ("voided", None)
    EXPECT[(_row, "reversal")] = ("reversed", None)
    EXPECT[(_row, "advice")] = ("sent once", None)
# A reversal or advice that did not get its answer the first time is repeated (0401 / 0221).
EXPECT[("rev_declined", "reversal")] = ("reversed", "ISS-96")
# The advice's reversal is the void of an uploaded offline sale: declined, the sale stays uploaded and held.
EXPECT[("rev_declined", "advice")] = ("void declined, sale stands", "ISS-96")
# The TLS handshake fails before anything is sent: never ambiguous.
EXPECT[("tls_wrong_ca", "sale")] = ("sent once", "NET-04")  # approved offline, uploaded once the host is right
EXPECT[("tls_wrong_ca", "refund")] = ("declined", "NET-04")  # refunds are never approved offline
EXPECT[("tls_wrong_ca", "void")] = ("void declined, sale stands", "NET-04")
EXPECT[("tls_wrong_ca", "reversal")] = ("reversed", "NET-04")  # repeated once the host is right
EXPECT[("tls_wrong_ca", "advice")] = ("sent once", "NET-04")


class Cell:
    def __init__(self, row, col, action):
        self.row, self.col, self.action = row, col, action
        self.want = EXPECT[(row, col)]
        self.got = None
        self.problems = []
        self.error = None
        self.seconds = 0.0

    @property
    def passed(self):
        return self.error is None and not self.problems and self.got == self.want


def _first_fault(run, op="work"):
    """The first failure code logged before the first `op` ended (the worker's, or the link's
    behind an offline approval), not the follow-up sale's."""
    for d in run.lines:
        if d.get("op") == op:
            break
        if "fault" in d and d.get("stage") in ("retry", "host", "link", "txn"):
            return d["fault"]
    return None


def _run_cell(cell, tmp, certs):
    """One cell on its own flash and simulator; sets cell.got and cell.problems."""
    tls = certs is not None and cell.row == "tls_wrong_ca"
    sim = AcquirerSim(name="primary", tls=certs["good"] if tls else None).start()
    try:
        term = R.EngineTerminal(tmp, [sim], cfg=CFG, tls={"ca": certs["good"][0], "server_hostname": R.TLS_HOSTNAME}
                                if tls else None)
        approvals = []
        col, row = cell.col, cell.row

        def syncs(name):
            if name == "down":
                sim.stop()
            elif name == "up":
                sim.start()
            elif name == "drop":
                time.sleep(0.05)
                sim.drop()
                time.sleep(0.05)
            elif name == "tls_wrong":
                R.restart_sim(sim, tls=certs["other"])
            elif name == "tls_right":
                R.restart_sim(sim, tls=certs["good"])
            elif name == "fault":
                _script_fault(sim, cell)

        def record_ops(*refs):
            return [["record", r] for r in refs]

        def go(ops):
            r = term.run(ops, on_sync=syncs)
            approvals.extend(d["ref"] for d in r.ops if d.get("approved") and d.get("ref"))
            return r

        before = [["echo"], ["sync", "drop"]] if row == "drop_before" else [["echo"]]
        if tls:
            before = [["sync", "tls_wrong"]]
        after_tls = [["sync", "tls_right"]] if tls else []
        # The next customer comes a moment later (a host that closed after answering has closed by
        # then; a breaker the TLS failures opened lets a request through again) and must be approved.
        follow_up = [["sleep", 700 if tls else 200], ["sale", 10], ["work"]]
        if col in ("sale", "refund"):
            r = go([["sync", "fault"]] + before + [[col, AMOUNT]] + after_tls + [["work"]] + follow_up
                   + record_ops("#0"))
            res = r.of(col)[0]
            st = r.of("record")[0]["st"]
            follow = r.of("sale")[-1] if col == "sale" else r.of("sale")[0]
            code = res["code"] or (_first_fault(r) if res["offline"] else None)
            if res["approved"] and not res["offline"] and st == "approved":
                got = "approved"
            elif res["approved"] and res["offline"] and st == "sent":
                got = "sent once"
            elif not res["approved"] and st == "reversed":
                got = "reversed"
            elif not res["approved"] and st in ("declined", "failed"):
                got = "declined"
            else:
                got = "%s/%s offline=%s" % ("approved" if res["approved"] else "declined", st, res["offline"])
        elif col == "void":
            s = go([["sale", AMOUNT]]).of("sale")[0]
            assert s["approved"], s
            r = go([["sync", "fault"]] + before + [["void", s["ref"]]] + after_tls + [["work"]] + follow_up
                   + [["record", s["ref"]]])
            res = r.of("void")[0]
            sale_st = r.of("record")[0]["status"]
            follow = r.of("sale")[0]
            code = res["code"]
            v = [t for t in term.journal() if t.get("kind") == "void"]
            vst = v[-1]["st"] if v else None
            if res["approved"] and sale_st == "voided":
                got = "voided"
            elif not res["approved"] and vst == "reversed" and sale_st == "approved":
                got = "void reversed, sale stands"
            elif not res["approved"] and vst in ("declined", "failed") and sale_st == "approved":
                got = "void declined, sale stands"
            else:
                got = "void %s/%s, sale %s" % ("approved" if res["approved"] else "declined", vst, sale_st)
        elif col == "reversal":
            sim.script("no_answer", mti="0200")
            s = go([["sale", AMOUNT]]).of("sale")[0]
            assert (s["approved"], s["code"]) == (False, "HST-01"), s
            r = go([["sync", "fault"]] + before + ([["work", 3]] if tls else []) + after_tls
                   + [["work"]] + follow_up + [["record", s["ref"]]])
            code = _first_fault(r)
            st = r.of("record")[0]["st"]
            follow = r.of("sale")[0]
            got = "reversed" if st == "reversed" else "st %s" % st
        else:  # advice
            s = go([["sync", "down"], ["sale", AMOUNT], ["sync", "up"]]).of("sale")[0]
            assert (s["approved"], s["offline"]) == (True, True), s
            if row == "rev_declined":
                go([["work"]])  # uploaded; the fault hits the 0400 that cancels the advice
                r = go([["sync", "fault"], ["echo"], ["void", s["ref"]], ["work"]] + follow_up + [["record", s["ref"]]])
                res = r.of("void")[0]
                code = res["code"]
                st = r.of("record")[0]["st"]
                got = "void declined, sale stands" if not res["approved"] and st == "sent" else \
                    "void %s, sale %s" % (res["approved"], st)
            else:
                r = go([["sync", "fault"]] + before + ([["work", 3]] if tls else []) + after_tls
                       + [["work"]] + follow_up + [["record", s["ref"]]])
                code = _first_fault(r)
                st = r.of("record")[0]["st"]
                got = "sent once" if st == "sent" else "st %s" % st
            follow = r.of("sale")[0]
        cell.got = (got, code)
        end = time.monotonic() + 5
        while sim._book.arriving and time.monotonic() < end:
            time.sleep(0.05)  # the host has decided everything it received before it is judged
        if not follow["approved"] or follow["offline"]:
            cell.problems.append("follow-up sale on the same link: %r" % (follow,))
        problems, _ = R.judge(term.journal(), sim.ledger, approved=approvals)
        cell.problems += problems
        R.assert_no_card_data(term.state)
    finally:
        sim.stop()


def _script_fault(sim, cell):
    """Script the cell's fault on the column's message."""
    row, col, action = cell.row, cell.col, cell.action
    if action is None:
        return  # drop_before / TLS: done around the request, not by the host's answer
    if row == "rev_declined":
        if col == "advice":
            sim.script(action, mti="0400")
        elif col == "reversal":
            sim.script(action, mti="0400")
        else:
            sim.script("no_answer", mti="0200")
            sim.script(action, mti="0400")
        return
    mti = {"sale": "0200", "refund": "0200", "void": "0200", "reversal": "0400", "advice": "0220"}[col]
    sim.script(action, mti=mti)


def _table(cells):
    w = max(len(f[1]) for f in FAULTS)
    colw = 39
    lines = ["%-*s | %s" % (w, "fault \\ message", " | ".join("%-*s" % (colw, c) for c in COLUMNS))]
    lines.append("-" * len(lines[0]))
    by = {(c.row, c.col): c for c in cells}
    for row, label, _ in FAULTS:
        bits = []
        for col in COLUMNS:
            c = by.get((row, col))
            if c is None:
                bits.append("%-*s" % (colw, "-"))
                continue
            state, code = c.got if c.got else ("error", None)
            txt = "%s %s%s" % ("PASS" if c.passed else "FAIL", state, " " + code if code else "")
            bits.append("%-*s" % (colw, txt[:colw]))
        lines.append("%-*s | %s" % (w, label, " | ".join(bits)))
    return lines


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return {"good": R.make_cert(d, "good"), "other": R.make_cert(d, "other")}


def test_network_fault_matrix(tmp_path, certs):
    R.banner("network fault matrix", cells=len(EXPECT))
    cells = [Cell(row, col, action) for row, _, action in FAULTS for col in COLUMNS]
    t0 = time.monotonic()

    def one(c):
        t = time.monotonic()
        try:
            _run_cell(c, tmp_path / ("%s-%s" % (c.row, c.col)), certs)
        except Exception as e:  # a cell that breaks is a failed cell, the others still run
            c.error = "%s: %s" % (type(e).__name__, str(e)[-1500:])
        c.seconds = time.monotonic() - t
        return c

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, cells))
    table = _table(cells)
    print("\n" + "\n".join(table))
    bad = [c for c in cells if not c.passed]
    for c in bad:
        print("FAIL %s x %s: want %r, got %r%s%s" % (c.row, c.col, c.want, c.got,
                                                     "".join("\n    " + p for p in c.problems),
                                                     "\n    " + c.error if c.error else ""))
    R.record("fault_matrix", cells=len(cells), passed=len(cells) - len(bad), table=table,
             seconds=round(time.monotonic() - t0, 1),
             failed=["%s x %s" % (c.row, c.col) for c in bad])
    assert not bad, "%d of %d cells failed (table above)" % (len(bad), len(cells))

"""The journal/ledger reconciler (host_tests/system/ledger.py) judges money: each case names its problem.

Synthetic journals are written in the firmware's record format and read back
with read_journal; synthetic ledgers use AcquirerSim's entry keys. The last
tests drive the real AcquirerSim over TCP and check that the reconciler's
view of what the host holds is the simulator's own.
"""
import json
import os
import socket
import struct
import sys
import zlib

import iso8583
import pytest
from iso8583.specs import default as SPEC

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "system"))
from ledger import Reconciler, host_holdings, problems, read_journal, reconcile  # noqa: E402

from payterm_tools.sim.acquirer import AcquirerSim  # noqa: E402

TID = "TERM0001"
F7 = "1201103000"


def _frame(rec):
    body = json.dumps(rec).encode()
    return struct.pack(">II", len(body), zlib.crc32(body) & 0xFFFFFFFF) + body


def journal(tmp_path, recs, tail=b""):
    with open(tmp_path / "journal.log", "wb") as f:
        for r in recs:
            f.write(_frame(r))
        f.write(tail)
    return read_journal(str(tmp_path))


_seq = [0]


def rec(stan, kind, st, amt, **extra):
    """A journal record as the engine writes it (created with "new", then merged)."""
    _seq[0] += 1
    r = {"ref": stan, "new": 1, "seq": _seq[0], "kind": kind, "st": st, "stan": stan, "amt": amt, "cur": 978,
         "req": {"t": "0200", "11": stan, "41": TID, "7": F7}}
    r.update(extra)
    return r


def e(kind, stan, mti, amount=0, rc="00", repeat=False, orig="", orig_mti="", booked=None):
    """A ledger entry with AcquirerSim's keys; `booked` left out lets the reconciler decide."""
    x = {"kind": kind, "stan": stan, "mti": mti, "amount": amount, "rc": rc, "repeat": repeat, "tid": TID,
         "orig_stan": orig, "orig_mti": orig_mti}
    if booked is not None:
        x["booked"] = booked
    return x


def named(found, *prefixes):
    """Every prefix names at least one problem."""
    for p in prefixes:
        assert any(p in f for f in found), "expected a problem %r in %s" % (p, found)


# ---------------------------------------------------------------- consistent histories
def test_consistent_money_reconciles(tmp_path):
    recs = journal(tmp_path, [
        rec("000001", "sale", "approved", 1000),
        rec("000002", "refund", "approved", 300),
        rec("000003", "sale", "declined", 900),
        rec("000004", "sale", "reversed", 400),
        rec("000005", "saf", "sent", 500),
        rec("000006", "sale", "failed", 200),  # never reached the host
    ])
    ledger = [e("auth", "000001", "0200", 1000), e("refund", "000002", "0200", 300),
              e("auth", "000003", "0200", 900, rc="51"),
              e("auth", "000004", "0200", 400), e("reversal", "000004", "0400", 400, orig="000004", orig_mti="0200"),
              e("reversal", "000004", "0401", 400, repeat=True, orig="000004", orig_mti="0200"),
              e("advice", "000005", "0220", 500)]
    assert reconcile(recs, ledger) == {"sale_approved": 1, "refund_approved": 1, "sale_declined": 1,
                                       "sale_reversed": 1, "saf_sent": 1, "sale_failed": 1}
    assert host_holdings(ledger) == {(TID, "000001"): 1000, (TID, "000002"): -300, (TID, "000004"): 0,
                                     (TID, "000005"): 500}


def test_duplicate_the_host_answered_94_is_no_problem(tmp_path):
    recs = journal(tmp_path, [rec("000001", "sale", "approved", 1000)])
    ledger = [e("auth", "000001", "0200", 1000), e("auth", "000001", "0200", 1000, rc="94")]
    assert reconcile(recs, ledger) == {"sale_approved": 1}


def test_same_original_received_twice_is_a_problem(tmp_path):
    recs = journal(tmp_path, [rec("000001", "sale", "approved", 1000)])
    ledger = [e("auth", "000001", "0200", 1000), e("auth", "000001", "0200", 1000)]
    named(problems(recs, ledger), "stan reused: STAN 000001 received 2 times", "money: sale 000001")


# ---------------------------------------------------------------- voids
def test_several_approved_voids_of_one_sale(tmp_path):
    recs = journal(tmp_path, [
        rec("000001", "sale", "approved", 1000, voided="000002"),
        rec("000002", "void", "approved", 1000, orig="000001"),
        rec("000003", "void", "approved", 1000, orig="000001"),
    ])
    ledger = [e("auth", "000001", "0200", 1000),
              e("void", "000002", "0200", 1000, orig="000001", orig_mti="0200"),
              e("void", "000003", "0200", 1000, orig="000001", orig_mti="0200")]
    found = problems(recs, ledger)
    named(found, "money: sale 000001 (approved, voided) shows 0 to the merchant; the host holds -1000")


def test_one_void_reconciles(tmp_path):
    recs = journal(tmp_path, [
        rec("000001", "sale", "approved", 1000, voided="000002"),
        rec("000002", "void", "approved", 1000, orig="000001"),
    ])
    ledger = [e("auth", "000001", "0200", 1000), e("void", "000002", "0200", 1000, orig="000001", orig_mti="0200")]
    assert reconcile(recs, ledger) == {"sale_approved": 1, "void_approved": 1}


def _void_reversed_at_host():
    return [e("auth", "000001", "0200", 1000),
            e("void", "000002", "0200", 1000, orig="000001", orig_mti="0200"),
            e("reversal", "000002", "0400", 1000, orig="000002", orig_mti="0200")]


def test_void_reversed_at_host_with_the_sale_standing_on_the_terminal(tmp_path):
    recs = journal(tmp_path, [
        rec("000001", "sale", "approved", 1000),
        rec("000002", "void", "reversed", 1000, orig="000001", code="HST-01"),
    ])
    assert reconcile(recs, _void_reversed_at_host()) == {"sale_approved": 1, "void_reversed": 1}
    assert host_holdings(_void_reversed_at_host()) == {(TID, "000001"): 1000}


def test_void_approved_before_the_sale_was_marked(tmp_path):
    # A cut between the void's approval and the sale's mark: the terminal shows it voided (the void decides).
    recs = journal(tmp_path, [rec("000001", "sale", "approved", 1000),
                              rec("000002", "void", "approved", 1000, orig="000001")])
    ledger = [e("auth", "000001", "0200", 1000), e("void", "000002", "0200", 1000, orig="000001", orig_mti="0200")]
    assert reconcile(recs, ledger) == {"sale_approved": 1, "void_approved": 1}
    named(problems(recs, ledger[:1]), "money: sale 000001 (approved, voided) shows 0 to the merchant; the host holds 1000")


def test_void_reversed_at_host_but_voided_on_the_terminal(tmp_path):
    recs = journal(tmp_path, [
        rec("000001", "sale", "approved", 1000, voided="000002"),
        rec("000002", "void", "approved", 1000, orig="000001"),
    ])
    named(problems(recs, _void_reversed_at_host()),
          "money: sale 000001 (approved, voided) shows 0 to the merchant; the host holds 1000 (1 standing)")


def test_void_in_flight_may_or_may_not_have_reached_the_host(tmp_path):
    recs = journal(tmp_path, [
        rec("000001", "sale", "approved", 1000),
        rec("000002", "void", "reversing", 1000, orig="000001", code="HST-01"),
    ])
    voided = [e("auth", "000001", "0200", 1000), e("void", "000002", "0200", 1000, orig="000001", orig_mti="0200")]
    not_yet = voided[:1]
    for ledger in (voided, not_yet):
        assert reconcile(recs, ledger, pending_ok=True) == {"sale_approved": 1, "void_reversing": 1}
    named(problems(recs, voided), "pending: void 000002 still reversing")


# ---------------------------------------------------------------- offline sales
def test_offline_sale_sent_then_voided(tmp_path):
    recs = journal(tmp_path, [
        rec("000001", "saf", "sent", 700, voided="000002"),
        rec("000002", "void", "approved", 700, orig="000001"),
    ])
    # The terminal's void names the sale (0200); the host knows it from its advice.
    ledger = [e("advice", "000001", "0220", 700),
              e("void", "000002", "0200", 700, orig="000001", orig_mti="0200")]
    assert reconcile(recs, ledger) == {"saf_sent": 1, "void_approved": 1}
    named(problems(recs, ledger[:1]), "money: saf 000001 (sent, voided) shows 0 to the merchant; the host holds 700")
    refused = ledger[:1] + [e("void", "000002", "0200", 700, rc="12", orig="000001", orig_mti="0200")]
    named(problems(recs, refused), "money: saf 000001")


def test_advice_uploaded_only_as_0221_is_booked_once(tmp_path):
    recs = journal(tmp_path, [rec("000001", "saf", "sent", 700)])
    ledger = [e("advice", "000001", "0221", 700, repeat=True), e("advice", "000001", "0221", 700, repeat=True)]
    assert reconcile(recs, ledger) == {"saf_sent": 1}
    assert host_holdings(ledger) == {(TID, "000001"): 700}


def test_advice_sent_but_never_booked(tmp_path):
    recs = journal(tmp_path, [rec("000001", "saf", "sent", 700)])
    named(problems(recs, [e("advice", "000001", "0220", 700, rc="96")]),
          "money: saf 000001 (sent) shows 700", "advice: 000001 marked sent, booked 0 times")


def test_advice_pending_with_pending_ok(tmp_path):
    recs = journal(tmp_path, [rec("000001", "saf", "pending", 700)])
    assert reconcile(recs, [], pending_ok=True) == {"saf_pending": 1}
    assert reconcile(recs, [e("advice", "000001", "0220", 700)], pending_ok=True) == {"saf_pending": 1}
    named(problems(recs, []), "pending: saf 000001 still pending")


def test_offline_sale_voided_before_upload_must_not_reach_the_host(tmp_path):
    recs = journal(tmp_path, [rec("000001", "saf", "voided", 700, voided="000001")])
    assert reconcile(recs, []) == {"saf_voided": 1}
    named(problems(recs, [e("advice", "000001", "0220", 700)]), "money: saf 000001 (voided) shows 0")


# ---------------------------------------------------------------- void of an offline sale the host may hold
def _adv_void(st, amt, sale="000001", vref="000002", **extra):
    """The engine's void of an offline sale whose advice may have reached the host: "adv": 1, the
    sale's STAN, its req the advice (0220); at the host a 0400 (0401 repeated) naming the 0220."""
    return rec(sale, "void", st, amt, ref=vref, adv=1, orig=sale,
               req={"t": "0220", "11": sale, "41": TID, "7": F7}, **extra)


def _adv_rev(amt, rc="00", mti="0400", sale="000001"):
    return e("reversal", sale, mti, amt, rc=rc, repeat=mti == "0401", orig=sale, orig_mti="0220")


def test_void_of_an_uploaded_offline_sale_cancels_its_advice(tmp_path):
    booked = [e("advice", "000001", "0220", 1200)]
    for rc, host in (("00", booked + [_adv_rev(1200)]),  # the host had booked the advice: cancelled
                     ("25", [_adv_rev(1200, rc="25")])):  # it never got it: nothing to cancel
        recs = journal(tmp_path, [rec("000001", "saf", "reversed", 1200, voided="000002", rv_rc=rc),
                                  _adv_void("approved", 1200, rc=rc)])
        assert reconcile(recs, host) == {"saf_reversed": 1, "void_approved": 1}, rc
    # its 0400's answer was lost: 0401 repeats until acknowledged; "reversed" cancels it as "approved" does
    recs = journal(tmp_path, [rec("000001", "saf", "reversed", 1200, voided="000002"),
                              _adv_void("reversed", 1200, code="HST-05")])
    assert reconcile(recs, booked + [_adv_rev(1200), _adv_rev(1200, mti="0401")]) == \
        {"saf_reversed": 1, "void_reversed": 1}


def test_offline_sale_cancelled_on_the_terminal_but_its_advice_held(tmp_path):
    recs = journal(tmp_path, [rec("000001", "saf", "reversed", 1200, voided="000002"),
                              _adv_void("approved", 1200)])
    booked = [e("advice", "000001", "0220", 1200)]
    named(problems(recs, booked), "money: saf 000001 (reversed, voided) shows 0 to the merchant; the host holds 1200")
    named(problems(recs, booked + [_adv_rev(1200, rc="12")]), "money: saf 000001")


def test_void_of_an_offline_sale_in_flight(tmp_path):
    recs = journal(tmp_path, [rec("000001", "saf", "voiding", 1200), _adv_void("reversing", 1200, code="HST-05")])
    booked = [e("advice", "000001", "0220", 1200)]
    for host in ([], booked, booked + [_adv_rev(1200)], [_adv_rev(1200, rc="25")]):
        # the advice may or may not be booked, its reversal may or may not have reached the host
        assert reconcile(recs, host, pending_ok=True) == {"saf_voiding": 1, "void_reversing": 1}, host
    named(problems(recs, booked), "pending: void 000001 still reversing", "pending: saf 000001 still voiding")


def test_void_of_an_offline_sale_done_before_the_sale_was_marked(tmp_path):
    # A cut between the void's outcome and the sale's mark: the void record decides (the boot repairs the mark).
    for vst in ("approved", "reversed"):
        recs = journal(tmp_path, [rec("000001", "saf", "voiding", 1200), _adv_void(vst, 1200)])
        booked = [e("advice", "000001", "0220", 1200)]
        assert reconcile(recs, booked + [_adv_rev(1200)]) == {"saf_voiding": 1, "void_" + vst: 1}
        named(problems(recs, booked), "money: saf 000001 (voiding, voided) shows 0 to the merchant; the host holds 1200")


def test_void_of_an_offline_sale_refused_leaves_the_sale_standing(tmp_path):
    # The host refused the cancellation (or the 0400 never left): the sale stands, its advice goes up.
    for vst in ("declined", "failed"):
        recs = journal(tmp_path, [rec("000001", "saf", "sent", 1200), _adv_void(vst, 1200)])
        assert reconcile(recs, [e("advice", "000001", "0220", 1200)]) == {"saf_sent": 1, "void_" + vst: 1}


# ---------------------------------------------------------------- reversals
def test_record_left_reversing(tmp_path):
    recs = journal(tmp_path, [rec("000001", "sale", "reversing", 1000, code="HST-01")])
    charged = [e("auth", "000001", "0200", 1000)]
    named(problems(recs, charged), "pending: sale 000001 still reversing")
    assert reconcile(recs, charged, pending_ok=True) == {"sale_reversing": 1}
    reversed_ = charged + [e("reversal", "000001", "0400", 1000, orig="000001", orig_mti="0200")]
    assert reconcile(recs, reversed_, pending_ok=True) == {"sale_reversing": 1}


def test_reversal_declined_by_the_host_leaves_the_charge(tmp_path):
    recs = journal(tmp_path, [rec("000001", "sale", "reversed", 1000, rv_rc="96")])
    ledger = [e("auth", "000001", "0200", 1000), e("reversal", "000001", "0400", 1000, rc="96", orig="000001")]
    named(problems(recs, ledger), "money: sale 000001 (reversed) shows 0 to the merchant; the host holds 1000")


def test_reversal_of_an_original_the_host_never_got(tmp_path):
    recs = journal(tmp_path, [rec("000001", "sale", "reversed", 1000)])
    assert reconcile(recs, [e("reversal", "000001", "0400", 1000, rc="25", orig="000001")]) == {"sale_reversed": 1}


def test_partial_approval_is_held_for_the_approved_amount(tmp_path):
    ledger = [e("auth", "000001", "0200", 600, rc="10")]
    full = journal(tmp_path, [rec("000001", "sale", "approved", 1000)])
    named(problems(full, ledger), "money: sale 000001 (approved) shows 1000 to the merchant; the host holds 600")
    assert reconcile(journal(tmp_path, [rec("000001", "sale", "approved", 600)]), ledger) == {"sale_approved": 1}


def test_declined_on_the_terminal_but_held(tmp_path):
    recs = journal(tmp_path, [rec("000001", "sale", "declined", 1000, code="HST-02")])
    named(problems(recs, [e("auth", "000001", "0200", 1000)]), "money: sale 000001 (declined) shows 0")


def test_host_holds_under_the_stan_of_a_void(tmp_path):
    recs = journal(tmp_path, [rec("000001", "sale", "approved", 1000, voided="000002"),
                              rec("000002", "void", "approved", 1000, orig="000001")])
    ledger = [e("auth", "000001", "0200", 1000), e("void", "000002", "0200", 1000, orig="000001", orig_mti="0200"),
              e("auth", "000002", "0200", 1000)]
    named(problems(recs, ledger), "money: host holds 1000 for STAN 000002, a void on the terminal",
          "stan reused: STAN 000002 received 2 times")


# ---------------------------------------------------------------- compaction
def _summary(n, held):
    return {"ref": "~compacted", "new": 1, "n": n, "held": held}


def test_no_summary_any_unknown_original_is_a_problem(tmp_path):
    recs = journal(tmp_path, [rec("000003", "sale", "approved", 100)])
    ledger = [e("auth", "000001", "0200", 1000), e("auth", "000002", "0200", 500, rc="51"),
              e("auth", "000003", "0200", 100)]
    named(problems(recs, ledger), "unknown: host has STAN 000001 (holds 1000)", "unknown: host has STAN 000002 (holds 0)")


def test_dropped_records_judged_against_the_summary(tmp_path):
    ledger = [e("auth", "000001", "0200", 1000), e("auth", "000002", "0200", 500, rc="51"),
              e("refund", "000003", "0200", 200), e("auth", "000004", "0200", 100)]
    recs = journal(tmp_path, [_summary(4, 800), rec("000004", "sale", "approved", 100)])
    assert reconcile(recs, ledger) == {"sale_approved": 1}, "the summary record is not a transaction"
    recs = journal(tmp_path, [_summary(4, 1000), rec("000004", "sale", "approved", 100)])
    named(problems(recs, ledger), "compacted: the host holds 800 for originals the journal dropped, the summary says 1000")
    recs = journal(tmp_path, [_summary(2, 800), rec("000004", "sale", "approved", 100)])
    named(problems(recs, ledger), "compacted: host has 3 originals the journal does not know")


def test_summary_merged_over_several_compactions(tmp_path):
    recs = journal(tmp_path, [_summary(1, 1000), {"ref": "~compacted", "n": 2, "held": 1500}])
    assert reconcile(recs, [e("auth", "000001", "0200", 1000), e("auth", "000002", "0200", 500)]) == {}


def test_reconciler_judges_dropped_records_one_by_one(tmp_path):
    a = rec("000001", "sale", "approved", 1000)
    first = journal(tmp_path, [a])
    later = journal(tmp_path, [_summary(2, 1000), rec("000003", "sale", "approved", 50)])
    # The host reversed A but holds B, which the terminal never showed: the sums still agree.
    ledger = [e("auth", "000001", "0200", 1000), e("reversal", "000001", "0400", 1000, orig="000001"),
              e("auth", "000002", "0200", 1000), e("auth", "000003", "0200", 50)]
    assert problems(later, ledger) == [], "one snapshot cannot tell which dropped record holds what"
    r = Reconciler().observe(first).observe(later)
    named(r.problems(ledger), "money: sale 000001 (approved) shows 1000 to the merchant; the host holds 0",
          "compacted: the host holds 1000 for originals the journal dropped, the summary says 0")
    fine = [e("auth", "000001", "0200", 1000), e("auth", "000002", "0200", 7, rc="05"), e("auth", "000003", "0200", 50)]
    assert r.check(fine) == {"sale_approved": 2}, "A judged from memory; B (declined) is within the summary"


def test_reconciler_sees_a_ref_started_again_across_snapshots(tmp_path):
    r = Reconciler().observe(journal(tmp_path, [rec("000001", "sale", "approved", 10)]))
    r.observe(journal(tmp_path, [rec("000001", "sale", "approved", 10)]))
    named(r.problems([e("auth", "000001", "0200", 10)]), "journal: sale 000001 started again")


# ---------------------------------------------------------------- against the real simulator
class Client:
    def __init__(self, addr):
        self.s = socket.create_connection(addr, timeout=3)

    def ask(self, msg):
        data, _ = iso8583.encode(dict(msg), SPEC)
        self.s.sendall(struct.pack(">H", len(data)) + bytes(data))
        n = struct.unpack(">H", self._exact(2))[0]
        return iso8583.decode(self._exact(n), SPEC)[0]

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf


def _sale(stan, amount, pcode="000000"):
    return {"t": "0200", "2": "4761739001010010", "3": pcode, "4": "%012d" % amount, "7": F7, "11": stan,
            "41": TID, "49": "978"}


def _f90(mti, stan):
    return mti + stan + F7 + "0" * 22


def _rev(stan, mti="0400", orig_mti="0200"):
    return {"t": mti, "3": "000000", "11": stan, "41": TID, "7": F7, "90": _f90(orig_mti, stan)}


def _void(stan, orig, amount):
    return {"t": "0200", "3": "020000", "4": "%012d" % amount, "7": F7, "11": stan, "41": TID, "49": "978",
            "90": _f90("0200", orig)}


def _advice(stan, amount, mti="0220"):
    m = _sale(stan, amount)
    m["t"] = mti
    return m


def _history(sim):
    """A terminal's day at the simulator, and the journal a correct terminal would keep of it."""
    c = Client(sim.address)
    rc = {}
    rc[1] = c.ask(_sale("000001", 1000))["39"]
    sim.script(("partial", 600))
    r = c.ask(_sale("000002", 1500))
    rc[2] = (r["39"], r["4"])
    rc["dup"] = c.ask(_sale("000001", 1000))["39"]
    rc[3] = c.ask(_sale("000003", 800))["39"]
    rc[4] = c.ask(_void("000004", "000003", 800))["39"]
    rc["rv4"] = c.ask(_rev("000004"))["39"]          # the void timed out: reversed, the sale stands again
    rc[5] = c.ask(_advice("000005", 600, "0221"))["39"]
    rc[6] = c.ask(_sale("000006", 300, "200000"))["39"]
    sim.script(("decline", "51"))
    rc[7] = c.ask(_sale("000007", 900))["39"]
    rc["rv8"] = c.ask(_rev("000008"))["39"]          # a sale that never got there
    c.ask(_sale("000009", 400))
    sim.script(("decline", "96"), mti="0400")
    rc["rv9"] = c.ask(_rev("000009"))["39"]
    rc["rv9b"] = c.ask(_rev("000009", "0401"))["39"]
    rc[10] = c.ask(_advice("000010", 450))["39"]
    rc[11] = c.ask(_void("000011", "000010", 450))["39"]  # an offline sale voided after upload
    assert rc == {1: "00", 2: ("10", "000000000600"), "dup": "94", 3: "00", 4: "00", "rv4": "00", 5: "00",
                  6: "00", 7: "51", "rv8": "25", "rv9": "96", "rv9b": "00", 10: "00", 11: "00"}
    return [rec("000001", "sale", "approved", 1000), rec("000002", "sale", "approved", 600),
            rec("000003", "sale", "approved", 800), rec("000004", "void", "reversed", 800, orig="000003"),
            rec("000005", "saf", "sent", 600), rec("000006", "refund", "approved", 300),
            rec("000007", "sale", "declined", 900), rec("000008", "sale", "reversed", 200),
            rec("000009", "sale", "reversed", 400, rv_rc="00"),
            rec("000010", "saf", "sent", 450, voided="000011"), rec("000011", "void", "approved", 450, orig="000010")]


def test_reconciler_agrees_with_the_simulator(tmp_path):
    path = str(tmp_path / "acq.jsonl")
    # security=False: raw, unsealed clients (the reconciler is about money)
    with AcquirerSim(ledger_path=path, security=False) as sim:
        recs = journal(tmp_path, _history(sim))
        held = {k: v for k, v in sim.holdings().items() if v}
        assert held == {(TID, "000001"): 1000, (TID, "000002"): 600, (TID, "000003"): 800, (TID, "000005"): 600,
                        (TID, "000006"): -300}
        assert {k: v for k, v in host_holdings(sim.ledger).items() if v} == held
        assert reconcile(recs, sim.ledger) == {"sale_approved": 3, "void_reversed": 1, "saf_sent": 2,
                                               "refund_approved": 1, "sale_declined": 1, "sale_reversed": 2,
                                               "void_approved": 1}
        ledger = list(sim.ledger)
    with AcquirerSim(ledger_path=path, security=False) as again:
        assert again.ledger == ledger and again.holdings() == sim.holdings()


def test_reconciler_catches_a_reversal_the_host_declined(tmp_path):
    with AcquirerSim(security=False) as sim:
        c = Client(sim.address)
        c.ask(_sale("000001", 400))
        sim.script(("decline", "96"), mti="0400")
        assert c.ask(_rev("000001"))["39"] == "96"
        recs = journal(tmp_path, [rec("000001", "sale", "reversed", 400, rv_rc="96")])
        assert sim.held(TID, "000001") == 400
        with pytest.raises(AssertionError, match="money: sale 000001 \\(reversed\\) shows 0 .* holds 400"):
            reconcile(recs, sim.ledger)

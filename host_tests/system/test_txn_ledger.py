"""The reconciliation helper itself: it must catch each kind of mismatch."""
import json
import os
import struct
import sys
import zlib

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ledger import read_journal, reconcile  # noqa: E402


def _frame(rec):
    body = json.dumps(rec).encode()
    return struct.pack(">II", len(body), zlib.crc32(body) & 0xFFFFFFFF) + body


def _journal(tmp_path, recs, tail=b""):
    with open(tmp_path / "journal.log", "wb") as f:
        for r in recs:
            f.write(_frame(r))
        f.write(tail)
    return read_journal(str(tmp_path))


def _e(kind, stan, mti, rc="00", repeat=False, orig=""):
    return {"kind": kind, "stan": stan, "mti": mti, "rc": rc, "repeat": repeat, "orig_stan": orig}


SALE = {"ref": "000001", "new": 1, "seq": 1, "kind": "sale", "st": "pending", "stan": "000001"}


def test_merges_updates_and_stops_at_a_torn_tail(tmp_path):
    recs = _journal(tmp_path, [SALE, {"ref": "000001", "st": "approved"}], tail=_frame({"ref": "000001", "st": "x"})[:-2])
    assert [(t["ref"], t["st"], t["_creates"]) for t in recs] == [("000001", "approved", 1)]


def test_consistent_history_reconciles(tmp_path):
    recs = _journal(tmp_path, [
        SALE, {"ref": "000001", "st": "approved"},
        {"ref": "000002", "new": 1, "seq": 2, "kind": "sale", "st": "reversed", "stan": "000002"},
        {"ref": "000003", "new": 1, "seq": 3, "kind": "saf", "st": "sent", "stan": "000003"},
    ])
    ledger = [_e("auth", "000001", "0200"), _e("auth", "000002", "0200"),
              _e("reversal", "000002", "0400", orig="000002"),
              _e("advice", "000003", "0220", rc=""), _e("advice", "000003", "0221", repeat=True)]
    assert reconcile(recs, ledger) == {"sale_approved": 1, "sale_reversed": 1, "saf_sent": 1}


@pytest.mark.parametrize("case", [
    "approved_missing_at_host", "declined_but_charged", "reversal_unacknowledged", "reversed_not_at_host",
    "advice_twice", "stan_reused_at_host", "stan_restarted_in_journal", "host_charge_unknown"])
def test_each_mismatch_is_caught(tmp_path, case):
    recs = [SALE, {"ref": "000001", "st": "approved"}]
    ledger = [_e("auth", "000001", "0200")]
    if case == "approved_missing_at_host":
        ledger = []
    elif case == "declined_but_charged":
        recs[1] = {"ref": "000001", "st": "declined"}
    elif case == "reversal_unacknowledged":
        recs[1] = {"ref": "000001", "st": "reversing"}
        ledger.append(_e("reversal", "000001", "0400", rc="", orig="000001"))
    elif case == "reversed_not_at_host":
        recs[1] = {"ref": "000001", "st": "reversed"}
    elif case == "advice_twice":
        recs.append({"ref": "000002", "new": 1, "seq": 2, "kind": "saf", "st": "sent", "stan": "000002"})
        ledger += [_e("advice", "000002", "0220"), _e("advice", "000002", "0220")]
    elif case == "stan_reused_at_host":
        ledger.append(_e("echo", "000001", "0800"))
    elif case == "stan_restarted_in_journal":
        recs.append(dict(SALE, st="approved"))
    elif case == "host_charge_unknown":
        ledger.append(_e("auth", "000009", "0200"))
    with pytest.raises(AssertionError, match="mismatch"):
        reconcile(_journal(tmp_path, recs), ledger)

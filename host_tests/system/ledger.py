"""Reconcile the terminal's journal with the acquirer simulator's ledger (CPython).

`read_journal(state_dir)` parses the terminal's flash journal
(firmware/payterm/txn/journal.py: `[len:4 BE][crc32:4 BE][JSON]` records
merged per `ref`, a record with "new" restarting its transaction) and stops
at the first torn or corrupt record, as the firmware does at boot.
`reconcile(records, ledger)` asserts the money invariants between the two
sides and returns counts so a test can also check that something happened.
"""
import json
import os
import struct
import zlib

_HDR = struct.Struct(">II")
_MAX_RECORD = 2048


def read_journal(state_dir):
    """Merged journal records in creation order; each carries `_creates` (times its ref was started)."""
    path = os.path.join(state_dir, "journal.log")
    if not os.path.exists(path):
        for alt in ("journal.tmp", "journal.old"):
            if os.path.exists(os.path.join(state_dir, alt)):
                path = os.path.join(state_dir, alt)
                break
        else:
            return []
    with open(path, "rb") as f:
        data = f.read()
    txns = {}
    pos = 0
    while pos + _HDR.size <= len(data):
        n, crc = _HDR.unpack_from(data, pos)
        body = data[pos + _HDR.size: pos + _HDR.size + n]
        if n == 0 or n > _MAX_RECORD or len(body) != n or zlib.crc32(body) & 0xFFFFFFFF != crc:
            break
        try:
            rec = json.loads(body)
        except ValueError:
            break
        if not isinstance(rec, dict) or "ref" not in rec:
            break
        t = txns.get(rec["ref"])
        if t is None or rec.get("new"):
            creates = (t or {}).get("_creates", 0)
            t = txns[rec["ref"]] = {"_creates": creates}
            if rec.get("new"):
                t["_creates"] = creates + 1
        t.update({k: v for k, v in rec.items() if k != "new"})
        pos += _HDR.size + n
    return sorted(txns.values(), key=lambda t: t.get("seq", 0))


def _host_view(ledger):
    ok = [e for e in ledger if e["rc"] == "00"]
    reversed_ = {e["orig_stan"] for e in ok if e["kind"] == "reversal"}
    voided = {e["orig_stan"] for e in ok if e["kind"] == "void"}
    return ok, reversed_, voided


def reconcile(records, ledger, pending_ok=False):
    """Assert that the terminal and the host agree on every transaction.

    - no STAN is reused: not in the journal, and not between original
      requests (auth/refund/void/echo) at the host;
    - the host never received an authorization request twice;
    - every approved online sale/refund is approved once at the host and not
      reversed (nor voided, unless the terminal voided it);
    - every reversed, declined, failed or (with pending_ok=False) still
      ambiguous one is not left charged at the host;
    - every advice the terminal marked sent is in the ledger exactly once as
      a non-repeat and approved; nothing is charged at the host that the
      terminal does not hold as approved.
    """
    ledger = list(ledger)
    problems = []
    ok, reversed_, voided = _host_view(ledger)

    for t in records:
        if t.get("_creates", 1) > 1:
            problems.append("journal: STAN %s started %d times" % (t.get("stan"), t["_creates"]))
    originals = [e for e in ledger if e["kind"] in ("auth", "refund", "void", "echo")]
    seen = {}
    for e in originals:
        if e["stan"] in seen:
            problems.append("host: STAN %s used by %s and again by %s %s" % (
                e["stan"], seen[e["stan"]], e["kind"], e["mti"]))
        seen[e["stan"]] = e["kind"] + " " + e["mti"]

    def host(kind, stan):
        return [e for e in ledger if e["kind"] == kind and e["stan"] == stan]

    charged = set()  # (kind, stan) the host holds as approved and not undone
    for e in ok:
        if e["kind"] in ("auth", "refund") and e["stan"] not in reversed_ and e["stan"] not in voided:
            charged.add((e["kind"], e["stan"]))
        if e["kind"] == "void" and e["stan"] not in reversed_:
            charged.add(("void", e["stan"]))

    mine = set()
    for t in records:
        kind, st, stan = t.get("kind"), t.get("st"), t.get("stan")
        hk = {"sale": "auth", "refund": "refund", "void": "void"}.get(kind)
        if hk and st == "approved":
            got = [e for e in host(hk, stan) if e["rc"] == "00"]
            if len(got) != 1:
                problems.append("%s %s approved on the terminal, %d approvals at host" % (kind, stan, len(got)))
            if stan in reversed_:
                problems.append("%s %s approved on the terminal but reversed at host" % (kind, stan))
            if t.get("voided"):
                if stan not in voided:
                    problems.append("%s %s voided on the terminal, not at host" % (kind, stan))
            else:
                if stan in voided:
                    problems.append("%s %s voided at host only" % (kind, stan))
                mine.add((hk, stan))
        elif hk:
            if st in ("reversing", "pending") and not pending_ok:
                problems.append("%s %s still %s (reversal not acknowledged)" % (kind, stan, st))
            if st == "reversed" and host(hk, stan) and stan not in reversed_:
                problems.append("%s %s reversed on the terminal, not at host" % (kind, stan))
            if (hk, stan) in charged and st != "reversing":
                problems.append("%s %s is %s on the terminal but charged at host" % (kind, stan, st))
            if st == "reversing":
                mine.add((hk, stan))  # may still be charged until the reversal lands
        elif kind == "saf":
            adv = host("advice", stan)
            first = [e for e in adv if not e["repeat"]]
            if st == "sent":
                if len(first) != 1:
                    problems.append("advice %s sent, %d non-repeat advices at host" % (stan, len(first)))
                if not any(e["rc"] == "00" for e in adv):
                    problems.append("advice %s sent but not accepted at host" % stan)
            elif st in ("pending", "failed", "voided", "declined"):
                if len(first) > 1:
                    problems.append("advice %s %s, %d non-repeat advices at host" % (stan, st, len(first)))
                if st == "voided" and adv:
                    problems.append("advice %s voided before upload but reached the host" % stan)
                if st == "pending" and not pending_ok:
                    problems.append("advice %s still pending" % stan)

    for key in sorted(charged - mine):
        problems.append("host holds %s %s as approved; the terminal does not" % key)
    advised = {t.get("stan") for t in records if t.get("kind") == "saf"}
    for e in ledger:
        if e["kind"] == "advice" and e["stan"] not in advised:
            problems.append("host got advice %s the terminal never queued" % e["stan"])

    assert not problems, "journal/ledger mismatch:\n  " + "\n  ".join(problems)
    by = {}
    for t in records:
        key = "%s_%s" % (t.get("kind"), t.get("st"))
        by[key] = by.get(key, 0) + 1
    return by

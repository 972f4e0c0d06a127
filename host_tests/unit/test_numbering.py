"""STANs and refs are never reused: lost or rolled-back state, the wrap at 999999, refs in use.

The engine runs against the scripted supervisor (txnfakes) with real journal
and state files; "lost" and "rolled back" are the state files removed the way
a cut or a corruption leaves them.
"""
import os

from mpt import eq, tmpdir

from payterm.errors import Fault
from payterm.txn.journal import Journal
from payterm.txn.state import State
from txnfakes import FakeCard, FakeSup, engine, fault


async def _sales(e, n):
    out = []
    for i in range(n):
        r = await e.sale(FakeCard(), 100 + i)
        eq(r.approved, True, repr(r))
        out.append(r)
    return out


def _rm(d, *names):
    for n in names:
        try:
            os.remove(d + "/" + n)
        except OSError:
            pass


async def test_state_lost_does_not_reissue_stans_or_refs():
    d = tmpdir("num_lost")
    e = engine(d, FakeSup())
    first = await _sales(e, 3)
    echo = e.sup._echo_fields()["11"]  # an echo STAN: in no journal record
    _rm(d, "state.json", "state.bak", "state.tmp")
    e2 = engine(d, FakeSup())
    r = (await _sales(e2, 1))[0]
    used = {x.stan for x in first} | {echo}
    eq(r.stan in used, False, "STAN %s reissued" % r.stan)
    eq(int(r.stan) > int(echo), True)
    eq(r.ref in {x.ref for x in first}, False)
    eq(e2.sup._echo_fields()["11"] in used, False)
    eq("SYS-02" in e2.diag.faults, True)  # the technician sees the state was lost


async def test_state_rolled_back_to_backup_does_not_reissue():
    d = tmpdir("num_bak")
    e = engine(d, FakeSup())
    first = await _sales(e, 3)
    _rm(d, "state.json")  # only the backup (one save older) is left
    e2 = engine(d, FakeSup())
    r = (await _sales(e2, 1))[0]
    eq(r.stan in {x.stan for x in first}, False)
    eq(r.ref in {x.ref for x in first}, False)
    eq(int(r.stan) > int(first[-1].stan), True)


async def test_fresh_terminal_numbers_from_one_and_refs_follow_stans():
    d = tmpdir("num_fresh")
    e = engine(d, FakeSup())
    rs = await _sales(e, 2)
    eq([(r.stan, r.ref) for r in rs], [("000001", "000001"), ("000002", "000002")])
    eq(e.diag.faults, [])


async def test_wrap_skips_stans_and_refs_still_in_the_journal():
    d = tmpdir("num_wrap")
    j = Journal(d)
    # an old transaction from before the wrap, still reversing, and the newest one
    j.create("000001", {"kind": "sale", "st": "reversing", "stan": "000001", "amt": 5,
                        "req": {"t": "0200", "11": "000001", "4": "000000000005"}})
    j.create("999997", {"kind": "sale", "st": "approved", "stan": "999997", "amt": 6})
    st = State(d)
    st.update({"stan": 999998, "ref": 999998})
    sup = FakeSup(fault("NET-03", False), "00", "00")
    e = engine(d, sup)
    r1, r2 = await _sales(e, 2)
    eq((r1.stan, r1.ref), ("999999", "999999"))
    eq((r2.stan, r2.ref), ("000002", "000002"))  # 000001 is still in use


async def test_engine_declines_cleanly_when_the_journal_refuses_a_ref():
    class Refusing(Journal):
        def create(self, ref, fields):
            raise Fault("SYS-10", "ref %s already in the journal" % ref, "txn")

    d = tmpdir("num_refuse")
    sup = FakeSup()
    e = engine(d, sup)
    e.journal = Refusing(d)
    card = FakeCard()
    r = await e.sale(card, 100)
    eq((r.approved, r.code, card.wiped), (False, "SYS-10", True))
    eq(sup.sent, [])

"""SAF limits: floor limit, count and total of pending advices."""
from mpt import eq, raises, tmpdir

from payterm.errors import Fault
from payterm.txn.journal import Journal
from payterm.txn.saf import Saf


def test_limits_and_order():
    j = Journal(tmpdir("saf_limits"))
    s = Saf(j, floor_limit=1000, max_count=3, max_total=1500)
    eq(raises(Fault, s.check, 1001).code, "SYS-08")
    s.check(1000)
    for i, amt in enumerate((700, 500)):
        s.check(amt)
        j.create("%06d" % (i + 1), {"kind": "saf", "st": "pending", "amt": amt})
    eq(s.totals(), (2, 1200))
    eq(raises(Fault, s.check, 301).code, "SYS-04")  # total
    s.check(300)
    j.create("000003", {"kind": "saf", "st": "pending", "amt": 300})
    eq(raises(Fault, s.check, 1).code, "SYS-04")  # count
    eq(s.next()["ref"], "000001")
    j.update("000001", {"st": "sent"})
    j.update("000002", {"st": "declined"})
    eq(s.next()["ref"], "000003")
    s.check(1000)
    eq(s.summary()["sent"], 1)
    eq(s.summary()["declined"], 1)
    eq(s.summary()["pending"], 1)

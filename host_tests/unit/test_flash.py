"""payterm.flash: the one door to flash for the journal and the state, and its observer hook."""
import os

from mpt import eq, raises, read_bytes, tmpdir

from payterm import flash
from payterm.txn.journal import Journal
from payterm.txn.state import State


class Rec:
    def __init__(self, short=None):
        self.seen = []
        self.short = short

    def before(self, op, path, n):
        self.seen.append(("before", op, path.rsplit("/", 1)[-1], n))
        if self.short is not None and op in ("append", "write"):
            return self.short
        return n

    def after(self, op, path):
        self.seen.append(("after", op, path.rsplit("/", 1)[-1]))


def test_operations_and_what_the_hook_sees():
    d = tmpdir("fl_ops")
    h = Rec()
    flash.set_hook(h)
    try:
        flash.write(d + "/a", b"abc")
        flash.append(d + "/a", (b"de", b"f"))
        flash.append(d + "/a", lambda: iter((b"g", b"hi")))
        eq(flash.size(d + "/a"), 9)
        flash.rename(d + "/a", d + "/b")
        flash.sync()
        eq(flash.read(d + "/b"), b"abcdefghi")
        flash.remove(d + "/b")
        flash.remove(d + "/b")  # missing: not an error
        eq(flash.size(d + "/b"), -1)
        eq(flash.read(d + "/b"), None)
    finally:
        flash.set_hook(None)
    writes = [s for s in h.seen if s[0] == "before" and s[1] in flash.WRITES]
    eq([s[1:] for s in writes], [("write", "a", 3), ("append", "a", 3), ("append", "a", 3), ("rename", "b", 0),
                                 ("sync", "", 0), ("remove", "b", 0), ("remove", "b", 0)])
    eq(("after", "rename", "b") in h.seen, True)


def test_hook_can_tear_a_write():
    d = tmpdir("fl_torn")
    flash.set_hook(Rec(short=4))
    try:
        flash.write(d + "/a", (b"01", b"2345", b"67"))
    finally:
        flash.set_hook(None)
    eq(read_bytes(d + "/a"), b"0123")


def test_journal_and_state_write_only_through_flash():
    d = tmpdir("fl_route")
    h = Rec()
    flash.set_hook(h)
    try:
        j = Journal(d, max_bytes=2048, keep=1)
        for i in range(1, 30):
            j.create("%06d" % i, {"kind": "sale", "st": "approved", "amt": i})
        s = State(d)
        s.set("stan", 1)
        s.set("stan", 2)
    finally:
        flash.set_hook(None)
    ops = [x[1] for x in h.seen if x[0] == "before"]
    eq("append" in ops and "write" in ops and "rename" in ops, True)
    eq(j.compactions > 0, True)
    # every file the two left on flash was named to the hook
    named = {x[2] for x in h.seen}
    for n in os.listdir(d):
        eq(n in named, True, n)


def test_errors_come_back_as_oserror():
    eq(isinstance(raises(OSError, flash.rename, "/nonexistent/x", "/nonexistent/y"), OSError), True)
    eq(isinstance(raises(OSError, flash.write, "/nonexistent/dir/x", b"1"), OSError), True)

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


# ---------------------------------------------------------------- small JSON files (diag/_store)
class _Cut(Exception):
    pass


class CutAt:
    """The power goes at write operation k: before it, after it, or half-way through its bytes."""

    def __init__(self, k, mode):
        self.k, self.mode, self.n = k, mode, 0

    def before(self, op, path, n):
        if op not in flash.WRITES:
            return n
        self.n += 1
        if self.n == self.k and (self.mode == "before" or (self.mode == "partial" and not n)):
            raise _Cut()
        return n // 2 if self.n == self.k and self.mode == "partial" else n

    def after(self, op, path):
        if op in flash.WRITES and self.n == self.k:
            raise _Cut()


class FatOs:
    """os as on a FAT volume: rename refuses an existing destination."""

    def __getattr__(self, name):
        return getattr(os, name)

    def rename(self, src, dst):
        try:
            os.stat(dst)
        except OSError:
            return os.rename(src, dst)
        raise OSError(17)


def _json_cuts(fs):
    """Cut a save at each of its flash operations, as the first save and over an older file; returns the
    operations of the save over an older file."""
    from payterm.diag import _store

    old, new = {"v": 1, "pad": "o" * 40}, {"v": 2, "pad": "n" * 60}
    real_os = flash.os
    flash.os = fs
    try:
        seen = set()
        for first in (True, False):
            count = CutAt(0, "before")
            d = tmpdir("fl_json_dry")
            if not first:
                _store.save(d + "/f.json", old)
            flash.set_hook(count)
            try:
                _store.save(d + "/f.json", new)
            finally:
                flash.set_hook(None)
            n = count.n
            for k in range(1, n + 1):
                for mode in ("before", "after", "partial"):
                    d = tmpdir("fl_json_%d_%s" % (k, mode))
                    if not first:
                        _store.save(d + "/f.json", old)
                    flash.set_hook(CutAt(k, mode))
                    what = "cut at %d %s, %s" % (k, mode, "first save" if first else "over an older file")
                    try:
                        _store.save(d + "/f.json", new)
                        # only "after" an operation the filesystem refused (FAT's rename) has no after:
                        # the same as a cut before the next operation, which is made too
                        eq(mode, "after", what + ": the save returned")
                    except _Cut:
                        pass
                    finally:
                        flash.set_hook(None)
                    got, damaged = _store.load(d + "/f.json")
                    eq(damaged, False, what)
                    eq(got in ((None if first else old), new), True, what + ": %r" % (got,))
                    seen.add(got == new)
                    # whatever the cut left, the next save and load work
                    _store.save(d + "/f.json", new)
                    eq(_store.load(d + "/f.json"), (new, False), what + ", saved again")
        eq(seen, {True, False})  # some cuts keep the old file, later ones the new
        return n
    finally:
        flash.os = real_os


def test_a_json_file_cut_at_any_operation_of_its_save_holds_the_old_or_the_new_value():
    eq(_json_cuts(os), 4)  # write tmp, sync, rename, sync


def test_the_same_on_a_filesystem_that_cannot_rename_over_a_file():
    eq(_json_cuts(FatOs()) > 4, True)  # write tmp, sync, rename (refused), remove, rename, sync

"""Journal: committed records survive any cut; torn or corrupt tails are dropped."""
import os

from mpt import eq, raises, tmpdir, RecDiag, read_bytes, write_bytes

from payterm.errors import Fault
from payterm.txn.journal import Journal, frame


def _history(d):
    j = Journal(d)
    j.create("000001", {"kind": "sale", "st": "pending", "amt": 100})
    j.update("000001", {"st": "approved", "rrn": "000000000001"})
    j.create("000002", {"kind": "saf", "st": "pending", "amt": 250})
    j.update("000002", {"tries": 1})
    j.update("000002", {"st": "sent"})
    return j


def test_reopen_merges_records_in_order():
    d = tmpdir("jr_merge")
    _history(d)
    j = Journal(d)
    eq(j.get("000001")["st"], "approved")
    eq(j.get("000001")["rrn"], "000000000001")
    eq(j.get("000002")["tries"], 1)
    eq(j.get("000002")["st"], "sent")
    eq([t["ref"] for t in j.records()], ["000001", "000002"])
    eq([t["ref"] for t in j.records("saf")], ["000002"])
    eq(j.dropped_bytes, 0)


def test_every_truncation_point_keeps_the_committed_prefix():
    d = tmpdir("jr_cut")
    _history(d)
    full = read_bytes(d + "/journal.log")
    # record boundaries: after each whole frame a record is committed
    bounds = [0]
    pos = 0
    while pos < len(full):
        n = int.from_bytes(full[pos:pos + 4], "big")
        pos += 8 + n
        bounds.append(pos)
    eq(bounds[-1], len(full), "frames tile the file")
    states = []
    for cut in range(len(full) + 1):
        e = tmpdir("jr_cut_one")
        write_bytes(e + "/journal.log", full[:cut])
        diag = RecDiag()
        j = Journal(e, diag)
        committed = max(b for b in bounds if b <= cut)
        eq(j.dropped_bytes, cut - committed, "dropped at %d" % cut)
        eq(diag.faults, ["SYS-02"] if cut != committed else [], "fault at %d" % cut)
        # the file was repaired: a second open finds nothing to drop
        eq(Journal(e).dropped_bytes, 0)
        states.append((cut, committed, {r: dict(t) for r, t in j.txns.items()}))
    # the state at a cut equals the state at the preceding boundary
    at = {c: s for c, b, s in states if c == b}
    for cut, committed, s in states:
        eq(s, at[committed], "state at %d" % cut)
    eq(at[bounds[2]]["000001"]["st"], "approved")
    eq(len(at[bounds[1]]), 1)


def test_flipped_byte_in_tail_drops_from_there_and_appends_continue():
    d = tmpdir("jr_flip")
    _history(d)
    full = bytearray(read_bytes(d + "/journal.log"))
    full[-3] ^= 0x40
    write_bytes(d + "/journal.log", full)
    diag = RecDiag()
    j = Journal(d, diag)
    eq(diag.faults, ["SYS-02"])
    eq(j.get("000002")["st"], "pending")
    eq(j.get("000002")["tries"], 1)
    j.update("000002", {"st": "sent"})
    eq(Journal(d).get("000002")["st"], "sent")


def test_garbage_length_header_is_a_corrupt_tail():
    d = tmpdir("jr_len")
    _history(d)
    with open(d + "/journal.log", "ab") as f:
        f.write(b"\xff\xff\xff\xff\x00\x00\x00\x00junk")
    j = Journal(d, RecDiag())
    eq(j.dropped_bytes, 12)
    eq(j.get("000002")["st"], "sent")


def test_valid_crc_but_not_a_record_is_dropped():
    d = tmpdir("jr_notrec")
    _history(d)
    with open(d + "/journal.log", "ab") as f:
        f.write(frame([1, 2, 3]))
    j = Journal(d, RecDiag())
    eq(j.dropped_bytes > 0, True)
    eq(len(j.txns), 2)


def test_refuses_full_pan():
    d = tmpdir("jr_pan")
    j = Journal(d)
    e = raises(Fault, j.create, "000001", {"pan": "4111111111111111"})
    eq(e.code, "SYS-09")
    j.create("000001", {"pan": "411111******1111", "rrn": "123456789012"})
    eq(b"4111111111111111" in read_bytes(d + "/journal.log"), False)


def test_a_luhn_valid_host_reference_is_kept_and_not_written_as_a_digit_run():
    # 412312000125: a 12-digit RRN whose last digit happens to be a valid Luhn check digit.
    from payterm.mask import pan_run

    d = tmpdir("jr_rrn")
    j = Journal(d)
    j.create("000001", {"kind": "sale", "st": "pending", "amt": 100, "pan": "476173******0010"})
    j.update("000001", {"st": "approved", "rrn": "412312000125", "auth": "A1B2C3"})
    eq(j.get("000001")["rrn"], "412312000125")
    for _ in range(2):  # as written, and compacted
        body = read_bytes(d + "/journal.log")
        eq(b"412312000125" in body, False)
        eq(pan_run(body), None, "no digit run a PAN scanner or the guard reads as a card number")
        j = Journal(d)
        eq((j.get("000001")["st"], j.get("000001")["rrn"]), ("approved", "412312000125"), "after a reboot")
        j.compact()
    import binascii
    import struct

    old = b'{"ref": "000001", "rrn": "000000000018"}'  # a record of older firmware: the reference whole
    with open(d + "/journal.log", "ab") as f:
        f.write(struct.pack(">II", len(old), binascii.crc32(old) & 0xFFFFFFFF) + old)
    eq(Journal(d).get("000001")["rrn"], "000000000018")
    e = raises(Fault, j.update, "000001", {"rrn": "4111111111111111"})
    eq(e.code, "SYS-09", "a card number in the reference field is still refused")


def test_compaction_keeps_open_transactions_and_bounds_the_file():
    d = tmpdir("jr_compact")
    j = Journal(d, max_bytes=4096, keep=5)
    j.create("900000", {"kind": "saf", "st": "pending", "amt": 1})
    for i in range(1, 120):
        ref = "%06d" % i
        j.create(ref, {"kind": "sale", "st": "pending", "amt": i})
        j.update(ref, {"st": "approved"})
        eq(os.stat(d + "/journal.log")[6] <= 4096, True, "size bound")
    eq(j.compactions > 0, True)
    k = Journal(d)
    eq(k.get("900000")["st"], "pending")
    eq(k.get("000119")["st"], "approved")
    eq(k.get("000001"), None)
    # creation order survives compaction
    refs = [t["ref"] for t in k.records("sale")]
    eq(refs, sorted(refs))


def test_full_of_open_transactions_is_storage_full():
    d = tmpdir("jr_full")
    j = Journal(d, max_bytes=1024)

    def fill():
        for i in range(1, 100):
            j.create("%06d" % i, {"kind": "sale", "st": "reversing", "amt": i})

    e = raises(Fault, fill)
    eq(e.code, "SYS-01")
    # whatever was committed is still readable
    eq(len(Journal(d).txns), len(j.txns))


def test_cut_during_compaction_rename_recovers_the_new_copy():
    d = tmpdir("jr_swap")
    _history(d)
    j = Journal(d)
    good = {r: dict(t) for r, t in j.txns.items()}
    # the new file complete, the old one moved away, the final rename not done
    os.rename(d + "/journal.log", d + "/journal.old")
    write_bytes(d + "/journal.tmp", b"".join(frame(dict(t, new=1)) for t in j.records()))
    k = Journal(d)
    eq({r: dict(t) for r, t in k.txns.items()}, good)
    eq(sorted(os.listdir(d)), ["journal.log"])


def test_torn_compaction_copy_is_ignored():
    d = tmpdir("jr_torn_tmp")
    _history(d)
    write_bytes(d + "/journal.tmp", b"\x00\x00\x00")
    k = Journal(d)
    eq(k.get("000002")["st"], "sent")
    eq(sorted(os.listdir(d)), ["journal.log"])


def test_create_refuses_a_ref_already_in_the_journal():
    d = tmpdir("jr_dup")
    j = _history(d)
    for ref in ("000001", "000002"):  # finished or not, a record is never silently replaced
        e = raises(Fault, j.create, ref, {"kind": "sale", "st": "pending", "amt": 1})
        eq(e.code, "SYS-10")
    eq(Journal(d).get("000001")["st"], "approved")
    eq(Journal(d).get("000002")["amt"], 250)


def test_compaction_keeps_a_summary_of_what_it_dropped():
    from payterm.txn.journal import SUMMARY

    d = tmpdir("jr_summary")
    j = Journal(d, max_bytes=1 << 20, keep=2)
    j.create("000001", {"kind": "sale", "st": "approved", "amt": 1000})  # +1000
    j.create("000002", {"kind": "sale", "st": "declined", "amt": 50})  # 0
    j.create("000003", {"kind": "saf", "st": "sent", "amt": 300})  # +300
    j.create("000004", {"kind": "refund", "st": "approved", "amt": 200})  # -200
    j.create("000005", {"kind": "sale", "st": "approved", "amt": 700})  # voided: 0
    j.create("000006", {"kind": "void", "st": "approved", "amt": 700, "orig": "000005"})  # 0
    j.create("000007", {"kind": "saf", "st": "voided", "voided": "000007", "amt": 40})  # 0
    j.create("000008", {"kind": "saf", "st": "pending", "amt": 60})  # open: kept
    j.create("000009", {"kind": "sale", "st": "approved", "amt": 1})
    j.create("000010", {"kind": "sale", "st": "approved", "amt": 2})
    j.compact()
    s = j.get(SUMMARY)
    eq(s, {"ref": SUMMARY, "n": 7, "held": 1100})
    eq([t["ref"] for t in j.records()], ["000008", "000009", "000010"])
    eq(j.open_count(), 1)
    k = Journal(d, max_bytes=1 << 20, keep=1)
    eq(k.get(SUMMARY), s)
    # on flash it is one record with exactly these keys
    data = read_bytes(d + "/journal.log")
    n = int.from_bytes(data[:4], "big")
    import json

    eq(json.loads(data[8:8 + n]), {"ref": SUMMARY, "n": 7, "held": 1100})
    k.update("000008", {"st": "sent"})
    k.compact()  # cumulative
    eq(k.get(SUMMARY), {"ref": SUMMARY, "n": 9, "held": 1161})
    eq([t["ref"] for t in k.records()], ["000010"])
    eq(raises(Fault, k.create, SUMMARY, {}).code, "SYS-10")


def test_compaction_keeps_the_original_of_an_unfinished_void():
    d = tmpdir("jr_keep_orig")
    j = Journal(d, max_bytes=1 << 20, keep=1)
    j.create("000001", {"kind": "sale", "st": "approved", "amt": 10})
    j.create("000002", {"kind": "sale", "st": "approved", "amt": 20})
    j.create("000003", {"kind": "void", "st": "reversing", "orig": "000001", "amt": 10})
    j.create("000004", {"kind": "sale", "st": "approved", "amt": 30})
    j.compact()
    eq([t["ref"] for t in j.records()], ["000001", "000003", "000004"])


def test_no_record_is_appended_behind_a_torn_one():
    from txnfakes import FlashFaults

    d = tmpdir("jr_torn_append")
    j = _history(d)
    ff = FlashFaults().install()
    try:
        ff.fail(lambda op, path: "torn" if op == "append" else False)
        raises(Fault, j.update, "000001", {"note": "x" * 40})
        ff.fail(None)
        j.update("000002", {"tries": 5})  # the torn tail is rewritten away first
    finally:
        ff.remove()
    k = Journal(d, RecDiag())
    eq(k.dropped_bytes, 0)
    eq(k.get("000002")["tries"], 5)
    eq("note" in k.get("000001"), False)


# ---------------------------------------------------------------- RAM bound
def _sales(j, first, n, amt=100):
    for i in range(first, first + n):
        ref = "%06d" % i
        j.create(ref, {"kind": "sale", "st": "pending", "stan": "%06d" % (500000 + i), "amt": amt,
                       "pan": "476173******0010", "req": {"3": "000000", "4": "%012d" % amt, "41": "EMU00001"}})
        j.update(ref, {"st": "approved", "rc": "00", "auth": "A1B2C3", "rrn": "%012d" % i})


def test_ram_holds_a_bounded_number_of_finished_transactions():
    import gc

    d = tmpdir("jr_ram")
    j = Journal(d)  # the terminal's bounds: 64 KB of flash, compaction keeps 100 finished
    j.create("900001", {"kind": "saf", "st": "pending", "amt": 5})  # unfinished: always in RAM
    _sales(j, 1, 150)
    gc.collect()
    a150 = gc.mem_alloc()
    _sales(j, 151, 250)
    gc.collect()
    a400 = gc.mem_alloc()
    assert j.compactions >= 2, j.compactions
    # flat: only the flash-only index moves (compaction bounds it), never whole records
    assert abs(a400 - a150) < 6000, "RAM moved %d bytes over 250 sales" % (a400 - a150)
    refs = [t["ref"] for t in j.records()]
    eq(refs, ["900001"] + ["%06d" % i for i in range(393, 401)])
    # older finished ones are on flash and read back on demand, whole
    t = j.get("000350")
    eq((t["st"], t["rrn"], t["stan"], t["amt"]), ("approved", "000000000350", "500350", 100))
    eq(j.update("000351", {"note": "x"})["rrn"], "000000000351")
    k = Journal(d)
    eq(len(k.records()), len(j.records()))
    eq(k.get("000351")["note"], "x")
    eq(k.get("000360")["st"], "approved")
    eq(k.get("000401"), None)


def test_flash_only_transactions_keep_numbering_and_refusals():
    d = tmpdir("jr_ram_nums")
    j = Journal(d)
    _sales(j, 1, 30)
    assert "000002" in j.held_refs() and "500002" in j.held_stans()
    assert "000031" not in j.held_refs() and "500031" not in j.held_stans()
    e = raises(Fault, j.create, "000002", {"kind": "sale", "st": "pending", "amt": 1})
    eq(e.code, "SYS-10")
    k = Journal(d)
    assert "000001" in k.held_refs() and "500001" in k.held_stans()


def test_void_of_a_flash_only_sale_is_seen_after_reopen():
    d = tmpdir("jr_ram_void")
    j = Journal(d)
    _sales(j, 1, 1, amt=700)
    j.create("000002", {"kind": "void", "st": "pending", "orig": "000001", "amt": 700})
    j.update("000002", {"st": "approved"})  # the mark on the sale is missing (cut): the void decides
    _sales(j, 3, 30)
    k = Journal(d)
    eq([t["ref"] for t in k.records()][:1], ["000025"])
    o = k.get("000001")
    eq(k.is_voided(o), True)
    eq(k.held(o), 0)
    eq([v["ref"] for v in k.voids_of("000001")], ["000002"])


def test_compaction_sums_and_copies_flash_only_transactions():
    from payterm.txn.journal import SUMMARY

    d = tmpdir("jr_ram_compact")
    j = Journal(d, max_bytes=1 << 20, keep=20)
    _sales(j, 1, 50, amt=10)
    j.create("000051", {"kind": "refund", "st": "approved", "amt": 3})
    j.compact()
    eq(j.get(SUMMARY), {"ref": SUMMARY, "n": 31, "held": 310})
    eq(j.get("000031"), None)
    eq(j.get("000032")["rrn"], "000000000032")  # copied from the old file
    k = Journal(d, max_bytes=1 << 20, keep=20)
    eq(k.get(SUMMARY)["held"], 310)
    eq(k.get("000033")["st"], "approved")
    eq(k.get("000030"), None)
    assert "000030" not in k.held_refs()


class _FailAt:
    """Flash hook raising `exc` at the n-th operation `op` of a compaction (from its copy's write on):
    a heap too fragmented, storage refusing."""

    def __init__(self, op, n, exc):
        self.op, self.n, self.exc = op, n, exc
        self.armed = False

    def before(self, op, path, n):
        self.armed = self.armed or (op == "write" and path.endswith("journal.tmp"))
        if self.armed and op == self.op:
            self.n -= 1
            if self.n == 0:
                raise self.exc
        return n

    def after(self, op, path):
        pass


def _money(j):
    """What the journal shows the merchant as held: in RAM, on flash only, and summed by compactions."""
    return sum(j.held(t) for t in j.records()) + sum(e[2] for e in j._flash.values()) + j.summary()["held"]


def test_a_compaction_failing_at_any_step_keeps_every_sale_and_the_next_one_goes_through():
    from payterm import flash

    for op, n in (("write", 1), ("sync", 1), ("rename", 1), ("rename", 2), ("remove", 1)):
        for exc in (MemoryError("memory allocation failed"), OSError(28)):
            d = tmpdir("jr_failcompact")
            j = Journal(d, max_bytes=2048, keep=3)
            i = 0
            while j.compactions == 0:
                i += 1
                j.create("%06d" % i, {"kind": "sale", "st": "approved", "amt": i})
            held = i * (i + 1) // 2
            eq(_money(j), held)
            failed = None
            flash.set_hook(_FailAt(op, n, exc))
            try:
                for _ in range(40):  # until the failing compaction
                    i += 1
                    try:
                        j.create("%06d" % i, {"kind": "sale", "st": "approved", "amt": i})
                        held += i
                    except Fault as f:
                        failed = f.code
                        break
            finally:
                flash.set_hook(None)
            eq(failed, "SYS-09" if isinstance(exc, MemoryError) else "SYS-01", "the sale is declined cleanly")
            eq(_money(j), held, "RAM after the failed compaction")
            assert "journal.log" in os.listdir(d), (op, n, exc, os.listdir(d))
            i += 1
            j.create("%06d" % i, {"kind": "sale", "st": "approved", "amt": i})  # the next sale is journaled
            held += i
            k = Journal(d)
            eq(_money(j), held)
            eq(_money(k), held, "money after %s %d %r" % (op, n, exc))
            eq(k.get("%06d" % i)["amt"], i)
            eq(sorted(os.listdir(d)), ["journal.log"])

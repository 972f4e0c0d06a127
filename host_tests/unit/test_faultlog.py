# runtimes: unix
"""Fault log ring: bounded, CRC-checked, survives a power cut at any byte."""
from mpt import eq, tmpdir

from payterm.diag.faultlog import FaultLog


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _put(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_entries_survive_reopen_newest_first():
    d = tmpdir("fl1")
    log = FaultLog(d + "/f.bin", 8)
    log.add("CRD-05", "mag", "lrc", 100)
    log.add("NET-03", "connect", "10.0.0.1:443", 101)
    again = FaultLog(d + "/f.bin", 8)
    got = [(e["code"], e["stage"], e["ctx"], e["time"]) for e in again.last(5)]
    eq(got, [("NET-03", "connect", "10.0.0.1:443", 101), ("CRD-05", "mag", "lrc", 100)])


def test_ring_is_bounded_and_keeps_the_newest():
    d = tmpdir("fl2")
    log = FaultLog(d + "/f.bin", 5)
    for i in range(12):
        log.add("HST-01" if i % 2 else "NET-05", "host", "n%d" % i, 1000 + i)
    import os

    eq(os.stat(d + "/f.bin")[6], 5 * 64, "file size")
    es = FaultLog(d + "/f.bin", 5).entries()
    eq([e["ctx"] for e in es], ["n7", "n8", "n9", "n10", "n11"])


def test_consecutive_repeats_count_and_keep_first_time():
    d = tmpdir("fl3")
    log = FaultLog(d + "/f.bin", 8)
    log.add("CRD-01", "card", "", 10)
    for i in range(6):
        eq(log.add("HW-03", "print", "", 20 + i), i + 1, "repeat count")
    log.add("CRD-01", "card", "", 40)
    es = FaultLog(d + "/f.bin", 8).entries()
    eq([(e["code"], e["count"]) for e in es], [("CRD-01", 1), ("HW-03", 6), ("CRD-01", 1)])
    hw = es[1]
    eq((hw["first"], hw["time"]), (20, 25))


def test_repeat_continues_after_reboot():
    d = tmpdir("fl4")
    FaultLog(d + "/f.bin", 8).add("NET-01", "link", "", 1)
    FaultLog(d + "/f.bin", 8).add("NET-01", "link", "", 2)
    log = FaultLog(d + "/f.bin", 8)
    eq(log.add("NET-01", "link", "", 3), 3)
    es = FaultLog(d + "/f.bin", 8).entries()
    eq([(e["code"], e["count"], e["first"]) for e in es], [("NET-01", 3, 1)])


def test_context_is_scrubbed_of_card_numbers():
    d = tmpdir("fl5")
    log = FaultLog(d + "/f.bin", 4)
    log.add("CRD-07", "card", "pan 4111111111111111 luhn", 1)
    raw = _bytes(d + "/f.bin")
    assert b"4111111111111111" not in raw
    eq(log.last(1)[0]["ctx"], "pan 411111******1111 luhn")


def _torn_images(path, step):
    """Run `step` (one add) and return (before, after, changed slot offset)."""
    before = _bytes(path)
    step()
    after = _bytes(path)
    off = 0
    while before[off] == after[off]:
        off += 1
    return before, after, off - off % 64


def _check_every_cut(path, step, ok):
    before, after, off = _torn_images(path, step)
    for k in range(0, 65):
        torn = before[:off] + after[off:off + k] + before[off + k:]
        _put(path, torn)
        ok(k, FaultLog(path, 6).entries())
    _put(path, after)


def test_power_cut_at_every_byte_of_a_new_entry():
    d = tmpdir("fl6")
    p = d + "/f.bin"
    log = FaultLog(p, 6)
    for i in range(8):  # wrap so the cut destroys an old slot
        log.add("CRD-0%d" % (2 + i % 4), "mag", "e%d" % i, i)

    def ok(k, es):
        ctxs = [e["ctx"] for e in es]
        # the entries not being overwritten are always intact and in order
        for want in ("e3", "e4", "e5", "e6", "e7"):
            assert want in ctxs, (k, ctxs)
        eq(ctxs[-1], "new" if k == 64 else "e7", "newest after cut at %d" % k)

    _check_every_cut(p, lambda: FaultLog(p, 6).add("SYS-05", "mem", "new", 99), ok)


def test_power_cut_during_a_repeat_loses_at_most_one_count():
    d = tmpdir("fl7")
    p = d + "/f.bin"
    log = FaultLog(p, 6)
    log.add("HST-01", "host", "", 1)
    log.add("HST-01", "host", "", 2)
    log.add("HST-01", "host", "", 3)

    def ok(k, es):
        eq(len(es), 1, "entries after cut at %d" % k)
        eq(es[0]["code"], "HST-01")
        assert es[0]["count"] in ((3, 4) if k == 64 else (3,)), (k, es)

    _check_every_cut(p, lambda: log.add("HST-01", "host", "", 4), ok)


def test_garbage_file_is_counted_as_torn_not_fatal():
    d = tmpdir("fl8")
    p = d + "/f.bin"
    log = FaultLog(p, 4)
    log.add("SYS-03", "clock", "", 5)
    data = bytearray(_bytes(p))
    data[10] ^= 0xFF
    _put(p, bytes(data))
    log = FaultLog(p, 4)
    eq(log.torn, 1)
    eq(log.entries(), [])
    log.add("SYS-02", "diag", "", 6)
    eq([e["code"] for e in FaultLog(p, 4).entries()], ["SYS-02"])


def test_clear_empties_the_ring():
    d = tmpdir("fl9")
    log = FaultLog(d + "/f.bin", 4)
    log.add("HW-04", "print", "", 1)
    log.clear()
    eq(log.entries(), [])
    log.add("HW-04", "print", "", 2)
    eq(log.last(3)[0]["count"], 1)


def test_file_cut_mid_slot_is_realigned():
    d = tmpdir("fl10")
    p = d + "/f.bin"
    log = FaultLog(p, 4)
    log.add("NET-02", "dns", "", 1)
    log.add("NET-03", "connect", "", 2)
    data = _bytes(p)
    _put(p, data[:64 + 30])  # power lost while (re)formatting the file
    log = FaultLog(p, 4)
    import os

    eq(os.stat(p)[6], 4 * 64, "file size")
    eq([e["code"] for e in log.entries()], ["NET-02"])
    log.add("NET-04", "tls", "", 3)
    eq([e["code"] for e in FaultLog(p, 4).entries()], ["NET-02", "NET-04"])


def test_bigger_ring_keeps_old_entries():
    d = tmpdir("fl11")
    p = d + "/f.bin"
    FaultLog(p, 2).add("SYS-03", "clock", "", 1)
    log = FaultLog(p, 6)
    log.add("SYS-04", "saf", "", 2)
    eq([e["code"] for e in FaultLog(p, 6).entries()], ["SYS-03", "SYS-04"])


def test_float_or_unset_clock_is_stored_as_whole_seconds():
    d = tmpdir("fl12")
    log = FaultLog(d + "/f.bin", 4)
    log.add("SYS-03", "clock", "", 1763884800.75)
    log.add("HW-06", "panel", "", 0)
    es = log.entries()
    eq([e["time"] for e in es], [1763884800, 0])

# runtimes: unix
"""Statistics: counts per code/category, link quality, reboots, uptime; atomic persistence."""
from mpt import eq, tmpdir, FakeClock

from payterm.diag.stats import Stats


def test_counts_per_code_and_category():
    d = tmpdir("st1")
    s = Stats(d + "/s.json", FakeClock())
    for c in ("CRD-05", "CRD-05", "ISS-51", "NET-03"):
        s.on_fault(c)
    snap = s.snapshot()
    eq(snap["codes"], {"CRD-05": 2, "ISS-51": 1, "NET-03": 1})
    eq(snap["categories"], {"card": 2, "issuer": 1, "network": 1})
    eq(s.top_codes(1), [("CRD-05", 2)])


def test_saves_periodically_not_on_every_fault():
    d = tmpdir("st2")
    t = FakeClock()
    s = Stats(d + "/s.json", t)
    s.on_fault("HW-03")
    eq(Stats(d + "/s.json", t).snapshot()["codes"], {}, "before the save interval")
    t.advance(10000)
    s.count("retry")
    eq(Stats(d + "/s.json", t).snapshot()["codes"], {"HW-03": 1})
    eq(Stats(d + "/s.json", t).snapshot()["counters"], {"retry": 1})


def test_boot_reasons_and_uptime_accumulate_across_reboots():
    d = tmpdir("st3")
    t = FakeClock(5000)
    s = Stats(d + "/s.json", t)
    s.boot("power", 1700000000)
    t.advance(65000)
    eq(s.snapshot()["uptime_s"], 65)
    s.flush()
    s2 = Stats(d + "/s.json", t)
    s2.boot("watchdog", 1700000100)
    t.advance(5000)
    snap = s2.snapshot()
    eq(snap["boots"], {"power": 1, "watchdog": 1})
    eq(snap["boot_count"], 2)
    eq(snap["uptime_s"], 5)
    eq(snap["uptime_total_s"], 70)
    eq(snap["last_boot"], [1700000100, "watchdog"])


def test_corrupt_file_is_reported_and_replaced():
    d = tmpdir("st5")
    with open(d + "/s.json", "w") as f:
        f.write('{"codes": {"CRD')
    t = FakeClock()
    s = Stats(d + "/s.json", t)
    assert s.damaged
    eq(s.snapshot()["codes"], {})
    s.on_fault("SYS-02")
    s.flush()
    s2 = Stats(d + "/s.json", t)
    assert not s2.damaged
    eq(s2.snapshot()["codes"], {"SYS-02": 1})


def test_interrupted_save_leaves_the_old_file():
    # a power cut before rename leaves only a stale .tmp beside the good file
    d = tmpdir("st6")
    t = FakeClock()
    s = Stats(d + "/s.json", t)
    s.on_fault("NET-01")
    s.flush()
    with open(d + "/s.json.tmp", "w") as f:
        f.write('{"codes": {"NE')
    eq(Stats(d + "/s.json", t).snapshot()["codes"], {"NET-01": 1})
    s.on_fault("NET-01")
    s.flush()
    eq(Stats(d + "/s.json", t).snapshot()["codes"], {"NET-01": 2})


def test_clear_resets_everything():
    d = tmpdir("st7")
    t = FakeClock()
    s = Stats(d + "/s.json", t)
    s.on_fault("HW-01")
    s.boot("power", 1)
    s.clear()
    snap = Stats(d + "/s.json", t).snapshot()
    eq((snap["codes"], snap["boots"], snap["boot_count"]), ({}, {}, 0))

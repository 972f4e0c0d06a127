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


def test_background_work_is_counted_apart_and_per_day():
    d = tmpdir("st9")
    wall = [1700000000]
    s = Stats(d + "/s.json", FakeClock(), lambda: wall[0])
    s.on_fault("HST-01", "host")  # a customer's sale timed out
    for _ in range(40):
        s.on_fault("HST-01", "retry")  # the worker's reversal repeats during the outage
    wall[0] += 86400
    s.on_fault("ISS-51", "host")
    snap = s.snapshot()
    eq(snap["codes"], {"HST-01": 41, "ISS-51": 1})
    eq(snap["background"], {"HST-01": 40})
    day = 1700000000 // 86400
    eq(snap["days"], {str(day): {"HST-01": [1, 40]}, str(day + 1): {"ISS-51": [1, 0]}})
    s.flush()
    eq(Stats(d + "/s.json", FakeClock(), lambda: wall[0]).snapshot()["days"], snap["days"])


def test_per_day_counts_keep_the_last_days_only():
    from payterm.diag.stats import DAYS

    d = tmpdir("st10")
    wall = [1700000000]
    s = Stats(d + "/s.json", FakeClock(), lambda: wall[0])
    for i in range(DAYS + 5):
        s.on_fault("CRD-05", "card")
        wall[0] += 86400
    days = sorted(int(k) for k in s.snapshot()["days"])
    eq(len(days), DAYS)
    eq(days[-1], (wall[0] - 86400) // 86400)

# runtimes: unix
"""Diag facade: one call per event feeds the fault log, the counts and the waits."""
from mpt import eq, tmpdir, FakeClock

from payterm.diag import Diag, NullDiag
from payterm.errors import Fault


def _diag(name):
    d = tmpdir(name)
    return d, Diag(d, lambda: 1700000000, FakeClock())


def test_fault_goes_to_log_and_counts():
    _, dg = _diag("dg1")
    dg.fault("ISS-51", "host", "rrn 123")
    dg.fault(Fault("CRD-07", "pan 5500005555555559 bad luhn", "card"))
    fs = dg.faults(5)
    eq([(f["code"], f["stage"]) for f in fs], [("CRD-07", "card"), ("ISS-51", "host")])
    assert "5500005555555559" not in fs[0]["ctx"]
    assert fs[0]["ctx"].startswith("pan 550000")
    st = dg.stats()
    eq(st["codes"], {"ISS-51": 1, "CRD-07": 1})
    eq(st["categories"], {"issuer": 1, "card": 1})


def test_everything_survives_a_restart():
    d, dg = _diag("dg2")
    dg.boot("power")
    dg.fault("NET-03", "connect")
    dg.count("breaker_trip")
    dg.wait("r9", "connect", 4000)
    dg.txn_done("r9")
    dg.flush()
    dg2 = Diag(d, lambda: 1700000500, FakeClock())
    dg2.boot("watchdog")
    eq(dg2.last_fault()["code"], "SYS-06")
    st = dg2.stats()
    eq(st["counters"], {"breaker_trip": 1})
    eq(st["boots"], {"power": 1, "watchdog": 1})
    eq(st["codes"]["NET-03"], 1)
    eq(dg2.wait_summary()["stages"]["connect"]["p95"], 4000)


def test_corrupt_storage_is_logged_as_sys02():
    d, dg = _diag("dg3")
    dg.fault("HW-01", "reader")
    dg.flush()
    with open(d + "/faults.bin", "r+b") as f:
        f.seek(20)
        f.write(b"\xff\xff\xff")
    with open(d + "/stats.json", "w") as f:
        f.write("{not json")
    dg2 = Diag(d, lambda: 1, FakeClock())
    eq(dg2.last_fault()["code"], "SYS-02")
    eq(dg2.stats()["codes"].get("SYS-02"), 1)


def test_clear_parts():
    _, dg = _diag("dg4")
    dg.fault("HW-03", "print")
    dg.clear("faults")
    eq(dg.faults(3), [])
    eq(dg.stats()["codes"], {"HW-03": 1})
    dg.clear("stats")
    eq(dg.stats()["codes"], {})


def test_null_diag_has_the_same_interface():
    _, real = _diag("dg5")
    n = NullDiag()
    for name in dir(real):
        if name.startswith("_") or not callable(getattr(real, name)):
            continue
        assert hasattr(n, name), name
    n.fault("HW-01")
    n.count("retry")
    n.wait(1, "card", 5)
    n.txn_done(1)
    n.boot("power")
    eq(n.faults(3), [])
    eq(set(n.stats().keys()) <= set(real.stats().keys()), True)

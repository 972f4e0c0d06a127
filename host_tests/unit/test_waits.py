# runtimes: unix
"""Wait analysis: per-stage percentiles and the top causes of customer waiting."""
from mpt import eq, tmpdir

from payterm.diag.waits import Waits, percentile


def _sorted(xs):
    return sorted(xs)


def test_percentile_nearest_rank():
    v = list(range(1, 101))
    eq(percentile(v, 50), 50)
    eq(percentile(v, 95), 95)
    eq(percentile([7], 95), 7)
    eq(percentile([], 50), 0)
    eq(percentile([1, 2, 3, 4], 50), 2)


def test_stage_times_add_up_within_a_transaction():
    d = tmpdir("w1")
    w = Waits(d + "/w.json", lambda: 1000)
    w.wait("t1", "connect", 300)
    w.wait("t1", "retry", 2000)
    w.wait("t1", "connect", 250)
    w.wait("t1", "host", 900)
    w.done("t1")
    s = w.summary()
    eq(s["txns"], 1)
    eq(s["stages"]["connect"]["p50"], 550)
    eq(w.history[-1][2], {"connect": 550, "retry": 2000, "host": 900})


def test_p50_p95_and_top_causes_from_many_transactions():
    d = tmpdir("w2")
    w = Waits(d + "/w.json", lambda: 0)
    hosts = []
    cards = []
    seed = 12345
    for i in range(50):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        h = 300 + seed % 2500
        c = 500 + (seed >> 8) % 800
        hosts.append(h)
        cards.append(c)
        w.wait(i, "host", h)
        w.wait(i, "card", c)
        w.done(i)
    s = w.summary()
    hs = _sorted(hosts)
    eq(s["stages"]["host"]["p50"], percentile(hs, 50))
    eq(s["stages"]["host"]["p95"], percentile(hs, 95))
    eq(s["stages"]["host"]["max"], hs[-1])
    big = "host" if sum(hosts) > sum(cards) else "card"
    eq(s["top"][0]["stage"], big)
    eq(sum(c["share"] for c in s["top"]) in (99, 100), True)


def test_sample_window_is_bounded_to_recent_transactions():
    d = tmpdir("w3")
    w = Waits(d + "/w.json", lambda: 0)
    for i in range(100):
        w.wait(i, "print", 1000 if i < 36 else 10)
        w.done(i)
    s = w.summary()
    # the last 64 samples are all 10 ms: old slow prints no longer count
    eq(s["stages"]["print"]["p95"], 10)
    eq(s["stages"]["print"]["n"], 100)
    assert len(w.history) <= 32


def test_persisted_and_reloaded():
    d = tmpdir("w4")
    w = Waits(d + "/w.json", lambda: 77)
    w.wait("a", "card", 1500)
    w.done("a")
    w2 = Waits(d + "/w.json", lambda: 78)
    eq(w2.summary()["stages"]["card"]["p50"], 1500)
    eq(w2.history, [[77, "a", {"card": 1500}]])


def test_unfinished_transactions_do_not_leak():
    d = tmpdir("w5")
    w = Waits(d + "/w.json", lambda: 0)
    for i in range(40):
        w.wait(i, "card", 5)
    assert len(w._open) <= 8
    w.done("never-started")
    eq(w.summary()["txns"], 0)

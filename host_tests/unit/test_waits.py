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
        w.wait(i, "present", c)
        w.wait(i, "print", 100)
        w.done(i)
    s = w.summary()
    hs = _sorted(hosts)
    eq(s["stages"]["host"]["p50"], percentile(hs, 50))
    eq(s["stages"]["host"]["p95"], percentile(hs, 95))
    eq(s["stages"]["host"]["max"], hs[-1])
    eq(s["stages"]["host"]["side"], "terminal")
    eq(s["stages"]["present"]["side"], "customer")
    # the causes of terminal time only: presenting the card is the customer's
    eq([c["stage"] for c in s["top"]], ["host", "print"])
    eq(s["top"][0]["share"], sum(hosts) * 100 // (sum(hosts) + 5000))
    eq(s["customer"]["total"], sum(cards))
    eq(s["terminal"]["total"], sum(hosts) + 5000)
    eq(s["customer"]["share"], sum(cards) * 100 // (sum(cards) + sum(hosts) + 5000))
    # per transaction: the p50 of customer time is the p50 of the cards' times
    eq(s["customer"]["p50"], percentile(_sorted(cards[-64:]), 50))
    eq(s["terminal"]["p95"], percentile(_sorted([h + 100 for h in hosts]), 95))


def test_customer_time_is_told_from_terminal_time():
    d = tmpdir("w6")
    w = Waits(d + "/w.json", lambda: 0)
    # a slow customer: 9 s to find the card, the terminal quick
    w.wait("a", "amount", 1500)
    w.wait("a", "present", 9000)
    w.wait("a", "read", 120)
    w.wait("a", "host", 600)
    w.done("a")
    # a slow reader: the customer quick, the reader 7 s
    w.wait("b", "present", 800)
    w.wait("b", "read", 7000)
    w.wait("b", "host", 500)
    w.done("b", "CRD-13")
    s = w.summary()
    eq(s["customer"]["total"], 1500 + 9000 + 800)
    eq(s["terminal"]["total"], 120 + 600 + 7000 + 500)
    eq(s["top"][0], {"stage": "read", "total": 7120, "share": 7120 * 100 // 8220, "code": "CRD-13",
                     "code_share": 7000 * 100 // 8220, "normal": False})
    eq(w.history[-1], [0, "b", {"present": 800, "read": 7000, "host": 500}, "CRD-13"])


def test_host_wait_is_split_into_connect_and_retry():
    d = tmpdir("w7")
    w = Waits(d + "/w.json", lambda: 0)
    w.wait("t", "host", 5000)  # the engine times the whole exchange
    w.move("t", "host", "connect", 1200)  # the link said CONNECTING for 1.2 s
    w.move("t", "host", "retry", 2000)
    w.move("t", "host", "retry", 9999)  # never more than the host stage holds
    w.done("t", "HST-01")
    eq(w.history[-1][2], {"connect": 1200, "retry": 3800})
    s = w.summary()
    eq(s["stages"]["connect"]["total"], 1200)
    eq(s["stages"]["retry"]["total"], 3800)
    assert "host" not in s["stages"], s["stages"]
    eq(s["terminal"]["total"], 5000)


def test_causes_rank_stage_and_failure_code():
    d = tmpdir("w8")
    w = Waits(d + "/w.json", lambda: 0)
    for i in range(4):
        w.wait(i, "host", 15000)  # timeouts
        w.done(i, "HST-01")
    for i in range(4, 20):
        w.wait(i, "host", 900)  # approvals
        w.wait(i, "print", 300)
        w.done(i)
    s = w.summary()
    eq(s["top"][0]["stage"], "host")
    eq(s["top"][0]["code"], "HST-01")
    eq([(c["stage"], c["code"]) for c in s["causes"]], [("host", "HST-01"), ("host", None), ("print", None)])
    eq(s["causes"][0]["total"], 60000)
    eq(s["causes"][0]["share"], 60000 * 100 // (60000 + 16 * 1200))


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
    eq(w2.history, [[77, "a", {"card": 1500}, None]])
    eq(w2.summary()["stages"]["card"]["side"], "customer")  # records from before the split


def test_unfinished_transactions_do_not_leak():
    d = tmpdir("w5")
    w = Waits(d + "/w.json", lambda: 0)
    for i in range(40):
        w.wait(i, "card", 5)
    assert len(w._open) <= 8
    w.done("never-started")
    eq(w.summary()["txns"], 0)


def test_a_failure_adding_under_a_tenth_of_a_stage_is_not_its_cause():
    d = tmpdir("w9")
    w = Waits(d + "/w.json", lambda: 0)
    for i in range(10):
        w.wait(i, "host", 2000)  # a slow host that answers
        w.done(i)
    w.wait("x", "host", 500)
    w.done("x", "ISS-51")  # one quick decline
    top = w.summary()["top"][0]
    eq((top["stage"], top["code"], top["normal"]), ("host", None, True))


def test_done_returns_the_record_it_folded_in():
    d = tmpdir("w9")
    w = Waits(d + "/w.json", lambda: 0)
    w.wait("t1", "present", 2100)
    w.wait("t1", "read", 40)
    eq(w.done("t1"), {"present": 2100, "read": 40})
    eq(w.done("t1"), None)  # closed once
    eq(w.done("never"), None)


def test_history_and_rings_wrap_and_survive_a_reload():
    d = tmpdir("w10")
    w = Waits(d + "/w.json", lambda: 5)
    for i in range(100):
        w.wait(i, "host", i)
        if i % 2:
            w.wait(i, "pin", 1000 + i)
        w.done(i, "HST-01" if i % 10 == 0 else None)
    h = w.history
    eq(len(h), 32)
    eq(h[0], [5, "68", {"host": 68}, None])
    eq(h[-1], [5, "99", {"host": 99, "pin": 1099}, None])
    eq(h[-10][3], "HST-01")
    s = w.summary()
    eq(s["stages"]["host"]["max"], 99)
    eq(s["stages"]["host"]["p50"], percentile(list(range(36, 100)), 50))  # the newest 64
    w2 = Waits(d + "/w.json", lambda: 6)
    eq(w2.history, h)
    eq(w2.summary(), s)


def test_a_thousand_transactions_do_not_grow_the_heap():
    import gc

    d = tmpdir("w11")
    w = Waits(d + "/w.json", lambda: 0)

    def txns(first, n):
        for i in range(first, first + n):
            for st in ("amount", "present", "read", "host", "print"):
                w.wait(i, st, i % 700)
            w.done(i, "ISS-51" if i % 7 == 0 else None)

    txns(0, 100)  # every ring and the history full, every code seen
    gc.collect()
    before = gc.mem_alloc()
    txns(100, 1000)
    gc.collect()
    grew = gc.mem_alloc() - before
    assert grew < 256, "the wait analysis grew by %d bytes over 1000 transactions" % grew

"""State and STAN: atomic replacement, fallback copy, write-ahead STAN."""
import os

from mpt import eq, tmpdir, RecDiag, read_bytes, write_bytes

from payterm.txn.stan import Stan
from payterm.txn.state import State


def test_state_survives_reopen_and_keeps_previous_copy():
    d = tmpdir("st_reopen")
    s = State(d)
    s.set("a", 1)
    s.update({"b": "x", "a": 2})
    eq(State(d).data, {"a": 2, "b": "x"})
    eq(sorted(os.listdir(d)), ["state.bak", "state.json"])


def test_corrupt_main_copy_falls_back_to_previous_and_reports():
    d = tmpdir("st_corrupt")
    s = State(d)
    s.set("stan", 5)
    s.set("stan", 6)
    data = bytearray(read_bytes(d + "/state.json"))
    data[-2] ^= 1
    write_bytes(d + "/state.json", data)
    diag = RecDiag()
    t = State(d, diag=diag)
    eq(t.get("stan"), 5)
    eq(diag.faults, ["SYS-02"])


def test_every_cut_in_a_save_leaves_old_or_new_value():
    d = tmpdir("st_cut")
    s = State(d)
    s.set("n", 1)
    s.set("n", 2)
    new_body = read_bytes(d + "/state.json")
    s2 = State(d)
    old = read_bytes(d + "/state.bak")
    # cut while writing the temporary copy: the save did not happen
    for cut in range(len(new_body) + 1):
        e = tmpdir("st_cut_one")
        write_bytes(e + "/state.json", old)
        write_bytes(e + "/state.tmp", new_body[:cut])
        eq(State(e).get("n"), 1, "cut at %d" % cut)
        eq("state.tmp" in os.listdir(e), False)
    # main moved to backup, tmp complete, final rename not done
    e = tmpdir("st_cut_mid")
    write_bytes(e + "/state.bak", old)
    write_bytes(e + "/state.tmp", new_body)
    eq(State(e).get("n"), 2)
    eq(s2.get("n"), 2)


def test_stan_persists_before_use_and_never_repeats_across_reboots():
    d = tmpdir("stan_reboot")
    seen = set()
    for boot in range(5):
        st = Stan(State(d))
        for i in range(7):
            s = st.next()
            eq(len(s), 6)
            eq(s in seen, False, "reused %s" % s)
            seen.add(s)
    eq(len(seen), 35)
    eq(Stan(State(d)).peek(), 35)


def test_stan_wraps_after_999999_skipping_zero():
    d = tmpdir("stan_wrap")
    s = State(d)
    s.set("stan", 999998)
    st = Stan(s)
    eq([st.next(), st.next(), st.next()], ["999999", "000001", "000002"])


def test_interrupted_save_is_promoted_not_discarded():
    d = tmpdir("st_promote")
    s = State(d)
    s.set("n", 1)
    s.set("n", 2)
    old = read_bytes(d + "/state.bak")
    new = read_bytes(d + "/state.json")
    # cut between "main -> bak" and "tmp -> main": main missing, tmp complete
    e = tmpdir("st_promote_cut")
    write_bytes(e + "/state.bak", old)
    write_bytes(e + "/state.tmp", new)
    t = State(e)
    eq((t.get("n"), t.source, t.lost), (2, "tmp", False))
    eq(sorted(os.listdir(e)), ["state.bak", "state.json"])  # renamed to main
    eq(State(e).get("n"), 2)  # and the next boot does not roll back
    eq(State(e).get("n"), 2)


def test_only_backup_left_is_reported_as_lost():
    d = tmpdir("st_lost")
    s = State(d)
    s.set("n", 1)
    s.set("n", 2)
    os.remove(d + "/state.json")
    diag = RecDiag()
    t = State(d, diag=diag)
    eq((t.get("n"), t.source, t.lost), (1, "bak", True))
    eq(diag.faults, ["SYS-02"])
    t.set("n", 3)
    eq(State(d).get("n"), 3)
    eq(State(d).get("n"), 3)


def test_stan_seed_and_skip():
    d = tmpdir("stan_seed")
    s = State(d)
    st = Stan(s)
    eq(st.seed(0), None)
    eq(st.seed(41), 41)
    s.set("stan", 41)
    eq(st.seed(40), None)  # the state is ahead
    eq(st.seed(40, 1000), 1041)  # lost: a gap above the newest known
    s.set("stan", 999990)
    eq(st.seed(5), 5)  # just past the wrap counts as newer
    eq(st.seed(999000), None)
    eq(st.next({"999991", "999992"}), "999993")

# runtimes: unix
"""Self-test registry and the built-in storage and memory checks."""
from mpt import eq, tmpdir, FakeClock

from payterm.diag import Diag
from payterm.diag.selftest import SelfTests, memory_check, storage_check
from payterm.errors import Fault


async def test_results_in_order_with_codes_and_faults_logged():
    d = tmpdir("stt1")
    dg = Diag(d, lambda: 1, FakeClock())
    st = SelfTests(dg)

    async def echo():
        return "0810 rc=00 120ms"

    async def keypad():
        raise Fault("HW-05", "no key in 10s", "keypad")

    async def broken():
        raise ValueError("bug")

    st.add("comm", echo)
    st.add("keypad", keypad)
    st.add("printer", broken)
    res = await st.run()
    eq(res[0], ("comm", True, None, "0810 rc=00 120ms"))
    eq(res[1], ("keypad", False, "HW-05", "no key in 10s"))
    eq(res[2][:3], ("printer", False, "SYS-09"))
    eq([f["code"] for f in dg.faults(5)], ["SYS-09", "HW-05"])
    eq(len(await st.run("comm")), 1)


async def test_storage_check_passes_on_a_writable_dir_and_fails_on_a_missing_one():
    d = tmpdir("stt2")
    st = SelfTests()
    st.add("storage", storage_check(d))
    st.add("gone", storage_check(d + "/missing"))
    res = await st.run()
    eq(res[0][1], True)
    eq(res[1][:3], ("gone", False, "SYS-01"))
    import os

    eq(os.listdir(d), [])  # the probe file is removed


async def test_storage_check_reports_low_space():
    d = tmpdir("stt3")
    st = SelfTests()
    st.add("storage", storage_check(d, min_free=1 << 62))
    res = await st.run()
    eq(res[0][:3], ("storage", False, "SYS-01"))


async def test_memory_check_thresholds():
    st = SelfTests()
    st.add("ram", memory_check(1))
    st.add("ram-huge", memory_check(1 << 40))
    res = await st.run()
    eq(res[0][1], True)
    eq(res[1][2], "SYS-05")

# runtimes: unix
"""Console line protocol: answers end in OK/ERR, PIN gate and lockout, no full PAN."""
import json

from mpt import eq, tmpdir, FakeClock

from payterm import codes
from payterm.diag import Diag
from payterm.diag.console import Console
from payterm.diag.pin import PinGate
from payterm.diag.selftest import SelfTests
from payterm.errors import Fault

PAN = "4761739001010119"


class Wall:
    def __init__(self):
        self.t = 1700000000

    def __call__(self):
        return self.t


def _setup(name, tests=None):
    d = tmpdir(name)
    wall = Wall()
    dg = Diag(d, wall, FakeClock())
    st = SelfTests(dg)
    for n, fn in tests or ():
        st.add(n, fn)
    gate = PinGate(d + "/pin.json", "4321", wall)
    info = lambda: {"version": "0.1.0", "board": "EMULATOR", "link": "up", "saf_pending": 2}  # noqa: E731
    return d, wall, dg, Console(dg, st, gate, wall, info)


def _ends_ok(lines):
    eq(lines[-1], "OK", "last line of %r" % (lines,))
    return lines[:-1]


async def test_help_lists_every_command():
    _, _, _, c = _setup("c1")
    out = _ends_ok(await c.handle("help"))
    text = "\n".join(out)
    for cmd in ("status", "faults", "stats", "wait", "selftest", "code", "export", "pin", "clear", "mem"):
        assert cmd in text, cmd


async def test_mem_reports_heap_after_a_collection_and_its_high_water_mark():
    import gc

    _, _, _, c = _setup("cmem")
    out = _ends_ok(await c.handle("mem"))
    eq(len(out), 1)
    words = out[0].split()
    eq(words[0], "mem")
    kv = dict(w.split("=") for w in words[1:])
    eq(sorted(kv), ["alloc", "free", "peak"])
    free, alloc, peak = int(kv["free"]), int(kv["alloc"]), int(kv["peak"])
    gc.collect()
    total = gc.mem_free() + gc.mem_alloc()
    assert 0 < alloc < total and 0 < free < total, out
    assert total - 4096 <= free + alloc <= total, (free, alloc, total)
    eq(peak, alloc)
    keep = bytearray(20000)  # live while the next mem runs: alloc and peak grow by it
    kv2 = dict(w.split("=") for w in _ends_ok(await c.handle("mem"))[0].split()[1:])
    assert int(kv2["alloc"]) >= alloc + 20000, (kv2, alloc)
    eq(int(kv2["peak"]), int(kv2["alloc"]))
    del keep
    kv3 = dict(w.split("=") for w in _ends_ok(await c.handle("mem"))[0].split()[1:])
    assert int(kv3["alloc"]) < int(kv2["alloc"]) - 19000, (kv3, kv2)  # collected again
    eq(kv3["peak"], kv2["peak"])  # the high-water mark stays


async def test_status_shows_live_info_and_last_fault():
    _, _, dg, c = _setup("c2")
    dg.fault("NET-01", "link", "no ip")
    out = _ends_ok(await c.handle("status"))
    d = dict(l.split(": ", 1) for l in out)
    eq(d["board"], "EMULATOR")
    eq(d["saf_pending"], "2")
    assert "NET-01" in d["last_fault"] and "NETWORK DOWN" in d["last_fault"]


async def test_faults_n_newest_first_masked():
    _, _, dg, c = _setup("c3")
    dg.fault("CRD-07", "card", "track " + PAN + "=2512")
    dg.fault("HW-03", "print")
    dg.fault("ISS-05", "host")
    out = _ends_ok(await c.handle("faults 2"))
    eq(len(out), 2)
    assert "ISS-05" in out[0] and "HW-03" in out[1]
    out = _ends_ok(await c.handle("faults"))
    assert "476173******0119" in out[2], out
    for cmd in ("faults 10", "export", "stats", "status"):
        for l in await c.handle(cmd):
            assert PAN not in l, (cmd, l)


async def test_stats_and_wait_reflect_recorded_events():
    _, _, dg, c = _setup("c4")
    for _ in range(3):
        dg.fault("CRD-05", "mag")
    dg.count("host_switch", 2)
    dg.wait("t", "host", 1234)
    dg.txn_done("t")
    out = _ends_ok(await c.handle("stats"))
    assert "code CRD-05 3 CARD READ ERROR" in out, out
    assert "category card 3" in out
    assert "link host_switch 2" in out
    out = _ends_ok(await c.handle("wait"))
    assert "txns 1" in out
    assert "stage host terminal n=1 p50=1234ms p95=1234ms max=1234ms" in out, out
    assert "terminal share=100% p50=1234ms p95=1234ms total=1234ms" in out, out


async def test_wait_answers_why_customers_waited_with_code_and_remedy():
    _, _, dg, c = _setup("c4b")
    for i in range(3):
        dg.wait(i, "present", 2000)
        dg.wait(i, "host", 15000)
        dg.txn_done(i, "HST-01")
    dg.wait(9, "present", 1000)
    dg.wait(9, "host", 800)
    dg.txn_done(9)
    out = _ends_ok(await c.handle("wait"))
    assert "stage present customer n=4 p50=2000ms p95=2000ms max=2000ms" in out, out
    assert "customer share=%d%% p50=2000ms p95=2000ms total=7000ms" % (7000 * 100 // 52800) in out, out
    assert "cause host HST-01 98% 45000ms" in out, out
    why = [l for l in out if l.startswith("why ")]
    e = codes.lookup("HST-01")
    eq(why, ["why customers wait most at host (100%% of terminal time); the cause is HST-01 %s; do: %s "
             "(customers' own time: 13%% of all waiting, most at present)" % (e[codes.DISPLAY], e[codes.REMEDY])])


async def test_link_and_recent_commands():
    d = tmpdir("c4c")
    wall = Wall()
    dg = Diag(d, wall, FakeClock())
    link = {"host": "127.0.0.1:8583", "breaker": "closed", "retries": 2, "last_echo": "ok 40ms 3s ago"}
    recent = [{"ref": "000002", "kind": "refund", "status": "approved", "amt": 300, "cur": 978,
               "pan": "476173******0119", "code": ""},
              {"ref": "000001", "kind": "sale", "status": "reversal pending", "amt": 1250, "cur": 978,
               "pan": "541333******0434", "code": "HST-01"}]
    c = Console(dg, SelfTests(dg), PinGate(d + "/pin.json", "4321", wall), wall, link=lambda: link,
                recent=lambda n: recent[:n])
    out = _ends_ok(await c.handle("link"))
    eq(out, ["breaker: closed", "host: 127.0.0.1:8583", "last_echo: ok 40ms 3s ago", "retries: 2"])
    out = _ends_ok(await c.handle("recent 5"))
    eq(out, ["000002 refund approved amt=300 cur=978 pan=476173******0119",
             "000001 sale reversal_pending amt=1250 cur=978 pan=541333******0434 code=HST-01"])
    eq(_ends_ok(await c.handle("recent 1")), out[:1])
    kinds = [json.loads(l)["kind"] for l in _ends_ok(await c.handle("export"))]
    assert "link" in kinds and kinds.count("txn") == 2, kinds
    no = Console(dg, SelfTests(dg), PinGate(d + "/pin.json", "4321", wall), wall)
    assert (await no.handle("recent"))[-1].startswith("ERR USAGE"), "no journal wired: usage, not a crash"


async def test_code_lookup_and_unknown_command():
    _, _, _, c = _setup("c5")
    out = _ends_ok(await c.handle("code iss-51"))
    d = dict(l.split(": ", 1) for l in out)
    e = codes.lookup("ISS-51")
    eq(d["display"], e[codes.DISPLAY])
    eq(d["remedy"], e[codes.REMEDY])
    assert (await c.handle("code XYZ-1"))[-1].startswith("ERR ")
    r = await c.handle("reboot now")
    eq(len(r), 1)
    assert r[0].startswith("ERR ")
    eq(await c.handle("   "), [])


async def test_selftest_reports_pass_and_fail_with_codes():
    async def reader():
        return "fw 1.6"

    async def printer():
        raise Fault("HW-03", "paper", "print")

    _, _, dg, c = _setup("c6", [("reader", reader), ("printer", printer)])
    out = _ends_ok(await c.handle("selftest"))
    eq(out[0], "PASS reader fw 1.6")
    assert out[1].startswith("FAIL printer HW-03 PRINTER PAPER OUT"), out
    eq(dg.last_fault()["code"], "HW-03")
    out = _ends_ok(await c.handle("selftest reader"))
    eq(len(out), 1)


async def test_selftest_hang_is_cut_off():
    import asyncio

    async def keypad():
        await asyncio.sleep(60)

    _, _, _, c = _setup("c7", [("keypad", keypad)])
    c.selftests.timeout_s = 0.05
    out = _ends_ok(await c.handle("selftest"))
    assert out[0].startswith("FAIL keypad SYS-09"), out


async def test_export_is_json_lines_with_every_kind():
    _, _, dg, c = _setup("c8")
    dg.boot("power")
    dg.fault("HST-01", "host", "stan 000123")
    dg.wait("x", "card", 800)
    dg.txn_done("x")
    out = _ends_ok(await c.handle("export"))
    objs = [json.loads(l) for l in out]
    kinds = [o["kind"] for o in objs]
    for k in ("status", "fault", "stats", "waits", "code"):
        assert k in kinds, k
    code = [o for o in objs if o["kind"] == "code"][0]
    eq(code["id"], "HST-01")
    eq(code["display"], codes.lookup("HST-01")[codes.DISPLAY])
    eq([o for o in objs if o["kind"] == "waits"][0]["history"][0][2], {"card": 800})


async def test_clear_needs_pin_and_lockout_after_three_wrong():
    _, wall, dg, c = _setup("c9")
    dg.fault("HW-04", "print")
    r = await c.handle("clear")
    assert r[-1].startswith("ERR OPR-05"), r
    eq(len(dg.faults(5)), 1)
    assert (await c.handle("pin 0000"))[-1].startswith("ERR OPR-05")
    assert (await c.handle("pin 1111"))[-1].startswith("ERR OPR-05")
    assert (await c.handle("pin 2222"))[-1].startswith("ERR OPR-03")
    # locked: even the right PIN is refused until the lockout ends
    assert (await c.handle("pin 4321"))[-1].startswith("ERR OPR-03")
    assert (await c.handle("clear"))[-1].startswith("ERR OPR-03")
    wall.t += 301
    _ends_ok(await c.handle("pin 4321"))
    _ends_ok(await c.handle("clear faults"))
    eq(dg.faults(5), [])
    # the login expires
    wall.t += 301
    assert (await c.handle("clear stats"))[-1].startswith("ERR OPR-05")


async def test_lockout_survives_reboot_and_pin_is_not_stored_in_clear():
    d, wall, _, c = _setup("c10")
    for p in ("1", "2", "3"):
        await c.handle("pin " + p)
    with open(d + "/pin.json") as f:
        assert "4321" not in f.read()
    gate = PinGate(d + "/pin.json", "4321", wall)
    assert gate.locked_for() > 0


async def test_wrong_pins_are_in_the_fault_log_when_gate_has_diag():
    d = tmpdir("c11")
    wall = Wall()
    dg = Diag(d, wall, FakeClock())
    gate = PinGate(d + "/pin.json", "4321", wall, diag=dg)
    c = Console(dg, SelfTests(dg), gate, wall)
    for p in ("1", "2", "3", "4"):
        await c.handle("pin " + p)
    fs = dg.faults(5)
    eq([(f["code"], f["count"]) for f in fs], [("OPR-03", 2), ("OPR-05", 2)])
    for f in fs:
        assert "4321" not in f["ctx"]


# ---------------------------------------------------------------- line reader (console UART bytes)

from payterm.diag.console import LineReader, MAX_LINE, utf8_error  # noqa: E402


def _feed(data, rd=None):
    rd = rd or LineReader()
    return rd.feed(data)


def test_lines_end_on_cr_or_lf_and_empty_lines_are_nothing():
    eq(_feed(b"status\r\nfaults 3\n\r\n\n"), [("line", "status"), ("line", "faults 3")])
    rd = LineReader()
    eq(rd.feed(b"sta"), [])
    eq(rd.feed(b"tus\r"), [("line", "status")], "a line split over reads")


def test_invalid_utf8_is_an_error_for_that_line_only():
    for bad in (b"\xff\n", b"st\xc3\n", b"\xc0\xaf\n", b"\xed\xa0\x80\n", b"\xf4\x90\x80\x80\n", b"a\x80b\n"):
        out = _feed(bad + b"status\n")
        eq(len(out), 2, repr(bad))
        assert out[0][0] == "err" and out[0][1].startswith("ERR USAGE invalid UTF-8"), (bad, out)
        eq(out[1], ("line", "status"))
    eq(_feed("code caf\u00e9\n".encode()), [("line", "code caf\u00e9")], "valid UTF-8 passes")
    eq(utf8_error(b"ok \xe2\x82\xac", 6), -1)
    eq(utf8_error(b"\xe2\x82", 2), 0, "truncated sequence")


def test_over_long_line_is_dropped_whole_with_one_err():
    out = _feed(b"x" * (MAX_LINE + 300) + b"status\n" + b"status\n")
    eq(len(out), 2, "one answer for the long line, then the next line")
    eq(out[0], ("err", "ERR USAGE line too long (max %d bytes)" % MAX_LINE))
    eq(out[1], ("line", "status"), "the tail of the long line is not run as a command")
    eq(_feed(b"s" * MAX_LINE + b"\n")[0][0], "line", "exactly MAX_LINE bytes still fits")


def test_control_bytes():
    eq(_feed(b"statx\x08us\n"), [("line", "status")], "backspace")
    eq(_feed(b"statx\x7fus\n"), [("line", "status")], "DEL as backspace")
    eq(_feed("caf\u00e9\x7f\n".encode()), [("line", "caf")], "backspace removes a whole character")
    eq(_feed(b"clear all\x03status\n"), [("line", "status")], "Ctrl-C drops the line")
    eq(_feed(b"clear\x15status\n"), [("line", "status")], "Ctrl-U drops the line")
    eq(_feed(b"stat\x1b[Dus\x1bOA\n"), [("line", "status")], "arrow keys skipped")
    eq(_feed(b"faults\t3\n"), [("line", "faults 3")], "tab is a space")
    out = _feed(b"sta\x00tus\n")
    eq(out, [("err", "ERR USAGE control character 0x00")])


async def test_command_words_are_bounded_and_never_echoed_raw():
    _, _, dg, c = _setup("c12")
    r = await c.handle("x" * 300)
    eq(r, ["ERR USAGE unknown command (try help)"], "a 300-character word is a usage error, not SYS-09")
    r = await c.handle("st\u00e4tus")
    eq(r, ["ERR USAGE unknown command (try help)"])
    r = await c.handle(PAN)
    eq(len(r), 1)
    assert r[0].startswith("ERR USAGE") and PAN not in r[0] and "476173******0119" in r[0], r
    r = await c.handle("x4761739001012")
    assert "4761739001012" not in r[0], r
    r = await c.handle("faults " + PAN)
    for l in r:
        assert PAN not in l, r
    eq(dg.faults(5), [], "nothing here is a fault of the terminal")


async def test_no_answer_echoes_twelve_or_more_digits():
    _, _, _, c = _setup("c13")
    c._c_echo = lambda args: ["you said " + " ".join(args)]  # a command that repeats its arguments
    for arg in ("123456789012", "501800000009", PAN, "1" * 25):
        out = await c.handle("echo " + arg)
        assert arg not in out[0], out
        assert out[-1] == "OK"
    eq((await c.handle("echo 12345678901"))[0], "you said 12345678901", "11 digits are no card number")


class _Stream:
    """The console UART as the task sees it: fed bytes in, answer bytes out."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.out = bytearray()

    async def read(self, n):
        import asyncio

        if not self.chunks:
            await asyncio.sleep_ms(1)
            raise _Done()
        return self.chunks.pop(0)

    def write(self, b):
        self.out.extend(b)

    async def drain(self):
        pass


class _Done(Exception):
    pass


async def test_console_task_survives_random_bytes():
    import random

    _, _, dg, c = _setup("c14")
    random.seed(16)
    chunks = []
    for k in range(400):
        n = random.randint(1, 80)
        chunks.append(bytes(random.getrandbits(8) for _ in range(n)))
        if k % 7 == 0:
            chunks.append(b"\n")
    chunks.append(b"\nstatus\n")
    s = _Stream(chunks)
    try:
        await c.serve(s)
    except _Done:
        pass
    text = bytes(s.out)
    lines = text.split(b"\n")
    assert b"board: EMULATOR" in text, "status still answers after the garbage"
    eq(lines[-2], b"OK")
    assert b"SYS-09" not in text, "no internal error on any input"
    eq([f for f in dg.faults(10) if f["code"] == "SYS-09"], [])
    for l in lines:
        assert len(l) < 200, l
    # the handler alone takes any text too
    for k in range(300):
        line = "".join(chr(random.randint(1, 0x2FF)) for _ in range(random.randint(0, 40)))
        r = await c.handle(line)
        assert not r or r[-1] == "OK" or r[-1].startswith("ERR "), (line, r)
        assert not any("SYS-09" in x for x in r), (line, r)

# runtimes: unix
"""Technician menu: PIN entry, paging and self-tests on a 4x20 display."""
from mpt import eq, tmpdir, FakeClock

from payterm.diag import Diag
from payterm.diag.pin import PinGate
from payterm.diag.selftest import SelfTests
from payterm.errors import Fault
from payterm.ui.techmenu import TechMenu


class Display:
    def __init__(self):
        self.frames = []

    def show(self, rows):
        assert len(rows) <= 4, rows
        for r in rows:
            assert len(r) <= 20, r
        self.frames.append(list(rows))

    def text(self):
        return "\n".join(self.frames[-1])


class Keys:
    def __init__(self, seq):
        self.seq = list(seq)

    async def __call__(self):
        if not self.seq:
            raise AssertionError("menu asked for more keys")
        return self.seq.pop(0)


def _menu(name, keys, tests=()):
    d = tmpdir(name)
    wall = [1700000000]
    dg = Diag(d, lambda: wall[0], FakeClock())
    st = SelfTests(dg)
    for n, fn in tests:
        st.add(n, fn)
    gate = PinGate(d + "/pin.json", "4321", lambda: wall[0])
    disp = Display()
    m = TechMenu(disp, Keys(keys), dg, st, gate.check, lambda: {"version": "0.1.0", "board": "EMULATOR", "link": "up"})
    return m, disp, dg


async def test_pin_then_pages_then_exit():
    m, disp, dg = _menu("tm1", ["4", "3", "2", "1", "E", "#", "#", "*", "C"])
    dg.fault("ISS-51", "host")
    seen = []
    orig = disp.show

    def spy(rows):
        orig(rows)
        seen.append(rows[0])

    disp.show = spy
    eq(await m.run(), True)
    assert seen[0] == "TECHNICIAN"
    assert "***" in "".join(disp.frames[3])  # digits shown as stars
    titles = [s for s in seen if "/" in s]
    eq(titles[:4], ["1/7 STATUS    8:MORE", "2/7 FAULTS", "3/7 QUEUE", "2/7 FAULTS"])
    faults_page = [f for f in disp.frames if f[0] == "2/7 FAULTS"][0]
    eq(faults_page[1], "ISS-51 x1 host")
    eq(faults_page[2], " INSUFFICIENT FUNDS")


async def test_wrong_pin_shows_error_and_cancel_leaves():
    m, disp, _ = _menu("tm2", ["1", "1", "1", "1", "E", "C"])
    eq(await m.run(), False)
    assert any("WRONG TECH PIN" in r for f in disp.frames for r in f)


async def test_three_wrong_pins_lock_the_menu():
    keys = ["9", "E"] * 3 + ["C"]
    m, disp, _ = _menu("tm3", keys)
    eq(await m.run(), False)
    assert any("TECH PIN LOCKED" in r for f in disp.frames for r in f)


async def test_selftest_page_runs_the_checks():
    async def ok():
        return None

    async def jam():
        raise Fault("HW-04", "jam", "print")

    keys = ["4", "3", "2", "1", "E", "*", "E", "C"]
    m, disp, _ = _menu("tm4", keys, [("reader", ok), ("printer", jam)])
    eq(await m.run(), True)
    res = [f for f in disp.frames if f[0] == "7/7 TESTS"][-1]
    eq(res[1:3], ["READER PASS", "PRINTER HW-04"])


async def test_long_pages_scroll():
    m, disp, dg = _menu("tm5", ["4", "3", "2", "1", "E", "#", "8", "8", "2", "C"])
    for c in ("CRD-01", "CRD-02", "CRD-03"):
        dg.fault(c, "card")
    eq(await m.run(), True)
    pages = [f for f in disp.frames if f[0].startswith("2/7 FAULTS")]
    # the title says there is more below, then (at the end) that the top is above
    eq([p[0] for p in pages], ["2/7 FAULTS    8:MORE", "2/7 FAULTS    8:MORE", "2/7 FAULTS    8:MORE",
                               "2/7 FAULTS    8:MORE"])
    eq(pages[0][1], "CRD-03 x1 card")
    eq(pages[1][1], " CARD READ ERROR")
    eq(pages[2][1], "CRD-02 x1 card")
    eq(pages[3][1], " CARD READ ERROR")


class FakeQueue:
    def __init__(self, refs):
        self.refs = list(refs)
        self.retried = []

    def failed(self):
        return [{"ref": r, "kind": "saf", "st": "failed", "code": "HST-07"} for r in self.refs]

    async def retry(self, ref):
        self.retried.append(ref)
        self.refs.remove(ref)
        return ref


async def test_status_page_lists_failed_advices_and_E_retries_them():
    d = tmpdir("tm6")
    dg = Diag(d, lambda: 1700000000, FakeClock())
    gate = PinGate(d + "/pin.json", "4321", lambda: 1700000000)
    disp = Display()
    q = FakeQueue(["000007"])
    info = {"version": "0.1.0", "link": "online", "saf_pending": 0, "saf_failed": 1, "reversals_pending": 0}
    m = TechMenu(disp, Keys(["4", "3", "2", "1", "E", "8", "8", "8", "8", "E", "2", "2", "2", "2", "C"]), dg,
                 SelfTests(dg), gate.check, lambda: info, q)
    eq(await m.run(), True)
    status = [f for f in disp.frames if f[0].startswith("1/7 STATUS")]
    seen = [r for f in status[:5] for r in f[1:]]
    for want in ("LINK online", "SAF FAILED 1", "FAILED 000007 HST-07", "E: RETRY FAILED"):
        assert want in seen, (want, seen)
    eq(q.retried, ["000007"])
    after = [r for f in status[5:] for r in f[1:]]
    assert "RETRYING 1" in after, after
    assert "FAILED 000007 HST-07" not in after, after


class FullQueue(FakeQueue):
    """A worker with a reversal and a failed advice queued."""

    def items(self):
        return [("reversal", {"ref": "000003", "st": "reversing", "amt": 600, "cur": 978, "rv_out": 2,
                              "code": "HST-01"}, 4000),
                ("advice", {"ref": "000007", "st": "failed", "amt": 900, "cur": 978, "tries": 20, "code": "HST-07"},
                 None)]

    async def retry(self, ref):
        self.retried.append(ref)
        return ref


def _frames_of(disp, title):
    return [f for f in disp.frames if f[0].startswith(title)]


def _body(frames):
    out = []
    for f in frames:
        for r in f[1:]:
            if r and r not in out:
                out.append(r)
    return out


async def test_status_shows_link_quality_and_queue_page_sends_everything_now():
    d = tmpdir("tm7")
    dg = Diag(d, lambda: 1700000000, FakeClock())
    gate = PinGate(d + "/pin.json", "4321", lambda: 1700000000)
    disp = Display()
    q = FullQueue(["000007"])
    link = {"link": "online", "host": "127.0.0.1:8583", "breaker": "closed", "retries": 3, "breaker_trips": 1,
            "last_echo": "ok 85ms 12s ago"}
    keys = ["4", "3", "2", "1", "E"] + ["8"] * 6 + ["#", "#"] + ["8"] * 8 + ["E", "C"]
    m = TechMenu(disp, Keys(keys), dg, SelfTests(dg), gate.check, lambda: {"saf_pending": 0}, q, link=lambda: link)
    eq(await m.run(), True)
    status = _body(_frames_of(disp, "1/7 STATUS"))
    for want in ("LINK online", "HOST 127.0.0.1:8583", "BREAKER closed", "RETRIES 3 TRIPS 1", "ECHO ok 85ms 12s ago"):
        assert want in status, (want, status)
    queue = _body(_frames_of(disp, "3/7 QUEUE"))
    for want in ("REVERSAL 000003", " REVERSING TRY 2", " EUR 6.00 NEXT 4.0s", " HST-01", "ADVICE 000007",
                 " FAILED TRY 20", " EUR 9.00 NEXT -", " HST-07", "E: SEND ALL NOW"):
        assert want in queue, (want, queue)
    eq(q.retried, ["000003", "000007"])
    assert "SENDING 2 NOW" in _body(_frames_of(disp, "3/7 QUEUE")), "the page says what E did"


async def test_recent_and_wait_pages_with_units_and_the_cause():
    d = tmpdir("tm8")
    dg = Diag(d, lambda: 1700000000, FakeClock())
    for i in range(3):
        dg.wait(i, "present", 2500)
        dg.wait(i, "host", 15000)
        dg.txn_done(i, "HST-01")
    gate = PinGate(d + "/pin.json", "4321", lambda: 1700000000)
    disp = Display()
    recent = [{"ref": "000002", "kind": "refund", "status": "approved", "amt": 300, "cur": 978,
               "pan": "476173******0119", "code": ""},
              {"ref": "000001", "kind": "sale", "status": "declined", "amt": 1250, "cur": 978,
               "pan": "541333******0434", "code": "ISS-51"}]
    keys = ["4", "3", "2", "1", "E", "*", "*", "*"] + ["8"] * 20 + ["*"] + ["8"] * 6 + ["C"]
    m = TechMenu(disp, Keys(keys), dg, SelfTests(dg), gate.check, lambda: {}, None, recent=lambda n: recent[:n])
    eq(await m.run(), True)
    rec = _body(_frames_of(disp, "4/7 RECENT"))
    eq(rec, ["000002 RFND APPROVED", " EUR 3.00 *0119", "000001 SALE DECLINED", " EUR 12.50 *0434",
             " ISS-51", " INSUFFICIENT FUNDS"])
    waits = _body(_frames_of(disp, "5/7 WAITS"))
    for want in ("TXNS 3", "CUSTOMER 14% OF WAIT", " p50 2.5s p95 2.5s", "TERMINAL 85% OF WAIT",
                 " p50 15.0s p95 15.0s", "MOST WAIT: HOST", "CAUSE HST-01 100%", " NO HOST RESPONSE",
                 "PRESENT (CUST)", "HOST (TERM)"):
        assert want in waits, (want, waits)
    assert any(r.startswith("DO: Check network") for r in waits), waits
    for f in disp.frames:
        assert "P50 2005 P95" not in " ".join(f)

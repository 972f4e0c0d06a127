"""Engine against a scripted supervisor: approvals, declines, offline approval, void, recovery.

Reversal repeats and advice uploads are the worker's: host_tests/unit/test_worker.py.

The supervisor fake answers each request from a script (a field-39 code or a
Fault carrying the link's `sent` flag) and keeps every request it was given,
so the tests check what would have gone on the wire; journal and state are
real files.
"""
import asyncio

from mpt import eq, raises, tmpdir

from payterm.errors import Fault
from payterm.txn.engine import Engine
from payterm.txn.journal import Journal
from payterm.txn.saf import Saf
from payterm.txn.state import State

PAN = "4111111111111111"


class FakeCard:
    def __init__(self, pan=PAN):
        self._pan = pan
        self.masked = pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
        self.entry_mode = "901"
        self.wiped = False

    def auth_fields(self):
        if self.wiped:
            raise Fault("SYS-09", "wiped", "card")
        return {"2": self._pan, "14": "3012", "35": self._pan + "=30121010000000000000"}

    def wipe(self):
        self.wiped = True


class FakeSup:
    def __init__(self, *script):
        self.script = list(script)
        self.sent = []
        self._echo_fields = None

    def set_echo_fields(self, fn):
        self._echo_fields = fn

    async def request(self, fields, deadline_ms=None):
        self.sent.append(dict(fields))
        a = self.script.pop(0) if self.script else "00"
        if isinstance(a, Fault):
            raise a
        if a == "hang":
            await asyncio.sleep(3600)
        t = fields["t"]
        resp = {"t": t[:2] + str(int(t[2]) + 1) + "0", "11": fields["11"], "39": a, "37": "%012d" % len(self.sent)}
        if a == "00":
            resp["38"] = "AB%04d" % len(self.sent)
        return resp

    async def echo(self, deadline_ms=None):
        return await self.request({"t": "0800", "11": "000000", "70": "301"}, deadline_ms)


class RecDiag:
    def __init__(self):
        self.faults = []
        self.waits = []
        self.done = []

    def fault(self, code, stage="", ctx=""):
        self.faults.append(code)
        assert PAN not in ctx

    def wait(self, ref, stage, ms):
        self.waits.append((ref, stage))

    def txn_done(self, ref):
        self.done.append(ref)


def _fault(code, sent):
    f = Fault(code, "scripted", "link")
    f.sent = sent
    return f


def _engine(d, sup, **cfg):
    j = Journal(d)
    st = State(d)
    c = {"terminal_id": "TERM0042", "merchant_id": "MERCHANT0000042", "currency": 978,
         "floor_limit": 2000, "saf_max_count": 3, "saf_max_total": 5000}
    c.update(cfg)
    return Engine(sup, j, st, Saf(j), c, RecDiag(), lambda: 1700000000, lambda: 0, None)


def _journal_bytes(d):
    with open(d + "/journal.log", "rb") as f:
        return f.read()


async def test_approved_sale_is_journaled_masked_and_card_wiped():
    d = tmpdir("eng_ok")
    sup = FakeSup("00")
    e = _engine(d, sup)
    card = FakeCard()
    r = await e.sale(card, 1234, 978)
    eq(r.approved, True)
    eq(r.code, None)
    eq(r.offline, False)
    eq(r.rc, "00")
    eq(r.auth_code, "AB0001")
    eq(r.rrn, "000000000001")
    eq(card.wiped, True)
    req = sup.sent[0]
    eq((req["t"], req["3"], req["4"], req["49"], req["22"], req["41"], req["42"], req["2"]),
       ("0200", "000000", "000000001234", "978", "901", "TERM0042", "MERCHANT0000042", PAN))
    eq(req["11"], r.stan)
    t = Journal(d).get(r.ref)
    eq((t["st"], t["amt"], t["cur"], t["pan"], t["rrn"]), ("approved", 1234, 978, "411111******1111", r.rrn))
    eq(PAN.encode() in _journal_bytes(d), False)
    eq(e.diag.done, [r.ref])


async def test_declines_map_to_issuer_codes():
    d = tmpdir("eng_decl")
    rcs = ("51", "05", "14", "54", "57", "91", "96", "N7", "Q9")
    sup = FakeSup(*rcs)
    e = _engine(d, sup)
    for rc in rcs:
        r = await e.sale(FakeCard(), 500)
        eq((r.approved, r.code, r.rc), (False, "ISS-" + rc, rc))
        eq(bool(r.text), True)
        eq(e.lookup(r.ref)["st"], "declined")
    eq(e.diag.faults, ["ISS-" + rc for rc in rcs])
    eq(e.reversals(), [])


async def test_offline_under_floor_goes_to_saf_within_limits():
    d = tmpdir("eng_saf")
    sup = FakeSup(*[_fault("HST-04", False) for _ in range(6)])
    e = _engine(d, sup)
    a = await e.sale(FakeCard(), 1000)
    b = await e.sale(FakeCard(), 2000)
    eq((a.approved, a.offline, b.approved, b.offline), (True, True, True, True))
    eq(len(a.auth_code), 6)
    c = await e.sale(FakeCard(), 2001)
    eq((c.approved, c.code), (False, "SYS-08"))
    f = await e.refund(FakeCard(), 100)
    eq((f.approved, f.code, e.lookup(f.ref)["st"]), (False, "HST-04", "failed"))
    d2 = await e.sale(FakeCard(), 1500)
    eq(d2.approved, True)
    g = await e.sale(FakeCard(), 1499)
    eq((g.approved, g.code), (False, "SYS-04"))  # three advices pending: the count limit
    eq([t["ref"] for t in e.saf.pending()], [a.ref, b.ref, d2.ref])  # uploads: test_worker


async def test_void_online_and_offline():
    d = tmpdir("eng_void")
    sup = FakeSup("00", "00", _fault("NET-03", False))
    e = _engine(d, sup)
    s = await e.sale(FakeCard(), 700)
    v = await e.void(s.ref)
    eq((v.approved, v.kind), (True, "void"), repr(v))
    m = sup.sent[1]
    eq((m["t"], m["3"], m["90"][:10], m["37"], m["4"]), ("0200", "020000", "0200" + s.stan, s.rrn, "000000000700"))
    eq(e.lookup(s.ref)["voided"], v.ref)
    eq(e.status_of(e.lookup(s.ref)), "voided")
    eq((await e.void(s.ref)).code, "OPR-04")
    eq((await e.void("999999")).code, "OPR-04")
    off = await e.sale(FakeCard(), 300)
    eq(off.offline, True)
    n = len(sup.sent)
    vo = await e.void(off.ref)
    eq(vo.approved, True)
    eq(len(sup.sent), n)
    eq(e.saf.pending(), [])


async def test_refund_status_lookup():
    d = tmpdir("eng_refund")
    sup = FakeSup("00", "05", _fault("HST-01", True))
    e = _engine(d, sup)
    ok = await e.refund(FakeCard(), 900)
    no = await e.refund(FakeCard(), 901)
    amb = await e.refund(FakeCard(), 902)
    eq(sup.sent[0]["3"], "200000")
    eq(e.status_of(e.lookup(ok.ref)), "approved")
    eq(e.status_of(e.lookup(no.ref)), "declined")
    eq(e.status_of(e.lookup(amb.ref)), "pending")  # "reversed" once the worker is acknowledged: test_worker
    eq(e.lookup(str(int(ok.ref)))["amt"], 900)
    eq(raises(Fault, e.lookup, "123456").code, "OPR-04")


async def test_invalid_amount_and_currency():
    d = tmpdir("eng_amount")
    sup = FakeSup()
    e = _engine(d, sup)
    card = FakeCard()
    eq((await e.sale(card, 0)).code, "OPR-02")
    eq(card.wiped, True)
    eq((await e.sale(FakeCard(), 100, 999)).code, "SYS-07")
    eq(sup.sent, [])


async def test_stans_unique_across_sales_echoes_and_reboots():
    d = tmpdir("eng_stan")
    seen = set()
    for boot in range(3):
        sup = FakeSup()
        e = _engine(d, sup)
        eq(sup._echo_fields is not None, True)
        for i in range(3):
            r = await e.sale(FakeCard(), 100)
            seen.add(r.stan)
            seen.add(sup._echo_fields()["11"])
    eq(len(seen), 18)


async def test_technician_view_and_amount_text():
    d = tmpdir("eng_tech")
    sup = FakeSup("00", _fault("NET-03", False), _fault("HST-01", True))
    e = _engine(d, sup)
    ok = await e.sale(FakeCard(), 1234, 978)
    eq(ok.amount_text(), "EUR 12.34")
    jp = await e.sale(FakeCard(), 150, 392)
    eq(jp.amount_text(), "JPY 150")
    amb = await e.refund(FakeCard(), 5, 48)
    lines = e.technician_lines()
    eq(lines[0], "SAF pending 1 sent 0 declined 0 failed 0")
    eq(lines[1], "REVERSALS pending 1")
    eq(lines[2:], ["%s SALE approved EUR 12.34" % ok.ref, "%s SAF pending JPY 150" % jp.ref,
                   "%s REFUND pending BHD 0.005 HST-01" % amb.ref])
    for l in lines:
        eq(PAN in l, False)

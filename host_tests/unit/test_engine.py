"""Engine against a scripted supervisor: approvals, declines, offline approval, void, recovery.

Reversal repeats and advice uploads are the worker's: host_tests/unit/test_worker.py.

The supervisor fake (txnfakes.FakeSup) answers each request from a script (a field-39 code, a
response-field override or a Fault carrying the link's `sent` flag) and keeps every request,
so the tests check what would have gone on the wire; journal and state are
real files.
"""
import asyncio

from mpt import eq, raises, tmpdir

from payterm.errors import Fault
from payterm.txn.journal import Journal
from txnfakes import PAN, FakeCard, FakeSup, FlashFaults, engine as _engine, fault as _fault
from txnfakes import journal_bytes as _journal_bytes, work_once


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
    rcs = ("51", "05", "14", "54", "57", "91", "96", "N7", "R1")
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
    eq((await e.void(s.ref)).code, "OPR-06")  # already voided
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


# ---------------------------------------------------------------- outcome rules
async def _reversed_after(e, sup, r, amount):
    """The ambiguous one is queued for reversal and the 0400 carries the original request."""
    eq([t["ref"] for t in e.reversals()], [r.ref])
    eq(await work_once(e), True)
    m = sup.sent[-1]
    eq((m["t"], m["11"], m["90"][:10], m["4"]), ("0400", r.stan, "0200" + r.stan, "%012d" % amount))
    eq(e.lookup(r.ref)["st"], "reversed")


async def test_response_without_field_39_is_ambiguous_and_reversed():
    d = tmpdir("eng_no39")
    sup = FakeSup({"39": None}, "00", {"39": None}, "00")
    e = _engine(d, sup)
    r = await e.sale(FakeCard(), 1500)
    eq((r.approved, r.code), (False, "HST-02"))
    eq(e.lookup(r.ref)["st"], "reversing")
    await _reversed_after(e, sup, r, 1500)
    f = await e.refund(FakeCard(), 700)
    eq((f.approved, f.code, e.status_of(e.lookup(f.ref))), (False, "HST-02", "pending"))
    await _reversed_after(e, sup, f, 700)


async def test_response_code_not_in_catalog_is_ambiguous_and_reversed():
    d = tmpdir("eng_unknown_rc")
    sup = FakeSup("Q9", "00")
    e = _engine(d, sup)
    r = await e.sale(FakeCard(), 900)
    eq((r.approved, r.code, r.rc), (False, "HST-02", "Q9"))
    await _reversed_after(e, sup, r, 900)


async def test_partial_approval_is_reversed_and_declined():
    d = tmpdir("eng_partial")
    sup = FakeSup({"39": "10", "4": "000000000500"}, "00", {"39": "10"}, "00")
    e = _engine(d, sup)
    r = await e.sale(FakeCard(), 1500)
    eq((r.approved, r.code, r.rc, r.text), (False, "HST-09", "10", "PARTIAL APPROVAL"))
    t = e.lookup(r.ref)
    eq((t["st"], t["code"], t["rc"]), ("reversing", "HST-09", "10"))
    await _reversed_after(e, sup, r, 1500)  # the reversal undoes the amount the terminal asked for
    # rc 10 is a partial approval even when the host echoes the full amount
    r2 = await e.sale(FakeCard(), 1200)
    eq((r2.approved, r2.code), (False, "HST-09"))
    await _reversed_after(e, sup, r2, 1200)


async def test_answer_for_another_amount_is_a_mismatch_and_reversed():
    d = tmpdir("eng_f4")
    sup = FakeSup({"4": "000000009999"}, "00", {"39": "51", "4": "000000000001"}, "00")
    e = _engine(d, sup)
    r = await e.sale(FakeCard(), 1500)
    eq((r.approved, r.code), (False, "HST-03"))
    await _reversed_after(e, sup, r, 1500)
    r2 = await e.sale(FakeCard(), 400)  # even a decline is not trusted when it names another amount
    eq((r2.approved, r2.code), (False, "HST-03"))
    await _reversed_after(e, sup, r2, 400)


async def test_wrong_mti_stan_or_tid_is_a_mismatch_and_reversed():
    # The Link already drops such frames; the engine does not rely on it.
    d = tmpdir("eng_mismatch")
    sup = FakeSup({"11": "999999"}, "00", {"t": "0230"}, "00", {"41": "OTHER001"}, "00")
    e = _engine(d, sup)
    for amount in (100, 200, 300):
        r = await e.sale(FakeCard(), amount)
        eq((r.approved, r.code), (False, "HST-03"))
        await _reversed_after(e, sup, r, amount)


async def test_full_approval_with_echoed_fields_is_approved():
    d = tmpdir("eng_clean")
    sup = FakeSup({"41": "TERM0042", "4": "000000001500"}, "08", "11")
    e = _engine(d, sup)
    for _ in range(3):
        r = await e.sale(FakeCard(), 1500)
        eq((r.approved, r.code), (True, None))
    eq(e.reversals(), [])


# ---------------------------------------------------------------- local failure after the host answered
async def test_storage_full_after_host_approval_reverses_without_reboot():
    d = tmpdir("eng_enospc")
    sup = FakeSup("00", "00", "00")
    e = _engine(d, sup)
    ff = FlashFaults().install()
    try:
        # flash refuses every journal write once the request has left
        ff.fail(lambda op, path: bool(sup.sent) and "journal" in path)
        card = FakeCard()
        r = await e.sale(card, 1234)  # never raises
        eq((r.approved, r.code, card.wiped), (False, "SYS-01", True))
        eq([t["ref"] for t in e.reversals()], [r.ref])  # RAM only: flash still says pending
        eq(Journal(d).get(r.ref)["st"], "pending")
        eq("SYS-01" in e.diag.faults, True)
        ff.fail(None)  # space again: the worker finds it without a reboot
        eq(await work_once(e), True)
    finally:
        ff.remove()
    eq([m["t"] for m in sup.sent], ["0200", "0400"])
    eq(sup.sent[1]["11"], r.stan)
    eq(Journal(d).get(r.ref)["st"], "reversed")
    eq(e.reversals(), [])


async def test_bug_after_host_answer_reverses_and_never_raises():
    d = tmpdir("eng_bug")
    sup = FakeSup("00", "00")
    e = _engine(d, sup)
    ff = FlashFaults().install()
    try:
        def boom(op, path):
            if sup.sent and op == "append":
                raise ValueError("a bug in the storage layer")
            return False

        ff.fail(boom)
        r = await e.refund(FakeCard(), 300)
        eq((r.approved, r.code), (False, "SYS-09"))
        eq(e.status_of(e.lookup(r.ref)), "pending")
        ff.fail(None)
        eq(await work_once(e), True)
    finally:
        ff.remove()
    eq(Journal(d).get(r.ref)["st"], "reversed")


async def test_storage_full_before_the_send_declines_cleanly():
    d = tmpdir("eng_full_first")
    sup = FakeSup()
    e = _engine(d, sup)
    ff = FlashFaults().install()
    try:
        ff.fail(lambda op, path: "journal" in path)
        card = FakeCard()
        r = await e.sale(card, 100)
        eq((r.approved, r.code, card.wiped), (False, "SYS-01", True))
    finally:
        ff.remove()
    eq(sup.sent, [])
    eq(e.reversals(), [])


async def test_mark_never_raises_and_keeps_the_update_until_flash_takes_it():
    d = tmpdir("eng_mark")
    sup = FakeSup("00")
    e = _engine(d, sup)
    r = await e.sale(FakeCard(), 500)
    ff = FlashFaults().install()
    try:
        ff.fail(lambda op, path: "journal" in path)
        t = e.mark(r.ref, {"st": "reversing", "code": "SYS-01"})
        eq(t["st"], "reversing")
        eq([x["ref"] for x in e.reversals()], [r.ref])
        eq(Journal(d).get(r.ref)["st"], "approved")  # not on flash yet
        eq(e.diag.faults[-1], "SYS-01")
        eq(e.mark("777777", {"st": "x"}), None)  # unknown ref: logged, not raised
        ff.fail(None)
        e.mark(r.ref, {"rv": 1})  # the next mark writes what flash missed, with its own fields
    finally:
        ff.remove()
    t = Journal(d).get(r.ref)
    eq((t["st"], t["code"], t["rv"]), ("reversing", "SYS-01", 1))


async def test_bug_that_escapes_settling_still_reverses_and_never_raises():
    d = tmpdir("eng_bug_escape")
    sup = FakeSup("00", "00")
    e = _engine(d, sup)

    def broken(*a, **kw):
        raise TypeError("a bug while building the result")

    e._result = broken  # every settling path ends here: the exception escapes to the last guard
    card = FakeCard()
    r = await e.sale(card, 640)
    eq((r.approved, r.code, card.wiped), (False, "SYS-09", True))
    del e._result
    [t] = e.reversals()
    eq(t["stan"], sup.sent[0]["11"])
    eq(await work_once(e), True)
    eq(sup.sent[1]["t"], "0400")

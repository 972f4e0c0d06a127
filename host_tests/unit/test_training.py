# runtimes: unix
"""Training mode: the engine on the built-in training host; nothing reaches the acquirer or the real journal."""
import os

from mpt import eq, tmpdir

from payterm.txn import training
from txnfakes import FakeCard

CFG = {"terminal_id": "TERM0042", "merchant_id": "MERCHANT0000042", "currency": 978}


def _engine(root, statuses):
    return training.engine(CFG, root, lambda: 1700000000, lambda: 0, statuses.append)


async def test_training_sale_refund_and_void_run_the_real_engine_on_the_training_host():
    root = tmpdir("tr1")
    st = []
    e = _engine(root, st)
    e.sup.delay_ms = 1
    r = await e.sale(FakeCard(), 1250, 978)
    eq((r.approved, r.kind, r.amount, r.ref), (True, "sale", 1250, "000001"))
    assert r.auth_code.startswith("TR"), r.auth_code
    assert "WAITING FOR HOST" in st, st
    f = await e.refund(FakeCard(), 300, 978)
    eq((f.approved, f.kind), (True, "refund"))
    v = await e.void(r.ref)
    eq((v.approved, v.kind, v.orig), (True, "void", "000001"))
    eq(e.status_of(e.lookup("000001")), "voided")
    again = await e.void(r.ref)
    eq((again.approved, again.code), (False, "OPR-06"))
    eq(e.sup.requests, 3)  # sale, refund, void: all answered inside the firmware


async def test_practice_amounts_decline_with_their_response_code():
    root = tmpdir("tr2")
    e = _engine(root, [])
    e.sup.delay_ms = 1
    r = await e.sale(FakeCard(), 1251, 978)
    eq((r.approved, r.code, r.rc), (False, "ISS-51", "51"))
    r = await e.sale(FakeCard(), 1205, 978)
    eq(r.code, "ISS-05")
    r = await e.refund(FakeCard(), 1251, 978)  # only sales practise declines
    eq(r.approved, True)


async def test_training_has_its_own_journal_and_starts_empty():
    root = tmpdir("tr3")
    e = _engine(root, [])
    e.sup.delay_ms = 1
    await e.sale(FakeCard(), 500, 978)
    assert "journal.log" not in os.listdir(root), "the terminal's journal is untouched"
    assert "journal.log" in os.listdir(root + "/training")
    e2 = _engine(root, [])  # training starts again: a fresh session
    eq(e2.journal.records(), [])
    e2.sup.delay_ms = 1
    eq((await e2.sale(FakeCard(), 700, 978)).ref, "000001")


def test_training_host_answers_like_an_acquirer():
    h = training.TrainingHost()
    resp = h.answer({"t": "0200", "3": "000000", "4": "000000001000", "11": "000007", "41": "TERM0042", "49": "978"})
    eq((resp["t"], resp["11"], resp["41"], resp["4"], resp["39"]), ("0210", "000007", "TERM0042", "000000001000", "00"))
    assert resp["38"] and resp["37"]
    eq(h.answer({"t": "0400", "11": "000007", "4": "000000001000"})["t"], "0410")
    eq(h.answer({"t": "0800", "11": "000009"})["39"], "00")

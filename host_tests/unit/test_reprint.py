"""The last receipt for a reprint: kept on flash for live receipts, in RAM for training ones."""
from mpt import eq, tmpdir, RecDiag, write_bytes

from payterm.txn.result import Result
from payterm.ui.reprint import LastReceipt

WHEN = (2026, 12, 2, 14, 5, 9, 2, 336)


def _sale(ref):
    r = Result(True, auth_code="A1B2C3", rrn="000000000123", stan="000007", ref=ref, amount=1250, currency=978,
               masked="476173******0010")
    r.entry_mode = "901"
    return r


def test_a_live_receipt_survives_a_restart_and_a_training_one_does_not():
    d = tmpdir("rp1")
    k = LastReceipt(d)
    eq(k.last(False), None)
    k.keep(_sale("000007"), False, WHEN)
    k.keep(_sale("T00001"), True, WHEN)
    eq(k.last(True)[0].ref, "T00001")
    k2 = LastReceipt(d)  # after the power cut
    r, when = k2.last(False)
    eq((r.ref, r.approved, r.amount, r.currency, r.masked, r.auth_code, r.entry_mode),
       ("000007", True, 1250, 978, "476173******0010", "A1B2C3", "901"))
    eq(when, WHEN)
    eq(k2.last(True), None, "training receipts end with training mode")
    k.end_training()
    eq(k.last(True), None)


def test_a_damaged_copy_is_reported_and_gives_no_reprint():
    d = tmpdir("rp2")
    write_bytes(d + "/receipt.json", b'{"approved": tr')
    diag = RecDiag()
    eq(LastReceipt(d, diag).last(False), None)
    eq(diag.faults, ["SYS-02"])
    write_bytes(d + "/receipt.json", b'{"approved": true, "when": [2026]}')
    eq(LastReceipt(d).last(False), None, "a copy without its time is no receipt")


def test_a_copy_that_cannot_be_saved_is_kept_in_ram_and_reported():
    diag = RecDiag()
    k = LastReceipt(tmpdir("rp3") + "/missing-dir", diag)
    k.keep(_sale("000008"), False, WHEN)
    eq(k.last(False)[0].ref, "000008")
    eq(diag.faults, ["SYS-01"])

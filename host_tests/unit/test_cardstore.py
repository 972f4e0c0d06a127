"""Card data at rest: letter hex, the encrypted record, the bounded store on flash (real files)."""
import os
from binascii import unhexlify

from mpt import eq, raises, tmpdir

from payterm.crypto import data, dukpt, lhex
from payterm.errors import Fault
from payterm.mask import pan_run
from payterm.txn import cardstore
from payterm.txn.cardstore import CardStore
from payterm.txn.state import State
from txnfakes import FlashFaults, PowerCut

BDK = unhexlify("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IKID = unhexlify("1234567890123456")
PAN = "4761739001010036"


class Diag:
    def __init__(self):
        self.faults = []

    def fault(self, code, stage="", ctx=""):
        self.faults.append(code)


def test_letter_hex_round_trip_and_never_a_digit():
    for raw in (b"", b"\x00", bytes(range(256)), b"4761739001010036"):
        s = lhex.encode(raw)
        eq(len(s), 2 * len(raw))
        eq(bytes(lhex.decode(s)), raw)
        for ch in s:
            assert "a" <= ch <= "p", s
    eq(lhex.encode(b"\x0f\xa0"), "apka")
    for bad in ("abc", "aq", "00", "AB"):
        raises(ValueError, lhex.decode, bad)


def test_record_encrypts_under_the_transaction_data_key_and_parses_back():
    d = tmpdir("cd_pack")
    k = dukpt.Dukpt(State(d, "keys"))
    k.install(dukpt.initial_key(BDK, IKID), IKID)
    fields = {"2": bytearray(PAN.encode()), "14": "3012", "35": bytearray((PAN + "=3012120").encode()),
              "55": bytearray(b"\x9f\x26\x08" + bytes(8))}
    with k.begin() as t:
        rec = cardstore.pack(t, fields)
        tc = t.counter
    eq(pan_run(rec), None)
    assert PAN not in rec
    ksn, cipher = cardstore.split(rec)
    eq(ksn, dukpt.ksn_of(IKID, tc))
    key = dukpt.working_key(dukpt.initial_key(BDK, IKID), IKID, tc, dukpt.DATA_ENCRYPT)
    f = cardstore.parse(data.decrypt(key, cipher))
    eq(sorted(f), ["14", "2", "35", "55"])
    eq(bytes(f["2"]), PAN.encode())
    eq(bytes(f["55"]), bytes(fields["55"]))
    raises(Fault, cardstore.split, "zz")
    eq(raises(Fault, cardstore.parse, b"\x02\x00\x10ab").code, "KEY-06")


def test_store_put_get_erase_and_bound():
    d = tmpdir("cd_store")
    s = CardStore(d, 2)
    s.put("000001", "abcd")
    s.put("000002", "efgh")
    eq(s.refs(), ["000001", "000002"])
    eq(s.get("000001"), "abcd")
    eq(raises(Fault, s.put, "000003", "ijkl").code, "SYS-04", "bounded")
    s.put("000002", "mnop")  # the same ref again does not count twice
    eq(s.get("000002"), "mnop")
    eq(s.erase("000001"), True)
    eq(s.erase("000001"), False)
    eq(s.get("000001"), None)
    eq(s.refs(), ["000002"])
    eq(sorted(n for n in os.listdir(d) if n.startswith("cd")), ["cd000002.dat"])


def test_damaged_record_is_none_and_reported():
    d = tmpdir("cd_bad")
    dg = Diag()
    s = CardStore(d, 5, diag=dg)
    s.put("000007", "abcdefgh")
    with open(d + "/cd000007.dat", "r+b") as f:
        f.seek(10)
        f.write(b"z")
    eq(s.get("000007"), None)
    eq(dg.faults, ["KEY-09"])


def test_power_cut_during_put_leaves_no_record_or_a_whole_one_and_sweep_cleans():
    k = 1
    while True:
        d = tmpdir("cd_cut")
        ff = FlashFaults().install()
        ff.cut_at(k, "partial")
        cut = False
        try:
            CardStore(d, 5).put("000009", "abcdefghijklmnop")
        except PowerCut:
            cut = True
        finally:
            ff.remove()
        s = CardStore(d, 5)
        got = s.get("000009")
        assert got in (None, "abcdefghijklmnop"), (k, got)
        s.sweep(set())
        eq(sorted(n for n in os.listdir(d) if n.startswith("cd")), [], "sweep leaves nothing")
        if not cut:
            break
        k += 1
    assert k >= 3, k


def test_erase_overwrites_before_removing():
    d = tmpdir("cd_erase")
    s = CardStore(d, 5)
    s.put("000004", "abcdefgh")
    ff = FlashFaults().install()
    try:
        s.erase("000004")
    finally:
        ff.remove()
    eq([op for op, _ in ff.ops][:3], ["write", "sync", "remove"])

"""Engine and worker with the terminal's DUKPT keys: PIN block, KSN, message keys, card data at rest.

The supervisor fake answers like txnfakes.FakeSup and also keeps the message keys
(`sec`) each request was handed; the host's side of the keys is derived here
from the test BDK (X9.24-3 Annex B) as the acquirer's HSM does, so every check
is against what a host would decrypt. Journal, state, key registers and the
card store are real files.
"""
import asyncio
from binascii import hexlify, unhexlify

from mpt import eq, tmpdir, FakeClock

from payterm.crypto import data, dukpt, lhex, pinblock
from payterm.errors import Fault
from payterm.mask import pan_run
from payterm.txn import cardstore
from payterm.txn.cardstore import CardStore
from payterm.txn.engine import Engine
from payterm.txn.journal import Journal
from payterm.txn.saf import Saf
from payterm.txn.state import State
from payterm.txn.worker import Worker

PAN = "4761739001010036"
T2 = PAN + "=30121200000000000000"
BDK = unhexlify("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IKID = unhexlify("1234567890123456")


class Card:
    def __init__(self):
        self.masked = PAN[:6] + "******" + PAN[-4:]
        self.entry_mode = "901"
        self._f = {"2": bytearray(PAN.encode()), "14": bytearray(b"3012"), "35": bytearray(T2.encode()),
                   "55": bytearray(b"\x9f\x26\x08\x01\x02\x03\x04\x05\x06\x07\x08")}
        self.wiped = False

    def auth_fields(self):
        return dict(self._f)

    def wipe(self):
        for b in self._f.values():
            for i in range(len(b)):
                b[i] = 0
        self.wiped = True


def _fault(code, sent):
    f = Fault(code, "scripted", "link")
    f.sent = sent
    return f


class Sup:
    """Answers from a script (rc, or a Fault raised as the link would) and keeps (fields, sec)."""

    def __init__(self, *script):
        self.script = list(script)
        self.sent = []
        self.secs = []
        self.online = True

    async def preempt(self):
        pass  # a customer void first cuts short background work: none runs here

    def set_echo_fields(self, fn):
        pass

    def watch(self, fn):
        pass

    async def wait_online(self):
        pass

    async def request(self, fields, deadline_ms=None, background=False, sec=None):
        self.sent.append(dict(fields))
        self.secs.append(sec)
        a = self.script.pop(0) if self.script else "00"
        if isinstance(a, Fault):
            raise a
        t = fields["t"]
        resp = {"t": t[:2] + str(int(t[2]) + 1) + "0", "11": fields["11"], "39": a, "37": "%012d" % len(self.sent)}
        if "4" in fields:
            resp["4"] = fields["4"]
        if a == "00":
            resp["38"] = "AB0001"
        return resp


class Diag:
    def __init__(self):
        self.faults = []

    def fault(self, code, stage="", ctx=""):
        self.faults.append(code)
        assert PAN not in ctx

    def wait(self, ref, stage, ms):
        pass

    def txn_done(self, ref):
        pass

    def count(self, key, n=1):
        pass


def _keys(d, counter=1, load=True):
    k = dukpt.Dukpt(State(d, "keys"))
    if load:
        k.install(dukpt.initial_key(BDK, IKID), IKID, counter)
    return k


def _engine(d, sup, keys=None, **cfg):
    j = Journal(d)
    c = {"terminal_id": "TERM0042", "merchant_id": "MERCHANT0000042", "currency": 978, "floor_limit": 2000,
         "saf_max_count": 3, "saf_max_total": 5000, "retry_base_ms": 1000, "retry_cap_ms": 8000}
    c.update(cfg)
    return Engine(sup, j, State(d), Saf(j), c, Diag(), lambda: 1700000000, FakeClock(5000), None,
                  keys=keys if keys is not None else _keys(d), cards=CardStore(d, 3))


def _host_key(f53, usage):
    """What the acquirer's HSM derives from the BDK and the KSN of field 53."""
    ikid, tc = dukpt.parse_field53(f53)
    return dukpt.working_key(dukpt.initial_key(BDK, ikid), ikid, tc, usage)


def _files(d):
    import os

    out = b""
    for n in os.listdir(d):
        with open(d + "/" + n, "rb") as f:
            out += f.read()
    return out


async def test_pin_sale_carries_a_format4_block_under_the_ksn_pin_key_and_the_pin_is_zeroed():
    d = tmpdir("sealed_pin")
    sup = Sup("00")
    e = _engine(d, sup)
    pin = bytearray(b"2580")
    card = Card()
    r = await e.sale(card, 1500, 978, pin=pin)
    eq(r.approved, True)
    eq(pin, bytearray(4), "PIN digits zeroed")
    eq(card.wiped, True)
    req, sec = sup.sent[0], sup.secs[0]
    eq(len(req["52"]), 16, "field 52: one AES block")
    eq(len(req["53"]), 24, "field 53: KSN in hex")
    eq(bytes(sec.ksn), unhexlify(req["53"]), "the MAC keys are the KSN's")
    got = pinblock.decipher(_host_key(req["53"], dukpt.PIN_ENCRYPTION), req["52"], PAN)
    eq(bytes(got), b"2580", "the host deciphers the PIN")
    t = Journal(d).get(r.ref)
    eq((t["st"], t.get("pin")), ("approved", 1))
    assert "52" not in t["req"] and "53" not in t["req"]
    raw = _files(d)
    assert PAN.encode() not in raw and hexlify(req["52"]) not in raw


async def test_every_request_has_its_own_ksn_and_message_keys():
    d = tmpdir("sealed_ksn")
    sup = Sup("00", "00")
    e = _engine(d, sup)
    s = await e.sale(Card(), 700, 978)
    v = await e.void(s.ref)
    eq(v.approved, True)
    ksns = [f["53"] for f in sup.sent]
    eq(len(set(ksns)), 2, "a fresh counter per message")
    for f, sec in zip(sup.sent, sup.secs):
        eq(hexlify(sec.ksn).decode().upper(), f["53"])
        assert "52" not in f, "no PIN was entered"


async def test_without_a_key_nothing_is_sent_and_the_pin_is_zeroed():
    d = tmpdir("sealed_nokey")
    sup = Sup()
    e = _engine(d, sup, keys=_keys(d, load=False))
    pin = bytearray(b"1234")
    card = Card()
    r = await e.sale(card, 900, 978, pin=pin)
    eq((r.approved, r.code), (False, "KEY-01"))
    eq(sup.sent, [])
    eq(pin, bytearray(4))
    eq(card.wiped, True)
    eq(Journal(d).records(), [], "nothing journaled: nothing can be at the host")


async def test_exhausted_counter_declines_with_key03():
    d = tmpdir("sealed_end")
    sup = Sup("00")
    e = _engine(d, sup, keys=_keys(d, counter=0xFFFF0000))
    eq((await e.sale(Card(), 100, 978)).approved, True, "the last counter still works")
    r = await e.sale(Card(), 100, 978)
    eq((r.approved, r.code, len(sup.sent)), (False, "KEY-03", 1))


async def test_host_mac_failure_is_ambiguous_and_the_reversal_is_sealed_too():
    d = tmpdir("sealed_badmac")
    sup = Sup(_fault("KEY-07", True), "00")
    e = _engine(d, sup)
    r = await e.sale(Card(), 1200, 978)
    eq((r.approved, r.code), (False, "KEY-07"))
    eq([t["st"] for t in e.reversals()], ["reversing"])
    w = Worker(e, sup, rand=lambda lo, hi: hi)
    eq(await w.work_once(), True)
    rev = sup.sent[1]
    eq((rev["t"], rev["11"]), ("0400", sup.sent[0]["11"]))
    assert rev["53"] != sup.sent[0]["53"] and sup.secs[1] is not None


async def test_pin_sale_is_never_approved_offline():
    d = tmpdir("sealed_pinoff")
    sup = Sup(_fault("NET-03", False))
    e = _engine(d, sup)
    pin = bytearray(b"1234")
    r = await e.sale(Card(), 500, 978, pin=pin)
    eq((r.approved, r.code), (False, "PIN-05"))
    eq(pin, bytearray(4))
    eq(CardStore(d, 3).refs(), [])


async def test_offline_sale_keeps_its_card_data_encrypted_and_the_advice_carries_it_once():
    d = tmpdir("sealed_saf")
    sup = Sup(_fault("NET-03", False), "00")
    e = _engine(d, sup)
    r = await e.sale(Card(), 1500, 978)
    eq((r.approved, r.offline), (True, True))
    store = CardStore(d, 3)
    eq(store.refs(), [r.ref])
    rec = store.get(r.ref)
    eq(pan_run(rec), None, "no digit run at all in the stored record")
    raw = _files(d)
    assert PAN.encode() not in raw and T2.encode() not in raw, "no card data in clear on flash"
    eq(Journal(d).get(r.ref).get("cd"), 1)
    # the host decrypts it with the data key of the KSN in the record
    ksn, cipher = cardstore.split(rec)
    plain = data.decrypt(_host_key(hexlify(ksn).decode(), dukpt.DATA_ENCRYPT), cipher)
    f = cardstore.parse(plain)
    eq((bytes(f["2"]), bytes(f["14"]), bytes(f["35"])), (PAN.encode(), b"3012", T2.encode()))
    eq(bytes(f["55"]), bytes(Card().auth_fields()["55"]), "ICC data with its cryptogram")
    w = Worker(e, sup, rand=lambda lo, hi: hi)
    eq(await w.work_once(), True)
    adv = sup.sent[1]
    eq((adv["t"], adv["62"]), ("0220", rec))
    assert "2" not in adv and "35" not in adv, "card data only encrypted"
    assert adv["53"] != hexlify(ksn).decode().upper(), "the advice has a MAC KSN of its own"
    eq(Journal(d).get(r.ref)["st"], "sent")
    eq(store.refs(), [], "ciphertext erased after the 0230")
    assert rec.encode() not in _files(d)


async def test_a_declined_advice_erases_its_card_data_a_failed_one_keeps_it():
    d = tmpdir("sealed_saf_dec")
    sup = Sup(_fault("NET-03", False), _fault("NET-03", False), "05", _fault("HST-01", True))
    e = _engine(d, sup, saf_max_tries=1)
    a = await e.sale(Card(), 300, 978)
    b = await e.sale(Card(), 400, 978)
    store = CardStore(d, 3)
    eq(store.refs(), sorted([a.ref, b.ref]))
    w = Worker(e, sup, rand=lambda lo, hi: hi)
    await w.work_once()
    await w.work_once()
    eq([Journal(d).get(a.ref)["st"], Journal(d).get(b.ref)["st"]], ["declined", "failed"])
    eq(store.refs(), [b.ref], "a failed advice keeps its data for the technician's retry")


async def test_void_before_upload_erases_and_boot_sweeps_what_no_advice_needs():
    d = tmpdir("sealed_sweep")
    sup = Sup(_fault("NET-03", False), _fault("NET-03", False))
    e = _engine(d, sup)
    a = await e.sale(Card(), 300, 978)
    b = await e.sale(Card(), 400, 978)
    v = await e.void(a.ref)
    eq(v.approved, True)
    store = CardStore(d, 3)
    eq(store.refs(), [b.ref])
    store.put("999999", lhex.encode(b"left by a power cut"))  # a cut between the store and the journal
    e2 = _engine(d, Sup(), keys=_keys(d, load=False))  # a reboot: the registers from flash
    await e2.recover()
    eq(store.refs(), [b.ref])


async def test_full_card_store_refuses_offline_approval():
    d = tmpdir("sealed_full")
    sup = Sup(*[_fault("NET-03", False) for _ in range(3)])
    e = _engine(d, sup, saf_max_count=5, saf_max_total=100000)
    e.cards = CardStore(d, 2)
    rs = []
    for _ in range(3):
        rs.append(await e.sale(Card(), 100, 978))
    eq([r.approved for r in rs], [True, True, False])
    eq(rs[2].code, "SYS-04")

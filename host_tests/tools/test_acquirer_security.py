"""The acquirer simulator as the host's HSM: MACs, KSNs, PIN blocks, an advice's encrypted card data.

A CPython client plays the terminal's security role (host_tests/sealclient.py);
the simulator must be as strict as an acquirer: it books nothing it cannot
authenticate, answers a wrong PIN 55 and the third wrong one in a row 75,
refuses an advice without usable card data, and MACs every answer it can.
"""
import iso8583
import pytest

from payterm_tools.emulate import ledger_line
from payterm_tools.sim import hsm
from payterm_tools.sim.acquirer import PIN_TRIES, SPEC, AcquirerSim
from payterm_tools.sim.cardsim import TEST_CARDS, TEST_PINS
from sealclient import SealedClient

CARD = TEST_CARDS["visa_pin"]
PIN = TEST_PINS["visa_pin"]
T2 = CARD.track2()


def auth(stan, card=CARD, amount=1500, mode="901"):
    return {"t": "0200", "2": card.pan, "3": "000000", "4": "%012d" % amount, "11": "%06d" % stan,
            "14": card.expiry, "22": mode, "35": card.track2(), "41": "TERM0001", "49": "978",
            "7": "1201103000"}


@pytest.fixture
def sim():
    s = AcquirerSim(name="primary").start()
    yield s
    s.stop()


@pytest.fixture
def client(sim):
    c = SealedClient(sim.address)
    yield c
    c.close()


def test_sealed_sale_with_the_right_pin_is_approved_and_the_answer_maced(sim, client):
    r = client.ask(auth(1), pin=PIN)
    assert r["39"] == "00" and client.answer_mac_ok(r)
    e = sim.ledger[0]
    assert (e["pin"], e["mac"], e["card"], e["booked"]) == ("ok", "ok", "ok", True)
    assert ledger_line(e).endswith(" rc=00 476173******0036 arqc=- pin=ok mac=ok card=ok")
    assert PIN not in repr(sim.ledger) and CARD.pan not in repr(sim.ledger)


def test_wrong_pin_55_then_75_and_the_card_stays_blocked(sim, client, tmp_path):
    rcs = [client.ask(auth(n), pin="9999")["39"] for n in range(1, PIN_TRIES + 1)]
    assert rcs == ["55"] * (PIN_TRIES - 1) + ["75"]
    assert client.ask(auth(10), pin=PIN)["39"] == "75", "blocked: even the right PIN"
    assert [e["pin"] for e in sim.ledger] == ["bad"] * PIN_TRIES + ["ok"]
    assert not any(e["booked"] for e in sim.ledger)


def test_a_right_pin_resets_the_try_count(sim, client):
    assert client.ask(auth(1), pin="0000")["39"] == "55"
    assert client.ask(auth(2), pin="0000")["39"] == "55"
    assert client.ask(auth(3), pin=PIN)["39"] == "00"
    assert client.ask(auth(4), pin="0000")["39"] == "55"


def test_pin_tries_survive_a_restart_through_the_ledger_file(tmp_path):
    path = str(tmp_path / "acq.jsonl")
    with AcquirerSim(ledger_path=path) as a:
        c = SealedClient(a.address)
        assert [c.ask(auth(n), pin="1111")["39"] for n in (1, 2)] == ["55", "55"]
        c.close()
    with AcquirerSim(ledger_path=path) as b:
        c = SealedClient(b.address, first_counter=100)
        assert c.ask(auth(3), pin="1111")["39"] == "75"
        c.close()


def test_pin_block_the_hsm_cannot_decipher_is_81(sim, client):
    m = auth(1)
    m["52"] = "00" * 16  # a block under no key of ours
    r = client.ask(m)
    assert r["39"] == "81" and client.answer_mac_ok(r)
    assert (sim.ledger[0]["pin"], sim.ledger[0]["booked"]) == ("bad", False)


def test_service_code_pin_card_without_a_pin_is_declined(sim, client):
    assert client.ask(auth(1))["39"] == "55"
    assert sim.ledger[0]["note"].startswith("the card's service code requires a PIN")
    visa = TEST_CARDS["visa"]
    assert client.ask(auth(2, card=visa))["39"] == "00", "service code 101 needs none"


def test_what_the_host_cannot_authenticate_is_refused_and_never_booked(sim, client):
    visa = TEST_CARDS["visa"]
    client.send_raw(bytes(iso8583.encode(dict(auth(1, card=visa)), SPEC)[0]))
    assert client.recv()["39"] == "30"  # no KSN at all
    assert client.ask(auth(2, card=visa), mac=False)["39"] == "63"  # KSN, no MAC
    assert client.ask(auth(3, card=visa), corrupt=True)["39"] == "63"  # wrong MAC
    bad53 = auth(4, card=visa)
    bad53["53"] = "Z" * 24
    assert client.ask(bad53)["39"] == "30"  # field 53 not a KSN
    assert all((e["mac"], e["booked"]) == ("bad", False) for e in sim.ledger), sim.ledger
    # none of them counts as received: the same STAN sealed properly is booked, not a duplicate
    assert client.ask(auth(2, card=visa))["39"] == "00"


def test_host_answer_with_bad_mac_fails_the_terminals_check(sim, client):
    sim.script("bad_mac")
    r = client.ask(auth(1, card=TEST_CARDS["visa"]))
    assert r["39"] == "00" and not client.answer_mac_ok(r)
    sim.script("no_mac")
    r = client.ask(auth(2, card=TEST_CARDS["visa"]))
    assert hsm.mac_tag(r) is None


def _card_data(box, ksn, card):
    # A swiped offline sale: no ICC data (a tap's field 55 would be checked by the issuer: test_issuer.py).
    fields = [(2, card.pan.encode()), (14, card.expiry.encode()), (35, card.track2().encode())]
    plain = b"".join(bytes([n]) + len(v).to_bytes(2, "big") + v for n, v in fields)
    return hsm.to_letter_hex(bytes.fromhex(ksn) + box.encrypt_data(ksn, plain))


def advice(stan, card_data=None, amount=1200):
    m = {"t": "0220", "3": "000000", "4": "%012d" % amount, "11": "%06d" % stan, "41": "TERM0001",
         "49": "978", "22": "901", "38": "Y10001", "7": "1201103000"}
    if card_data is not None:
        m["62"] = card_data
    return m


def test_advice_card_data_is_decrypted_and_booked(sim, client):
    visa = TEST_CARDS["visa"]
    blob = _card_data(client.box, hsm.ksn_hex(hsm.TEST_IKID, 40), visa)
    r = client.ask(advice(1, blob))
    assert r["39"] == "00" and client.answer_mac_ok(r)
    e = sim.ledger[0]
    assert (e["card"], e["booked"], e["pan_masked"]) == ("ok", True, visa.masked)
    assert ledger_line(e).endswith(" pin=- mac=ok card=ok")
    assert not any(ch.isdigit() for ch in blob)


def test_advice_without_usable_card_data_is_refused(sim, client):
    assert client.ask(advice(1))["39"] == "30"
    other = _card_data(hsm.Hsm({b"\x99\x99\x99\x99": hsm.TEST_BDK}), "99999999A0B1C2D300000001", CARD)
    assert client.ask(advice(2, other))["39"] == "30"  # not under our BDK
    assert client.ask(advice(3, "zz"))["39"] == "30"  # not letter hex
    assert [(e["card"], e["booked"]) for e in sim.ledger] == [("missing", False)] * 3
    assert ledger_line(sim.ledger[0]).endswith(" pin=- mac=ok card=missing")
    assert sim.advices() == []


def test_card_field_says_whether_card_data_was_needed(sim, client):
    visa = TEST_CARDS["visa"]
    assert client.ask(auth(1, card=visa))["39"] == "00"
    void = {"t": "0200", "3": "020000", "4": "%012d" % 1500, "11": "000002", "41": "TERM0001", "49": "978",
            "7": "1201103100", "90": "0200000001" + "1201103000" + "0" * 22}
    assert client.ask(void)["39"] == "00"
    rev = {"t": "0400", "3": "000000", "4": "%012d" % 1500, "11": "000002", "41": "TERM0001",
           "90": "0200000002" + "1201103100" + "0" * 22}
    assert client.ask(rev)["39"] == "00"
    assert [(e["kind"], e["card"], e["mac"]) for e in sim.ledger] == [
        ("auth", "ok", "ok"), ("void", "-", "ok"), ("reversal", "-", "ok")]

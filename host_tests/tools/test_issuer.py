"""Issuer simulator: ARQCs the simulated cards compute verify, anything altered does not;
the acquirer declines a bad cryptogram with 82 and answers a good one with an ARPC."""
import pytest
from pyemv import tlv as emvtlv

from payterm_tools.sim.acquirer import AcquirerSim
from payterm_tools.sim.cardsim import EmvCard, parse_dol, tlv
from payterm_tools.sim.issuer import Issuer
from test_acquirer import Client

UN = bytes.fromhex("1A2B3C4D")


def terminal_data(amount):
    return {"9F02": bytes.fromhex("%012d" % amount), "9F03": bytes(6), "9F1A": bytes.fromhex("0276"),
            "95": bytes.fromhex("8000000000"), "5F2A": bytes.fromhex("0978"), "9A": bytes.fromhex("261123"),
            "9C": b"\x00", "9F37": UN, "9F66": bytes.fromhex("22804000"), "9F35": b"\x22", "9F34": b"\x1f\x00\x02"}


def dol(dol_bytes, td):
    out = b""
    for t, ln in parse_dol(dol_bytes):
        out += td.get("%X" % t, bytes(ln))[:ln]
    return out


def tap(card, amount):
    """What a terminal sends the simulated card and what it then puts in field 55 (hex tags -> bytes)."""
    td = terminal_data(amount)
    card.respond(bytes.fromhex("00A404000E") + b"2PAY.SYS.DDF01" + b"\x00")
    aid = bytes.fromhex(card.aids[0][0])
    card.respond(bytes([0, 0xA4, 4, 0, len(aid)]) + aid + b"\x00")
    pd = dol(card.pdol, td)
    r = card.respond(bytes([0x80, 0xA8, 0, 0, len(pd) + 2, 0x83, len(pd)]) + pd + b"\x00")
    assert r[-2:] == b"\x90\x00"
    got = emvtlv.decode(r[:-2])["77"]
    if card.kernel == "mchip":
        cd = dol(card.cdol1, td)
        r = card.respond(bytes([0x80, 0xAE, 0x80, 0, len(cd)]) + cd + b"\x00")
        assert r[-2:] == b"\x90\x00", r.hex()
        got.update(emvtlv.decode(r[:-2])["77"])
    f55 = dict(td)
    for t in ("9F26", "9F27", "9F10", "9F36", "82"):
        f55[t] = got[t]
    f55["84"] = aid
    f55["5F34"] = bytes.fromhex(card.psn)
    return f55


def req(card, f55, amount, **kw):
    r = {"t": "0200", "2": card.pan, "3": "000000", "4": "%012d" % amount, "11": "000001", "22": "071",
         "41": "TERM0001", "49": "978", "55": b"".join(tlv(int(t, 16), v) for t, v in f55.items()).hex().upper()}
    r.update(kw)
    return r


VISA = EmvCard("4761739001010010", aids=[("A0000000031010", "VISA", 1)])
MC = EmvCard("5413330089010434", aids=[("A0000000041010", "MASTERCARD", 1)])
GIRO = EmvCard("6799998900000060018", aids=[("A0000003591010028001", "GIROCARD", 1)])


@pytest.mark.parametrize("card", [VISA, MC, GIRO], ids=["visa-cvn10", "mastercard-cvn16", "girocard-cvn16"])
def test_card_arqc_verifies_and_alterations_do_not(card):
    iss = Issuer()
    f55 = tap(card, 1250)
    assert iss.verify(req(card, f55, 1250), card.pan) == ("ok", "")
    assert f55["9F26"] == card.last_arqc
    for tag, v in (("9F26", bytes(8)), ("9F37", bytes(4)), ("9F36", b"\x12\x34"), ("95", bytes(5)),
                   ("9F1A", bytes.fromhex("0840")), ("82", b"\x00\x00")):
        bad = dict(f55, **{tag: v})
        assert iss.verify(req(card, bad, 1250), card.pan)[0] == "bad", tag
    assert iss.verify(req(card, f55, 1251), card.pan)[0] == "bad", "field 4 is not the amount in the ARQC"
    assert iss.verify(req(card, f55, 1250, **{"49": "840"}), card.pan)[0] == "bad"
    assert iss.verify(req(card, f55, 1250), "5413330089010442")[0] == "bad", "another card's key"
    assert iss.verify(req(card, {k: v for k, v in f55.items() if k != "9F10"}, 1250), card.pan)[0] == "bad"
    assert iss.verify(req(card, dict(f55, **{"9F27": b"\x00"}), 1250), card.pan)[0] == "bad", "an AAC"
    assert iss.checked == {"ok": 1, "bad": 11, "-": 0}


def test_tampering_card_and_entry_modes():
    iss = Issuer()
    card = EmvCard("4761739001010044", aids=[("A0000000031010", "VISA", 1)], tamper=True)
    assert iss.verify(req(card, tap(card, 500), 500), card.pan) == ("bad", "ARQC does not verify")
    swipe = {"t": "0200", "2": VISA.pan, "4": "000000000500", "22": "901", "49": "978"}
    assert iss.verify(swipe, VISA.pan)[0] == "-"
    assert iss.verify(dict(swipe, **{"22": "071"}), VISA.pan)[0] == "bad", "a tap without field 55"
    f55 = tap(VISA, 500)
    advice = dict(req(VISA, f55, 500), t="0220")
    del advice["2"]
    assert iss.verify(advice, "")[0] == "-", "no card number: not recomputable"


def test_acquirer_declines_a_bad_arqc_82_and_answers_a_good_one_with_an_arpc():
    sim = AcquirerSim(security=False).start()  # unsealed requests: the cryptogram check alone
    try:
        c = Client(sim.address)
        f55 = tap(MC, 2000)
        ok = c.ask(req(MC, f55, 2000))
        assert ok["39"] == "00"
        arpc = emvtlv.decode(bytes.fromhex(ok["55"]))["91"]
        assert len(arpc) == 10 and arpc[8:] == b"00", arpc.hex()
        bad = c.ask(req(MC, dict(f55, **{"9F26": bytes(8)}), 2000, **{"11": "000002"}))
        assert bad["39"] == "82" and "55" not in bad
        c.close()
        e = sim.ledger
        assert [(x["rc"], x["arqc"], x["booked"]) for x in e] == [("00", "ok", True), ("82", "bad", False)]
        assert sim.holdings() == {("TERM0001", "000001"): 2000, ("TERM0001", "000002"): 0}
    finally:
        sim.stop()


def _ms_track(pan, exp, sc, un, cvc3_atc, atc_digits):
    """A mag-stripe mode track 2 (the simulated cards' PCVC3/PUNATC layout): the CVC3 computed at
    ATC cvc3_atc, the low 3 digits of atc_digits. Returns (track, its 3 CVC3 digits)."""
    from payterm_tools.sim.issuer import MS_DD, icc_cvc3

    cvc3 = icc_cvc3(pan, exp, sc, cvc3_atc.to_bytes(2, "big"), bytes.fromhex("00000" + un))
    dd = list(MS_DD)
    put = lambda digits, bits: [dd.__setitem__(len(dd) - 1 - b, d) for b, d in zip(bits, reversed(digits))]  # noqa
    put(("%05d" % cvc3)[-3:], [1, 2, 3])
    put(un, [4, 5, 6])
    put(("%05d" % atc_digits)[-3:], [9, 10, 11])
    dd[-1] = "3"
    return "%s=%s%s%s" % (pan, exp, sc, "".join(dd)), ("%05d" % cvc3)[-3:]


def test_magstripe_mode_cvc3_verifies_from_field_35():
    pan, exp, sc = "5413330089010467", "3012", "201"
    t2, _ = _ms_track(pan, exp, sc, "559", 1234, 1234)
    iss = Issuer()
    iss.ms_last[pan] = (1200, "")  # the issuer knows the card's last ATC, as a real one does
    assert iss.verify({"t": "0200", "35": t2, "22": "911", "4": "000000001500", "49": "978"}, pan) == ("ok", "")
    wrong = t2[:-2] + ("0" if t2[-2] != "0" else "1") + t2[-1]  # a CVC3 digit
    assert iss.verify({"t": "0200", "35": wrong, "22": "911"}, pan)[0] == "bad"
    assert iss.verify({"t": "0200", "35": pan + "=3012201", "22": "911"}, pan)[0] == "bad"


def test_magstripe_mode_atc_is_rebuilt_from_the_cards_last_one_not_searched():
    """Only the ATC's low 3 digits travel: the issuer tries the one ATC above the card's last with those
    digits. A CVC3 computed at another ATC with the same low digits (a replay, or a guess that happens to
    match one of 65 candidates) is refused; each verified tap moves the card's ATC on."""
    from payterm_tools.sim.issuer import icc_cvc3

    pan, exp, sc, un = "5413330089010467", "3012", "201", "559"

    def track(cvc3_atc, atc_digits):
        return _ms_track(pan, exp, sc, un, cvc3_atc, atc_digits)

    iss = Issuer()
    first, _ = track(7, 7)
    assert iss.verify({"t": "0200", "35": first, "22": "911"}, pan) == ("ok", "")
    assert iss.ms_last[pan][0] == 7
    assert iss.verify({"t": "0200", "35": first, "22": "911"}, pan)[0] == "ok"  # a retransmission
    later, digits = track(2008, 2008)  # computed at ATC 2008: the issuer rebuilds 1008
    at_1008 = ("%05d" % icc_cvc3(pan, exp, sc, (1008).to_bytes(2, "big"), bytes.fromhex("00000" + un)))[-3:]
    assert digits != at_1008  # (fixed inputs: these two CVC3s differ)
    assert iss.verify({"t": "0200", "35": later, "22": "911"}, pan)[0] == "bad"
    nxt, _ = track(8, 8)
    assert iss.verify({"t": "0200", "35": nxt, "22": "911"}, pan) == ("ok", "")
    assert iss.verify({"t": "0200", "35": first, "22": "911"}, pan)[0] == "bad"  # ATC 7 again: a replay

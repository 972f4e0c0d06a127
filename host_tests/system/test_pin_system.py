"""Cardholder PIN, message MACs and store-and-forward card data, end to end through the UARTs.

The emulator provisions a DUKPT initial key of the acquirer simulator's test BDK
into a fresh state directory (payterm_tools.emulator), so the terminal here
MACs every 0200/0220/0400 and takes PINs from the first sale; the simulator
plays the host's HSM (sim/hsm.py) and the issuer's PIN check. Test PINs are the
simulated cards' (`cards` in the emulator, cardsim.TEST_PINS).
"""
import os
import re
import sys
import time

import pytest

from payterm_tools import keyinject
from payterm_tools.emulate import ledger_line
from payterm_tools.emulator import flash_files
from payterm_tools.sim import hsm
from payterm_tools.sim.cardsim import TEST_CARDS, TEST_PINS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ledger import read_journal, reconcile  # noqa: E402

HOST_WAIT = 30
SETTLE_WAIT = 60
TXN = r"# (TXN|FAIL) ([^\n]*)"


@pytest.fixture
def terminal_config():
    return {"pin_timeout_ms": 4000, "pin_debit": True}


def _start(terminal, amount):
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press(amount + "E")
    terminal.panel.wait_screen("PRESENT CARD", 5)


def _present(terminal, card_reader, card, how):
    if how == "swipe":
        card_reader.swipe(card)
    else:
        card_reader.tap(card)


def _pin_sale(terminal, card_reader, card, pin, amount="1500", how="swipe"):
    """One sale whose card asks for a PIN: the console's TXN/FAIL line (text)."""
    _start(terminal, amount)
    _present(terminal, card_reader, card, how)
    terminal.panel.wait_screen(r"ENTER PIN \| _ \|", HOST_WAIT)
    terminal.panel.press(pin + "E")
    m = terminal.console.expect(TXN, HOST_WAIT)
    if how != "swipe":
        card_reader.remove()
    return m.group(0).decode()


def _journal(terminal):
    return read_journal(terminal.state_dir)


def _settle(terminal, acquirer, wait=SETTLE_WAIT):
    deadline = time.time() + wait
    while True:
        recs = _journal(terminal)
        if not any(t.get("st") in ("reversing", "pending") for t in recs) or time.time() > deadline:
            break
        time.sleep(0.25)
    return reconcile(recs, acquirer.ledger)


def _flash_files(terminal):
    return {os.path.basename(p): b for p, b in flash_files(terminal.state_dir).items()}


def _assert_no_pan(blobs):
    """No simulated card's PAN in clear, as BCD, or behind the letter hex of a card-data record."""
    for name, raw in blobs.items():
        views = [raw]
        for run in re.findall(rb"[a-p]{32,}", raw):
            views.append(bytes.fromhex(hsm.letter_hex(run.decode()).hex()))
        for c in TEST_CARDS.values():
            for v in views:
                assert c.pan.encode() not in v, (name, c.masked)
                assert bytes.fromhex(c.pan + "F" * (len(c.pan) % 2)) not in v, (name, c.masked, "BCD")


def _status(terminal):
    return dict(l.split(": ", 1) for l in terminal.console.command("status") if ": " in l)


def test_fresh_emulator_has_a_key_and_takes_a_pin_payment(terminal, card_reader, acquirer):
    keys = _status(terminal)["keys"]
    assert keys.startswith("ikid=12345678") and " next=" in keys, keys
    pin = TEST_PINS["mastercard_pin"]
    line = _pin_sale(terminal, card_reader, "mastercard_pin", pin)
    assert "SALE APPROVED" in line, line
    (e,) = acquirer.ledger
    assert ledger_line(e).endswith("rc=00 541333******0624 arqc=- pin=ok mac=ok card=ok"), ledger_line(e)
    assert _settle(terminal, acquirer) == {"sale_approved": 1}
    (t,) = _journal(terminal)
    assert t.get("pin") == 1
    # the PIN is never echoed, logged or kept: not on the console, the display, flash or the firmware's output
    seen = terminal.console.text() + terminal.firmware_output() + terminal.panel.text()
    assert pin not in seen
    for name, raw in _flash_files(terminal).items():
        assert pin.encode() not in raw, name
    assert not os.path.exists(os.path.join(terminal.state_dir, "ikey.json")), "initial key file erased at load"


def test_pin_screen_shows_stars_backspace_clear_and_cancel(terminal, card_reader, acquirer):
    _start(terminal, "900")
    card_reader.swipe("visa_pin")
    p = terminal.panel
    p.wait_screen(r"SALE EUR 9.00 \| ENTER PIN \| _ \| E:OK C:CLEAR B:BACK", HOST_WAIT)
    for keys, row in (("1", r"\*"), ("2", r"\*\*"), ("3", r"\*\*\*"), ("B", r"\*\*"), ("C", "_"), ("45", r"\*\*")):
        p.press(keys)
        p.wait_screen(r"ENTER PIN \| %s \|" % row, 5)
    p.press("E")
    p.wait_screen(r"PIN: 4 TO 12 DIGITS \| \*\* \|", 5)
    p.press("C")
    p.wait_screen(r"ENTER PIN \| _ \|", 5)
    p.press("C")
    p.wait_screen(r"PIN CANCELLED \| PIN-04", 5)
    terminal.console.expect(r"# FAIL SALE code=PIN-04 stage=pin", 5)
    assert acquirer.ledger == [], "nothing sent"


def test_pin_timeout_cancels_the_sale(terminal, card_reader, acquirer):
    _start(terminal, "900")
    card_reader.swipe("visa_pin")
    terminal.panel.wait_screen(r"ENTER PIN", HOST_WAIT)
    terminal.panel.press("12")
    terminal.panel.wait_screen(r"ENTER PIN \| \*\* \|", 5)
    t0 = time.monotonic()
    terminal.panel.wait_screen(r"PIN TIMED OUT \| PIN-03", 10)
    assert time.monotonic() - t0 >= 3.0, "the timeout counts from the last key"
    assert acquirer.ledger == []


def test_wrong_pin_is_iss55_and_the_third_wrong_one_iss75(terminal, card_reader, acquirer):
    screens = []
    for _ in range(3):
        line = _pin_sale(terminal, card_reader, "visa_pin", "9999")
        assert "DECLINED" in line, line
        screens.append(terminal.panel.wait_screen(r"ISS-\d\d", 5))
    assert screens[0].startswith("INCORRECT PIN | ISS-55 | Incorrect PIN."), screens[0]
    assert screens[1].startswith("INCORRECT PIN | ISS-55"), screens[1]
    assert screens[2].startswith("PIN TRIES EXCEEDED | ISS-75"), screens[2]
    assert [(e["rc"], e["pin"], e["mac"]) for e in acquirer.ledger] == [("55", "bad", "ok")] * 2 + [("75", "bad", "ok")]
    # blocked at the issuer: the right PIN no longer helps
    assert "code=ISS-75" in _pin_sale(terminal, card_reader, "visa_pin", TEST_PINS["visa_pin"])
    assert _settle(terminal, acquirer) == {"sale_declined": 4}


def test_debit_card_tapped_asks_for_its_pin_when_pin_debit_is_on(terminal, card_reader, acquirer):
    line = _pin_sale(terminal, card_reader, "maestro", TEST_PINS["maestro"], "1200", how="tap")
    assert "SALE APPROVED" in line, line
    assert [(e["pin"], e["mac"], e["pan_masked"]) for e in acquirer.ledger] == [("ok", "ok", "679999******0002")]
    # a credit card below any CVM limit is not asked
    _start(terminal, "800")
    card_reader.tap("visa")
    assert "SALE APPROVED" in terminal.console.expect(TXN, HOST_WAIT).group(0).decode()
    card_reader.remove()
    assert acquirer.ledger[-1]["pin"] == "-"


def test_bad_host_mac_is_ambiguous_and_the_sale_is_reversed(terminal, card_reader, acquirer):
    acquirer.script("bad_mac", mti="0200")
    _start(terminal, "1300")
    card_reader.swipe("visa")
    line = terminal.console.expect(TXN, HOST_WAIT).group(0).decode()
    assert "DECLINED code=KEY-07" in line, line
    terminal.panel.wait_screen(r"MAC CHECK FAILED \| KEY-07", 5)
    assert _settle(terminal, acquirer) == {"sale_reversed": 1}
    assert [(e["mti"], e["mac"]) for e in acquirer.ledger][:2] == [("0200", "ok"), ("0400", "ok")]
    assert acquirer.held("EMU00001", acquirer.ledger[0]["stan"]) == 0


def test_offline_sale_advice_carries_its_card_data_which_is_erased_after_the_0230(terminal, card_reader, acquirer):
    acquirer.stop()
    _start(terminal, "1000")
    card_reader.tap("visa")
    line = terminal.console.expect(TXN, HOST_WAIT).group(0).decode()
    card_reader.remove()
    assert "APPROVED_OFFLINE" in line, line
    ref = line.split()[2]
    path = os.path.join(terminal.state_dir, "cd%s.dat" % ref)
    with open(path, "rb") as f:
        record = f.read().split(b"\n", 1)[1].decode()
    assert not any(ch.isdigit() for ch in record), "letter hex: nothing that looks like a PAN"
    _assert_no_pan(_flash_files(terminal))
    # what the host will decrypt: PAN, expiry, track 2 equivalent and the ICC data with its cryptogram
    raw = hsm.letter_hex(record)
    box = hsm.Hsm()
    got = hsm.parse_card_data(box.decrypt_data(raw[:12].hex(), raw[12:]))
    visa = TEST_CARDS["visa"]
    assert got["2"] == visa.pan and got["14"] == visa.expiry and got["35"].startswith(visa.pan + "=")
    assert "9F26" in got["55"] or "9F10" in got["55"], "field 55 went along"
    acquirer.start()
    assert _settle(terminal, acquirer) == {"saf_sent": 1}
    (adv,) = [e for e in acquirer.ledger if e["kind"] == "advice"]
    assert ledger_line(adv).endswith("rc=00 %s arqc=ok pin=- mac=ok card=ok" % visa.masked), ledger_line(adv)
    deadline = time.time() + 5
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(path), "ciphertext erased after the 0230"
    files = _flash_files(terminal)
    assert not any(record.encode() in raw for raw in files.values())
    _assert_no_pan(files)


def test_simulator_refuses_an_advice_without_card_data(terminal, card_reader, acquirer):
    acquirer.stop()
    _start(terminal, "700")
    card_reader.swipe("visa")
    line = terminal.console.expect(TXN, HOST_WAIT).group(0).decode()
    assert "APPROVED_OFFLINE" in line, line
    ref = line.split()[2]
    os.remove(os.path.join(terminal.state_dir, "cd%s.dat" % ref))  # lost on flash
    acquirer.start()
    deadline = time.time() + HOST_WAIT
    while not [e for e in acquirer.ledger if e["kind"] == "advice"] and time.time() < deadline:
        time.sleep(0.2)
    _settle(terminal, acquirer)
    (adv,) = [e for e in acquirer.ledger if e["kind"] == "advice"]
    assert (adv["rc"], adv["booked"]) == ("30", False)
    assert ledger_line(adv).endswith("pin=- mac=ok card=missing"), ledger_line(adv)
    (t,) = _journal(terminal)
    assert (t["st"], t["code"]) == ("declined", "ISS-30")
    faults = "\n".join(terminal.console.command("faults 10"))
    assert "KEY-09" in faults, faults


def test_terminal_without_a_key_takes_no_payment(terminal, card_reader, acquirer):
    terminal.stop()
    for n in ("keys.json", "keys.bak"):
        p = os.path.join(terminal.state_dir, n)
        if os.path.exists(p):
            os.remove(p)
    terminal.keys = False
    terminal.start()
    assert _status(terminal)["keys"] == "KEY-01 ikid=-"
    _start(terminal, "500")
    card_reader.swipe("visa")
    assert "DECLINED code=KEY-01" in terminal.console.expect(TXN, HOST_WAIT).group(0).decode()
    terminal.panel.wait_screen(r"NO PIN KEY LOADED \| KEY-01", 5)
    assert acquirer.ledger == []


def test_key_from_a_bdk_the_acquirer_lacks_is_never_charged(terminal, card_reader, acquirer):
    terminal.stop()
    for n in ("keys.json", "keys.bak"):
        p = os.path.join(terminal.state_dir, n)
        if os.path.exists(p):
            os.remove(p)
    keyinject.inject(terminal.state_dir, bytes(16), bytes.fromhex("99999999A0B1C2D3"))
    terminal.start()
    assert "# KEYS LOADED ikid=99999999A0B1C2D3" in terminal.console.text()
    _start(terminal, "600")
    card_reader.swipe("visa")
    assert "DECLINED code=KEY-08" in terminal.console.expect(TXN, HOST_WAIT).group(0).decode()
    terminal.panel.wait_screen(r"NO MAC FROM HOST \| KEY-08", 5)
    deadline = time.time() + 10
    while not any(e["kind"] == "reversal" for e in acquirer.ledger) and time.time() < deadline:
        time.sleep(0.2)
    assert all((e["rc"], e["mac"], e["booked"]) == ("30", "bad", False) for e in acquirer.ledger), acquirer.ledger
    assert any(e["kind"] == "reversal" for e in acquirer.ledger), "the terminal reverses what it cannot trust"
    assert sum(acquirer.holdings().values()) == 0


def test_a_rejected_key_file_is_reported_and_erased_and_the_loaded_key_stays(terminal, card_reader, acquirer):
    before = _status(terminal)["keys"]
    terminal.stop()
    rec = keyinject.inject(terminal.state_dir, ikid=bytes.fromhex("12345678B0B1C2D3"))
    path = os.path.join(terminal.state_dir, keyinject.FILE_NAME)
    with open(path, "w") as f:
        f.write('{"ikid": "%s", "ik": "%s", "kcv": "0000000000"}' % (rec["ikid"], rec["ik"]))  # wrong check value
    terminal.start()
    assert "# KEYS KEY-02 initial key check value mismatch" in terminal.console.text()
    assert not os.path.exists(path), "a rejected key file is erased too"
    assert _status(terminal)["keys"].split(" next=")[0] == before.split(" next=")[0], "the old key stays"
    assert "KEY-02" in "\n".join(terminal.console.command("faults 5"))
    _start(terminal, "400")
    card_reader.swipe("visa")
    assert "SALE APPROVED" in terminal.console.expect(TXN, HOST_WAIT).group(0).decode()

"""Background work end to end: offline sales through a long outage, reversals the host refuses,
an advice that fails and the technician's retry from the console.

Uses the system fixtures (host_tests/system/conftest.py): `terminal`, `card_reader`,
`acquirer`. saf_max_tries is small here so that "longer than saf_max_tries
attempts would last" is a few seconds.
"""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import sale  # noqa: E402
from ledger import read_journal, reconcile  # noqa: E402

HOST_WAIT = 30


@pytest.fixture
def terminal_config():
    return {"saf_max_tries": 2}


def _record(terminal, ref):
    for t in read_journal(terminal.state_dir):
        if t["ref"] == ref:
            return t
    raise AssertionError("no journal record %s" % ref)


def _until(fn, what, timeout=HOST_WAIT):
    """The journal/ledger has no event to wait on: look until `fn()` holds."""
    end = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)


def _ref(line):
    return line.split()[2]


def _answer(lines):
    return [l for l in lines if l not in ("OK",)]


def _status(terminal):
    return dict(l.split(": ", 1) for l in _answer(terminal.console.command("status")) if ": " in l)


def test_long_outage_then_the_offline_sale_is_uploaded_exactly_once(terminal, card_reader, acquirer, cards):
    acquirer.stop()
    line = sale(terminal, card_reader, "1000", "visa")
    assert "APPROVED_OFFLINE" in line, line
    ref = _ref(line)
    terminal.panel.wait_screen(r"READY \| .* \| F:MENU +OFFLINE Q 1$", 10)
    # The outage lasts far longer than saf_max_tries attempts at the retry pace would.
    time.sleep(8)
    t = _record(terminal, ref)
    assert (t["kind"], t["st"], t.get("tries", 0)) == ("saf", "pending", 0), t
    assert _status(terminal)["link"] == "offline"
    acquirer.start()
    # Nobody touches the keypad: the idle screen follows the queue by itself.
    terminal.panel.wait_screen(r"READY \| .* \| F:MENU$", HOST_WAIT)
    assert _record(terminal, ref)["st"] == "sent"
    adv = [e for e in acquirer.ledger if e["kind"] == "advice"]
    assert [(e["stan"], e["mti"]) for e in adv] == [(t["stan"], "0220")], adv
    st = _status(terminal)
    assert (st["link"], st["saf_pending"], st["saf_failed"]) == ("online", "0", "0")
    assert reconcile(read_journal(terminal.state_dir), acquirer.ledger) == {"saf_sent": 1}


def test_reversal_answered_96_repeats_as_0401_until_00(terminal, card_reader, acquirer, cards):
    acquirer.script("no_answer")  # the host books the sale, the answer is lost: reversal
    acquirer.script(("decline", "96"), ("decline", "96"), mti=("0400", "0401"))
    line = sale(terminal, card_reader, "1250", "visa")
    ref = line.split()[2]
    assert "DECLINED" in line and "HST-01" in line, line
    _until(lambda: _record(terminal, ref)["st"] == "reversed", "the reversal to be acknowledged")
    revs = [(e["mti"], e["rc"]) for e in acquirer.ledger if e["kind"] == "reversal"]
    assert revs == [("0400", "96"), ("0401", "96"), ("0401", "00")], revs
    assert acquirer.authorized() == [], "the host no longer holds the charge"
    assert reconcile(read_journal(terminal.state_dir), acquirer.ledger) == {"sale_reversed": 1}


def test_failed_advice_shows_on_status_and_is_retried_from_the_console(terminal, card_reader, acquirer, cards):
    acquirer.stop()
    line = sale(terminal, card_reader, "900", "visa")
    assert "APPROVED_OFFLINE" in line, line
    ref = _ref(line)
    acquirer.script("no_answer", "no_answer", mti=("0220", "0221"))
    acquirer.start()
    _until(lambda: _record(terminal, ref)["st"] == "failed", "the advice to fail after saf_max_tries")
    t = _record(terminal, ref)
    assert (t["tries"], t["code"]) == (2, "HST-07"), t
    # still owed by the host: the merchant keeps seeing it on the idle screen
    terminal.panel.wait_screen(r"READY \| .* \| F:MENU +OFFLINE Q 1$", 10)
    st = _status(terminal)
    assert (st["saf_failed"], st["saf_failed_refs"]) == ("1", ref), st
    assert any(" HST-07 " in l for l in _answer(terminal.console.command("faults 5")))
    listing = _answer(terminal.console.command("saf"))
    assert any(l.startswith("advice %s failed tries=2" % ref) for l in listing), listing
    assert terminal.console.command("retry " + ref) == ["retry %s queued" % ref, "OK"]
    _until(lambda: _record(terminal, ref)["st"] == "sent", "the retried advice to be booked")
    terminal.panel.wait_screen(r"READY \| .* \| F:MENU$", 10)
    adv = [e["mti"] for e in acquirer.ledger if e["kind"] == "advice"]
    assert adv == ["0220", "0221", "0221"], adv
    assert [e["stan"] for e in acquirer.advices()] == [t["stan"]], "booked once"
    assert _status(terminal)["saf_failed"] == "0"
    assert reconcile(read_journal(terminal.state_dir), acquirer.ledger) == {"saf_sent": 1}


@pytest.mark.parametrize("terminal_config", [{"read_timeout_ms": 5000, "worker_wait_ms": 6000, "max_wait_ms": 8000}])
def test_customer_sale_does_not_wait_behind_a_reversal_in_flight(terminal, card_reader, acquirer, cards):
    acquirer.script("no_answer")
    acquirer.script("no_answer", mti="0400")  # the 0400 hangs for the whole read timeout
    first = sale(terminal, card_reader, "1250", "visa")
    assert "HST-01" in first, first
    _until(lambda: any(e["kind"] == "reversal" for e in acquirer.ledger), "the 0400 to reach the host")
    terminal.panel.press("E")
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("700E")
    terminal.panel.wait_screen("PRESENT CARD", 5)
    t0 = time.monotonic()
    card_reader.tap("mastercard")
    m = terminal.console.expect(r"# TXN (\S+) SALE (\w+)", HOST_WAIT)
    took = time.monotonic() - t0
    card_reader.remove()
    assert m.group(2) == b"APPROVED"
    # The 0400 waits up to 5 s for its answer; the customer must not.
    assert took < 3.0, "customer waited %.1f s behind the reversal" % took
    _until(lambda: _record(terminal, first.split()[2])["st"] == "reversed", "the reversal to be acknowledged")
    revs = [e["mti"] for e in acquirer.ledger if e["kind"] == "reversal"]
    assert revs == ["0400", "0401"], "the cut-short reversal repeats as 0401: %r" % revs
    assert reconcile(read_journal(terminal.state_dir), acquirer.ledger) == {"sale_reversed": 1, "sale_approved": 1}

"""Diagnostics end to end: provoke each class of failure in the running terminal,
then read it back through the console protocol and through `payterm diag`.

Uses the system fixtures (host_tests/system/conftest.py): `terminal` (console,
panel, restart/kill, state_dir, console_path, set_printer), `card_reader`
(CardReaderSim) and `acquirer` (AcquirerSim).
"""
import json
import os
import re
import sys

import pytest

from payterm_tools.sim.cardsim import TEST_CARDS
from conftest import start_sale

PIN = "4321"
FULL_PANS = [c.pan for c in TEST_CARDS.values()]
HOST_WAIT = 30
CARD_WAIT = 15
_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "firmware")


def display(code):
    """Panel text of a catalog code, so rewording the catalog does not break these tests."""
    if _FIRMWARE not in sys.path:
        sys.path.append(_FIRMWARE)
    from payterm import codes

    return codes.lookup(code)[codes.DISPLAY]


def _answer(lines):
    """Answer lines without the final OK (the fixture may or may not strip it)."""
    lines = [l for l in lines if not l.startswith("# ")]
    if lines and lines[-1] == "OK":
        lines = lines[:-1]
    return lines


def _faults(terminal, n=5):
    return _answer(terminal.console.command("faults %d" % n))


def _stats(terminal):
    return _answer(terminal.console.command("stats"))


def _export(terminal):
    objs = [json.loads(l) for l in _answer(terminal.console.command("export")) if l.startswith("{")]
    return objs


def _no_full_pan(lines):
    for l in lines:
        for pan in FULL_PANS:
            assert pan not in l, l


def _sale(terminal, amount="1250"):
    start_sale(terminal, amount)


def _port(terminal):
    """(path for `payterm diag`, closer): the terminal's USB-serial console port."""
    return terminal.console_path, lambda: None


def _wait_txn(terminal, card_reader=None):
    m = terminal.console.expect(r"# TXN \S+ SALE \w+", HOST_WAIT)
    if card_reader is not None:
        card_reader.remove()
    return m


def test_magstripe_read_error_is_logged_with_its_code(terminal, card_reader):
    _sale(terminal)
    card_reader.swipe("visa", bad_lrc=2, tracks=(2,))
    terminal.panel.expect(re.escape(display("CRD-05")), CARD_WAIT)
    f = _faults(terminal)
    assert re.search(r"CRD-05 x\d+ \S+ " + re.escape(display("CRD-05")), f[0]), f
    assert "category card" in " ".join(_stats(terminal))
    _no_full_pan(f)


def test_reader_not_responding_fails_selftest(terminal, card_reader):
    card_reader.set_responding(False)
    out = _answer(terminal.console.command("selftest"))
    line = [l for l in out if " HW-01 " in l or " HW-02 " in l]
    assert line and line[0].startswith("FAIL "), out
    assert any("HW-0" in l for l in _faults(terminal, 3))
    card_reader.set_responding(True)


def test_issuer_decline_insufficient_funds(terminal, card_reader, acquirer):
    acquirer.script(("decline", "51"))
    _sale(terminal)
    card_reader.tap("visa")
    _wait_txn(terminal, card_reader)
    f = _faults(terminal, 1)
    assert "ISS-51" in f[0] and display("ISS-51") in f[0], f
    code = dict(l.split(": ", 1) for l in _answer(terminal.console.command("code ISS-51")))
    assert code["category"] == "issuer" and code["remedy"]
    _no_full_pan(_answer(terminal.console.command("export")))


def test_host_outage_shows_network_faults_and_link_quality(terminal, card_reader, acquirer):
    acquirer.stop()
    _sale(terminal)
    card_reader.tap("mastercard")
    # offline: the sale goes to store-and-forward (or fails above the floor limit)
    terminal.console.expect(r"# (TXN \S+ \w+ \w+|FAIL [^\n]*)", HOST_WAIT * 2)
    card_reader.remove()
    codes_seen = [l.split()[2] for l in _faults(terminal, 10)]
    assert any(c.startswith("NET-") or c == "HST-04" for c in codes_seen), codes_seen
    st = _stats(terminal)
    assert any(l.startswith("link ") for l in st), st  # retries / breaker trips / host switches
    assert any(l.startswith("category network ") for l in st), st


def test_host_timeout_is_hst01(terminal, card_reader, acquirer):
    acquirer.script("no_answer")
    _sale(terminal)
    card_reader.tap("visa")
    _wait_txn(terminal, card_reader)
    assert any("HST-01" in l for l in _faults(terminal, 5))


@pytest.mark.emulator_only
def test_printer_paper_out(terminal, card_reader, acquirer):
    terminal.set_printer("paper_out")
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press("1250E")
    # the printer is asked before the card: the code is on screen and in the fault log at once
    terminal.panel.wait_screen(re.escape(display("HW-03")) + r" \| HW-03 \| CONTINUE WITHOUT \| RECEIPT\?", CARD_WAIT)
    terminal.console.expect(r"# PRINTER HW-03 before sale", 5)
    assert any("HW-03" in l and display("HW-03") in l for l in _faults(terminal, 5))
    terminal.panel.press("E")  # no receipt: the sale goes on
    terminal.panel.wait_screen("PRESENT CARD", CARD_WAIT)
    card_reader.tap("visa")
    _wait_txn(terminal, card_reader)
    assert terminal.printer.receipts == [] and terminal.printer.current == [], "nothing printed"
    out = _answer(terminal.console.command("selftest"))
    assert any(l.startswith("FAIL ") and "HW-03" in l for l in out), out
    terminal.set_printer("ok")


@pytest.mark.emulator_only
def test_corrupted_fault_log_is_recovered_and_reported(terminal, card_reader):
    _sale(terminal)
    card_reader.swipe("visa", bad_lrc=2, tracks=(2,))
    terminal.panel.expect(re.escape(display("CRD-05")), CARD_WAIT)
    terminal.kill()
    path = [os.path.join(d, "faults.bin") for d, _, fs in os.walk(terminal.state_dir) if "faults.bin" in fs][0]
    with open(path, "r+b") as f:
        data = bytearray(f.read(64))
        data[20] ^= 0xFF  # one torn slot
        f.seek(0)
        f.write(data)
    terminal.restart()
    f = _faults(terminal, 3)
    assert "SYS-02" in f[0], f


@pytest.mark.emulator_only
def test_faults_and_stats_survive_restart_and_reboot_reason(terminal, card_reader):
    import time

    _sale(terminal)
    card_reader.swipe("visa", bad_lrc=2, tracks=(2,))
    terminal.panel.expect(re.escape(display("CRD-05")), CARD_WAIT)
    before = _export(terminal)
    stats = [o for o in before if o["kind"] == "stats"][0]
    time.sleep(6)  # counts reach flash by the periodic autosave; the fault log at once
    terminal.kill()
    terminal.start()
    after = _export(terminal)
    stats2 = [o for o in after if o["kind"] == "stats"][0]
    assert stats2["codes"]["CRD-05"] == stats["codes"]["CRD-05"]
    assert stats2["boot_count"] == stats["boot_count"] + 1
    assert sum(stats2["boots"].values()) == stats2["boot_count"]
    f1 = [o for o in before if o["kind"] == "fault"]
    f2 = [o for o in after if o["kind"] == "fault"]
    assert f1[0] in f2


def test_clear_needs_pin_and_locks_after_three_wrong(terminal):
    r = terminal.console.command("clear")
    assert r[-1].startswith("ERR OPR-05"), r
    for p in ("0000", "1111"):
        assert terminal.console.command("pin " + p)[-1].startswith("ERR OPR-05")
    assert terminal.console.command("pin 2222")[-1].startswith("ERR OPR-03")
    assert terminal.console.command("pin " + PIN)[-1].startswith("ERR OPR-03")


def test_payterm_diag_reads_the_console(terminal, card_reader, acquirer, tmp_path, capsys):
    from payterm_tools.cli import main

    acquirer.script(("decline", "05"))
    _sale(terminal)
    card_reader.tap("visa")
    _wait_txn(terminal, card_reader)
    html = tmp_path / "report.html"
    port, close = _port(terminal)
    try:
        assert main(["diag", "--port", port, "--html", str(html), "--timeout", "20"]) == 0
    finally:
        close()
    out = capsys.readouterr().out
    assert "ISS-05" in out and "remedy:" in out
    assert "Wait per stage" in out
    _no_full_pan(out.splitlines())
    page = html.read_text()
    assert "<svg" in page and "ISS-05" in page


def test_technician_menu_on_the_panel(terminal, card_reader):
    _sale(terminal)
    card_reader.swipe("visa", bad_lrc=2, tracks=(2,))
    terminal.panel.expect(re.escape(display("CRD-05")), CARD_WAIT)
    terminal.panel.wait_screen("READY", CARD_WAIT)
    terminal.panel.press("F9")
    terminal.panel.expect(r"ENTER PIN", CARD_WAIT)
    terminal.panel.press(PIN + "E")
    terminal.panel.expect(r"1/7 STATUS", CARD_WAIT)
    terminal.panel.press("#")
    terminal.panel.expect(r"CRD-05 x\d+", CARD_WAIT)
    terminal.panel.press("C")

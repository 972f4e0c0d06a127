"""Everything a technician or support gets out of a busy terminal holds no full PAN and no track data.

The terminal (emulator) runs swipes and taps that are approved, declined by
the issuer, refused by the card checks (bad Luhn, expired, bad LRC), a host
timeout that ends in a reversal, and a refund; then the console's `export`,
`faults` and `stats`, and `payterm diag` (text report and the HTML page)
are saved next to the flash directory (journal, state, fault log, stats,
firmware log), the printed receipts and the console and panel captures. The scan runs
here on this test's files, and again at the end of the session over every
file the session's tests produced (payterm_reliability._leakscan).
"""
import os

import pytest

from payterm_tools import leakscan
from payterm_tools.cli import main as payterm
from payterm_tools.sim.cardsim import TEST_CARDS

from payterm_system_fixtures import refund, start_sale  # noqa: E402
from reliability.payterm_reliability import LEAKSCAN_EXCLUDE

pytestmark = [pytest.mark.emulator_only, pytest.mark.reliability("leakscan")]

KNOWN = [c.pan for c in TEST_CARDS.values()]


@pytest.fixture
def terminal_config():
    return {"result_ms": 300, "result_min_ms": 30, "page_ms": 500}


def _sale(terminal, card_reader, amount, how, card, **kw):
    start_sale(terminal, amount)
    if how == "swipe":
        card_reader.swipe(card, **kw)
    else:
        card_reader.tap(card)
    line = terminal.console.expect(r"# (TXN|FAIL) [^\n]*", 30).group(0).decode()
    card_reader.remove()
    terminal.panel.wait_screen("READY", 15)
    return line


def test_artefacts_hold_no_card_data(rel, terminal, card_reader, acquirer, tmp_path, capsys):
    out = []
    out.append(_sale(terminal, card_reader, "1250", "swipe", "visa"))
    out.append(_sale(terminal, card_reader, "2000", "tap", "mastercard"))
    out.append(_sale(terminal, card_reader, "300", "tap", "amex"))
    acquirer.script(("decline", "51"), mti="0200")
    out.append(_sale(terminal, card_reader, "4100", "swipe", "visa"))
    out.append(_sale(terminal, card_reader, "500", "swipe", "bad_luhn"))
    out.append(_sale(terminal, card_reader, "600", "swipe", "expired"))
    out.append(_sale(terminal, card_reader, "700", "swipe", "visa", bad_lrc=2, tracks=(2,)))
    acquirer.script("no_answer", mti="0200")
    out.append(_sale(terminal, card_reader, "800", "swipe", "mastercard"))
    refund(terminal, card_reader, "900", "visa", how="swipe")
    out.append(terminal.console.expect(r"# (TXN|FAIL) [^\n]*", 30).group(0).decode())
    terminal.panel.wait_screen("READY", 15)
    assert sum("APPROVED" in l for l in out) >= 4 and any("code=CRD-07" in l for l in out), out

    for cmd in ("export", "faults 64", "stats", "wait", "status"):
        lines = terminal.console.command(cmd, 20)
        assert lines[-1] == "OK", (cmd, lines[-3:])
        (tmp_path / ("console-%s.txt" % cmd.split()[0])).write_text("\n".join(lines) + "\n")
    html = tmp_path / "diag-report.html"
    capsys.readouterr()
    assert payterm(["diag", "--port", terminal.console_path, "--html", str(html), "--timeout", "20"]) == 0
    (tmp_path / "diag-report.txt").write_text(capsys.readouterr().out)
    assert "<svg" in html.read_text()

    # The receipts as the ESC/POS printer peer printed them (what the customer and merchant take away).
    receipts = terminal.printed()
    assert receipts.count("APPROVED") >= 4, receipts[-2000:]
    (tmp_path / "receipts.txt").write_text(receipts)
    flash = terminal.state_dir
    names = set(os.listdir(flash))
    for want in ("journal.log", "faults.bin", "stats.json", "firmware.log", "waits.json"):
        assert want in names, "expected %s in the flash directory: %s" % (want, sorted(names))
    rep = leakscan.scan_paths([str(tmp_path)], exclude=LEAKSCAN_EXCLUDE, known=KNOWN)
    assert rep.hits == [], "full card data in the terminal's output: %s" % rep.hits
    rel.record("leakscan", artefact_files=rep.files)

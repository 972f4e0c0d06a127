"""The emulated terminal end to end: boot, a swiped and a tapped sale, restart on the same flash."""
import re
import time

import pytest
from conftest import sale
from payterm_tools.emulator import flash_files


def test_boot_announces_ready_and_status(terminal):
    lines = terminal.console.command("status")
    assert lines[-1] == "OK"
    text = "\n".join(lines)
    assert "board: EMULATOR" in text
    assert re.search(r"saf_pending: 0", text)
    assert "READY" in terminal.panel.screen()


def test_swiped_sale_approved_and_in_ledger(terminal, card_reader, acquirer, cards):
    ev = sale(terminal, card_reader, "1234", cards["visa"])
    assert "SALE APPROVED" in ev
    assert terminal.panel.wait_screen("APPROVED", 5)
    [entry] = [e for e in acquirer.ledger if e["kind"] == "auth"]
    assert entry["amount"] == 1234 and entry["outcome"] == "approved"
    stan = re.search(r"stan=(\d{6})", ev).group(1)
    assert entry["stan"] == stan


@pytest.mark.emulator_only
def test_sale_journaled_on_flash_and_printed_masked(terminal, card_reader, acquirer, cards):
    ev = sale(terminal, card_reader, "1234", cards["visa"])
    stan = re.search(r"stan=(\d{6})", ev).group(1)
    # journaled on flash, with the PAN masked only
    flash = b"".join(flash_files(terminal.state_dir).values())
    assert stan.encode() in flash
    assert cards["visa"].pan.encode() not in flash
    # the receipt is printed after the result is shown
    deadline = time.monotonic() + 5
    while "APPROVED" not in terminal.printed() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "APPROVED" in terminal.printed()
    assert cards["visa"].pan not in terminal.printed()


def test_tapped_sale_approved(terminal, card_reader, acquirer, cards):
    ev = sale(terminal, card_reader, "2500", cards["mastercard"], how="tap")
    assert "SALE APPROVED" in ev
    [entry] = [e for e in acquirer.ledger if e["kind"] == "auth"]
    assert entry["amount"] == 2500
    assert entry["pan_masked"].endswith(cards["mastercard"].pan[-4:])


@pytest.mark.emulator_only
def test_restart_keeps_flash_and_stans_move_on(terminal, card_reader, acquirer, cards):
    first = sale(terminal, card_reader, "100", cards["visa"])
    terminal.restart()
    terminal.panel.wait_screen("READY", 10)
    second = sale(terminal, card_reader, "200", cards["visa"])
    s1 = int(re.search(r"stan=(\d+)", first).group(1))
    s2 = int(re.search(r"stan=(\d+)", second).group(1))
    assert s2 > s1
    stans = [e["stan"] for e in acquirer.ledger if e["kind"] == "auth"]
    assert len(stans) == len(set(stans)) == 2


def test_console_rejects_unknown_command(terminal):
    lines = terminal.console.command("frobnicate")
    assert lines[-1].startswith("ERR")


def _waits(terminal):
    """(transactions counted, {stage: samples}) from the console's `wait` answer."""
    lines = terminal.console.command("wait")
    txns = int([l for l in lines if l.startswith("txns ")][0].split()[1])
    stages = {}
    for l in lines:
        if l.startswith("stage "):
            stages[l.split()[1]] = int(re.search(r" n=(\d+)", l).group(1))
    return txns, stages, lines


def test_wait_analysis_covers_customer_and_terminal_stages(terminal, card_reader, acquirer, cards):
    txns0, stages0, _ = _waits(terminal)  # a real terminal has a history already
    # The bank takes a moment to decide, as a real one does: an answer over loopback in under a millisecond
    # would leave no host time beside the connect (the link's CONNECTING span is moved out of the host
    # stage, and a stage moved out whole is gone: test_waits.test_host_wait_is_split_into_connect_and_retry).
    acquirer.script(("delay", 50), mti="0200")
    sale(terminal, card_reader, "1500", cards["visa"])
    terminal.panel.wait_screen("APPROVED", 5)
    deadline = time.monotonic() + 8
    while True:
        txns, stages, lines = _waits(terminal)
        if txns > txns0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert txns == txns0 + 1, lines
    for st in ("amount", "present", "read", "host", "print"):
        assert stages.get(st, 0) == stages0.get(st, 0) + 1, (st, lines)

"""The emulated terminal end to end: boot, a swiped and a tapped sale, restart on the same flash;
the `payterm emulate` session commands (host, console, ledger)."""
import argparse
import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import sale


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
    flash = b"".join(open(p, "rb").read() for p in _files(terminal.state_dir))
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


def _files(root):
    for d, _, fs in os.walk(root):
        for f in fs:
            if not f.startswith("printer") and f != "firmware.log":
                yield os.path.join(d, f)


def _waits(terminal):
    """(transactions counted, {stage: samples}) from the console's `wait` answer."""
    lines = terminal.console.command("wait")
    txns = int([l for l in lines if l.startswith("txns ")][0].split()[1])
    stages = {}
    for l in lines:
        if l.startswith("stage "):
            stages[l.split()[1]] = int(re.search(r" n=(\d+)", l).group(1))
    return txns, stages, lines


def test_wait_analysis_covers_card_host_and_print(terminal, card_reader, acquirer, cards):
    txns0, stages0, _ = _waits(terminal)  # a real terminal has a history already
    sale(terminal, card_reader, "1500", cards["visa"])
    terminal.panel.wait_screen("APPROVED", 5)
    deadline = time.monotonic() + 8
    while True:
        txns, stages, lines = _waits(terminal)
        if txns > txns0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert txns == txns0 + 1, lines
    for st in ("card", "host", "print"):
        assert stages.get(st, 0) == stages0.get(st, 0) + 1, (st, lines)


# ---------------------------------------------------------------- `payterm emulate` commands
LEDGER_LINE = re.compile(r"^  (\d{4}) (\d{6}) (auth|refund|void|reversal|advice|echo) (\d+) rc=(\w\w) "
                         r"(\d{6}\*+\d{4}|)( REPEAT)?$")


@pytest.fixture(scope="module")
def session(request, tmp_path_factory):
    """One `payterm emulate` session in this process, its output kept in a StringIO."""
    from payterm_tools import emulate

    if request.config.getoption("--port"):
        pytest.skip("runs the emulator itself")
    args = argparse.Namespace(board="EMULATOR", state=str(tmp_path_factory.mktemp("emu") / "state"),
                              acquirer_port=0, script=None)
    s = emulate.Session(args, out=io.StringIO())
    s.start()
    yield s
    s.close()


def _said(session, line):
    session.out.seek(0)
    session.out.truncate()
    t0 = time.monotonic()
    session.command(line)
    return session.out.getvalue(), time.monotonic() - t0


def test_console_without_argument_answers_usage_at_once(session):
    out, took = _said(session, "console")
    assert out.startswith("usage: console CMD") and took < 1.0
    out, _ = _said(session, "console status")
    assert "board: EMULATOR" in out and out.rstrip().endswith("OK")


def test_console_timeout_is_a_message_not_a_traceback(session):
    os.kill(session.emu.proc.pid, signal.SIGSTOP)  # a hung terminal
    try:
        session.out.seek(0)
        session.out.truncate()
        session._console(["status"], timeout=1.0)
        out = session.out.getvalue()
    finally:
        os.kill(session.emu.proc.pid, signal.SIGCONT)
    assert out == "console: no answer to 'status' within 1 s\n"


@pytest.mark.parametrize("line", ["host decline 999", "host decline", "host decline 5", "host decline 5!",
                                  "host nope", "host", "host partial", "host partial -5", "host partial 0",
                                  "host reversal", "host reversal 961", "host approve now"])
def test_host_arguments_are_checked(session, line):
    out, _ = _said(session, line)
    assert out.startswith("usage: host approve | decline RC"), out
    assert session.acq._script == [], "nothing scripted"


def test_host_subcommands_script_the_acquirer(session):
    for line in ("host decline n7", "host partial 600", "host no39", "host drop", "host reversal 96",
                 "host timeout", "host approve"):
        out, _ = _said(session, line)
        assert out == "", out
    assert session.acq._script == [
        (None, ("decline", "N7")), ("0200", ("partial", 600)), (None, ("no_rc",)), (None, ("approve_drop",)),
        (("0400", "0401"), ("decline", "96")), (None, ("no_answer",)), (None, ("approve",))]
    del session.acq._script[:]


def _emulate(state, lines):
    script = state + ".session.txt"
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    payterm = os.path.join(os.path.dirname(sys.executable), "payterm")
    r = subprocess.run([payterm, "emulate", "--state", state, "--script", script],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)
    assert r.returncode == 0 and "Traceback" not in r.stdout, r.stdout
    return r.stdout


def _ledger_lines(out):
    """The lines the last `ledger` command printed."""
    tail = out.rsplit("> ledger\n", 1)[1]
    lines = []
    for l in tail.splitlines():
        if not l.startswith("  "):
            break
        lines.append(l)
    return lines


@pytest.mark.emulator_only
def test_emulate_ledger_lines_and_the_ledger_survives_a_restart(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("runs the emulator itself")
    state = str(tmp_path / "flash")
    out = _emulate(state, ["1250E", "swipe visa", "E", "host decline 51", "2000E", "swipe visa", "E",
                           "host decline 999", "console", "ledger"])
    assert "usage: host approve" in out and "usage: console CMD" in out
    lines = _ledger_lines(out)
    assert lines == ["  0200 000001 auth 1250 rc=00 476173******0010",
                     "  0200 000002 auth 2000 rc=51 476173******0010"], out
    assert all(LEDGER_LINE.match(l) for l in lines)
    path = state + ".acquirer.jsonl"
    assert os.path.exists(path) and not [f for f in os.listdir(state) if "acquirer" in f], \
        "the ledger is beside the flash, not in it"
    out = _emulate(state, ["500E", "swipe visa", "E", "ledger"])
    assert "acquirer ledger: %s (2 entries from earlier runs)" % path in out
    lines = _ledger_lines(out)
    assert len(lines) == 3 and lines[:2] == ["  0200 000001 auth 1250 rc=00 476173******0010",
                                             "  0200 000002 auth 2000 rc=51 476173******0010"]
    m = LEDGER_LINE.match(lines[2])
    assert m and (m.group(1), m.group(3), m.group(4), m.group(5)) == ("0200", "auth", "500", "00"), lines
    assert int(m.group(2)) > 2, "the terminal's STANs moved on; the host saw no duplicate"
    assert "4761739001010010" not in open(path).read()

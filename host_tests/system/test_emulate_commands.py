"""`payterm emulate` session commands: host scripting, console, the acquirer's ledger lines and file.

Kept apart from test_emulator.py, whose tests also run against a real terminal over serial
(host_tests/tools/test_real_board_mode.py counts them): these need the emulate session itself.
"""
import argparse
import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest

LEDGER_LINE = re.compile(r"^  (\d{4}) (\d{6}) (auth|refund|void|reversal|advice|echo) (\d+) rc=(\w\w) "
                         r"(\d{6}\*+\d{4}|)( REPEAT)? arqc=(ok|bad|-) pin=(ok|bad|-) mac=(ok|bad|-) card=(ok|missing|-)$")


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


def _answer(session):
    """What the session printed since the last call, without the display it redraws on its own."""
    text = session.out.getvalue()
    session.out.seek(0)
    session.out.truncate()
    return "".join(l for l in text.splitlines(True) if not l.startswith(("+-", "| ")))


def _said(session, line):
    _answer(session)
    t0 = time.monotonic()
    session.command(line)
    return _answer(session), time.monotonic() - t0


def test_console_without_argument_answers_usage_at_once(session):
    out, took = _said(session, "console")
    assert out.startswith("usage: console CMD") and took < 1.0
    out, _ = _said(session, "console status")
    assert "board: EMULATOR" in out and out.rstrip().endswith("OK")


def test_console_timeout_is_a_message_not_a_traceback(session):
    os.kill(session.emu.proc.pid, signal.SIGSTOP)  # a hung terminal
    try:
        _answer(session)
        session._console(["status"], timeout=1.0)
        out = _answer(session)
    finally:
        os.kill(session.emu.proc.pid, signal.SIGCONT)
    assert out == "console: no answer to 'status' within 1 s\n"


@pytest.mark.parametrize("line", ["host decline 999", "host decline", "host decline 5", "host decline 5!",
                                  "host decline XX", "host decline 4Q",
                                  "host nope", "host", "host partial", "host partial -5", "host partial 0",
                                  "host reversal", "host reversal 961", "host approve now"])
def test_host_arguments_are_checked(session, line):
    out, _ = _said(session, line)
    if line in ("host decline XX", "host decline 4Q"):
        first, out = out.split("\n", 1)
        assert first.startswith("%s: not a response code of the catalog; one of " % line) and " 51 " in first, first
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


def test_emulate_ledger_lines_and_the_ledger_survives_a_restart(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("runs the emulator itself")
    state = str(tmp_path / "flash")
    out = _emulate(state, ["1250E", "swipe visa", "E", "host decline 51", "2000E", "swipe visa", "E",
                           "host decline 999", "console", "ledger"])
    assert "usage: host approve" in out and "usage: console CMD" in out
    lines = _ledger_lines(out)
    assert [l.split(" pin=")[0] for l in lines] == ["  0200 000001 auth 1250 rc=00 476173******0010 arqc=-",
                                                    "  0200 000002 auth 2000 rc=51 476173******0010 arqc=-"], out
    assert all(l.endswith(" pin=- mac=ok card=ok") for l in lines), lines
    assert all(LEDGER_LINE.match(l) for l in lines)
    path = state + ".acquirer.jsonl"
    assert os.path.exists(path) and not [f for f in os.listdir(state) if "acquirer" in f], \
        "the ledger is beside the flash, not in it"
    out = _emulate(state, ["500E", "swipe visa", "E", "ledger"])
    assert "acquirer ledger: %s (2 entries from earlier runs)" % path in out
    lines = _ledger_lines(out)
    assert len(lines) == 3 and [l.split(" pin=")[0] for l in lines[:2]] == [
        "  0200 000001 auth 1250 rc=00 476173******0010 arqc=-", "  0200 000002 auth 2000 rc=51 476173******0010 arqc=-"]
    m = LEDGER_LINE.match(lines[2])
    assert m and (m.group(1), m.group(3), m.group(4), m.group(5)) == ("0200", "auth", "500", "00"), lines
    assert int(m.group(2)) > 2, "the terminal's STANs moved on; the host saw no duplicate"
    assert "4761739001010010" not in open(path).read()


def test_emulate_lists_test_pins_and_takes_a_pin_sale_and_a_bad_host_mac(tmp_path, request):
    if request.config.getoption("--port"):
        pytest.skip("runs the emulator itself")
    state = str(tmp_path / "flash")
    out = _emulate(state, ["cards", "1500E", "swipe visa_pin", "1234E", "E", "host badmac", "1300E",
                           "swipe visa", "E", "ledger"])
    cards = out.split("> cards\n", 1)[1]
    assert re.search(r"visa_pin +476173\*{6}0036  PIN 1234  \(swipe: PIN, service code 120\)", cards), cards
    assert re.search(r"maestro +679999\*{6}0002  PIN 4321  \(debit: PIN when pin_debit is on\)", cards), cards
    assert re.search(r"visa +476173\*{6}0010  PIN 1234\n", cards), cards
    assert "| ENTER PIN" in out and "two_apps" in cards and "two_apps         555555******4444  PIN 4444\n" in cards
    assert "| MAC CHECK FAILED" in out and "| KEY-07" in out
    lines = _ledger_lines(out)
    assert all(LEDGER_LINE.match(l) for l in lines), lines
    assert lines[0].endswith("rc=00 476173******0036 arqc=- pin=ok mac=ok card=ok"), lines
    assert lines[1].split()[:2] == ["0200", lines[1].split()[1]] and lines[1].endswith("pin=- mac=ok card=ok")
    assert "1234" not in out.split("> 1234E", 1)[1].replace("PIN 1234", ""), "the PIN is never shown"


def test_paper_without_argument_answers_usage_and_the_printer_state(session):
    out, _ = _said(session, "paper")
    assert out == "usage: paper ok | out | jam | cover | cutter   (the printer is now: ok)\n", out
    assert _said(session, "paper jam")[0] == ""
    assert _said(session, "paper")[0].endswith("(the printer is now: jam)\n")
    out, _ = _said(session, "paper nope")
    assert out.startswith("usage: paper ok | out | jam")
    assert session.emu.printer_status() == "jam", "a wrong argument changes nothing"
    _said(session, "paper ok")
    assert session.emu.printer_status() == "ok"


def test_a_second_emulator_on_the_same_state_directory_refuses_to_start(session):
    payterm = os.path.join(os.path.dirname(sys.executable), "payterm")
    r = subprocess.run([payterm, "emulate", "--state", session.emu.state_dir], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr == ("payterm emulate: state directory %s is in use by another emulator (pid %d): stop that one, "
                        "or give this one its own --state DIR\n" % (session.emu.state_dir, os.getpid())), r.stderr
    assert session.emu.running(), "the first emulator runs on"
    assert "board: EMULATOR" in _said(session, "console status")[0]


def test_help_names_the_menu_and_the_pins(session):
    out, _ = _said(session, "help")
    assert "F menu: 1 refund, 2 void, 3 status, 4 reprint, 5 training mode, 9 technician" in out
    assert "merchant PIN (refund, void, training) 1234; technician PIN 4321" in out

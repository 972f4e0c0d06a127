"""The technician console UART survives any byte sequence and never echoes a card number.

Garbage goes straight onto the console pty (or the real terminal's port);
afterwards `status` still answers and the console task was never restarted.
"""
import random
import re

from payterm_tools.sim.cardsim import TEST_CARDS

PAN = TEST_CARDS["visa"].pan


def restarted(terminal):
    return re.search(rb"# TASK console restarted", terminal.console.buf) is not None


def answer_ok(terminal):
    lines = terminal.console.command("status")
    assert lines[-1] == "OK", lines
    assert any(l.startswith("board: ") for l in lines), lines
    return lines


def test_garbage_bytes_do_not_kill_the_console(terminal):
    rnd = random.Random(1605)
    junk = bytes(rnd.getrandbits(8) for _ in range(6000))
    for i in range(0, len(junk), 300):
        terminal.console.write(junk[i:i + 300])
    terminal.console.write(b"\xff\xfe\xc0\xaf\x80\x00\x1b[2J\x07\x7f\r\n")  # invalid UTF-8 and control bytes
    # every garbage line gets its ERR first; a marker command shows they are all answered
    terminal.console.write(b"code HW-06\n")
    terminal.console.expect(r"^id: HW-06\r?$", 20)
    terminal.console.expect(r"^OK\r?$", 5)
    answer_ok(terminal)
    answer_ok(terminal)
    assert not restarted(terminal), "the console task died and was restarted"
    faults = terminal.console.command("faults 20")
    assert not any("SYS-09" in l for l in faults), faults


def test_invalid_utf8_line_answers_err_and_the_next_command_works(terminal):
    terminal.console.skip()
    terminal.console.write(b"stat\xffus\n")
    m = terminal.console.expect(r"^ERR USAGE [^\r\n]*UTF-8[^\r\n]*$", 10)
    assert m
    answer_ok(terminal)
    assert not restarted(terminal)


def test_overlong_command_word_is_a_usage_error(terminal):
    r = terminal.console.command("x" * 300)
    assert r == ["ERR USAGE unknown command (try help)"], r
    r = terminal.console.command("s" * 20 + " faults")
    assert r[-1].startswith("ERR USAGE"), r


def test_line_over_512_bytes_is_dropped_whole(terminal):
    # A paste longer than any command: its tail must not run as a command.
    r = terminal.console.command("x" * 600 + " " * 520 + "status")
    assert r == ["ERR USAGE line too long (max 512 bytes)"], r
    answer_ok(terminal)


def test_pasted_card_number_is_not_echoed(terminal):
    for line in (PAN, "pan" + PAN, PAN + "=3012101", "code " + PAN, "faults " + PAN):
        r = terminal.console.command(line)
        assert r[-1].startswith("ERR") or r[-1] == "OK", r
        for l in r:
            assert not re.search(r"\d{12,}", l), l
    assert PAN.encode() not in terminal.console.buf
    assert not restarted(terminal)

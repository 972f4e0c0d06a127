"""Garbage on the terminal's real UARTs (emulator ptys): magstripe, PN532, keypad, console.

Random bytes and mutated real frames (swipes as the reader module sends them,
PN532 frames as the simulator sends them, the keys and commands the system
tests type) are written to each UART while the terminal works. Afterwards:
the firmware process is alive, no task was restarted (`# TASK ... restarted`),
every card failure it showed is in its statistics with its code, and a normal
sale is approved and reconciles with the acquirer's ledger. About 100 writes
per UART in `make test`, 1,000 in `make reliability`.
"""
import json
import os
import re
import time

import pytest

from payterm_tools.sim import cardsim
from payterm_tools.sim.cardsim import TEST_CARDS

from ledger import read_journal, reconcile  # noqa: E402 (host_tests/system, put on sys.path by its conftest)
from payterm_system_fixtures import start_sale  # noqa: E402

pytestmark = [pytest.mark.emulator_only, pytest.mark.reliability("fuzz_uart"), pytest.mark.timeout(900)]

WRITES = (100, 1000)  # per UART: make test, make reliability
HOST_WAIT = 30
RESTART_LINE_RE = re.compile(rb"# TASK \S+ restarted[^\n]*")
FAIL_RE = re.compile(rb"# FAIL SALE code=(\S+)")
INTERESTING = b"\x00\xff\x7f\x80%;?^=\r\n\x55\xd4\xd5"


@pytest.fixture
def terminal_config():
    # Short result screens and card waits: many sale attempts in little time (real terminal parameters).
    return {"result_ms": 300, "result_min_ms": 30, "page_ms": 500, "card_timeout_ms": 4000, "nfc_retry_ms": 300}


def mutate(data, rnd):
    b = bytearray(data)
    for _ in range(rnd.randint(1, 5)):
        if not b:
            b.extend(os.urandom(1))
            continue
        i = rnd.randrange(len(b))
        op = rnd.randrange(7)
        if op == 0:
            b[i] = rnd.randrange(256)
        elif op == 1:
            b[i] ^= 1 << rnd.randrange(8)
        elif op == 2:
            del b[i:i + rnd.randint(1, 4)]
        elif op == 3:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
        elif op == 4:
            del b[i:]
        elif op == 5:
            b[i] = INTERESTING[rnd.randrange(len(INTERESTING))]
        else:
            b[i:i] = b[i:i + rnd.randint(1, 8)] * rnd.randint(1, 3)
    return bytes(b)


def garbage(rnd, vectors, rand_max):
    if rnd.randrange(3) == 0:
        return bytes(rnd.randrange(256) for _ in range(rnd.randint(1, rand_max)))
    return mutate(rnd.choice(vectors), rnd)


def swipe_bytes(card):
    t1 = "%" + card.track1() + "?"
    t2 = ";" + card.track2() + "?"
    return (t1 + cardsim.lrc(t1, 0x20) + t2 + cardsim.lrc(t2, 0x30) + "\r\n").encode("latin-1")


class Writer:
    """Counts what goes onto a UART."""

    def __init__(self, fd):
        self.fd = fd
        self.writes = 0
        self.bytes = 0

    def __call__(self, data):
        if data:
            os.write(self.fd, data)
            self.writes += 1
            self.bytes += len(data)


def _faults(terminal):
    out = terminal.console.command("export", 20)
    return [json.loads(l) for l in out if l.startswith("{") and '"kind": "fault"' in l]


def _stats(terminal):
    out = terminal.console.command("export", 20)
    for line in out:
        if line.startswith("{") and '"kind": "stats"' in line:
            return json.loads(line)
    raise AssertionError("no stats in export: %r" % out[-3:])


def _settle(terminal, acquirer, wait=30):
    deadline = time.time() + wait
    while True:
        recs = read_journal(terminal.state_dir)
        if not [t for t in recs if t.get("st") in ("reversing", "pending")] or time.time() > deadline:
            return reconcile(recs, acquirer.ledger)
        time.sleep(0.25)


def _outcome(terminal):
    """The sale's TXN/FAIL line. A garbage burst can hold a whole valid track of a card that asks for
    PIN (visa_pin, maestro, ...): its PIN prompt is cancelled as a customer would (C with no digit,
    PIN-04), so the sale still ends with its line."""
    m = terminal.console.expect(r"# (TXN|FAIL) [^\n]*|# PIN REQUIRED", HOST_WAIT)
    if m.group(0).startswith(b"# PIN"):
        terminal.panel.wait_screen("PIN", 10)
        terminal.panel.press("C")
        m = terminal.console.expect(r"# (TXN|FAIL) [^\n]*", HOST_WAIT)
    return m


def _back_to_ready(terminal, tries=6):
    for _ in range(tries):
        try:
            terminal.panel.wait_screen("READY", 2)
            return
        except AssertionError:
            terminal.panel.press("C")
    terminal.panel.wait_screen("READY", 10)


def _quiet(channel, s=0.5, timeout=20):
    """Wait until the firmware has answered the backlog (no output for `s` seconds)."""
    end = time.monotonic() + timeout
    n = -1
    while time.monotonic() < end:
        if len(channel.buf) == n:
            return
        n = len(channel.buf)
        time.sleep(s)


def _after(rel, terminal, card_reader, acquirer, uart, w, t0_buf, how="swipe"):
    """The checks every UART gets once the garbage is in; records the figures, then fails with every problem."""
    problems = []
    alive = terminal.running()
    sale_ok = False
    if not alive:
        problems.append("firmware died:\n" + terminal.firmware_output()[-3000:])
    else:
        try:
            _quiet(terminal.console)
            for attempt in range(2):
                # A burst the loaded machine split in two leaves its tail in the UART for the next read:
                # one card-read failure from it is allowed before the sale that must go through.
                _back_to_ready(terminal)
                terminal.console.skip()
                start_sale(terminal, "1234")
                if how == "swipe":
                    card_reader.swipe("visa")
                else:
                    card_reader.tap("visa")
                m = _outcome(terminal)
                card_reader.remove()
                line = m.group(0).decode()
                if not re.search(r"code=(CRD|HW)-", line):
                    break
            if "APPROVED" in line:
                sale_ok = True
                _settle(terminal, acquirer)
            else:
                problems.append("the sale after the garbage: %s (screen %s)" % (line, terminal.panel.screen()))
            _quiet(terminal.console)
            st = terminal.console.command("status")
            if st[-1] != "OK":
                problems.append("console `status` after the garbage answered %r" % st[-3:])
        except AssertionError as e:
            problems.append(str(e))
    restarts = [m.group(0).decode("utf-8", "replace") for m in RESTART_LINE_RE.finditer(terminal.console.buf, t0_buf)]
    if restarts:
        problems.append("tasks restarted during the %s garbage: %s" % (uart, restarts[:5]))
    if alive:
        internal = [f for f in _faults(terminal) if f["code"] == "SYS-09"]
        if internal:
            problems.append("internal errors (SYS-09) during the %s garbage: %s"
                            % (uart, [(f["stage"], f.get("ctx", "")) for f in internal[:5]]))
    rel.record("fuzz_uart", writes=w.writes, bytes=w.bytes, restarts=len(restarts), deaths=0 if alive else 1,
               sales=1, sales_approved=1 if sale_ok else 0, uarts=[uart])
    assert not problems, "\n".join(problems)


def _failures_are_recorded(terminal, start):
    """Every card/reader failure the terminal showed during the garbage is counted under its code."""
    fails = {}
    for m in FAIL_RE.finditer(terminal.console.buf, start):
        code = m.group(1).decode()
        if code not in ("OPR-01", "OPR-02"):  # cancel, zero amount: the operator's input, not a fault
            fails[code] = fails.get(code, 0) + 1
    counts = _stats(terminal)["codes"]
    missing = {c: n for c, n in fails.items() if counts.get(c, 0) < n}
    assert not missing, "failures shown but not recorded: %r (stats %r)" % (missing, counts)
    return fails


# A garbage burst is over in a quarter of a second: a card wait of 1.5 s after it ends each attempt sooner.
@pytest.mark.parametrize("terminal_config", [{"result_ms": 300, "result_min_ms": 30, "page_ms": 500,
                                              "card_timeout_ms": 1500, "nfc_retry_ms": 300}], ids=["short_card_wait"])
def test_magstripe_uart_garbage(rel, terminal, card_reader, acquirer):
    rnd = rel.rng("mag")
    vectors = [swipe_bytes(c) for c in TEST_CARDS.values()] + [b"%E?;E?\r\n", b"\r\n"]
    w = Writer(terminal.ptys["mag"].fd)
    start = len(terminal.console.buf)
    n = rel.size(*WRITES)
    while w.writes < n:
        start_sale(terminal, str(rnd.randint(1, 9999)))
        terminal.console.skip()
        for _ in range(rnd.randint(2, 12)):  # one swipe's burst: writes closer than the reader's gap
            w(garbage(rnd, vectors, 120))
            time.sleep(rnd.uniform(0, 0.02))
        _outcome(terminal)
        _back_to_ready(terminal)
    fails = _failures_are_recorded(terminal, start)
    assert any(c.startswith("CRD-") for c in fails), "garbage swipes produced no card read failure: %r" % fails
    _after(rel, terminal, card_reader, acquirer, "magstripe", w, start)


def test_pn532_uart_garbage(rel, terminal, card_reader, acquirer):
    rnd = rel.rng("nfc")
    f = cardsim.pn532_frame
    vectors = [cardsim.ACK, cardsim.NACK, cardsim.ERROR_FRAME, f(b"\xd5\x03\x32\x01\x06\x07"),
               f(b"\xd5\x4b\x01\x01\x00\x04\x20\x04\x01\x02\x03\x04\x05\x78\x80\x70\x02"), f(b"\xd5\x4b\x00"),
               f(b"\xd5\x41\x00\x6a\x82"), f(b"\xd5\x15"), f(b"\xd5\x33"), b"\x55\x55\x00\x00\x00"]
    w = Writer(terminal.ptys["nfc"].fd)
    start = len(terminal.console.buf)
    n = rel.size(*WRITES)
    while w.writes < n:
        start_sale(terminal, str(rnd.randint(1, 9999)))
        terminal.console.skip()
        card_reader.tap(rnd.choice(["visa", "mastercard", "amex"]))
        for _ in range(rnd.randint(10, 30)):
            w(garbage(rnd, vectors, 40))
            time.sleep(rnd.uniform(0, 0.03))
        _outcome(terminal)
        card_reader.remove()
        _back_to_ready(terminal)
    _failures_are_recorded(terminal, start)
    _after(rel, terminal, card_reader, acquirer, "pn532", w, start, how="tap")


def test_keypad_uart_garbage(rel, terminal, card_reader, acquirer):
    rnd = rel.rng("panel")
    vectors = [b"1250E", b"0E", b"F1500E", b"F2000001E", b"F3000001E", b"F90000E", b"C", b"B", b"*#", b"F9C"]
    w = Writer(terminal.ptys["panel"].fd)
    start = len(terminal.console.buf)
    n = rel.size(*WRITES)
    while w.writes < n:
        w(garbage(rnd, vectors, 12))
        time.sleep(rnd.uniform(0.005, 0.04))
    _back_to_ready(terminal, tries=10)
    _failures_are_recorded(terminal, start)
    _after(rel, terminal, card_reader, acquirer, "keypad", w, start)


def test_console_uart_garbage(rel, terminal, card_reader, acquirer):
    rnd = rel.rng("console")
    vectors = [b"help\n", b"status\n", b"faults 5\n", b"stats\n", b"wait\n", b"code CRD-05\n", b"export\n",
               b"pin 1234\n", b"clear\n", b"logout\n", b"selftest storage\n", "code caf\u00e9\n".encode()]
    w = Writer(terminal.ptys["console"].fd)
    start = len(terminal.console.buf)
    n = rel.size(*WRITES)
    while w.writes < n:
        r = rnd.randrange(6)
        if r == 0:
            w(bytes(rnd.randrange(0x80, 0x100) for _ in range(rnd.randint(1, 20))) + b"\n")  # invalid UTF-8
        elif r == 1:
            w(rnd.choice(vectors).rstrip(b"\n") * rnd.randint(50, 120) + b"\n")  # over-long line
        elif r == 2:
            w(bytes(rnd.randrange(0, 32) for _ in range(rnd.randint(1, 12))))  # control bytes
        else:
            w(garbage(rnd, vectors, 60))
        time.sleep(rnd.uniform(0.005, 0.03))
    w(b"\n")
    _after(rel, terminal, card_reader, acquirer, "console", w, start)

"""Card reader simulators over real ptys: framing, faults, and the firmware driving them.

The magstripe bytes and PN532 frames are checked with the ISO/IEC 7811-2
and UM0701-02 rules written out here, not with the simulator's helpers.
The end-to-end tests run payterm.card.service in MicroPython on the pty
slaves, as the emulator does.
"""
import os
import select
import subprocess
import textwrap
import time
import tty

import pytest

import mpy_runtimes
from payterm_tools.sim.cardsim import CardReaderSim, EmvCard, TEST_CARDS, luhn_ok

ACK = bytes.fromhex("0000ff00ff00")
NACK = bytes.fromhex("0000ffff0000")


@pytest.fixture
def ptys():
    mag_m, mag_s = os.openpty()
    nfc_m, nfc_s = os.openpty()
    for fd in (mag_s, nfc_s):
        tty.setraw(fd)
    sim = CardReaderSim(mag_m, nfc_m).start()
    yield sim, mag_s, nfc_s
    sim.stop()
    for fd in (mag_m, mag_s, nfc_m, nfc_s):
        os.close(fd)


def read_until(fd, pred, timeout=2.0):
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred(buf):
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            buf += os.read(fd, 1024)
    return buf


def read_quiet(fd, quiet=0.2, timeout=2.0):
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], quiet)
        if not r:
            break
        buf += os.read(fd, 1024)
    return buf


def host_frame(cmd, params=b""):
    data = bytes([0xD4, cmd]) + params
    return bytes([0, 0, 0xFF, len(data), (0x100 - len(data)) & 0xFF]) + data + bytes([(0x100 - sum(data)) & 0xFF, 0])


def split_frames(buf):
    """Parse PN532->host bytes into ('ack'|'nack'|'err'|'frame', data) checking LCS/DCS."""
    out = []
    i = 0
    while True:
        k = buf.find(b"\x00\xff", i)
        if k < 0 or k + 4 > len(buf):
            return out
        ln, lcs = buf[k + 2], buf[k + 3]
        if (ln, lcs) == (0, 0xFF):
            out.append(("ack", b""))
            i = k + 4
            continue
        assert (ln + lcs) & 0xFF == 0, "LCS"
        data = buf[k + 4:k + 4 + ln]
        dcs = buf[k + 4 + ln]
        if (sum(data) + dcs) & 0xFF:
            out.append(("bad", data))
        elif data == b"\x7f":
            out.append(("err", data))
        else:
            assert data[0] == 0xD5
            out.append(("frame", data[1:]))
        i = k + 5 + ln


def lrc_ok(track, base):
    x = 0
    for ch in track:
        x ^= (ch - base) & 0x3F
    return x == 0


# ---------------------------------------------------------------- catalog


def test_catalog_cards():
    for name in ("visa", "mastercard", "amex", "expired", "bad_luhn", "chip_swipe", "unsupported_aid"):
        assert name in TEST_CARDS
    assert luhn_ok(TEST_CARDS["visa"].pan)
    assert not luhn_ok(TEST_CARDS["bad_luhn"].pan)
    assert TEST_CARDS["chip_swipe"].service_code[0] == "2"
    assert TEST_CARDS["expired"].expiry < time.strftime("%y%m")
    assert "4761739001010010" not in repr(TEST_CARDS["visa"])


# ---------------------------------------------------------------- magstripe


def test_swipe_bytes_follow_iso7811(ptys):
    sim, mag, _ = ptys
    sim.swipe("visa")
    data = read_until(mag, lambda b: b.endswith(b"\r\n"))
    assert data.endswith(b"\r\n")
    t1_end = data.index(b"?")
    t1 = data[:t1_end + 1]
    assert t1.startswith(b"%B4761739001010010^")
    # LRC including itself XORs to zero
    assert lrc_ok(data[:t1_end + 2], 0x20)
    rest = data[t1_end + 2:]
    assert rest.startswith(b";4761739001010010=3012101")
    e2 = rest.index(b"?")
    assert lrc_ok(rest[:e2 + 2], 0x30)


@pytest.mark.parametrize("opt,check", [
    ({"no_start": 2}, lambda d: b";" not in d and b"4761739001010010=" in d),
    ({"no_end": 2}, lambda d: d.split(b";", 1)[1].count(b"?") == 0),
    ({"bad_lrc": 2}, lambda d: not lrc_ok(d[d.index(b";"):d.index(b";") + d[d.index(b";"):].index(b"?") + 2], 0x30)),
    ({"empty": True}, lambda d: d.startswith(b"%?")),
    ({"parity": 2}, lambda d: any(c < 0x30 or c > 0x3F for c in d[d.index(b";") + 1:d.rindex(b"?")])),
    ({"sentinels": False}, lambda d: b"%" not in d and b";" not in d and b"\r\n" in d.strip()),
    ({"reader_error": True}, lambda d: d.startswith(b"%E?")),
])
def test_swipe_faults(ptys, opt, check):
    sim, mag, _ = ptys
    sim.swipe("visa", **opt)
    data = read_until(mag, lambda b: b.endswith(b"\r\n"))
    assert check(data), data


def test_swipe_raw_and_tuple(ptys):
    sim, mag, _ = ptys
    sim.swipe((None, "4111111111111111=30121010000"), lrc_char=False)
    assert read_until(mag, lambda b: b.endswith(b"\r\n")) == b";4111111111111111=30121010000?\r\n"
    sim.swipe(b"%E?\r")
    assert read_until(mag, lambda b: b.endswith(b"\r")) == b"%E?\r"


# ---------------------------------------------------------------- PN532


def command(nfc, cmd, params=b""):
    os.write(nfc, host_frame(cmd, params))
    buf = read_until(nfc, lambda b: len(split_frames(b)) >= 2)
    fr = split_frames(buf)
    assert fr[0] == ("ack", b""), fr
    return fr[1]


def test_pn532_frames_and_polling(ptys):
    sim, _, nfc = ptys
    os.write(nfc, b"\x55\x55" + bytes(14))
    kind, data = command(nfc, 0x02)
    assert kind == "frame" and data[0] == 0x03 and data[1] == 0x32
    assert command(nfc, 0x14, b"\x01\x14\x00") == ("frame", b"\x15")
    assert command(nfc, 0x4A, b"\x02\x00") == ("frame", b"\x4b\x00")
    sim.tap("visa")
    kind, data = command(nfc, 0x4A, b"\x02\x00")
    assert data[1] == 1 and data[2] == 1 and data[5] & 0x20, data.hex()
    uid = data[7:7 + data[6]]
    assert len(uid) == 4 and uid[0] == 0x08, "random UID per tap"
    sim.tap(EmvCard("4111111111111111", uid=b"\x04\x01\x02\x03", random_uid=False))
    assert command(nfc, 0x4A, b"\x02\x00")[1][7:11] == b"\x04\x01\x02\x03"
    sim.tap("visa")
    command(nfc, 0x4A, b"\x02\x00")
    kind, data = command(nfc, 0x40, b"\x01\x00\xa4\x04\x00\x0e2PAY.SYS.DDF01\x00")
    assert data[1] == 0x00 and data[-2:] == b"\x90\x00" and data[2] == 0x6F
    sim.collide("visa", "mastercard")
    assert command(nfc, 0x4A, b"\x02\x00")[1][1] == 2
    sim.remove()
    sim.tap(EmvCard("4111111111111111", remove_at="gpo"))
    command(nfc, 0x4A, b"\x02\x00")
    assert command(nfc, 0x40, b"\x01\x80\xa8\x00\x00\x02\x83\x00\x00")[1][:2] == b"\x41\x01"
    assert sim.apdus() == ["00a40400", "80a80000"]


def test_pn532_nack_error_and_silence(ptys):
    sim, _, nfc = ptys
    sim.corrupt_next()
    os.write(nfc, host_frame(0x02))
    fr = split_frames(read_until(nfc, lambda b: len(split_frames(b)) >= 2))
    assert fr[1][0] == "bad"
    os.write(nfc, NACK)
    fr = split_frames(read_until(nfc, lambda b: len(split_frames(b)) >= 1))
    assert fr[0][0] == "frame" and fr[0][1][0] == 0x03, "retransmitted"
    os.write(nfc, host_frame(0x99))
    fr = split_frames(read_until(nfc, lambda b: len(split_frames(b)) >= 2))
    assert [k for k, _ in fr] == ["ack", "err"]
    bad = bytearray(host_frame(0x02))
    bad[-2] ^= 1
    os.write(nfc, bytes(bad))
    assert read_quiet(nfc) == b"", "a frame with a bad DCS is ignored"
    sim.set_responding(False)
    os.write(nfc, host_frame(0x02))
    assert read_quiet(nfc) == b""
    assert ("bad_frame", "d402") in sim.log


# ---------------------------------------------------------------- end to end

E2E = textwrap.dedent('''
    import sys, asyncio, time, termios
    from payterm.card.service import CardService
    from payterm.errors import Fault

    def stream(path):
        # raw, and VMIN=0/VTIME=0 so read(n) returns what is there (as a UART with timeout)
        f = open(path, "r+b", buffering=0)
        termios.setraw(f.fileno())
        a = termios.tcgetattr(f.fileno())
        a[6][5] = 0  # VTIME
        a[6][6] = 0  # VMIN
        termios.tcsetattr(f.fileno(), termios.TCSANOW, a)
        return asyncio.StreamReader(f)

    def prompt(event, fault=None):
        # the card prompt: the test presents a card only once it is asked for
        print({"present": "PROMPT", "remove": "REMOVE"}.get(event, event))

    async def main():
        # one read per presentment, so each read error is reported as the result
        svc = CardService(stream(sys.argv[1]), stream(sys.argv[2]), time.ticks_ms, time.time,
                          {"nfc_poll_ms": 30, "mag_gap_ms": 50, "nfc_retry_ms": 300, "card_read_tries": 1})
        print("READY")
        for i in range(int(sys.argv[3])):
            try:
                c = await svc.present(1000, "978", 4000, prompt)
                f = c.auth_fields()
                print("CARD", c.source, c.masked, c.entry_mode, c.label, "55" in f, repr(c))
            except Fault as e:
                print("FAULT", e.code)
            sys.stdin.readline()
    asyncio.run(main())
''')


class Mpy:
    def __init__(self, tmp_path, mag_path, nfc_path, n):
        script = tmp_path / "e2e.py"
        script.write_text(E2E)
        self.p = subprocess.Popen([mpy_runtimes.binary("unix"), str(script), mag_path, nfc_path, str(n)],
                                  env=mpy_runtimes.env_for("unix"), cwd=mpy_runtimes.REPO,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def next(self):
        return self.p.stdout.readline().strip()

    def prompt(self):
        """Wait until the presentment asks for a card (a REMOVE before it is skipped)."""
        while True:
            out = self.next()
            if out == "PROMPT":
                return
            assert out == "REMOVE", out

    def line(self):
        """The presentment's result; the next presentment starts after it."""
        out = self.next()
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        return out

    def close(self):
        self.p.kill()
        self.p.wait()


@pytest.fixture
def e2e(tmp_path):
    mag_m, mag_s = os.openpty()
    nfc_m, nfc_s = os.openpty()
    sim = CardReaderSim(mag_m, nfc_m).start()
    procs = []

    def run(n):
        m = Mpy(tmp_path, os.ttyname(mag_s), os.ttyname(nfc_s), n)
        procs.append(m)
        line = m.p.stdout.readline()
        assert "READY" in line, line + m.p.stdout.read()
        return m

    yield sim, run
    for m in procs:
        m.close()
    sim.stop()
    for fd in (mag_m, mag_s, nfc_m, nfc_s):
        os.close(fd)


def test_e2e_tap_swipe_and_failures(e2e):
    sim, run = e2e
    m = run(6)
    m.prompt()
    sim.tap("visa")
    out = m.line()
    assert out.startswith("CARD tap 476173******0010 071 VISA CREDIT True"), out
    assert "4761739001010010" not in out
    sim.remove()
    m.prompt()
    sim.swipe("mastercard")
    assert m.line().startswith("CARD swipe 541333******0434 901"), "swipe"
    m.prompt()
    sim.swipe("chip_swipe")
    assert m.line() == "FAULT CRD-10"
    m.prompt()
    sim.swipe("visa", bad_lrc=2, tracks=(2,))
    assert m.line() == "FAULT CRD-05"
    m.prompt()
    sim.tap("expired")
    assert m.line() == "FAULT CRD-08"
    sim.remove()
    m.prompt()
    sim.collide("visa", "amex")
    assert m.line() == "FAULT CRD-12"
    cmds = sim.commands()
    assert cmds[:3] == [0x14, 0x32, 0x02], cmds
    assert ("bad_frame",) not in [e[:1] for e in sim.log], "every frame the firmware sent was valid"


def test_e2e_reader_not_responding_and_noise(e2e):
    sim, run = e2e
    sim.set_responding(False)
    m = run(3)
    m.prompt()
    assert m.line() == "FAULT HW-01"
    sim.set_responding(True)
    time.sleep(0.5)
    sim.garbage_next()
    sim.corrupt_next()
    m.prompt()
    sim.tap("amex")
    out = m.line()
    assert out.startswith("CARD tap 374245*****0126 071 AMERICAN EXPRESS"), out
    assert ("nack",) in sim.log, "corrupted frame was NACKed"
    sim.remove()
    m.prompt()
    sim.tap(EmvCard("4761739001010010", service_code="201", remove_at="read"))
    assert m.line() == "FAULT CRD-11"


SWIPE_FAULTS = [
    ({"no_start": True}, "CRD-03"),
    ({"no_end": True}, "CRD-04"),
    ({"bad_lrc": True}, "CRD-05"),
    ({"empty": True}, "CRD-02"),
    ({"parity": True}, "CRD-06"),
    ({"reader_error": True}, "CRD-06"),
]


def test_e2e_swipe_faults_map_to_codes(e2e):
    sim, run = e2e
    cases = SWIPE_FAULTS + [("bad_luhn", "CRD-07"), ("expired", "CRD-08"), ("ok", "CARD")]
    m = run(len(cases))
    for opt, want in cases:
        m.prompt()
        if opt == "ok":
            sim.swipe("visa", sentinels=False)
        elif isinstance(opt, str):
            sim.swipe(opt)
        else:
            sim.swipe("visa", **opt)
        got = m.line()
        assert got.startswith("CARD swipe" if want == "CARD" else "FAULT %s" % want), (opt, got)


def test_e2e_card_left_on_reader_is_read_once(e2e):
    sim, run = e2e
    m = run(2)
    card = EmvCard("4761739001010010", service_code="101", uid=b"\x04\x10\x20\x30", random_uid=False)
    m.prompt()
    sim.tap(card)
    assert m.line().startswith("CARD tap"), "first read"
    # still lying there: the next presentment asks to take it away and does not read it
    assert m.next() == "REMOVE"
    n = sim.commands().count(0x40)
    assert n == 5, "one full read (PPSE, AID, GPO, 2 records)"
    time.sleep(0.3)
    assert sim.commands().count(0x40) == n, "not read again while it lies there"
    sim.remove()
    assert m.next() == "PROMPT", "field seen empty: asked for a card again"
    sim.tap(card)
    assert m.line().startswith("CARD tap"), "taken away and tapped again"
    assert sim.commands().count(0x40) == 2 * 5


@pytest.mark.parametrize("baud", [9600, 115200])
def test_pn532_bytes_take_their_time_on_the_line(baud):
    """The simulator paces both directions at the baud rate (8N1: 10 bits a byte)."""
    nfc_m, nfc_s = os.openpty()
    tty.setraw(nfc_s)
    sim = CardReaderSim(None, nfc_m, baud=baud).start()
    try:
        cmd = host_frame(0x02)  # GetFirmwareVersion: 9 bytes in; ACK (6) + 13-byte answer out
        want = 28 * 10.0 / baud
        for _ in range(3):
            t0 = time.monotonic()
            os.write(nfc_s, cmd)
            got = read_until(nfc_s, lambda b: len(b) >= 19)
            took = time.monotonic() - t0
            assert got[:6] == ACK and got[6:][:7] == bytes.fromhex("0000ff06fad503"), got.hex()
            assert took >= want * 0.95, "%.2f ms for %d bytes at %d baud" % (took * 1000, 28, baud)
            assert took < want + 0.1
        wire = sum(e[2] for e in sim.trace if e[0] == "wire")
        assert abs(wire - 3 * want) < want * 0.2, (wire, want)
    finally:
        sim.stop()
        os.close(nfc_m)
        os.close(nfc_s)


def test_simulated_cards_keep_their_names_and_tap_through_their_kernel():
    for name in ("visa", "mastercard", "amex", "expired", "bad_luhn", "chip_swipe", "unsupported_aid", "two_apps"):
        assert name in TEST_CARDS
    assert TEST_CARDS["visa"].kernel == "qvsdc" and TEST_CARDS["mastercard"].kernel == "mchip"
    assert TEST_CARDS["girocard"].aids[0][0] == "A0000003591010028001"
    for c in TEST_CARDS.values():
        assert luhn_ok(c.pan) == (c is not TEST_CARDS["bad_luhn"]), c

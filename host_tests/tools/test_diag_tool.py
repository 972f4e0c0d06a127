"""`payterm diag` against a console served over a real pty by the firmware's Console.

A MicroPython process runs payterm.diag with a day of simulated terminal
activity (seeded: card reads, retries, declines, timeouts, paper out,
reboots), then serves the console line protocol on its stdin/stdout, which
are the master side of a pty; the tool opens the slave path with pyserial
like a USB-serial port.
"""
import json
import os
import pty
import subprocess
import tty

import pytest

import mpy_runtimes
from payterm_tools import diag as diag_tool

DEVICE = r'''
import sys, asyncio
from payterm.diag import Diag
from payterm.diag.console import Console
from payterm.diag.pin import PinGate
from payterm.diag.selftest import SelfTests
from payterm.errors import Fault

state = sys.argv[1]
mode = sys.argv[2]
wall = [1763884800]  # 2025-11-23 08:00 UTC
tk = [0]
seed = [20251123]

def rnd(n):
    seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return (seed[0] >> 4) % n

dg = Diag(state, lambda: wall[0], lambda: tk[0])
dg.boot("power")
for i in range(40):
    ref = "T%04d" % (i + 1)
    wall[0] += 300 + rnd(900)
    tk[0] += 1000
    code = None
    dg.wait(ref, "amount", 1500 + rnd(2500))
    present = 900 + rnd(3000)
    read = 90 + rnd(200)
    if rnd(6) == 0:
        dg.fault("CRD-05", "mag", "lrc")
        present += 2000 + rnd(2000)
    dg.wait(ref, "present", present)
    dg.wait(ref, "read", read)
    connect = 80 + rnd(320)
    host = 0
    if rnd(8) == 0:
        dg.fault("NET-03", "connect", "127.0.0.1:8583")
        dg.count("retry")
        dg.wait(ref, "retry", 1000 + rnd(3000))
    r = rnd(20)
    if r == 0:
        dg.fault("HST-01", "host", "stan %06d" % (i + 1))
        dg.wait(ref, "host", 15000)
        code = "HST-01"
        for k in range(1 + rnd(12)):  # the worker repeats the reversal in the background
            dg.fault("HST-01", "retry", "reversal %s try %d" % (ref, k + 1))
    else:
        dg.wait(ref, "host", 300 + rnd(2700))
        if r == 1:
            dg.fault("ISS-51", "host", "card 4761739001010119")
            code = "ISS-51"
        elif r == 2:
            dg.fault("ISS-05", "host")
            code = "ISS-05"
        elif r == 3:
            dg.fault("ISS-N7", "host")
            code = "ISS-N7"
    dg.wait(ref, "connect", connect)
    if 25 <= i <= 27:
        dg.fault("HW-03", "print")
        dg.wait(ref, "print", 0)
    else:
        dg.wait(ref, "print", 800 + rnd(700))
    dg.txn_done(ref, code)
    if i == 20:
        dg.count("breaker_trip")
        dg.count("host_switch")
        dg.boot("watchdog")
dg.flush()

async def reader():
    return "PN532 v1.6"

async def printer():
    raise Fault("HW-03", "paper out", "print")

st = SelfTests(dg)
st.add("reader", reader)
st.add("printer", printer)
class Queue:
    """The background worker's open items, as the app's worker lists them."""

    def items(self):
        return [("reversal", {"ref": "000031", "st": "reversing", "amt": 1250, "cur": 978, "rv_out": 3,
                              "code": "HST-01"}, 8000),
                ("advice", {"ref": "000033", "st": "failed", "amt": 900, "cur": 978, "tries": 20, "code": "HST-07"},
                 None)]

def link():
    return {"link": "online", "host": "127.0.0.1:8583", "breaker": "closed", "requests": 52, "retries": 5,
            "retries_total": 9, "breaker_trips": 1, "host_switches": 1, "ambiguous": 2, "probes": 3,
            "last_echo": "ok 85ms 12s ago"}

def recent(n):
    return [{"ref": "%06d" % (40 - i), "kind": "sale", "status": "approved", "amt": 1000 + i, "cur": 978,
             "pan": "476173******0119", "code": "", "ts": wall[0] - i * 60, "offline": False} for i in range(n)]

con = Console(dg, st, PinGate(state + "/pin.json", "4321", lambda: wall[0]), lambda: wall[0],
              lambda: {"version": "0.1.0", "board": "EMULATOR", "tid": "TERM0001", "link": "online", "saf_pending": 1,
                       "saf_failed": 1, "saf_failed_refs": "000033", "reversals_pending": 1, "mem_free": 118000},
              queue=Queue(), link=link, recent=recent)

async def main():
    if mode == "export":
        for l in await con.handle("export"):
            print(l)
        return
    out = sys.stdout
    out.write("# READY payterm 0.1.0 board=EMULATOR\r\n")
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        for l in await con.handle(line.strip()):
            out.write(l + "\r\n")

asyncio.run(main())
'''


def workload_export(tmp_path):
    """Export lines of the simulated day, produced by the firmware itself."""
    state = tmp_path / "state"
    state.mkdir()
    script = tmp_path / "device.py"
    script.write_text(DEVICE)
    res = mpy_runtimes.run("unix", [str(script), str(state), "export"], timeout=60)
    assert res.returncode == 0, res.stdout
    lines = res.stdout.splitlines()
    assert lines[-1] == "OK"
    return lines[:-1]


@pytest.fixture
def device(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    script = tmp_path / "device.py"
    script.write_text(DEVICE)
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([mpy_runtimes.unix_binary(), str(script), str(state), "serve"], stdin=master,
                            stdout=master, stderr=subprocess.DEVNULL, env=mpy_runtimes.env_for("unix"),
                            cwd=mpy_runtimes.REPO)
    os.close(master)
    path = os.ttyname(slave)
    yield path
    proc.kill()
    proc.wait()
    os.close(slave)


def test_export_over_pty_parses_into_every_section(device):
    exp = diag_tool.read_export(device, timeout=20)
    assert exp["status"]["board"] == "EMULATOR"
    assert exp["stats"]["boot_count"] == 2
    assert exp["stats"]["boots"] == {"power": 1, "watchdog": 1}
    assert exp["waits"]["txns"] == 40
    assert len(exp["waits"]["history"]) == 32
    for cid in exp["stats"]["codes"]:
        assert exp["codes"][cid]["remedy"]
    assert exp["faults"], exp
    for f in exp["faults"]:
        assert "4761739001010119" not in f["ctx"]


def test_cli_report_over_pty(device, tmp_path, capsys):
    from payterm_tools.cli import main

    html_path = tmp_path / "r.html"
    assert main(["diag", "--port", device, "--html", str(html_path), "--pin", "4321", "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    exp = diag_tool.read_export(device, timeout=20)
    top_code, top_n = sorted(exp["stats"]["codes"].items(), key=lambda kv: (-kv[1], kv[0]))[0]
    entry = exp["codes"][top_code]
    # the most frequent failure is listed with its display text and remedy
    assert "%5d  %-7s %s" % (top_n, top_code, entry["display"]) in out
    assert "remedy: " + entry["remedy"] in out
    for stage, v in exp["waits"]["stages"].items():
        assert "p50 %6d ms  p95 %6d ms" % (v["p50"], v["p95"]) in out, stage
    # warnings first, then why customers waited, with the code and its remedy
    assert out.index("CRITICAL: 1 offline sale not delivered to the bank (HST-07): 000033") < out.index("Why customers")
    w = exp["waits"]
    top = w["top"][0]
    assert "  customers wait most at %s (%d%% of terminal time)" % (top["stage"], top["share"]) in out
    e = exp["codes"][top["code"]]
    assert ("%s %s" % (top["code"], e["display"])) in out and "do: " + e["remedy"] in out
    assert w["why"] in out
    for sd in ("customer", "terminal"):
        assert "%-9s %3d%% of all waiting  p50 %6d ms" % (sd, w[sd]["share"], w[sd]["p50"]) in out
    assert "Last echo test                 ok 85ms 12s ago" in out
    assert "Free heap                      115.2 KiB" in out and "mem_free" not in out
    assert "watchdog" in out and "breaker_trip" in out
    assert html_path.read_text().startswith("<!DOCTYPE html>")


def test_wrong_pin_is_reported_not_crashed(device, capsys):
    from payterm_tools.cli import main

    assert main(["diag", "--port", device, "--pin", "0000", "--timeout", "20"]) == 2
    assert "OPR-05" in capsys.readouterr().err


def test_text_report_from_the_firmware_export(tmp_path):
    exp = diag_tool.parse_export(workload_export(tmp_path))
    text = diag_tool.text_report(exp)
    for cat in exp["stats"]["categories"]:
        assert cat in text
    for f in exp["faults"][:10]:
        assert f["code"] in text
    json.dumps(exp)  # the export is plain data (saved with --json)

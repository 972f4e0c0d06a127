"""The `payterm` CLI a firmware engineer uses: emulate (scripted), build, provision, deploy."""
import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
import tty

import pytest

import mpy_runtimes

PAYTERM = os.path.join(os.path.dirname(sys.executable), "payterm")


def test_emulate_runs_a_sale_a_person_would(tmp_path):
    script = tmp_path / "session.txt"
    script.write_text("1250E\nswipe visa\nE\n2000E\ntap mastercard\nremove\nE\nconsole status\nledger\n")
    r = subprocess.run([PAYTERM, "emulate", "--state", str(tmp_path / "flash"), "--script", str(script)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    out = r.stdout
    assert r.returncode == 0, out
    assert "technician console: /dev/pts/" in out
    assert out.count("| APPROVED") >= 2, out
    assert "0200 000001 auth 1250 rc=00 476173******0010" in out
    assert "0200 000002 auth 2000 rc=00 541333******0434" in out, "the second sale's keys were not dropped"
    assert "| PAYTERM DEMO SHOP    |\n| READY" in out.rsplit("> E\n", 1)[1], "back at the idle screen"
    assert "board: EMULATOR" in out
    # the state directory is the terminal's flash and stays for the next run
    assert os.listdir(tmp_path / "flash")


def test_build_produces_bytecode_that_runs(tmp_path):
    out = tmp_path / "mpy"
    r = subprocess.run([PAYTERM, "build", "--out", str(out), "--arch", "x64"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "main.py").exists()
    assert (out / "payterm" / "mask.mpy").exists()
    assert not list(out.rglob("payterm/*.py"))
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(out))
    r = subprocess.run([mpy_runtimes.unix_binary(), "-c",
                        "import payterm.mask as m, payterm.errors as e; print(m.mask_pan('4761739001010010'));"
                        "print(e.Fault('CRD-07', 'luhn'))"], env=env, capture_output=True, text=True)
    assert r.stdout.split() == ["476173******0010", "CRD-07", "luhn"], r.stdout + r.stderr


def _provision(tmp_path, *extra, board="TERMINAL_ESP32S3", name="term.json"):
    out = tmp_path / name
    r = subprocess.run([PAYTERM, "provision", "--board", board, "--tid", "TERM0042", "--mid", "MERCHANT0000042",
                        "--host", "127.0.0.1:8583", "--currency", "978", "--tech-pin", "2468",
                        "--wlan-ssid", "shop", "--wlan-password", "correct horse", "--out", str(out)] + list(extra),
                       capture_output=True, text=True)
    return r, out


def test_provision_writes_a_file_the_firmware_accepts_with_only_the_pin_hash(tmp_path):
    r, out = _provision(tmp_path, "--floor-limit", "2500", "--set", "read_timeout_ms=20000")
    assert r.returncode == 0, r.stderr
    p = json.loads(out.read_text())
    assert (p["terminal_id"], p["hosts"], p["floor_limit"], p["read_timeout_ms"]) == ("TERM0042", ["127.0.0.1:8583"],
                                                                                   2500, 20000)
    assert "2468" not in out.read_text(), "the PIN itself is never written"
    scheme, salt, digest = p["tech_pin_hash"].split("$")
    import hashlib

    assert scheme == "sha256" and digest == hashlib.sha256(("%s:2468" % salt).encode()).hexdigest()
    ok = subprocess.run([PAYTERM, "provision", "--board", "TERMINAL_ESP32S3", "--check", str(out)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "valid" in ok.stdout, ok.stderr


def test_provision_writes_the_initial_key_file_for_the_emulator_and_on_request(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    r, out = _provision(state, board="EMULATOR", name="provision.json")
    assert r.returncode == 0, r.stderr
    ikey = json.loads((state / "ikey.json").read_text())
    assert ikey["ikid"].startswith("12345678") and ikey["ikid"][8] in "ABCDEF", ikey["ikid"]
    assert ikey["ikid"] in r.stdout and ikey["kcv"] in r.stdout and ikey["ik"] not in r.stdout, "never the key"
    assert oct((state / "ikey.json").stat().st_mode & 0o777) == "0o600"
    from payterm_tools.sim import hsm

    assert hsm.Hsm().provisioning_record(bytes.fromhex(ikey["ikid"])) == ikey, "derived from the test BDK"
    # a directory that has a key (waiting or loaded) gets no second one: one key per key ID, once
    r, _ = _provision(state, board="EMULATOR", name="provision.json")
    assert json.loads((state / "ikey.json").read_text()) == ikey and "ikey.json" not in r.stdout
    # a real board's key comes from the injection facility: only on request
    board = tmp_path / "board"
    board.mkdir()
    _provision(board)
    assert not (board / "ikey.json").exists()
    r, _ = _provision(board, "--ikey", "--ikid", "12345678ABCDEF01")
    assert r.returncode == 0 and json.loads((board / "ikey.json").read_text())["ikid"] == "12345678ABCDEF01"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _provision(fresh, "--no-ikey", board="EMULATOR")
    assert not (fresh / "ikey.json").exists()


def test_provision_refuses_each_bad_field_with_its_code(tmp_path):
    r, out = _provision(tmp_path, "--tid", "T1", "--host", "nohostport", "--set", "floorlimit=1")
    assert r.returncode == 1 and not out.exists()
    assert "SYS-22 terminal_id" in r.stderr and "SYS-24 hosts" in r.stderr and "SYS-29 floorlimit" in r.stderr, r.stderr
    # a WLAN board needs credentials; the emulator does not
    p = tmp_path / "nowlan.json"
    ok, good = _provision(tmp_path)
    d = json.loads(good.read_text())
    del d["wlan"]
    p.write_text(json.dumps(d))
    bad = subprocess.run([PAYTERM, "provision", "--board", "TERMINAL_ESP32C3", "--check", str(p)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "SYS-28 wlan" in bad.stderr, bad.stderr
    emu = subprocess.run([PAYTERM, "provision", "--board", "EMULATOR", "--check", str(p)], capture_output=True,
                         text=True)
    assert emu.returncode == 0, emu.stderr


def test_deploy_needs_a_board_and_a_valid_provisioning_file(tmp_path):
    src = tmp_path / "mpy"
    src.mkdir()
    _, prov = _provision(tmp_path)
    base = [PAYTERM, "deploy", "--port", "/dev/ttyACM0", "--src", str(src), "--dry-run"]
    r = subprocess.run(base + ["--provision", str(prov)], capture_output=True, text=True)
    assert r.returncode != 0 and "--board" in r.stderr, "no default board for a device"
    r = subprocess.run(base + ["--board", "EMULATOR", "--provision", str(prov)], capture_output=True, text=True)
    assert r.returncode != 0 and "not a device" in r.stderr
    r = subprocess.run(base + ["--board", "TERMINAL_ESP32S3"], capture_output=True, text=True)
    assert r.returncode != 0 and "--provision" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(json.loads(prov.read_text()), currency=1)))
    r = subprocess.run(base + ["--board", "TERMINAL_ESP32S3", "--provision", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "SYS-25 currency" in r.stderr and "not deployed" in r.stderr
    r = subprocess.run(base + ["--board", "TERMINAL_ESP32S3", "--provision", str(prov)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1:4] == ["connect", "/dev/ttyACM0", "resume"], r.stdout
    assert "boards/TERMINAL_ESP32S3/hardware.json :hardware.json" in r.stdout
    assert "%s :provision.json" % prov in r.stdout
    assert r.stdout.rstrip().endswith("+ reset"), "the terminal boots what was copied"
    make = subprocess.run(["make", "-s", "deploy", "PORT=/dev/ttyACM0"], cwd=mpy_runtimes.REPO, capture_output=True,
                          text=True)
    assert make.returncode != 0 and "needs BOARD=" in make.stdout + make.stderr


class PtyRepl:
    """The MicroPython unix port's REPL on a pty, reached through a second pty as over a USB-serial cable.

    mpremote talks to it as to a device: raw REPL, raw-paste, file transfer. Its
    working directory stands for the terminal's flash root.
    """

    def __init__(self, root):
        self.dev_m, dev_s = pty.openpty()
        self.host_m, self.host_s = pty.openpty()
        for fd in (self.dev_m, dev_s, self.host_m, self.host_s):
            tty.setraw(fd)
        self.path = os.ttyname(self.host_s)
        self.proc = subprocess.Popen([mpy_runtimes.unix_binary()], stdin=dev_s, stdout=dev_s, stderr=dev_s,
                                     cwd=str(root))
        os.close(dev_s)
        self._stop = False
        for a, b in ((self.dev_m, self.host_m), (self.host_m, self.dev_m)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        while not self._stop:
            r, _, _ = select.select([a], [], [], 0.1)
            if r:
                try:
                    os.write(b, os.read(a, 4096))
                except OSError:
                    return

    def close(self):
        self._stop = True
        self.proc.kill()
        self.proc.wait(5)
        time.sleep(0.15)
        for fd in (self.dev_m, self.host_m, self.host_s):
            os.close(fd)


def test_deploy_over_mpremote_to_a_micropython_repl(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "payterm").mkdir()
    (flash / "payterm" / "stale.mpy").write_bytes(b"old")  # a previous deploy's leftovers do not stop this one
    src = tmp_path / "mpy"
    # x64 bytecode so this REPL can load what was deployed; a device gets its chip's (payterm build --board)
    r = subprocess.run([PAYTERM, "build", "--out", str(src), "--board", "TERMINAL_ESP32S3", "--arch", "x64"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _, prov = _provision(tmp_path)
    repl = PtyRepl(flash)
    try:
        r = subprocess.run([PAYTERM, "deploy", "--port", repl.path, "--board", "TERMINAL_ESP32S3", "--src", str(src),
                            "--provision", str(prov), "--no-reset"], capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert repl.proc.poll() is None, "the REPL survived the deploy"
    finally:
        repl.close()
    assert (flash / "main.py").read_text() == open(os.path.join(mpy_runtimes.FIRMWARE, "main.py")).read()
    assert (flash / "payterm" / "hal" / "esp32.mpy").exists() and (flash / "payterm" / "config.mpy").exists()
    assert not (flash / "payterm" / "hal" / "host.mpy").exists(), "the host HAL never goes to a device"
    hw = os.path.join(mpy_runtimes.REPO, "boards", "TERMINAL_ESP32S3", "hardware.json")
    assert (flash / "hardware.json").read_bytes() == open(hw, "rb").read()
    assert (flash / "provision.json").read_bytes() == prov.read_bytes()
    # what landed is consistent: the deployed firmware accepts the deployed parameters for the deployed map
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(flash))
    r = subprocess.run([mpy_runtimes.unix_binary(), "-c",
                        "import json\nfrom payterm import config, hal\n"
                        "print(config.check(hal.read_hardware('hardware.json'), '.')[1])"],
                       cwd=str(flash), env=env, capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr

"""The `payterm` CLI a firmware engineer uses: emulate (scripted), build, deploy."""
import os
import subprocess
import sys

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


def test_deploy_dry_run_copies_firmware_and_board_map(tmp_path):
    src = tmp_path / "mpy"
    (src / "payterm").mkdir(parents=True)
    r = subprocess.run([PAYTERM, "deploy", "--port", "/dev/ttyUSB0", "--board", "PAYTERM_S3", "--src", str(src),
                        "--dry-run"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "mkdir :payterm" in r.stdout
    assert "boards/PAYTERM_S3/board.json :board.json" in r.stdout
    bad = subprocess.run([PAYTERM, "deploy", "--port", "/dev/ttyUSB0", "--board", "NOPE", "--src", str(src),
                          "--dry-run"], capture_output=True, text=True)
    assert bad.returncode != 0 and "no board map" in bad.stderr

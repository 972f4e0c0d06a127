"""Every `payterm` error is one line with its remedy, never a traceback; every option has a help text."""
import os
import subprocess
import sys

import pytest

import mpy_runtimes
from payterm_tools import cli

PAYTERM = os.path.join(os.path.dirname(sys.executable), "payterm")


def _run(*args, timeout=120):
    r = subprocess.run([PAYTERM] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, cwd=mpy_runtimes.REPO, env=dict(os.environ, PAYTERM_DEBUG=""))
    return r.returncode, r.stdout, r.stderr


def _one_line(err, cmd):
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("payterm %s: " % cmd), err
    return lines[0]


def test_diag_without_a_device_says_what_to_check():
    rc, _, err = _run("diag", "--port", "/dev/ttyUSB97")
    assert rc == 2
    line = _one_line(err, "diag")
    assert "no such port /dev/ttyUSB97" in line and "check the cable and the port name" in line


def test_diag_on_a_file_that_is_no_serial_port():
    rc, _, err = _run("diag", "--port", "/dev/null", "--timeout", "2")
    assert rc == 2
    assert "cannot open /dev/null" in _one_line(err, "diag")


def test_emulate_with_an_unknown_or_a_device_board():
    rc, _, err = _run("emulate", "--board", "NOPE")
    assert rc == 2
    assert _one_line(err, "emulate") == "payterm emulate: board NOPE does not exist; the emulator runs EMULATOR"
    rc, _, err = _run("emulate", "--board", "TERMINAL_ESP32S3")
    assert rc == 2
    assert "is a device board (make deploy BOARD=TERMINAL_ESP32S3)" in _one_line(err, "emulate")


def test_emulate_with_a_missing_script(tmp_path):
    rc, _, err = _run("emulate", "--state", str(tmp_path / "s"), "--script", str(tmp_path / "none.txt"))
    assert rc == 2
    assert "cannot read the script" in _one_line(err, "emulate")


def test_provision_and_codes_errors():
    rc, _, err = _run("provision", "--board", "NOPE")
    assert rc == 2
    assert "no hardware map" in _one_line(err, "provision")
    rc, _, err = _run("codes", "--firmware", "/nonexistent")
    assert rc == 2
    assert "no catalog at /nonexistent/payterm/codes.py" in _one_line(err, "codes")


def test_an_unexpected_error_is_one_line_too(monkeypatch, capsys):
    from payterm_tools import codes

    def boom(args):
        raise KeyError("x")

    monkeypatch.setattr(codes, "run", boom)
    monkeypatch.delenv("PAYTERM_DEBUG", raising=False)
    assert cli.main(["codes"]) == 2
    err = capsys.readouterr().err
    assert err == "payterm codes: internal error: KeyError: 'x' (run again with PAYTERM_DEBUG=1 and report the traceback)\n"
    monkeypatch.setenv("PAYTERM_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["codes"])


def test_every_option_of_every_subcommand_has_help():
    ap, mods = cli.parser()
    sub = [a for a in ap._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    missing = []
    for name, p in sub.choices.items():
        assert mods[name] is not None, "%s is unavailable" % name
        for a in p._actions:
            if a.dest == "help":
                continue
            if not (a.help or "").strip():
                missing.append("%s %s" % (name, "/".join(a.option_strings) or a.dest))
    assert not missing, missing


def test_make_codes_prints_the_catalog(tmp_path):
    out = tmp_path / "codes.md"
    r = subprocess.run(["make", "-s", "codes", "CODES_MD=%s" % out], cwd=mpy_runtimes.REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    for cid in ("CRD-01", "HST-07", "OPR-07", "OPR-12", "ISS-51"):
        assert "\n%s " % cid in "\n" + r.stdout, cid
    assert "wrote %s" % out in r.stdout and out.read_text().startswith("# Failure-code reference")

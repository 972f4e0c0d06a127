"""`pytest --port ...` drives a real terminal over serial: checked here against the emulator
standing in for the hardware, its UARTs reached only through serial ports (ptys), as on a bench."""
import os
import socket
import subprocess
import sys

from payterm_tools.emulator import Emulator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_system_tests_run_over_serial_ports(tmp_path):
    port = _free_port()
    emu = Emulator(str(tmp_path / "flash"), [("127.0.0.1", port)], external=("panel", "mag", "nfc"),
                   config={"connect_timeout_ms": 1000, "read_timeout_ms": 2500, "max_wait_ms": 6000,
                           "result_ms": 1500, "nfc_retry_ms": 300})
    try:
        emu.start()
        b = emu.bridges
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-o", "addopts=",
             "host_tests/system/test_emulator.py",
             "--port", emu.console_path, "--panel-port", b["panel"].path,
             "--reader-port", b["mag"].path, "--nfc-port", b["nfc"].path, "--acquirer-port", str(port), "-rs"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240)
    finally:
        emu.close()
    out = r.stdout
    assert r.returncode == 0, out[-4000:]
    # the sales and console checks ran for real; only what needs the emulator's internals is skipped
    assert "5 passed, 2 skipped" in out, out[-3000:]
    assert out.count("needs the emulator's fault injection") == 2, out[-3000:]

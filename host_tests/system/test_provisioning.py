"""A terminal takes no payment until it is provisioned, and says which field is wrong.

The emulator writes provision.json into its state directory (the terminal's
flash) with `payterm provision`'s code; these tests replace it, as a botched
deploy or a wrong parameter download would, and drive the terminal's UARTs.
"""
import json
import os

import pytest

from payterm_tools.emulator import Emulator


@pytest.fixture
def emu(tmp_path, acquirer):
    e = Emulator(str(tmp_path / "flash"), [acquirer.address])
    yield e
    e.close()


def _boot_with(emu, params):
    path = os.path.join(emu.state_dir, "provision.json")
    if params is None:
        if os.path.exists(path):
            os.remove(path)
    else:
        with open(path, "w") as f:
            json.dump(params, f)
    emu.start(wait_ready=False, provision=False)


def test_bad_terminal_id_is_named_on_console_and_display_and_no_sale_starts(emu, acquirer):
    good = json.load(open(emu.provision()))
    _boot_with(emu, dict(good, terminal_id="T1", hosts=["no-port"]))
    emu.console.expect(r"# CONFIG SYS-22 terminal_id: must be 8 printable characters", 20)
    emu.console.expect(r"# CONFIG SYS-24 hosts: 'no-port' is not host:port", 5)
    emu.console.expect(r"# NOT PROVISIONED", 5)
    emu.panel.wait_screen(r"CONFIG ERROR \| BAD TERMINAL ID \| terminal_id \| CALL SUPPORT", 5)
    emu.panel.press("1250E")
    emu.console.expect(r"# CONFIG SYS-22", 15)  # still refusing, repeated for whoever connects later
    assert "PRESENT CARD" not in emu.panel.screen()
    assert "READY" not in emu.console.text()
    assert acquirer.ledger == []


def test_missing_file_is_sys20_then_provisioning_brings_the_terminal_up(emu):
    _boot_with(emu, None)
    emu.console.expect(r"# CONFIG SYS-20 provision.json: no .*provision.json: run payterm provision", 20)
    emu.panel.wait_screen(r"NOT PROVISIONED", 5)
    emu.stop()
    emu.start()  # provisions, then waits for READY
    emu.panel.wait_screen("READY", 10)

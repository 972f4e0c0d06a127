"""The deployed form (.mpy) in the heap a TERMINAL_ESP32S3 gives it: boots and settles 100 sales.
The frozen form in every board's heap budget: the same.

The firmware is compiled for the host VM (payterm build's code, host HAL kept) and run with
`micropython -X heapsize=N`, N the board's heap budget translated for the 64-bit emulator
(payterm_tools.memory). The frozen form is a terminal's image: the firmware frozen into a 32-bit
unix port (`make emulator-frozen MPY_DIR=...`, build/unix-frozen32: needs a full MicroPython tree, so
these cases are skipped where it was not built), run in the board's budget as it is. Sales go through
the panel and the card reader simulator (swipes and taps) against the acquirer simulator; every one must
be approved and the acquirer's ledger must reconcile with the terminal's journal.
"""
import os

import pytest

from conftest import FAST
from ledger import read_journal, reconcile
from payterm_tools import FROZEN_EMULATOR, memory
from payterm_tools.emulator import Emulator
from payterm_tools.sim.cardsim import TEST_CARDS, CardReaderSim

BOARD = "TERMINAL_ESP32S3"
SALES = 100


def _mem(emu):
    words = emu.console.command("mem")[0].split()
    assert words[0] == "mem", words
    return {k: int(v) for k, v in (w.split("=") for w in words[1:])}


def _terminal(request, tmp_path, acquirer, heap, **form):
    """The emulator in `heap` bytes with the card reader simulator, not yet booted: the test boots it,
    so a budget too small to boot in fails the test (and a known failure is an xfail, not an error)."""
    if request.config.getoption("--port"):
        pytest.skip("runs the emulator with a bounded heap")
    cfg = dict(FAST, result_ms=100, result_min_ms=30, page_ms=500)  # short result screens: 100 sales in about a minute
    emu = Emulator(str(tmp_path / "flash"), [acquirer.address], config=cfg, heap=heap, **form)
    reader = CardReaderSim(emu.ptys["mag"].fd, emu.ptys["nfc"].fd)
    reader.start()
    try:
        yield emu, reader, heap
    finally:
        emu.close()
        reader.stop()


@pytest.fixture
def s3_terminal(request, tmp_path, acquirer):
    yield from _terminal(request, tmp_path, acquirer, memory.emulator_heap(BOARD), mpy=True)


@pytest.fixture(params=memory.terminal_boards())
def frozen_terminal(request, tmp_path, acquirer):
    if not os.access(FROZEN_EMULATOR, os.X_OK):
        pytest.skip("needs %s: make emulator-frozen MPY_DIR=/path/to/micropython" % FROZEN_EMULATOR)
    # 32-bit: the board's budget as it is
    yield from _terminal(request, tmp_path, acquirer, memory.board_memory(request.param)["heap_budget_bytes"],
                         frozen=FROZEN_EMULATOR)


def test_mpy_firmware_in_the_s3_heap_budget_settles_100_sales(s3_terminal, acquirer):
    emu, reader, heap = s3_terminal
    _boot(emu)
    # It is the deployed form that runs: compiled modules only (main.py stays source, as on a device).
    fw = emu.firmware_dir
    assert fw != emu.state_dir and os.path.isfile(os.path.join(fw, "payterm", "app.mpy"))
    assert not os.path.exists(os.path.join(fw, "payterm", "app.py"))
    assert os.path.isfile(os.path.join(fw, "payterm", "hal", "host.mpy"))
    _settles_sales(emu, reader, heap, acquirer)


def test_frozen_firmware_in_each_board_heap_budget_settles_100_sales(frozen_terminal, acquirer):
    emu, reader, heap = frozen_terminal
    _boot(emu)
    # Only main.py is a file: every firmware module comes from the image, as on a terminal.
    assert os.listdir(emu.firmware_dir) == ["main.py"]
    _settles_sales(emu, reader, heap, acquirer)


def _boot(emu):
    emu.start(timeout=60)
    emu.panel.wait_screen("READY", 20)


def _settles_sales(emu, reader, heap, acquirer):
    m = _mem(emu)
    assert m["free"] + m["alloc"] <= heap, (m, heap)  # the VM's heap is the bounded one
    seen = []
    for i in range(1, SALES + 1):
        emu.panel.wait_screen("READY", 20)
        emu.panel.press("%dE" % (100 + i))
        emu.panel.wait_screen("PRESENT CARD", 20)
        tap = i % 4 == 0
        if tap:
            reader.tap(TEST_CARDS["mastercard"])
        else:
            reader.swipe(TEST_CARDS["visa"])
        line = emu.console.expect(r"# (TXN|FAIL) [^\n]*", 30).group(0).decode()
        if tap:
            reader.remove()
        assert " SALE APPROVED" in line, "sale %d: %s\n%s" % (i, line, emu.console.command("faults 5"))
        if i in (50, SALES):
            seen.append(_mem(emu)["alloc"])
    counts = reconcile(read_journal(emu.state_dir), acquirer.ledger)
    assert counts == {"sale_approved": SALES}, counts
    assert len([e for e in acquirer.ledger if e["kind"] == "auth" and e["rc"] == "00"]) == SALES
    # The live heap no longer grows with the sales done (the journal keeps only recent ones in RAM).
    assert seen[1] - seen[0] < 8192, seen
    out = emu.firmware_output()
    assert "MemoryError" not in out and "FATAL" not in out, out[-3000:]

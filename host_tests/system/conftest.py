"""System-test fixtures: the real firmware on the EMULATOR board, or a real terminal.

`terminal` starts the firmware in the MicroPython unix port with its UARTs on
ptys, the card reader simulator wired to the reader UARTs and the acquirer
simulator on 127.0.0.1. With `--port` (and `--reader-port`, `--panel-port`)
the same tests drive a real terminal over serial; tests marked
`emulator_only` (power cuts, printer fault injection) are skipped there.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from payterm_tools.emulator import Emulator  # noqa: E402
from payterm_tools.sim.acquirer import AcquirerSim  # noqa: E402
from payterm_tools.sim.cardsim import TEST_CARDS, CardReaderSim  # noqa: E402

# Short waits so failure paths finish quickly; every value is a real terminal parameter.
FAST = {
    "connect_timeout_ms": 1000,
    "read_timeout_ms": 2500,
    "max_wait_ms": 6000,
    "card_timeout_ms": 8000,
    "result_ms": 1500,
    "backoff_base_ms": 50,
    "backoff_cap_ms": 400,
    "breaker_open_ms": 2000,
    "breaker_open_max_ms": 4000,
    "min_read_ms": 1000,
    "worker_wait_ms": 3000,
    "retry_base_ms": 300,
    "retry_cap_ms": 1200,
    "worker_scan_ms": 1000,
    "result_min_ms": 500,
}
MERCHANT_PIN = "1234"  # the emulator's (payterm_tools.emulator.MERCHANT_PIN)


@pytest.fixture
def acquirer(request):
    sim = AcquirerSim(host=request.config.getoption("--acquirer-host"),
                      port=request.config.getoption("--acquirer-port"), name="primary")
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def acquirer2(request):
    sim = AcquirerSim(host=request.config.getoption("--acquirer-host"), name="secondary")
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def terminal_config():
    """Override in a test module (or parametrize) to change terminal parameters."""
    return {}


@pytest.fixture
def terminal_panel(request):
    """The emulator's panel: {} is the panel UART; {"panel": "local", "display": "hd44780"|"ssd1306"}
    the terminal's own display and key matrix through the drivers. Parametrize to pick one;
    `--emu-panel hd44780|ssd1306` runs every other test on the local panel."""
    kind = request.config.getoption("--emu-panel")
    return {} if kind == "uart" else {"panel": "local", "display": kind}


class RealTerminal:
    """A real terminal over serial: the same channels, no power-cut or fault injection."""

    def __init__(self, config):
        import serial

        from payterm_tools.emulator import ConsoleChannel, PanelChannel

        self._ser = []

        def open_port(path):
            s = serial.Serial(path, 115200, timeout=0)
            self._ser.append(s)
            return s.fileno()

        self.console = ConsoleChannel(open_port(config.getoption("--port")), "console")
        panel = config.getoption("--panel-port")
        self.panel = PanelChannel(open_port(panel), "panel") if panel else None
        self.console_path = config.getoption("--port")
        if self.panel:
            self.panel.press("C")  # a terminal that was already running redraws its idle screen
            self.panel.wait_screen("READY", 10)

    def __getattr__(self, name):
        # Power cuts, restarts, the flash directory and printer injection exist only
        # in the emulator: a test that needs them is skipped on hardware, not failed.
        if name in ("kill", "restart", "state_dir", "set_printer", "printed", "firmware_output"):
            pytest.skip("needs the emulator (%s)" % name)
        raise AttributeError(name)

    def close(self):
        self.console.close()
        if self.panel:
            self.panel.close()
        for s in self._ser:
            s.close()


@pytest.fixture
def terminal(request, tmp_path, acquirer, terminal_config, terminal_panel):
    if request.config.getoption("--port"):
        if request.node.get_closest_marker("emulator_only"):
            pytest.skip("needs the emulator's fault injection")
        t = RealTerminal(request.config)
        t.card_reader = None
        yield t
        t.close()
        return
    if request.config.getoption("--acquirer-port"):
        pytest.fail("--acquirer-port is for a real terminal (--port); the emulator picks its own")
    hosts = [acquirer.address]
    if "acquirer2" in request.fixturenames:
        hosts.append(request.getfixturevalue("acquirer2").address)
    cfg = dict(FAST)
    cfg.update(terminal_config)
    emu = Emulator(str(tmp_path / "flash"), hosts, config=cfg, **terminal_panel)
    reader = CardReaderSim(emu.ptys["mag"].fd, emu.ptys["nfc"].fd)
    reader.start()
    emu.card_reader = reader
    try:
        emu.start()
        emu.panel.wait_screen("READY", 10)
        yield emu
    finally:
        out = emu.firmware_output()
        emu.close()
        reader.stop()
        for name, ch in (("console", emu.console), ("panel", emu.panel)):  # captures for the leak scan
            if ch is not None:
                buf = getattr(ch, "buf", b"")
                (tmp_path / ("%s.capture" % name)).write_bytes(buf.encode() if isinstance(buf, str) else bytes(buf))
    if "Traceback" in out and "FATAL" in out:
        pytest.fail("firmware crashed:\n" + out[-3000:])


@pytest.fixture
def card_reader(request, terminal):
    if terminal.card_reader is None:
        mag, nfc = request.config.getoption("--reader-port"), request.config.getoption("--nfc-port")
        if not (mag or nfc):
            pytest.skip("real terminal without --reader-port/--nfc-port: no simulated reader attached")
        import serial

        ports = [serial.Serial(mag, 9600, timeout=0) if mag else None,
                 serial.Serial(nfc, 115200, timeout=0) if nfc else None]
        reader = CardReaderSim(*[p.fileno() if p else None for p in ports])
        reader.start()
        yield reader
        reader.stop()
        for p in ports:
            if p:
                p.close()
        return
    yield terminal.card_reader


@pytest.fixture
def panel(terminal):
    return terminal.panel


@pytest.fixture
def cards():
    return TEST_CARDS


def start_sale(terminal, amount="1000"):
    """Key in a sale amount from the idle screen and wait for the card prompt."""
    terminal.panel.wait_screen("READY", 10)
    terminal.panel.press(amount + "E")
    terminal.panel.wait_screen("PRESENT CARD", 5)


def sale(terminal, card_reader, amount_keys, card, how="swipe", timeout=20):
    """Run one sale from the keypad; returns the console's TXN/FAIL line."""
    start_sale(terminal, amount_keys)
    if how == "swipe":
        card_reader.swipe(card)
    else:
        card_reader.tap(card)
    m = terminal.console.expect(r"# (TXN|FAIL) [^\n]*", timeout)
    if how != "swipe":
        card_reader.remove()
    return m.group(0).decode()


def dismiss(terminal, timeout=30):
    """Close the result screen (E, after its minimum time) and wait for the idle screen."""
    terminal.panel.press("E")
    terminal.panel.wait_screen(r"READY", timeout)


def merchant_pin(terminal, title, pin=MERCHANT_PIN):
    """Answer the merchant PIN prompt of a refund, void or training mode."""
    terminal.panel.wait_screen(r"^%s\b[^|]* \| MERCHANT PIN:" % title, 10)  # (marked TRAINING in training mode)
    terminal.panel.press(pin + "E")


def void(terminal, ref, pin=MERCHANT_PIN, confirm=True):
    """F 2, the merchant PIN, the ref, then OK on the confirmation (amount and card); returns the screen asked."""
    terminal.panel.wait_screen(r"READY", 30)
    terminal.panel.press("F2")
    merchant_pin(terminal, "VOID", pin)
    terminal.panel.wait_screen(r"VOID: REF", 10)
    terminal.panel.press(ref + "E")
    screen = terminal.panel.wait_screen(r"E:YES C:NO|^\S.* \| (OPR|HST)-\d\d", 10)
    if "E:YES" in screen:
        terminal.panel.press("E" if confirm else "C")
    return screen


def refund(terminal, card_reader, amount_keys, card, pin=MERCHANT_PIN, how="tap"):
    """F 1, the merchant PIN, the amount, the card, then OK on the refund's confirmation."""
    terminal.panel.wait_screen(r"READY", 30)
    terminal.panel.press("F1")
    merchant_pin(terminal, "REFUND", pin)
    terminal.panel.wait_screen(r"REFUND \| EUR", 10)
    terminal.panel.press(amount_keys + "E")
    terminal.panel.wait_screen("PRESENT CARD", 10)
    (card_reader.tap if how == "tap" else card_reader.swipe)(card)
    terminal.panel.wait_screen(r"REFUND\? \| .* \| TO CARD", 15)
    terminal.panel.press("E")

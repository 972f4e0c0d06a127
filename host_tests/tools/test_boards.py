"""Every board folder would work when flashed, as far as that can be known without the board.

For each ESP32 board under boards/: the upstream-style files are there and only
those; no UART, RMT channel or pin is used twice; no more UARTs than the chip
has; every device the firmware needs is mapped; every pin exists on the chip
and is none of its flash/PSRAM, strapping or USB pins (input-only pins only as
inputs); the storage root is the LittleFS root; the frozen manifest holds every
firmware module and nothing host-only.
"""
import json
import os
import re

import pytest

from payterm_tools import BOARDS, FIRMWARE, build

# What the chips offer (Espressif datasheets: ESP32 v4.x, ESP32-S3 v1.x, ESP32-C3 v1.x).
CHIPS = {
    "esp32": {
        "gpio": set(range(0, 40)) - {20, 24, 28, 29, 30, 31},
        "flash": set(range(6, 12)),  # SPI flash: SCK/CMD/SD0-SD3
        "strapping": {0, 2, 5, 12, 15},
        "usb": set(),
        "input_only": set(range(34, 40)),
        "uarts": 3, "rmt_tx": 8, "i2c": 2, "sram_kib": 520, "initial_heap_kib": 56,
    },
    "esp32s3": {
        "gpio": set(range(0, 22)) | set(range(26, 49)),
        "flash": set(range(26, 33)),  # SPICS1 (PSRAM), SPIHD, SPIWP, SPICS0, SPICLK, SPIQ, SPID
        "strapping": {0, 3, 45, 46},
        "usb": {19, 20},  # USB D-/D+ (serial/JTAG)
        "input_only": set(),
        "uarts": 3, "rmt_tx": 4, "i2c": 2, "sram_kib": 512, "initial_heap_kib": 64,
    },
    "esp32c3": {
        "gpio": set(range(0, 22)),
        "flash": set(range(11, 18)),  # VDD_SPI, SPIHD, SPIWP, SPICS0, SPICLK, SPID, SPIQ
        "strapping": {2, 8, 9},
        "usb": {18, 19},
        "input_only": set(),
        "uarts": 2, "rmt_tx": 2, "i2c": 1, "sram_kib": 400, "initial_heap_kib": 64,
    },
}
# initial_heap_kib: MICROPY_GC_INITIAL_HEAP_SIZE of the v1.28 esp32 port (ports/esp32/mpconfigport.h), sized
# "so they can grow the heap once (double it) and still have enough internal RAM to start WiFi and make a
# HTTPS request": without PSRAM a board's heap budget stays within that doubled heap.
PSRAM_PINS = {"sdkconfig.spiram": {16, 17}, "sdkconfig.spiram_oct": set(range(33, 38))}
BOARD_FILES = {"mpconfigboard.h", "mpconfigboard.cmake", "sdkconfig.board", "manifest.py", "hardware.json", "README.md"}
NEEDED = ("console", "mag", "nfc", "printer")  # and a panel: "panel", or "display" + "keypad"
APP_PARTITION = 0x1F0000  # factory app of the port's default partitions-4MiBplus.csv (1984 KiB)


def _boards():
    return sorted(d for d in os.listdir(BOARDS) if os.path.isfile(os.path.join(BOARDS, d, "hardware.json")))


def _device_boards():
    return [b for b in _boards() if _hw(b)["hal"] == "esp32"]


def _hw(board):
    with open(os.path.join(BOARDS, board, "hardware.json")) as f:
        return json.load(f)


def _read(board, name):
    with open(os.path.join(BOARDS, board, name)) as f:
        return f.read()


def _uses(hw):
    """[(what, pin, direction)] for every pin the map takes; direction "in", "out" or "io"."""
    out = []
    for name, d in hw["devices"].items():
        for p in d.get("pins", ()):
            out.append((name, p, "io"))
        if d.get("tx") is not None:
            out.append((name + ".tx", d["tx"], "out"))
        if d.get("rx") is not None:
            out.append((name + ".rx", d["rx"], "in"))
        for k, p in (d.get("in") or {}).items():
            out.append((name + "." + k, p, "in_pullup"))
        for k, p in (d.get("out") or {}).items():
            out.append((name + "." + k, p, "out"))
        if d.get("bus") == "matrix":
            out += [(name + ".row", p, "out") for p in d["rows"]]
            out += [(name + ".col", p, "in_pullup") for p in d["cols"]]
        if d.get("bus") in ("gpio", "pwm"):
            out.append((name, d["pin"], "out"))
    for kind, buses in (hw.get("buses") or {}).items():
        for bname, b in buses.items():
            for k in ("scl", "sda", "sck", "mosi", "miso"):
                if k in b:
                    out.append(("%s.%s.%s" % (kind, bname, k), b[k], "io"))
    return out


@pytest.mark.parametrize("board", _device_boards())
def test_board_folder_is_upstream_style_and_nothing_else(board):
    files = set(os.listdir(os.path.join(BOARDS, board)))
    eq_missing = BOARD_FILES - files
    assert not eq_missing, "missing %s" % sorted(eq_missing)
    assert "board.json" not in files, "board.json is upstream's download-page metadata: the map is hardware.json"
    assert files <= BOARD_FILES, "unexpected files %s" % sorted(files - BOARD_FILES)
    hw = _hw(board)
    assert hw["name"] == board
    cmake = _read(board, "mpconfigboard.cmake")
    m = re.search(r"set\(IDF_TARGET (\w+)\)", cmake)
    assert m and m.group(1) == hw["chip"], "IDF_TARGET must be the map's chip %s" % hw["chip"]
    assert '"payterm %s"' % board in _read(board, "mpconfigboard.h")


@pytest.mark.parametrize("board", _device_boards())
def test_no_uart_rmt_or_pin_twice_and_no_more_uarts_than_the_chip_has(board):
    hw = _hw(board)
    chip = CHIPS[hw["chip"]]
    uarts = [d["uart"] for d in hw["devices"].values() if d.get("bus") == "uart"]
    con = hw["devices"]["console"]
    if con.get("port") == "uart":
        uarts.append(con["uart"])  # the REPL's UART is taken even though the HAL does not open it
    assert len(uarts) == len(set(uarts)), "UART used twice: %r" % uarts
    assert all(0 <= u < chip["uarts"] for u in uarts), "%s has UART0..%d: %r" % (hw["chip"], chip["uarts"] - 1, uarts)
    rmts = [d["rmt"] for d in hw["devices"].values() if d.get("bus") == "rmt"]
    assert len(rmts) == len(set(rmts)) and all(0 <= r < chip["rmt_tx"] for r in rmts), rmts
    seen = {}
    for what, pin, _ in _uses(hw):
        assert pin not in seen, "GPIO%d used by %s and %s" % (pin, seen[pin], what)
        seen[pin] = what
    for kind, buses in (hw.get("buses") or {}).items():
        ids = [b["id"] for b in buses.values()]
        assert len(ids) == len(set(ids)), "%s peripheral used twice" % kind
        if kind == "i2c":
            assert all(0 <= i < chip["i2c"] for i in ids), ids
            for bname in buses:
                addrs = [d["addr"] for d in hw["devices"].values() if d.get("bus") == "i2c" and d["i2c"] == bname]
                assert len(addrs) == len(set(addrs)), "two devices at one address on i2c %s: %r" % (bname, addrs)
    for name, d in hw["devices"].items():
        if d.get("bus") in ("i2c", "spi"):
            assert d[d["bus"]] in (hw.get("buses") or {}).get(d["bus"], {}), "%s: no such bus" % name


@pytest.mark.parametrize("board", _device_boards())
def test_every_device_the_firmware_needs_is_mapped_to_a_real_bus(board):
    devs = _hw(board)["devices"]
    for name in NEEDED:
        assert name in devs, "%s not mapped" % name
    assert "panel" in devs or ("display" in devs and "keypad" in devs), "no display and keypad"
    for name, d in devs.items():
        assert d.get("bus") in ("stdio", "uart", "rmt", "i2c", "spi", "matrix", "gpio", "pwm"), (name, d.get("bus"))
        assert not d.get("soft"), "%s: a soft UART the HAL cannot open" % name
    for name in ("printer", "display", "keypad", "buzzer", "led"):
        if name in devs:
            assert devs[name].get("driver"), "%s names no driver" % name
    # every driver a map names is a module of the firmware with the factory the HAL calls
    for name, d in devs.items():
        if d.get("driver"):
            path = os.path.join(FIRMWARE, "payterm", "drivers", d["driver"] + ".py")
            assert os.path.isfile(path), "%s: no driver module payterm/drivers/%s.py" % (name, d["driver"])
            with open(path) as f:
                assert re.search(r"^def make\(bus, spec, pins, hal\):", f.read(), re.M), "%s: no make()" % path


@pytest.mark.parametrize("board", _device_boards())
def test_pins_are_valid_for_the_chip(board):
    hw = _hw(board)
    chip = CHIPS[hw["chip"]]
    cmake = _read(board, "mpconfigboard.cmake")
    reserved = set(chip["flash"])
    for cfg, pins in PSRAM_PINS.items():
        if re.search(r"boards/%s\b" % re.escape(cfg), cmake):
            reserved |= pins
    console_usb = hw["devices"]["console"].get("port") == "usb_serial_jtag"
    for what, pin, direction in _uses(hw):
        if what.startswith("console") and console_usb:
            assert pin in chip["usb"], "%s: the USB port's pins are %r" % (what, sorted(chip["usb"]))
            continue
        assert pin in chip["gpio"], "%s: GPIO%d does not exist on %s" % (what, pin, hw["chip"])
        assert pin not in reserved, "%s: GPIO%d belongs to the flash/PSRAM" % (what, pin)
        assert pin not in chip["strapping"], "%s: GPIO%d is a strapping pin" % (what, pin)
        if console_usb:
            assert pin not in chip["usb"], "%s: GPIO%d is the USB console's" % (what, pin)
        if pin in chip["input_only"]:
            assert direction == "in", "%s: GPIO%d is input-only without pull-up" % (what, pin)


@pytest.mark.parametrize("board", _device_boards())
def test_repl_and_console_share_one_port_and_leave_the_device_uarts_alone(board):
    hw = _hw(board)
    con = hw["devices"]["console"]
    assert con["bus"] == "stdio", "the console is the REPL's port, never a second driver on its UART"
    h = _read(board, "mpconfigboard.h")
    sdk = _read(board, "sdkconfig.board")
    if con["port"] == "usb_serial_jtag":
        assert re.search(r"MICROPY_HW_ENABLE_UART_REPL\s+\(0\)", h), "UART REPL must be off: UART0 is a device's"
        assert re.search(r"MICROPY_HW_ESP_USB_SERIAL_JTAG\s+\(1\)", h)
        assert "CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG=y" in sdk, "IDF logs would go to UART0's device"
    else:
        assert con["port"] == "uart" and con["uart"] == 0 and (con["tx"], con["rx"]) == (1, 3)


@pytest.mark.parametrize("board", _device_boards())
def test_storage_watchdog_network_and_budgets(board):
    hw = _hw(board)
    assert hw["storage"]["root"] == "/", "the ESP32 port mounts LittleFS at /"
    assert hw["storage"]["budget_bytes"] > 0
    assert hw["network"]["kind"] == "wlan"
    assert 1000 <= hw["watchdog_ms"] <= 60000
    mem = hw["memory"]
    assert 0 < mem["code_budget_bytes"] < APP_PARTITION // 4, "frozen code is a small part of the app partition"
    assert 0 < mem["heap_budget_bytes"]
    cmake = _read(board, "mpconfigboard.cmake")
    if "spiram" not in cmake:
        # no PSRAM: the heap shares internal SRAM with the WLAN and TLS buffers; the port grows its heap
        # once to twice the initial size with room left for both
        assert mem["heap_budget_bytes"] <= 2 * CHIPS[hw["chip"]]["initial_heap_kib"] * 1024
    readme = _read(board, "README.md")
    for k in ("heap_budget_bytes", "code_budget_bytes"):
        assert k in readme, "%s README must justify %s" % (board, k)


class _Options:
    """tools/manifestfile.py's IncludeOptions: include()'s keywords, with defaults()."""

    def __init__(self, **kw):
        self._kw = kw
        self._defaults = {}

    def defaults(self, **kw):
        self._defaults = kw

    def __getattr__(self, name):
        return self._kw.get(name, self._defaults.get(name))


class _Recorder:
    """Runs a manifest.py the way MicroPython's tools/manifestfile.py does, recording what it freezes."""

    def __init__(self, board_dir):
        self.vars = {"BOARD_DIR": board_dir, "PORT_DIR": "<port>", "MPY_DIR": "<mpy>"}
        self.frozen = []
        self.included = []

    def _path(self, p):
        for k, v in self.vars.items():
            p = p.replace("$(%s)" % k, v)
        return os.path.abspath(p)

    def include(self, path, **kw):
        path = self._path(path)
        for up in ("port", "mpy"):
            if "<%s>" % up in path:
                self.included.append(path[path.index("<%s>" % up):])
                return
        if os.path.isdir(path):
            path = os.path.join(path, "manifest.py")
        self.run(path, kw)

    def module(self, path, base_path="."):
        full = os.path.join(self._path(base_path), path)
        assert os.path.isfile(full), full
        self.frozen.append(os.path.relpath(full, FIRMWARE).replace(os.sep, "/"))

    def package(self, path, files=None, base_path="."):
        base = self._path(base_path)
        for d, _, names in os.walk(os.path.join(base, path)):
            for n in names:
                if n.endswith(".py") and (files is None or os.path.relpath(os.path.join(d, n), os.path.join(base, path)) in files):
                    self.frozen.append(os.path.relpath(os.path.join(d, n), FIRMWARE).replace(os.sep, "/"))

    def run(self, path, kw=None):
        g = {"include": self.include, "module": self.module, "package": self.package,
             "require": lambda *a, **k: None, "freeze": lambda *a, **k: None, "options": _Options(**(kw or {}))}
        with open(path) as f:
            code = f.read()
        prev = os.getcwd()
        os.chdir(os.path.dirname(path))  # as manifestfile.py: paths are relative to the manifest
        try:
            exec(compile(code, path, "exec"), g)
        finally:
            os.chdir(prev)


@pytest.mark.parametrize("board", _device_boards())
def test_manifest_freezes_every_firmware_module_and_nothing_host_only(board):
    rec = _Recorder(os.path.join(BOARDS, board))
    rec.run(os.path.join(BOARDS, board, "manifest.py"))
    assert "<port>/boards/manifest.py" in rec.included, "the port's own manifest (asyncio, networking) must stay included"
    frozen = set(rec.frozen)
    assert len(frozen) == len(rec.frozen), "a module frozen twice"
    want = {rel for rel, _ in build.sources(device=True) if rel.startswith("payterm/")}
    assert want, "no firmware modules found"
    missing = want - frozen
    assert not missing, "not frozen: %s" % sorted(missing)
    for rel in build.HOST_ONLY:
        assert rel not in frozen, "%s is host-only" % rel
    extra = frozen - want
    assert not extra, "frozen but not firmware: %s" % sorted(extra)


def test_emulator_manifest_freezes_the_whole_firmware_with_the_host_hal_and_asyncio():
    # the unix port's frozen image (make emulator-frozen): everything the emulator runs but main.py
    rec = _Recorder(os.path.join(BOARDS, "EMULATOR"))
    rec.run(os.path.join(BOARDS, "EMULATOR", "manifest.py"))
    assert "<mpy>/extmod/asyncio" in rec.included
    assert len(set(rec.frozen)) == len(rec.frozen), "a module frozen twice"
    want = {rel for rel, _ in build.sources() if rel.startswith("payterm/")}
    assert set(build.HOST_ONLY) <= want
    assert set(rec.frozen) == want


def test_build_leaves_host_only_modules_off_a_device():
    dev = {rel for rel, _ in build.sources(device=True)}
    host = {rel for rel, _ in build.sources()}
    assert set(build.HOST_ONLY) <= host and not set(build.HOST_ONLY) & dev
    # the host HAL really is host-only: it needs termios and the environment
    for rel in build.HOST_ONLY:
        with open(os.path.join(FIRMWARE, rel)) as f:
            assert "import termios" in f.read()
    assert all(_hw(b)["chip"] in build.ARCH for b in _boards())


def test_retired_board_names_are_gone():
    assert "PAYTERM_S3" not in _boards()
    assert not any(os.path.exists(os.path.join(BOARDS, b, "board.json")) for b in os.listdir(BOARDS))
    assert set(_device_boards()) == {"TERMINAL_ESP32S3", "TERMINAL_ESP32", "TERMINAL_ESP32C3"}


@pytest.mark.parametrize("board", _device_boards())
def test_the_compiled_firmware_fits_the_code_budget(board, tmp_path):
    """What the board's image freezes (payterm build --board: its arch, no host HAL) fits code_budget_bytes."""
    files = build.build(str(tmp_path), build.board_arch(board), device=True)
    total = sum(os.path.getsize(str(tmp_path / f)) for f in files if f.endswith(".mpy"))
    budget = _hw(board)["memory"]["code_budget_bytes"]
    assert total > 0 and total <= budget, "%s: %d bytes of .mpy, budget %d" % (board, total, budget)

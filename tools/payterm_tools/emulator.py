"""The emulated terminal: the real firmware in the MicroPython unix port, its UARTs on ptys.

Used by `payterm emulate` (a person at the keyboard) and by the system-test
fixtures (pytest drives the same UARTs). The state directory stands for flash
and survives restarts; `kill()` is a power cut (SIGKILL, nothing flushed).

The receipt printer is the ESC/POS printer simulator on the `printer` pty
(the firmware's ESC/POS driver talks to it). The panel is the panel UART
protocol (`panel="uart"`, the default) or, with `panel="local"`, the
terminal's own display (`display="hd44780"` LCD or `"ssd1306"` OLED) and key
matrix through the firmware's drivers, on an I2C and a GPIO pty, with
sim.localpanel.LocalPanelSim as `emu.panel` (the same calls as PanelChannel).
"""
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import termios
import threading
import time
import tty

from payterm_tools import BOARDS, FIRMWARE, keyinject, provision
from payterm_tools.runtime import micropython_binary
from payterm_tools.sim.printer import EscPosPrinterSim

UART_NAMES = ("console", "mag", "nfc", "panel", "printer")
PANELS = ("uart", "local")
DISPLAYS = ("hd44780", "ssd1306")
# set_printer(): the printer's state -> the failure code the terminal shows
PRINTER_STATES = {"ok": None, "paper_out": "HW-03", "jam": "HW-04", "cover_open": "HW-07", "cutter_jam": "HW-08"}

# The emulated terminal's parameters, written with `payterm provision`'s code into the
# state directory as provision.json (the same file and the same checks as on a device).
EMULATOR_PARAMS = {
    "terminal_id": "EMU00001",
    "merchant_id": "PAYTERMEMU00001",
    "currency": 978,
    "floor_limit": 5000,
    "saf_max_count": 20,
    "saf_max_total": 50000,
    "connect_timeout_ms": 2000,
    "read_timeout_ms": 5000,
    "max_wait_ms": 15000,
    "card_timeout_ms": 30000,
    "merchant_name": "PAYTERM DEMO SHOP",
    "merchant_address": ["1 MARKET STREET", "9999 EMULATOR CITY"],
}
TECH_PIN = "4321"
MERCHANT_PIN = "1234"  # the merchant's (supervisor's) PIN: refund, void, training mode
LOCK_FILE = "emulator.lock"


def _not_flash(name):
    """The emulator's own files in a state directory (firmware log, lock, printer output)."""
    return name in ("firmware.log", LOCK_FILE) or name.startswith("printer")


def flash_files(root, logs=False, tries=20):
    """{path relative to `root`: bytes} of every file of a (running) terminal's flash, the emulator's own
    files left out unless `logs`. The firmware may rename or remove a file between the listing and the
    read (an atomic save's `.tmp`): then the whole flash is read again, so the snapshot never misses the
    file it became."""
    for _ in range(tries):
        out = {}
        try:
            for d, _, names in os.walk(root):
                for n in names:
                    if not logs and _not_flash(n):
                        continue
                    p = os.path.join(d, n)
                    with open(p, "rb") as f:
                        out[os.path.relpath(p, root)] = f.read()
            return out
        except FileNotFoundError:
            time.sleep(0.01)
    raise RuntimeError("%s kept changing while it was read %d times" % (root, tries))


class StateInUse(RuntimeError):
    """Another emulator runs on this state directory (its flash): two would corrupt it."""


class Pty:
    """One emulated UART: the firmware opens `path`; the host side uses `fd`."""

    def __init__(self, name):
        self.name = name
        self.fd, self.slave_fd = pty.openpty()
        tty.setraw(self.fd)
        tty.setraw(self.slave_fd)  # no echo, no line discipline: bytes as on a wire
        self.path = os.ttyname(self.slave_fd)

    def close(self):
        for fd in (self.fd, self.slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class Bridge:
    """A second pty wired both ways to a UART's host end: a cable to the outside.

    Lets a separate program (pyserial, `payterm diag`, a reader simulator) open
    the UART by path as it would a USB-serial adapter. `feed` copies firmware
    output to it for a UART whose host end a Channel already reads.
    """

    def __init__(self, host_fd, name, read_host=True):
        self.host_fd = host_fd
        self.pty = Pty(name)
        os.set_blocking(self.pty.fd, False)
        self.path = self.pty.path
        self._stop = False
        threading.Thread(target=self._pump, args=(self.pty.fd, host_fd), daemon=True).start()
        if read_host:
            threading.Thread(target=self._pump, args=(host_fd, self.pty.fd), daemon=True).start()

    def _pump(self, src, dst):
        import select

        while not self._stop:
            try:
                r, _, _ = select.select([src], [], [], 0.1)
                if r:
                    data = os.read(src, 4096)
                    if not data:
                        continue
                    if dst == self.pty.fd:
                        self.feed(data)
                    else:
                        os.write(dst, data)
            except (OSError, ValueError):
                time.sleep(0.05)

    def feed(self, data, wait_s=0.5):
        """Copy firmware output to the outside end. While someone reads there (the last write went
        through), a full pty buffer is waited for (up to wait_s), as a cable with a listener loses
        nothing; once a wait ran out nobody is reading: drop, never stall the firmware's channel,
        until a write goes through again (the reader opened the port and flushed it)."""
        import select

        view = memoryview(data)
        while view:
            try:
                n = os.write(self.pty.fd, view)
            except BlockingIOError:
                n = 0
            except OSError:
                return
            if n:
                self._listening = True
                view = view[n:]
                continue
            if not getattr(self, "_listening", True):
                return  # nobody reading the outside end: drop
            _, w, _ = select.select([], [self.pty.fd], [], wait_s)
            if not w:
                self._listening = False
                return

    def close(self):
        self._stop = True
        time.sleep(0.12)
        self.pty.close()


class Channel:
    """Host side of a UART, in the style of pytest-embedded: `expect` and `write`.

    A reader thread keeps everything the firmware wrote; `expect` searches
    from the last match on, and a timeout shows what was seen.
    """

    def __init__(self, fd, name, log=None):
        self.fd = fd
        self.name = name
        self.buf = b""
        self.pos = 0
        self.cond = threading.Condition()
        self.log = log
        self.forward = None  # a Bridge that sees the same output (technician's port)
        self._stop = False
        self._t = threading.Thread(target=self._reader, daemon=True, name="uart-" + name)
        self._t.start()

    def _reader(self):
        import select

        while not self._stop:
            try:
                r, _, _ = select.select([self.fd], [], [], 0.1)
                if not r:
                    continue
                data = os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
                continue
            if not data:
                continue
            with self.cond:
                self.buf += data
                self._on_data(data)
                self.cond.notify_all()
            if self.log:
                self.log(self.name, data)
            if self.forward is not None:
                self.forward.feed(data)

    def _on_data(self, data):
        """Called with each chunk the firmware wrote, under the lock."""

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.fd, data)

    def text(self):
        return self.buf.decode("utf-8", "replace")

    def expect(self, pattern, timeout=10.0):
        """Wait for regex `pattern` in what the firmware wrote after the previous match."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern, re.M)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                left = end - time.monotonic()
                if left <= 0:
                    seen = self.buf[max(self.pos - 200, 0):].decode("utf-8", "replace")
                    raise AssertionError("%s: %r not seen within %.1fs; output since last match:\n%s"
                                         % (self.name, pattern, timeout, seen[-3000:]))
                self.cond.wait(left)

    def skip(self):
        """Forget output so far: the next expect looks only at new output."""
        with self.cond:
            self.pos = len(self.buf)

    def close(self):
        self._stop = True


class ConsoleChannel(Channel):
    """The technician console: commands answered with lines ending in OK or ERR."""

    def command(self, cmd, timeout=15.0):
        """Send one command line; return its answer lines, the last being OK or ERR ..."""
        with self.cond:
            start = self.pos = len(self.buf)
        self.write(cmd + "\n")
        m = self.expect(r"^(OK|ERR[^\r\n]*)\r?$", timeout)
        body = self.buf[start:m.start()].decode("utf-8", "replace")
        out = [l.rstrip("\r") for l in body.split("\n")]
        out = [l for l in out if l and not l.startswith("# ")]
        out.append(m.group(1).decode())
        return out


class PanelChannel(Channel):
    """Keypad in, display rows out (panel protocol, docs/architecture.md)."""

    def press(self, keys, gap=0.03):
        for k in keys:
            self.write(k)
            time.sleep(gap)

    def __init__(self, fd, name, log=None):
        self.rows = ["", "", "", ""]
        self._partial = b""
        self.beeps = []  # time.monotonic() of each BEEP the firmware sent
        self.on_row = None  # callable(row, text, monotonic time) for each row drawn (timing tools)
        self.frames = 0  # whole screens drawn: the firmware draws rows 0..3 in order, so row 3 ends one
        self.frame = list(self.rows)  # the last whole screen
        super().__init__(fd, name, log)

    def _on_data(self, data):
        # Keep the screen as the display would: each complete `D<row> text` line replaces its row.
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        now = time.monotonic()
        for line in lines:
            line = line.rstrip(b"\r")
            if line == b"BEEP":
                self.beeps.append(now)
                continue
            m = re.match(rb"^D([0-3]) ?(.*)$", line)
            if m:
                self.rows[int(m.group(1))] = m.group(2).decode("utf-8", "replace")
                if m.group(1) == b"3":
                    self.frames += 1
                    self.frame = list(self.rows)
                if self.on_row is not None:
                    self.on_row(int(m.group(1)), self.rows[int(m.group(1))], now)

    def display(self):
        with self.cond:
            return list(self.rows)

    def screen(self):
        return " | ".join(self.display())

    def wait_frame(self, after, pattern=None, timeout=10.0):
        """The rows of the last whole screen drawn after frame number `after` (`self.frames` read before a
        key press) whose rows joined by ' | ' match `pattern` (any, when None). Reading rows as they arrive
        can catch half a screen; a whole one is what the display showed."""
        rx = re.compile(pattern) if pattern else None
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.frames > after and (rx is None or rx.search(" | ".join(self.frame))):
                    return list(self.frame)
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("panel: no whole screen%s drawn within %.1fs; screen now: %s"
                                         % (" matching %r" % pattern if pattern else "", timeout, self.screen()))
                self.cond.wait(min(left, 0.2))

    def wait_screen(self, pattern, timeout=10.0):
        """Wait until the current screen (rows joined by ' | ') matches `pattern`."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                s = self.screen()
                if rx.search(s):
                    return s
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("panel: screen never matched %r within %.1fs; screen now: %s"
                                         % (pattern, timeout, s))
                self.cond.wait(min(left, 0.2))


class Emulator:
    """Starts, stops and power-cuts the firmware on the EMULATOR board."""

    def __init__(self, state_dir, hosts, board="EMULATOR", config=None, log=None, external=(), mpy=False,
                 heap=None, keys=True, panel="uart", display="hd44780", frozen=None):
        """external: UARTs ("panel", "mag", "nfc") handed to outside programs through
        Bridge ports (`self.bridges[name].path`) instead of host-side channels.

        mpy: run the deployed form: the firmware compiled with mpy-cross for the host (x64,
        host HAL included) into `<state_dir>.mpy/` (beside the flash, like the acquirer's
        ledger), built at the first start; a directory path instead runs that build as it is.
        heap: the VM's GC heap in bytes (`micropython -X heapsize=N`); None is the unix
        port's default (2 MiB). `heap_bytes(board)` translates a board's budget.
        frozen: path of a unix port built with the firmware frozen in (`make emulator-frozen`,
        32-bit: a board's heap budget applies as it is, untranslated); the VM runs it with only
        main.py on its path (`<state_dir>.frozen/`), as a terminal runs its image.
        keys: provisioning also injects a DUKPT initial key (the acquirer simulator's
        test BDK) into a state directory that holds none, so a fresh emulator takes
        PIN payments and MACed messages at once; False leaves the terminal without.
        panel: "uart" (panel protocol on the panel pty) or "local" (display + keypad drivers
        on I2C and GPIO ptys, `display` "hd44780" or "ssd1306")."""
        if panel not in PANELS or display not in DISPLAYS:
            raise ValueError("panel %r / display %r: panel is one of %s, display one of %s"
                             % (panel, display, PANELS, DISPLAYS))
        self.keys = keys
        self.injected = None  # initial key ID of the key the last provisioning injected
        self.state_dir = os.path.abspath(state_dir)
        if frozen and mpy:
            raise ValueError("frozen and mpy are two forms of the firmware: choose one")
        if frozen and not os.access(frozen, os.X_OK):
            raise ValueError("frozen %r: no such program (make emulator-frozen MPY_DIR=... builds it)" % frozen)
        self.mpy = mpy
        self.frozen = os.path.abspath(frozen) if frozen else None
        self.heap = heap
        self._built = False
        os.makedirs(self.state_dir, exist_ok=True)
        self._lock = self._take_lock()
        self.hosts = list(hosts)
        self.board = board
        self.config = dict(config or {})
        self.log = log
        self.proc = None
        self.ptys = {n: Pty(n) for n in UART_NAMES}
        self.panel_kind = panel
        self.display_kind = display
        self.buses = {}  # the local panel's I2C and GPIO ptys
        self.console = ConsoleChannel(self.ptys["console"].fd, "console", log)
        if panel == "local":
            from payterm_tools.sim.localpanel import LocalPanelSim

            self.buses = {n: Pty(n) for n in ("i2c", "gpio")}
            self.panel = LocalPanelSim(self.buses["i2c"].fd, self.buses["gpio"].fd, display).start()
        else:
            self.panel = None if "panel" in external else PanelChannel(self.ptys["panel"].fd, "panel", log)
        self.printer = EscPosPrinterSim(self.ptys["printer"].fd).start()
        self.bridges = {n: Bridge(self.ptys[n].fd, n) for n in external}
        self.stdout_path = os.path.join(self.state_dir, "firmware.log")
        # The technician's console port: a second pty bridged to the console UART, so
        # `payterm diag --port` works while tests (or the emulator UI) watch the console too.
        self.tech = Bridge(self.ptys["console"].fd, "tech", read_host=False)
        self.console.forward = self.tech

    def _take_lock(self):
        """An exclusive lock on <state>/emulator.lock for this object's life (released if the process dies)."""
        import fcntl

        path = os.path.join(self.state_dir, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            finally:
                os.close(fd)
            raise StateInUse("state directory %s is in use by another emulator (pid %s): stop that one, "
                             "or give this one its own --state DIR" % (self.state_dir, other))
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        return fd

    def _release_lock(self):
        if self._lock is not None:
            try:
                os.close(self._lock)  # closing the descriptor drops the flock
            except OSError:
                pass
            self._lock = None

    @property
    def console_path(self):
        """Serial port path a technician tool opens (`payterm diag --port PATH`)."""
        return self.tech.path

    @property
    def hardware_path(self):
        return os.path.join(BOARDS, self.board, "hardware.json")

    def provision(self):
        """Write the terminal's provision.json: EMULATOR_PARAMS, the simulators' hosts, then `config`;
        and its initial key file when the terminal has no keys yet (`keys`)."""
        with open(self.hardware_path) as f:
            hw = json.load(f)
        params = dict(EMULATOR_PARAMS)
        params["hosts"] = ["%s:%d" % tuple(h) for h in self.hosts]
        params["tech_pin_hash"] = provision.pin_hash(TECH_PIN, salt="emulator")
        params["merchant_pin_hash"] = provision.pin_hash(MERCHANT_PIN, salt="emumerchant")
        params.update(self.config)
        path = provision.write(os.path.join(self.state_dir, provision.FILE), provision.make(hw, **params))
        if self.keys and not keyinject.has_keys(self.state_dir):
            self.injected = keyinject.inject(self.state_dir)["ikid"]
        return path

    @property
    def firmware_dir(self):
        """Where the firmware the VM runs lives: the sources, the .mpy build, or main.py alone (frozen)."""
        if self.frozen:
            return self.state_dir.rstrip(os.sep) + ".frozen"
        if not self.mpy:
            return FIRMWARE
        if self.mpy is True:
            return self.state_dir.rstrip(os.sep) + ".mpy"
        return os.path.abspath(self.mpy)

    def build_mpy(self):
        """Compile the firmware for the host VM (x64 native code allowed, host HAL kept)."""
        from payterm_tools import build

        return build.build(self.firmware_dir, arch=build.ARCH["host"], device=False)

    def command(self):
        """The VM's command line."""
        cmd = [self.frozen or micropython_binary()]
        if self.heap:
            cmd += ["-X", "heapsize=%d" % int(self.heap)]
        return cmd + [os.path.join(self.firmware_dir, "main.py")]

    def env(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:" + self.firmware_dir
        env["PAYTERM_HARDWARE"] = self.hardware_path
        env["PAYTERM_STATE"] = self.state_dir
        for n, p in self.ptys.items():
            if n == "panel" and self.panel_kind == "local":
                continue  # no panel UART: the display and keypad are the terminal's own
            env["PAYTERM_UART_" + n.upper()] = p.path
        if self.panel_kind == "local":
            env["PAYTERM_I2C"] = self.buses["i2c"].path
            env["PAYTERM_GPIO"] = self.buses["gpio"].path
            env["PAYTERM_DISPLAY"] = self.display_kind
        return env

    def start(self, wait_ready=True, timeout=20.0, provision=True, env=None):
        """provision=False keeps the state directory's provision.json as it is (tests of a bad one).

        env: extra environment for this boot only, e.g. {"PAYTERM_CUT_AT": "12:partial"} (the host
        HAL's power cut at a flash operation, boards/EMULATOR/README.md); the next start is without it.
        """
        if provision:
            self.provision()
        if self.mpy is True and not self._built:
            self.build_mpy()
            self._built = True
        if self.frozen and not self._built:
            os.makedirs(self.firmware_dir, exist_ok=True)
            shutil.copyfile(os.path.join(FIRMWARE, "main.py"), os.path.join(self.firmware_dir, "main.py"))
            self._built = True
        self.console.skip()
        if self.panel is not None:
            self.panel.skip()
        # Printer answers still queued for a VM that died must not answer the new one's queries.
        termios.tcflush(self.ptys["printer"].slave_fd, termios.TCIFLUSH)
        full_env = self.env()
        full_env.update(env or {})
        out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(self.command(), env=full_env,
                                     cwd=self.state_dir, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT)
        out.close()
        if wait_ready:
            try:
                end = time.monotonic() + timeout
                while True:
                    try:
                        self.console.expect(r"# READY payterm", 0.25)
                        break
                    except AssertionError:
                        if not self.running() or time.monotonic() > end:
                            raise
            except AssertionError as e:
                raise AssertionError("%s\nfirmware output:\n%s" % (e, self.firmware_output()[-3000:]))
        return self

    def firmware_output(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """Power cut: the process dies at once, whatever it was writing."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self):
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self, wait_ready=True):
        self.stop()
        return self.start(wait_ready)

    def set_printer(self, status):
        """Put the printer in a state (PRINTER_STATES): 'paper_out' (HW-03), 'jam' (paper jammed in the
        mechanism, HW-04), 'cover_open' (HW-07), 'cutter_jam' (the next cut jams: HW-08), or 'ok'
        (the operator fixed it: the printer carries on with what it had not printed)."""
        if status not in PRINTER_STATES:
            raise ValueError("printer state %r: one of %s" % (status, ", ".join(PRINTER_STATES)))
        p = self.printer
        self._printer_state = status
        if status == "ok":
            p.clear()
        elif status == "paper_out":
            p.set_paper_out()
        elif status == "jam":
            p.set_mech_error()
        elif status == "cover_open":
            p.set_cover_open()
        else:
            p.jam_next_cut()

    def printer_status(self):
        """The state set_printer last put the printer simulator in ('ok' at start)."""
        return getattr(self, "_printer_state", "ok")

    def printed(self):
        """Every receipt the printer has cut, as printed (lines, then a cut line)."""
        return self.printer.text()

    def close(self):
        self.stop()
        self.console.close()
        if self.panel is not None:
            self.panel.close()
        self.printer.stop()
        for b in [self.tech] + list(self.bridges.values()):
            b.close()
        for p in list(self.ptys.values()) + list(self.buses.values()):
            p.close()
        self._release_lock()

"""The keypad matrix and the panel's outputs on the GPIO pty (payterm.hal.host_buses.PtyGpio).

This side plays the fingers: it closes and opens switches (`'D' row col`,
`'U' row col`), including a contact that bounces and a key that stays
stuck; the firmware side wires the matrix and raises the column IRQs.
Opening a pty discards what was waiting in it, so the firmware asks for
the switches held at boot with `'S' 0 0`, answered with a `'D'` for each
held switch and `'S' 0 0`. The firmware tells us its outputs: `'O' id level` (status LED) and
`'T' id freq_hi freq_lo duty_hi duty_lo` (buzzer PWM), kept in `outputs`
and `tones`, with `beeps` counting each start of a tone.
"""
import os
import select
import threading
import time

KEYMAP = "123C456B789E*0#F"  # row-major, as payterm.drivers.keymatrix.KEYMAP


class KeypadSim:
    def __init__(self, fd, keymap=KEYMAP, ncols=4):
        self.fd = fd
        self.keymap = keymap
        self.ncols = ncols
        self.held = set()
        self.outputs = {}  # id -> level
        self.pwm = {}  # id -> (freq, duty)
        self.tones = []  # (monotonic time, id, freq, duty)
        self.beeps = 0
        self.errors = []
        self.syncs = 0
        self._buf = b""
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="keypad-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(2)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ switches
    def pos(self, key):
        i = self.keymap.index(key)
        return i // self.ncols, i % self.ncols

    def _send(self, op, key):
        r, c = self.pos(key)
        os.write(self.fd, op + bytes((r, c)))

    def down(self, key):
        self.held.add(key)
        self._send(b"D", key)

    def up(self, key):
        self.held.discard(key)
        self._send(b"U", key)

    def press(self, keys, hold=0.06, gap=0.05, bounce=0):
        """Press and release each key in turn; `bounce` extra make/break pairs 1 ms apart on each press."""
        for k in keys:
            for _ in range(bounce):
                self.down(k)
                time.sleep(0.001)
                self.up(k)
                time.sleep(0.001)
            self.down(k)
            time.sleep(hold)
            self.up(k)
            time.sleep(gap)

    def stick(self, key):
        """The key's switch stays closed (a stuck key) until `release(key)`."""
        self.down(key)

    def release(self, key):
        self.up(key)

    # ------------------------------------------------------------ outputs
    def _run(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.fd], [], [], 0.05)
                if not r:
                    continue
                data = os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
                continue
            with self._lock:
                self._buf += data
                self._parse()
                self.changed.notify_all()

    def _parse(self):
        b = self._buf
        while b:
            if b[0] == 0x4F and len(b) >= 3:  # 'O' id level
                self.outputs[b[1]] = b[2]
                b = b[3:]
            elif b[0] == 0x54 and len(b) >= 6:  # 'T' id freq duty
                ident, freq, duty = b[1], b[2] << 8 | b[3], b[4] << 8 | b[5]
                before = self.pwm.get(ident, (0, 0))[1]
                self.pwm[ident] = (freq, duty)
                self.tones.append((time.monotonic(), ident, freq, duty))
                if duty and not before:
                    self.beeps += 1
                b = b[6:]
            elif b[0] == 0x53 and len(b) >= 3:  # 'S' 0 0: the firmware (re)started and asks what is held
                b = b[3:]
                self.syncs += 1
                out = b"".join(b"D" + bytes(self.pos(k)) for k in sorted(self.held)) + b"S\x00\x00"
                try:
                    os.write(self.fd, out)
                except OSError:
                    pass
            elif b[0] in (0x4F, 0x54, 0x53):
                break  # rest of the message still on its way
            else:
                self.errors.append("bad GPIO message byte 0x%02x" % b[0])
                b = b[1:]
        self._buf = b

    def wait(self, pred, timeout=5.0):
        end = time.monotonic() + timeout
        with self._lock:
            while True:
                v = pred()
                if v or time.monotonic() >= end:
                    return v
                self.changed.wait(min(0.1, max(0.0, end - time.monotonic())))

"""An ESC/POS thermal receipt printer on a pty, as strict as a TM-series printer.

Two paths, as in the real printer:
- reception: `DLE EOT n` (n = 1..4) is answered at once, wherever it
  appears in the byte stream and whatever state the printer is in (the
  ESC/POS reference warns that the sequence is taken as a command even
  inside another command's parameters, and so it is here);
- the print mechanism: everything else goes to the receive buffer and is
  executed in order, one line every `line_ms`, only while the printer is
  online. `GS r 1` is answered when the mechanism gets to it, so it marks the
  end of what was sent before it.

Faults a test can set: paper out (now, or after `paper_lines` more lines),
paper near end, cover open, a cutter jam at the next cut, a mechanical error
(paper jammed in the mechanism), an unrecoverable error, or no answer at all
(power off). The printer goes offline for all but near end and no answer, stops printing where it is and keeps the unprinted data in its
buffer; `clear()` (the operator fixed it) lets it carry on.

What it printed is kept: `receipts` (one list of text lines per cut),
`current` (lines since the last cut), `styled` ((text, align, bold, size))
and `errors` (bytes it did not understand).
"""
import os
import select
import threading
import time

_DLE, _EOT, _ESC, _GS, _LF, _CR = 0x10, 0x04, 0x1B, 0x1D, 0x0A, 0x0D


class EscPosPrinterSim:
    def __init__(self, fd, width=32, line_ms=5, cut_ms=20, paper_lines=None):
        self.fd = fd
        self.width = width
        self.line_ms = line_ms
        self.cut_ms = cut_ms
        self.paper_lines = paper_lines  # lines of paper left (None: a full roll)
        self.paper_out = False
        self.near_end = False
        self.cover_open = False
        self.jam_at_cut = False
        self.cutter_jam = False
        self.mech_error = False
        self.fatal = False
        self.responding = True
        self.receipts = []
        self.current = []
        self.styled = []
        self.errors = []
        self.queries = []  # n of every DLE EOT n answered
        self.cuts = 0
        self._reset_modes()
        self._line = bytearray()
        self._data = bytearray()  # receive buffer: in-order data not yet executed
        self._rt = b""  # a DLE EOT sequence split across reads
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads = []

    # ------------------------------------------------------------ control
    def start(self):
        for fn, name in ((self._rx, "escpos-rx"), (self._mech, "escpos-mech")):
            t = threading.Thread(target=fn, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        with self._lock:
            self.changed.notify_all()
        for t in self._threads:
            t.join(2)
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _set(self, **kw):
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)
            self.changed.notify_all()

    def set_paper_out(self, out=True):
        self._set(paper_out=out, paper_lines=None)

    def set_near_end(self, on=True):
        self._set(near_end=on)

    def set_cover_open(self, on=True):
        self._set(cover_open=on)

    def jam_next_cut(self, on=True):
        self._set(jam_at_cut=on)

    def set_mech_error(self, on=True):
        """Paper jammed in the mechanism (DLE EOT 3 bit 2, on the models that report it)."""
        self._set(mech_error=on)

    def set_fatal(self, on=True):
        self._set(fatal=on)

    def set_responding(self, on):
        self._set(responding=on)

    def clear(self):
        """The operator loaded paper, closed the cover, cleared the cutter: back online."""
        self._set(paper_out=False, near_end=False, cover_open=False, cutter_jam=False, jam_at_cut=False,
                  mech_error=False, fatal=False, paper_lines=None)

    def offline(self):
        return self.paper_out or self.cover_open or self.cutter_jam or self.mech_error or self.fatal

    # ------------------------------------------------------------ real-time status
    def status(self, n):
        """The DLE EOT n answer for the current state (bits as in the ESC/POS reference)."""
        b = 0x12  # bit 1 and bit 4 fixed on; bits 0 and 7 fixed off
        if n == 1:
            if self.offline():
                b |= 0x08  # bit 3 offline
        elif n == 2:
            if self.cover_open:
                b |= 0x04  # bit 2 cover open
            if self.paper_out:
                b |= 0x20  # bit 5 printing stopped at paper end
            if self.cutter_jam or self.mech_error or self.fatal:
                b |= 0x40  # bit 6 error occurred
        elif n == 3:
            if self.mech_error:
                b |= 0x04  # bit 2 mechanical error
            if self.cutter_jam:
                b |= 0x08  # bit 3 autocutter error
            if self.fatal:
                b |= 0x20  # bit 5 unrecoverable error
        elif n == 4:
            if self.near_end:
                b |= 0x0C  # bits 2, 3 roll paper near end
            if self.paper_out:
                b |= 0x60  # bits 5, 6 roll paper end
        return b

    def _rx(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.fd], [], [], 0.05)
                if not r:
                    continue
                data = os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
                continue
            out = b""
            with self._lock:
                if not self.responding:
                    continue  # powered off: bytes fall on the floor
                buf = self._rt + data
                self._rt = b""
                i = 0
                keep = bytearray()
                while i < len(buf):
                    if buf[i] == _DLE and i + 1 < len(buf) and buf[i + 1] == _EOT:
                        if i + 2 >= len(buf):
                            self._rt = bytes(buf[i:])
                            break
                        n = buf[i + 2]
                        if 1 <= n <= 4:
                            self.queries.append(n)
                            out += bytes([self.status(n)])
                        i += 3
                        continue
                    if buf[i] == _DLE and i + 1 == len(buf):
                        self._rt = bytes(buf[i:])
                        break
                    keep.append(buf[i])
                    i += 1
                self._data += keep
                self.changed.notify_all()
            if out:
                self._send(out)

    def _send(self, b):
        try:
            os.write(self.fd, b)
        except OSError:
            pass

    # ------------------------------------------------------------ print mechanism
    def _reset_modes(self):
        self.align = 0
        self.bold = False
        self.size = (1, 1)

    def _take(self, n):
        """The next n bytes of the receive buffer once they are all there (None if stopping)."""
        while len(self._data) < n or self.offline() or not self.responding:
            if self._stop.is_set():
                return None
            self.changed.wait(0.1)
        out = bytes(self._data[:n])
        return out

    def _consume(self, n):
        del self._data[:n]

    def _mech(self):
        with self._lock:
            while not self._stop.is_set():
                b = self._take(1)
                if b is None:
                    return
                self._execute(b[0])
                self.changed.notify_all()

    def _execute(self, c):
        if c == _LF:
            if self._paper_gone():
                return  # stays in the buffer until paper is loaded
            self._consume(1)
            self._print_line()
        elif c == _CR:
            self._consume(1)
        elif c == _ESC:
            cmd = self._take(2)
            if cmd is None:
                return
            op = cmd[1]
            if op == 0x40:  # ESC @ initialise
                self._consume(2)
                self._reset_modes()
                self._line = bytearray()
            elif op in (0x61, 0x45, 0x64):
                cmd = self._take(3)
                if cmd is None:
                    return
                n = cmd[2]
                if op == 0x61:  # ESC a n justification
                    if n not in (0, 1, 2, 48, 49, 50):
                        self.errors.append("ESC a %d" % n)
                    self.align = n % 48
                    self._consume(3)
                elif op == 0x45:  # ESC E n emphasis
                    self.bold = bool(n & 1)
                    self._consume(3)
                else:  # ESC d n print and feed n lines
                    if self._line:
                        if self._paper_gone():
                            return
                        self._print_line()
                    for _ in range(n):
                        if self._paper_gone():
                            return
                        self.current.append("")  # blank paper
                        self._feed()
                    self._consume(3)
            else:
                self.errors.append("unknown ESC 0x%02x" % op)
                self._consume(2)
        elif c == _GS:
            cmd = self._take(3)
            if cmd is None:
                return
            op, n = cmd[1], cmd[2]
            if op == 0x21:  # GS ! n character size
                self.size = ((n >> 4) + 1, (n & 0x07) + 1)
                self._consume(3)
            elif op == 0x56:  # GS V m (function A) / GS V m n (function B)
                if n in (65, 66):
                    if self._take(4) is None:
                        return
                    self._consume(4)
                elif n in (0, 1, 48, 49):
                    self._consume(3)
                else:
                    self.errors.append("GS V %d" % n)
                    self._consume(3)
                    return
                self._cut()
            elif op == 0x72:  # GS r n transmit status, in order
                self._consume(3)
                if n in (1, 49):
                    self._send(bytes([(0x03 if self.near_end else 0)]))  # bits 4 and 7 fixed off
                elif n in (2, 50):
                    self._send(b"\x00")  # drawer kick-out connector pin 3 low
                else:
                    self.errors.append("GS r %d" % n)
            else:
                self.errors.append("unknown GS 0x%02x" % op)
                self._consume(2)
        elif 0x20 <= c <= 0x7E or c >= 0x80:
            if (len(self._line) + 1) * self.size[0] > self.width:
                # no room left on the line: the printer prints it and starts the next
                if self._paper_gone():
                    return
                self._print_line()
            self._consume(1)
            self._line.append(c)
        else:
            self.errors.append("control byte 0x%02x" % c)
            self._consume(1)

    def _paper_gone(self):
        if self.paper_lines is not None and self.paper_lines <= 0:
            self.paper_out = True
        return self.paper_out

    def _print_line(self):
        text = self._line.decode("latin-1")
        self._line = bytearray()
        self.current.append(text)
        self.styled.append((text, ("left", "center", "right")[self.align], self.bold, self.size))
        self._feed()

    def _feed(self):
        if self.paper_lines is not None:
            self.paper_lines -= 1
        self._busy(self.line_ms)

    def _busy(self, ms):
        """The mechanism takes its time; status requests are answered meanwhile (lock released)."""
        self._lock.release()
        try:
            time.sleep(ms / 1000.0)
        finally:
            self._lock.acquire()

    def _cut(self):
        if self.jam_at_cut:
            self.jam_at_cut = False
            self.cutter_jam = True
            return
        self._busy(self.cut_ms)
        self.cuts += 1
        self.receipts.append([l for l in self.current])
        self.current = []

    # ------------------------------------------------------------ test helpers
    def wait(self, pred, timeout=5.0):
        end = time.monotonic() + timeout
        with self._lock:
            while True:
                v = pred()
                if v or time.monotonic() >= end:
                    return v
                self.changed.wait(min(0.1, max(0.0, end - time.monotonic())))

    def text(self):
        """Every completed receipt, as printed, separated by a cut line."""
        with self._lock:
            return "\n".join("\n".join(r) + "\n" + "-" * self.width for r in self.receipts)

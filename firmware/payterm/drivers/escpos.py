"""ESC/POS thermal receipt printer on a UART, watched through real-time status.

References: Epson "ESC/POS Command Reference" (TM series), entries
"DLE EOT n: Transmit real-time status", "GS r n: Transmit status",
"ESC @", "ESC a", "ESC E", "GS !", "ESC d", "GS V".

The printer answers `DLE EOT n` as soon as the three bytes arrive, even
while it is offline or busy printing; it answers `GS r 1` only when it gets
to it in the receive buffer, i.e. after everything sent before has been
printed (and the cut made). So a print job is:

    status check (DLE EOT 1, and the cause when offline) -> fault, or
    receipt lines, with DLE EOT 1 between chunks          -> fault mid-print
    cut, then GS r 1 as end-of-job marker; while waiting, DLE EOT 1 every
    poll_ms: an offline printer never answers GS r, its cause says why.

Status bytes are told apart by their fixed bits: every DLE EOT answer has
bit 1 and bit 4 on, bits 0 and 7 off (0b0xx1xx10); a GS r answer has bits 4
and 7 off. Failure codes: HW-03 paper out, HW-07 cover open, HW-08 cutter
jam, HW-04 other printer error, HW-09 no (valid) answer in time.
"""
from micropython import const
import asyncio

from payterm.errors import Fault

_STAGE = "print"

# ---------------------------------------------------------------- real-time status (DLE EOT n)
_Q_PRINTER = b"\x10\x04\x01"  # DLE EOT 1: printer status
_Q_OFFLINE = b"\x10\x04\x02"  # DLE EOT 2: offline cause status
_Q_ERROR = b"\x10\x04\x03"  # DLE EOT 3: error cause status
_Q_PAPER = b"\x10\x04\x04"  # DLE EOT 4: roll paper sensor status
_RT_MASK = const(0x93)  # bits 0, 1, 4, 7 are fixed in every DLE EOT answer ...
_RT_FIXED = const(0x12)  # ... to 0, 1, 1, 0
# n = 1, printer status: bit 2 drawer kick-out connector pin 3 (unused here)
_P_OFFLINE = const(0x08)  # bit 3: 0 online, 1 offline
_P_WAIT = const(0x20)  # bit 5: waiting for online recovery
# n = 2, offline cause
_O_COVER = const(0x04)  # bit 2: roll paper cover open
_O_FEED = const(0x08)  # bit 3: paper being fed with the FEED button (transient)
_O_PAPER_END = const(0x20)  # bit 5: printing stopped because of paper end
_O_ERROR = const(0x40)  # bit 6: an error occurred (cause in n = 3)
# n = 3, error cause
_E_MECH = const(0x04)  # bit 2: mechanical (recoverable) error, on models that report it
_E_CUTTER = const(0x08)  # bit 3: autocutter error (paper jammed in the cutter)
_E_FATAL = const(0x20)  # bit 5: unrecoverable error (head, circuit)
_E_AUTO = const(0x40)  # bit 6: automatically recoverable error (head temperature)
# n = 4, roll paper sensor
_S_NEAR_END = const(0x0C)  # bits 2, 3: roll paper near-end sensor: paper near end
_S_PAPER_END = const(0x60)  # bits 5, 6: roll paper end sensor: paper not present

# ---------------------------------------------------------------- in-order status (GS r n)
_Q_JOB = b"\x1d\x72\x01"  # GS r 1: transmit paper sensor status, after the data before it
_JOB_MASK = const(0x90)  # bits 4 and 7 fixed to 0 in a GS r answer
_J_NEAR_END = const(0x03)  # bits 0, 1: paper near end

# ---------------------------------------------------------------- print commands
_INIT = b"\x1b\x40"  # ESC @: initialise printer (clears modes, not the paper)
_CENTER = b"\x1b\x61\x01"  # ESC a 1: justification centre
_LEFT = b"\x1b\x61\x00"  # ESC a 0: justification left
_BOLD_ON = b"\x1b\x45\x01"  # ESC E 1: emphasised on
_BOLD_OFF = b"\x1b\x45\x00"  # ESC E 0
_DOUBLE = b"\x1d\x21\x11"  # GS ! 0x11: double width and height
_NORMAL = b"\x1d\x21\x00"  # GS ! 0
_LF = const(0x0A)  # LF: print and line feed
_FEED_CUT = b"\x1b\x64\x04\x1d\x56\x01"  # ESC d 4: feed 4 lines (past the cutter); GS V 1: partial cut

_WIDTH = const(32)  # characters a line on 58 mm paper, font A (12x24)

_K_RT = const(1)
_K_JOB = const(2)


def _clean(text):
    """Printable ASCII only: a byte below 0x20 would start a printer command."""
    out = bytearray()
    for ch in str(text):
        o = ord(ch)
        out.append(o if 0x20 <= o < 0x7F else 0x3F)
    return bytes(out)


def _wrap(b, width):
    """Word-wrap cleaned bytes to lines of at most `width`."""
    out = []
    while len(b) > width:
        cut = b.rfind(b" ", 0, width + 1)
        if cut <= 0:
            out.append(b[:width])
            b = b[width:]
        else:
            out.append(b[:cut])
            b = b[cut + 1:]
    out.append(b)
    return out


def receipt_parts(lines, width=_WIDTH):
    """The receipt as ESC/POS byte strings: [init + title, line, line, ..., feed + cut].

    The first line (the merchant name) is centred, bold and double size;
    the others are left-aligned and word-wrapped to `width`.
    """
    lines = list(lines)
    parts = []
    head = bytearray(_INIT)
    if lines:
        head += _CENTER + _BOLD_ON + _DOUBLE
        for w in _wrap(_clean(lines[0]), width // 2):
            head += w
            head.append(_LF)
        head += _NORMAL + _BOLD_OFF + _LEFT
    parts.append(bytes(head))
    for line in lines[1:]:
        for w in _wrap(_clean(line), width):
            parts.append(w + b"\n")
    parts.append(_FEED_CUT)
    return parts


def receipt_bytes(lines, width=_WIDTH):
    """The whole receipt for printer.receipt()'s lines, as the printer receives it."""
    return b"".join(receipt_parts(lines, width))


class EscPosPrinter:
    """Receipt printer: `await print_lines(lines)`, `await poll()`, `status()`.

    stream: asyncio stream on the printer UART (read/write/drain).
    timeout_ms: how long a DLE EOT answer may take; job_ms: how long the
    printer may take to print and cut one receipt; poll_ms: status polling
    period while it prints; poll_lines: DLE EOT 1 after this many lines sent.
    """

    def __init__(self, stream, timeout_ms=300, job_ms=8000, poll_ms=200, poll_lines=4, width=_WIDTH):
        self.s = stream
        self.timeout_ms = timeout_ms
        self.job_ms = job_ms
        self.poll_ms = poll_ms
        self.poll_lines = poll_lines
        self.width = width
        self.last = None  # code of the last status check (None: ready)
        self.near_end = False  # paper near end: a warning, printing goes on
        self.garbage = 0  # bytes that were no status answer
        self._job = -1  # GS r answer of the current job, -1 while none came
        self._late = False  # a query timed out: its answer may still come

    # ------------------------------------------------------------ status
    def status(self):
        """Code of the last status check (None: ready); `await poll()` asks the printer now."""
        return self.last

    async def poll(self):
        """Ask the printer now: None when ready, else its failure code (HW-03/04/07/08/09)."""
        try:
            await self._check()
        except Fault as f:
            return f.code
        return None

    async def _check(self):
        """Raise the printer's fault, if any; sets `last`."""
        try:
            for _ in range(20):
                s1 = await self._rt(_Q_PRINTER)
                if not s1 & _P_OFFLINE:
                    s4 = await self._rt(_Q_PAPER)
                    self.near_end = bool(s4 & _S_NEAR_END)
                    if s4 & _S_PAPER_END:
                        raise Fault("HW-03", "roll paper end sensor", _STAGE)
                    self.last = None
                    return
                if not await self._offline_cause(s1):
                    await asyncio.sleep_ms(100)  # paper being fed by hand: it comes back online
            raise Fault("HW-04", "printer stays offline", _STAGE)
        except Fault as f:
            self.last = f.code
            raise

    async def _offline_cause(self, s1):
        """Raise why the printer is offline; return False when it is only passing (FEED button)."""
        s2 = await self._rt(_Q_OFFLINE)
        if s2 & _O_COVER:
            raise Fault("HW-07", "cover open", _STAGE)
        if s2 & _O_PAPER_END:
            raise Fault("HW-03", "stopped at paper end", _STAGE)
        if s2 & _O_ERROR:
            s3 = await self._rt(_Q_ERROR)
            if s3 & _E_CUTTER:
                raise Fault("HW-08", "autocutter error", _STAGE)
            if s3 & _E_FATAL:
                raise Fault("HW-04", "unrecoverable error", _STAGE)
            if s3 & _E_AUTO:
                raise Fault("HW-04", "auto-recoverable error (head temperature)", _STAGE)
            raise Fault("HW-04", "mechanical error" if s3 & _E_MECH else "error", _STAGE)
        s4 = await self._rt(_Q_PAPER)
        if s4 & _S_PAPER_END:
            raise Fault("HW-03", "roll paper end sensor", _STAGE)
        if s2 & _O_FEED or s1 & _P_WAIT:
            return False
        raise Fault("HW-04", "offline, no cause reported", _STAGE)

    async def _online(self):
        """One DLE EOT 1 while printing; an offline printer raises its cause."""
        s1 = await self._rt(_Q_PRINTER)
        if s1 & _P_OFFLINE:
            if not await self._offline_cause(s1):
                return False
        return True

    # ------------------------------------------------------------ bytes from the printer
    async def _rt(self, query):
        """Send one DLE EOT query and return its answer byte; HW-09 when none comes in time."""
        if self._late:
            await self._flush()
        self.s.write(query)
        await self.s.drain()
        b = await self._wait(_K_RT, self.timeout_ms)
        if b < 0:
            self._late = True
            raise Fault("HW-09", "no answer to DLE EOT %d" % query[2], _STAGE)
        return b

    async def _flush(self):
        """Drop a late answer to a query that timed out, so it is not taken for the next one."""
        while True:
            try:
                data = await asyncio.wait_for_ms(self.s.read(16), 30)
            except asyncio.TimeoutError:
                break
            if not data:
                break
            for b in data:
                self._note(b)
        self._late = False

    def _note(self, b):
        """Classify one byte that nobody waits for; returns its kind."""
        if b & _RT_MASK == _RT_FIXED:
            return _K_RT
        if not b & _JOB_MASK:
            self._job = b
            return _K_JOB
        self.garbage += 1
        return 0

    async def _wait(self, kind, timeout_ms):
        """Next byte of `kind` (a DLE EOT answer, or the GS r end-of-job answer), -1 on timeout."""
        if kind == _K_JOB and self._job >= 0:
            return self._job
        try:
            return await asyncio.wait_for_ms(self._until(kind), timeout_ms)
        except asyncio.TimeoutError:
            return -1

    async def _until(self, kind):
        while True:
            data = await self.s.read(1)
            if not data:
                await asyncio.sleep_ms(5)
                continue
            b = data[0]
            if self._note(b) == kind:
                return b

    # ------------------------------------------------------------ printing
    async def print_lines(self, lines):
        """Print one receipt; raises Fault(HW-03/04/07/08/09) before, during or after printing."""
        await self._check()
        s = self.s
        parts = receipt_parts(lines, self.width)
        self._job = -1
        try:
            for i in range(len(parts) - 1):
                s.write(parts[i])
                await s.drain()
                if self.poll_lines and i % self.poll_lines == self.poll_lines - 1:
                    await self._online()
            s.write(parts[-1])
            s.write(_Q_JOB)
            await s.drain()
            await self._finish()
        except Fault as f:
            self.last = f.code
            raise
        self.last = None

    async def _finish(self):
        """Wait for the end-of-job answer, watching the printer while it prints and cuts."""
        rounds = max(1, (self.job_ms + self.poll_ms - 1) // self.poll_ms)
        for _ in range(rounds):
            b = await self._wait(_K_JOB, self.poll_ms)
            if b < 0:
                await self._online()  # raises the cause when the printer went offline
                b = self._job  # the answer may have come while we asked
            if b >= 0:
                self.near_end = bool(b & _J_NEAR_END)
                self._job = -1
                return
        raise Fault("HW-09", "receipt not finished in %d ms" % self.job_ms, _STAGE)


class EscPosTxPrinter:
    """The same receipts on a transmit-only serial line (an RMT channel): the printer cannot answer.

    Without a receive line there is no DLE EOT: the printer's paper sensor
    output on a GPIO (pull-up input, low = paper out) is the only status,
    checked before the receipt and before each line (HW-03). Cover open,
    cutter jam and other printer errors cannot be seen from here: such a
    receipt is lost without a code (the board READMEs say so).
    """

    def __init__(self, out, paper=None, width=_WIDTH):
        self.out = out
        self.paper = paper
        self.width = width
        self.last = None
        self.near_end = False

    def status(self):
        """HW-03 while the paper sensor reads low, else None (nothing else can be known)."""
        self.last = "HW-03" if self.paper is not None and not self.paper.value() else None
        return self.last

    async def poll(self):
        return self.status()

    async def print_lines(self, lines):
        """Send one receipt; raises Fault(HW-03) when the paper sensor reports paper out."""
        for part in receipt_parts(lines, self.width):
            if self.status():
                raise Fault("HW-03", "paper sensor reads paper out", _STAGE)
            self.out.write(part)
            await self.out.drain()


def make(bus, spec, pins, hal):
    """Driver factory (payterm.hal.drivers): a UART stream gets the DLE EOT driver,
    a transmit-only line ("rmt": write/drain, no read) the paper-sensor one (pins["paper"])."""
    width = spec.get("width", _WIDTH)
    if spec.get("bus") == "rmt" or not hasattr(bus, "read"):
        return EscPosTxPrinter(bus, pins.get("paper"), width)
    return EscPosPrinter(bus, width=width)

# runtimes: unix
"""ESC/POS printer driver against a scripted printer on a fake stream.

The fake answers DLE EOT n with the status bytes a test sets (bit meanings
from the ESC/POS reference, written out here), answers GS r 1 only while
online, and lets a test change state when a given command arrives.
"""
import asyncio

from mpt import eq

from payterm.drivers.escpos import EscPosPrinter, receipt_bytes, receipt_parts
from payterm.errors import Fault

READY = [0x12, 0x12, 0x12, 0x12]  # n=1..4: only the fixed bits (bit 1, bit 4) set
OFFLINE = 0x12 | 0x08  # n=1 bit 3
PAPER_END_STOP = 0x12 | 0x20  # n=2 bit 5
COVER_OPEN = 0x12 | 0x04  # n=2 bit 2
ERROR = 0x12 | 0x40  # n=2 bit 6
CUTTER = 0x12 | 0x08  # n=3 bit 3
FATAL = 0x12 | 0x20  # n=3 bit 5
PAPER_GONE = 0x12 | 0x60  # n=4 bits 5, 6
NEAR_END = 0x12 | 0x0C  # n=4 bits 2, 3


class FakePrinter:
    def __init__(self, status=None):
        self.st = list(status or READY)
        self.silent = False
        self.delay_ms = 0
        self.tx = bytearray()
        self.data = bytearray()  # everything but the real-time queries
        self.queries = []
        self.rx = bytearray()
        self.ev = asyncio.Event()
        self.on_write = None
        self.answer_job = True

    def _answer(self, b):
        if self.delay_ms:
            asyncio.create_task(self._later(b, self.delay_ms))
            return
        self.rx.append(b)
        self.ev.set()

    async def _later(self, b, ms):
        await asyncio.sleep_ms(ms)
        self.rx.append(b)
        self.ev.set()

    def online(self):
        return not self.st[0] & 0x08

    def write(self, b):
        b = bytes(b)
        self.tx += b
        if self.on_write:
            self.on_write(self, b)
        if self.silent:
            return
        if len(b) == 3 and b[0] == 0x10 and b[1] == 0x04:
            self.queries.append(b[2])
            self._answer(self.st[b[2] - 1])
            return
        self.data += b
        if b == b"\x1d\x72\x01" and self.online() and self.answer_job:
            self._answer(0x03 if self.st[3] & 0x0C else 0x00)

    async def drain(self):
        await asyncio.sleep_ms(0)

    async def read(self, n):
        while not self.rx:
            self.ev.clear()
            await self.ev.wait()
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out


def _printer(fake, **kw):
    kw.setdefault("timeout_ms", 60)
    kw.setdefault("poll_ms", 30)
    kw.setdefault("job_ms", 400)
    return EscPosPrinter(fake, **kw)


LINES = ["PAYTERM", "TID EMU00001", "2025-01-02 10:11", "SALE", "CARD 476173******0010", "AMOUNT EUR 12.50",
         "REF 000001 STAN 000001", "APPROVED", "AUTH A1B2C3"]


async def test_each_status_bit_maps_to_its_code():
    cases = [
        (READY, None),
        ([OFFLINE, PAPER_END_STOP, 0x12, PAPER_GONE], "HW-03"),
        ([0x12, 0x12, 0x12, PAPER_GONE], "HW-03"),  # online but the paper end sensor sees no paper
        ([OFFLINE, COVER_OPEN, 0x12, 0x12], "HW-07"),
        ([OFFLINE, ERROR, CUTTER, 0x12], "HW-08"),
        ([OFFLINE, ERROR, FATAL, 0x12], "HW-04"),
        ([OFFLINE, 0x12, 0x12, 0x12], "HW-04"),  # offline with no cause: still a printer fault
    ]
    for st, want in cases:
        f = FakePrinter(st)
        p = _printer(f)
        eq(await p.poll(), want, "status %r" % st)
        eq(p.status(), want, "status() keeps the last check")


async def test_cause_is_asked_only_when_offline():
    f = FakePrinter(READY)
    await _printer(f).poll()
    eq(f.queries, [1, 4], "online: printer status, then the paper sensor")
    f = FakePrinter([OFFLINE, ERROR, CUTTER, 0x12])
    await _printer(f).poll()
    eq(f.queries, [1, 2, 3])


async def test_near_end_is_a_warning_not_a_fault():
    p = _printer(FakePrinter([0x12, 0x12, 0x12, NEAR_END]))
    eq(await p.poll(), None)
    eq(p.near_end, True)


async def test_silence_and_garbage_are_hw09():
    f = FakePrinter()
    f.silent = True
    p = _printer(f)
    eq(await p.poll(), "HW-09")
    e = FakePrinter([0xFF, 0xFF, 0xFF, 0xFF])  # fixed bits wrong: not a status byte
    p = _printer(e)
    eq(await p.poll(), "HW-09")
    assert p.garbage >= 1


async def test_late_answer_is_not_taken_for_the_next_query():
    f = FakePrinter([OFFLINE, COVER_OPEN, 0x12, 0x12])
    f.delay_ms = 120  # slower than timeout_ms: the first query times out
    p = _printer(f)
    eq(await p.poll(), "HW-09")
    f.delay_ms = 0
    f.st = list(READY)
    await asyncio.sleep_ms(150)  # the late OFFLINE answer arrives now
    eq(await p.poll(), None, "the late offline byte must be dropped, not read as the answer")


async def test_print_sends_the_receipt_then_waits_for_end_of_job():
    f = FakePrinter()
    p = _printer(f)
    await p.print_lines(LINES)
    eq(bytes(f.data), receipt_bytes(LINES) + b"\x1d\x72\x01", "receipt, then GS r 1")
    eq(f.queries[:2], [1, 4], "status checked before the first byte")
    assert len(f.queries) >= 3, "polled while printing"
    eq(p.status(), None)


async def test_paper_running_out_mid_print_is_hw03_and_no_cut_is_sent():
    f = FakePrinter()
    n = [0]

    def runs_out(fp, b):
        if b[:1] != b"\x10":
            n[0] += 1
            if n[0] == 3:  # after the third line the roll is empty
                fp.st = [OFFLINE, PAPER_END_STOP, 0x12, PAPER_GONE]

    f.on_write = runs_out
    p = _printer(f, poll_lines=2)
    e = None
    try:
        await p.print_lines(LINES)
    except Fault as x:
        e = x
    assert e is not None, "paper out not reported"
    eq(e.code, "HW-03")
    assert b"\x1d\x56" not in f.data, "printing stopped before the cut"
    eq(p.status(), "HW-03")


async def test_jam_at_the_cut_is_hw08():
    f = FakePrinter()

    def jams(fp, b):
        if b"\x1d\x56\x01" in b:  # GS V 1: the cut jams
            fp.st = [OFFLINE, ERROR, CUTTER, 0x12]

    f.on_write = jams
    p = _printer(f)
    e = None
    try:
        await p.print_lines(LINES)
    except Fault as x:
        e = x
    eq(e and e.code, "HW-08")


async def test_printer_that_never_finishes_is_hw09():
    f = FakePrinter()
    f.answer_job = False  # online and answering DLE EOT, but the receipt never completes
    p = _printer(f, job_ms=150)
    e = None
    try:
        await p.print_lines(LINES)
    except Fault as x:
        e = x
    eq(e and e.code, "HW-09")
    assert "not finished" in e.detail, e.detail


async def test_fault_before_printing_sends_no_receipt():
    f = FakePrinter([OFFLINE, COVER_OPEN, 0x12, 0x12])
    p = _printer(f)
    e = None
    try:
        await p.print_lines(LINES)
    except Fault as x:
        e = x
    eq(e and e.code, "HW-07")
    eq(bytes(f.data), b"", "nothing but status queries")


def test_receipt_bytes_layout():
    b = receipt_bytes(LINES)
    assert b.startswith(b"\x1b@"), "ESC @ first"
    assert b.endswith(b"\x1bd\x04\x1dV\x01"), "feed past the cutter, partial cut"
    head = b"\x1ba\x01\x1bE\x01\x1d!\x11PAYTERM\n\x1d!\x00\x1bE\x00\x1ba\x00"
    eq(b[2:2 + len(head)], head, "title centred, bold, double size")
    for line in LINES[1:]:
        assert line.encode() + b"\n" in b, line


def test_receipt_text_cannot_inject_commands_and_wraps():
    parts = receipt_parts(["X", "A\x1b@\x1dV\x00B", "Insufficient balance. Please use another card."], 20)
    eq(parts[1], b"A?@?V?B\n")
    eq(parts[2:4], [b"Insufficient\n", b"balance. Please use\n"])
    eq(parts[4], b"another card.\n")

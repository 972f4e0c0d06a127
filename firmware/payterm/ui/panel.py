"""Display and keypad of the terminal, behind the panel UART protocol.

The panel controller shows rows the firmware sends (`D<row> <text>`) and
reports each key as one byte (docs/architecture.md). Keys are queued in a
small bounded buffer so a burst of presses is not lost while a transaction
runs, and a stuck key cannot grow memory.
"""
import asyncio

from micropython import const

from payterm.ui.keys import KeyQueue

_ROWS = const(4)  # panel protocol: rows 0..3
_COLS = const(20)  # panel protocol: at most 20 characters a row


class Panel:
    def __init__(self, stream, rows=_ROWS, cols=_COLS):
        self.s = stream
        self.nrows = rows
        self.cols = cols
        self.rows = [""] * rows
        self._keys = KeyQueue()
        self._ev = asyncio.Event()
        self.on_status = None  # the cashier flow decides where a status goes (and times it)

    # ------------------------------------------------------------ display
    def show(self, rows):
        """Replace the whole screen; rows beyond 4 are dropped, long ones cut to 20."""
        rows = list(rows)[: self.nrows]
        while len(rows) < self.nrows:
            rows.append("")
        for i, text in enumerate(rows):
            self._put(i, text)

    def status(self, text):
        """What the terminal is waiting for (connecting, retry 2/4, waiting for host).

        With a cashier flow attached (`on_status`) it decides: shown on the processing screen
        only, so a late status never overwrites a result. Without one, row 2.
        """
        if self.on_status is not None:
            self.on_status(text)
        else:
            self._put(2, text)

    def _put(self, row, text):
        text = str(text)[: self.cols]
        self.rows[row] = text
        if self.s is not None:
            self.s.write(b"D%d %s\n" % (row, text.encode()))

    def beep(self):
        if self.s is not None:
            self.s.write(b"BEEP\n")

    # ------------------------------------------------------------ keypad
    async def run(self):
        """Reader task: queue valid key bytes from the panel UART."""
        if self.s is None:
            return
        while True:
            data = await self.s.read(16)
            if not data:
                await asyncio.sleep_ms(20)
                continue
            for b in data:
                self.push(b)

    def push(self, b):
        """One key byte from the panel; anything that is not a key is line noise."""
        if self._keys.push(b):
            self._ev.set()

    @property
    def dropped(self):
        return self._keys.dropped

    def clear_keys(self):
        self._keys.clear()
        self._ev.clear()

    def wipe_keys(self):
        """clear_keys, and overwrite the queue's memory (after PIN entry)."""
        self._keys.wipe()
        self._ev.clear()

    async def key(self, timeout_ms=None):
        """Next key as a 1-char string, or None after timeout_ms."""
        while not len(self._keys):
            self._ev.clear()
            if timeout_ms is None:
                await self._ev.wait()
            else:
                try:
                    await asyncio.wait_for_ms(self._ev.wait(), timeout_ms)
                except asyncio.TimeoutError:
                    return None
        return self._keys.pop()

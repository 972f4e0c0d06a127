"""Keypad key queue: filled by the keypad driver (a UART reader task, or a GPIO
matrix scan in an interrupt), emptied by the cashier flow.

It sits on `recqueue.RecordQueue` (the C module where it is built in): storage
is allocated once, push never allocates and is atomic, so an IRQ handler may
call `push` while a task pops. A full queue drops the new key and counts it:
a stuck key must not grow memory, and the count is a keypad fault hint.
"""
from micropython import const

import recqueue

_DEPTH = const(16)
KEYS = b"0123456789ECBF*#"


class KeyQueue:
    def __init__(self, depth=_DEPTH):
        self._q = recqueue.RecordQueue(depth, 1)
        self._depth = depth
        self._one = bytearray(1)
        self._out = bytearray(1)

    def push(self, b):
        """Queue key byte `b`; False when it is not a key or the queue is full (IRQ-safe)."""
        if b not in KEYS:
            return False
        self._one[0] = b
        return self._q.push(self._one)

    def pop(self):
        """Next key as a 1-char string, or None."""
        if not self._q.pop_into(self._out):
            return None
        return chr(self._out[0])

    def clear(self):
        self._q.clear()

    def wipe(self):
        """Empty the queue and overwrite every slot of its ring: keys that were PIN digits
        must not stay in RAM after the PIN block is built (payterm.ui.pinentry)."""
        q = self._q
        q.clear()
        z = self._one
        z[0] = 0
        for _ in range(self._depth):
            q.push(z)
        q.clear()
        self._out[0] = 0

    def __len__(self):
        return len(self._q)

    @property
    def dropped(self):
        return self._q.stats()[2]

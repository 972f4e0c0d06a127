"""Link over a scripted connection (no TCP): what an exchange reports when its connection goes away.

The connection fake plays the host's side of one TCP connection: it answers
each request with the frames a test lists (built with the firmware codec).
"""
# runtimes: unix
import asyncio
import time

from mpt import eq

from payterm.errors import Fault
from payterm.link import iso8583
from payterm.link.link import Link


class _Conn:
    """Answers the request with `answers(req)` frames; `on_read(n)` runs before each read."""

    def __init__(self, answers, on_read=None):
        self.codec = iso8583.Codec()
        self.answers = answers
        self.on_read = on_read
        self.sent = bytearray()
        self.inbox = bytearray()
        self.closed = 0

    def write(self, b):
        self.sent.extend(b)
        req = self.codec.decode(bytes(self.sent[2:]))
        for resp in self.answers(req):
            self.inbox.extend(self.codec.frame(resp))

    async def drain(self):
        pass

    async def readexactly(self, n):
        if self.on_read is not None:
            await self.on_read(n)
        if len(self.inbox) < n:
            await asyncio.sleep_ms(3600000)
        out = bytes(self.inbox[:n])
        self.inbox = self.inbox[n:]
        return out

    def close(self):
        self.closed += 1

    async def wait_closed(self):
        pass


def _link(conn):
    async def open_connection(host, port, **kw):
        return conn, conn

    return Link([("127.0.0.1", 1)], open_connection, time.ticks_ms, 500, 500)


async def test_connection_closed_while_the_answer_is_awaited_is_ambiguous_net05():
    # The first frame answers someone else (ignored); before the next read the connection is
    # closed under the exchange: the request left, its outcome is unknown.
    link = None
    reads = []

    def answers(req):
        return [{"t": "0210", "11": "999999", "41": req["41"], "39": "00"}]

    async def on_read(n):
        reads.append(n)
        if len(reads) == 2:  # the other STAN's body is being read: close the connection now
            await link.close()

    conn = _Conn(answers, on_read)
    link = _link(conn)
    try:
        await link.exchange({"t": "0200", "3": "000000", "4": "000000001000", "11": "000001", "41": "TERM0042"})
        raise AssertionError("no fault")
    except Fault as f:
        eq((f.code, f.sent), ("NET-05", True), repr(f))
    eq((link.ignored, conn.closed >= 1, link.ready()), (1, True, False))

"""Cashier training mode: a host inside the firmware, so nothing reaches the acquirer.

In training mode the cashier flows run on a second Engine whose supervisor is
a `TrainingHost`: it answers every request itself, after a short pause that
feels like a host, with the same fields an acquirer returns (MTI + 10, STAN,
TID, amount, response code, auth code, RRN), so the engine's outcome rules
are the real ones. That engine keeps its own journal and numbering in a
directory of its own (`training/` under the storage root, emptied each time
training starts): the terminal's journal, STANs, offline queue and
diagnostics never see a training transaction, and no socket is opened.

To practise the screens a cashier meets, a sale whose amount ends in one of
the PRACTICE cents (e.g. EUR 12.51) is declined with that response code
(ISS-51: insufficient funds); every other request is approved.
"""
import asyncio
import os

from micropython import const

from payterm.link import iso8583

DIR = "training"
PRACTICE = ("05", "14", "51", "54", "57", "91")  # cents of a training sale that decline with that rc
_DELAY_MS = const(400)  # a host's answer is not instant; the cashier sees WAITING FOR HOST
_PC_PURCHASE = "00"  # ISO 8583 field 3, positions 1-2: purchase


def storage(root):
    """The training engine's storage directory, created and emptied (a fresh session)."""
    path = root.rstrip("/") + "/" + DIR
    try:
        os.mkdir(path)
    except OSError:
        pass  # already there
    for name in os.listdir(path):
        try:
            os.remove(path + "/" + name)
        except OSError:
            pass
    return path


class TrainingHost:
    """Supervisor-compatible stand-in for the acquirer link (payterm.link.supervisor.Supervisor)."""

    online = True

    def __init__(self, status=None, delay_ms=_DELAY_MS, sleep_ms=None):
        self._status = status or (lambda text: None)
        self.delay_ms = delay_ms
        self._sleep_ms = sleep_ms or asyncio.sleep_ms
        self.requests = 0
        self._auth = 0
        self._rrn = 0

    # the parts of the Supervisor interface the engine and the worker use
    def set_echo_fields(self, fn):
        pass

    def watch(self, fn):
        pass

    async def wait_online(self):
        return

    async def preempt(self):
        return

    async def echo(self, deadline_ms=None, background=False):
        return await self.request({"t": "0800", "11": "000000"}, deadline_ms, background)

    async def request(self, fields, deadline_ms=None, background=False):
        self.requests += 1
        if not background:
            self._status("WAITING FOR HOST")
        await self._sleep_ms(self.delay_ms)
        return self.answer(fields)

    def answer(self, fields):
        """The response an acquirer would give: approved, or a practice decline."""
        mti = fields.get("t", "0200")
        resp = {"t": iso8583.response_mti(mti), "11": fields.get("11")}
        for k in ("3", "4", "41", "49"):
            if k in fields:
                resp[k] = fields[k]
        rc = "00"
        f4 = fields.get("4")
        if mti == "0200" and str(fields.get("3", ""))[:2] == _PC_PURCHASE and f4:
            cents = str(f4)[-2:]
            if cents in PRACTICE:
                rc = cents
        resp["39"] = rc
        if mti[:2] in ("02", "01"):
            self._rrn += 1
            resp["37"] = "TRN%09d" % self._rrn
            if rc == "00":
                self._auth += 1
                resp["38"] = "TR%04d" % (self._auth % 10000)
        return resp


def engine(cfg, root, clock, ticks, status):
    """A training Engine: the terminal's parameters, a TrainingHost, its own journal and numbers, no diagnostics."""
    from payterm.diag import NullDiag
    from payterm.txn.engine import Engine
    from payterm.txn.journal import Journal
    from payterm.txn.state import State

    path = storage(root)
    diag = NullDiag()
    host = TrainingHost(status)
    return Engine(host, Journal(path, diag), State(path, diag=diag), None, cfg, diag, clock, ticks, status,
                  close_waits=False)

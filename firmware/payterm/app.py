"""The terminal application: builds every layer from the HAL and runs one task per device.

Tasks: panel (keypad in), console (technician line protocol), one owner
per card reader (magstripe, nfc: they read all the time and hand a card
only to a sale that waits for one), cashier (the payment flows), link
health (the supervisor's echo probes while offline), the background worker
(reversals, store-and-forward), diagnostics autosave and the watchdog.
Each task has one job; a task that dies is recorded as a fault and
restarted, so one broken device cannot stop the others.
"""
import asyncio
import os
import time

from payterm import VERSION, config
from payterm.card.service import CardService
from payterm.crypto.dukpt import Dukpt
from payterm.diag import Diag
from payterm.diag.console import Console
from payterm.diag.pin import PinGate
from payterm.diag.selftest import SelfTests, memory_check, storage_check
from payterm.errors import Fault
from payterm.link.backoff import Backoff
from payterm.link.breaker import Breaker
from payterm.link.link import Link
from payterm.link.supervisor import Supervisor
from payterm.txn.cardstore import CardStore
from payterm.txn.engine import Engine
from payterm.txn.worker import Worker
from payterm.txn.journal import Journal
from payterm.txn.state import State
from payterm.ui.panel import Panel
from payterm.ui.flows import Cashier


def _rand(lo, hi):
    """Uniform int in [lo, hi] from the hardware RNG (jitter must not be predictable)."""
    if hi <= lo:
        return lo
    r = int.from_bytes(os.urandom(4), "big")
    return lo + r % (hi - lo + 1)


class App:
    def __init__(self, hal, board):
        self.hal = hal
        self.board = board
        root = hal.storage
        ticks, clock = hal.ticks, hal.clock
        cfg = config.load(board, root, hal.config_overrides())
        self.cfg = cfg
        self.console_s = hal.stream("console")
        self.diag = Diag(root, clock, ticks)
        self.reset_reason = hal.reset_cause()
        self.diag.boot(self.reset_reason)
        self.panel = self._panel(hal)
        if "_config_error" in cfg:
            self.diag.fault("SYS-07", "boot", cfg["_config_error"])
        if not hal.clock_set():
            self.diag.fault("SYS-03", "boot")
        self.journal = Journal(root, self.diag)
        self.state = State(root, diag=self.diag)
        self.keys = self._keys(root)
        self.cards_at_rest = CardStore(root, cfg["saf_max_count"], diag=self.diag)
        tls = cfg.get("tls")
        if tls:
            tls = dict(tls)
            tls["ssl"] = hal.ssl_module()
        self.link = Link(config.hosts(cfg), hal.open_connection, ticks, cfg["connect_timeout_ms"],
                         cfg["read_timeout_ms"], tls=tls)
        self.breaker = Breaker(cfg["breaker_threshold"], cfg["breaker_open_ms"], ticks,
                               max_open_ms=cfg["breaker_open_max_ms"], rand=_rand)
        self.sup = Supervisor(self.link, Backoff(cfg["backoff_base_ms"], cfg["backoff_cap_ms"], _rand),
                              self.breaker, ticks, self.panel.status, max_attempts=cfg["max_attempts"],
                              max_wait_ms=cfg["max_wait_ms"], diag=self.diag, min_read_ms=cfg["min_read_ms"],
                              probe_wait_ms=cfg["worker_wait_ms"])
        # The cashier closes each transaction's wait record: it also times the card read and the receipt.
        self.engine = Engine(self.sup, self.journal, self.state, None, cfg, self.diag, clock, ticks,
                             self.panel.status, close_waits=False, keys=self.keys, cards=self.cards_at_rest)
        self.worker = Worker(self.engine, self.sup, ticks, rand=_rand, on_change=self._queue_changed)
        self.cards = CardService(hal.stream("mag"), hal.stream("nfc"), ticks, clock, cfg)
        self.pin = PinGate(root + "/pin.json", cfg["tech_pin_hash"], clock, diag=self.diag)
        # The merchant's (supervisor's) PIN: refund, void, training mode. Its own file and lockout.
        self.merchant_pin = None
        if config.pin_hash(cfg, "merchant_pin_hash"):
            self.merchant_pin = PinGate(root + "/mpin.json", cfg["merchant_pin_hash"], clock, diag=self.diag,
                                        wrong="OPR-07", locked="OPR-08")
        self.selftests = self._selftests(root)
        self.cashier = Cashier(self)
        self.console = Console(self.diag, self.selftests, self.pin, clock, info=self.info, queue=self.worker,
                               link=self.link_info, recent=self.cashier.recent)  # `saf`, `retry <ref>`, `link`, `recent`
        self._started = ticks()

    def _keys(self, root):
        """The DUKPT key registers (`keys.json`, apart from the numbering state), and the
        initial key file if one was put on flash (loaded once, then erased: docs/keys.md)."""
        keys = Dukpt(State(root, "keys", diag=self.diag))
        self._key_events = []
        try:
            ikid = keys.install_file(root + "/ikey.json")
            if ikid:
                self._key_events.append("KEYS LOADED ikid=%s" % ikid)
        except Fault as f:
            self.diag.fault(f.code, "boot", f.detail)
            self._key_events.append("KEYS %s %s" % (f.code, f.detail))
        return keys

    def key_status(self):
        """What the technician sees of the keys (never key material)."""
        k = self.keys
        code = k.problem()
        if code is None:
            return "ikid=%s next=%d" % (k.ikid(), k.next_counter())
        return "%s ikid=%s" % (code, k.ikid() or "-")

    def _panel(self, hal):
        """The board's own display and keypad (LocalPanel) where it has them, else the panel UART.

        A display that cannot be built leaves a panel that only keeps `rows`: the
        console still serves the technician, and the fault log says why.
        """
        try:
            p = hal.panel(on_fault=self._device_fault)
        except Fault as f:
            self._device_fault(f)
            return Panel(None)
        return p if p is not None else Panel(hal.stream("panel"))

    def _device_fault(self, f):
        """A device fault outside any transaction (display, keypad): fault log and console."""
        self.diag.fault(f.code, f.stage, f.detail)
        self.event("FAULT %s %s: %s" % (f.code, f.stage, f.detail))

    # ------------------------------------------------------------ status for technicians
    def _queue_changed(self):
        """The idle screen shows the offline queue count: redraw it when the worker changes the queue."""
        self.cashier.queue_changed()

    def link_info(self):
        """Link quality for the technician: host, breaker, retries, last echo (console `link`, tech menu)."""
        sup = self.sup
        c = sup.counters()
        st = self.diag.stats()["counters"]
        le = sup.last_echo
        if le is None:
            echo = "-"
        else:
            ago = time.ticks_diff(self.hal.ticks(), le[0]) // 1000
            echo = "%s %dms %ds ago" % (le[2] or "ok", le[1], ago)
        return {
            "host": c["host"],
            "link": "online" if c["online"] else "offline",
            "breaker": str(c["breaker"]),
            "requests": c["requests"],
            "retries": c["retries"],
            "retries_total": st.get("retry", 0),
            "breaker_trips": c["breaker_trips"],
            "host_switches": c["host_switches"],
            "ambiguous": c["ambiguous"],
            "probes": c["probes"],
            "last_echo": echo,
        }

    def info(self):
        s = self.engine.saf.summary()
        failed = [t["ref"] for t in self.worker.failed()]
        return {
            "version": VERSION,
            "board": self.board.get("name", "?"),
            "tid": self.cfg["terminal_id"],
            "host": "%s:%d" % self.link.hosts[self.link.current],
            "link": "online" if self.sup.online else "offline",
            "breaker": str(self.breaker.state),
            "saf_pending": s["pending"],
            "saf_failed": len(failed),
            "saf": "pending %d sent %d declined %d failed %d" % (s["pending"], s["sent"], s["declined"], s["failed"]),
            "saf_failed_refs": " ".join(failed) or "-",
            "reversals_pending": len(self.engine.reversals()),
            "keys": self.key_status(),
            "reset_reason": self.reset_reason,
            "screen": " | ".join(self.panel.rows),
            "mem_free": self.hal.mem_free(),
        }

    def _selftests(self, root):
        st = SelfTests(self.diag)
        st.add("reader", self.cards.ping)
        st.add("comm", self._comm_test)
        st.add("storage", storage_check(root))
        st.add("printer", self._printer_test)
        st.add("keypad", self._keypad_test)
        st.add("memory", memory_check(8192))
        return st

    async def _comm_test(self):
        await self.engine.sup.link_test(self.cfg["connect_timeout_ms"] + self.cfg["read_timeout_ms"])
        return "echo ok %s:%d" % self.link.hosts[self.link.current]

    async def _printer_test(self):
        p = self.hal.printer
        if p is None:
            code = "HW-04"
        elif hasattr(p, "poll"):
            code = await p.poll()  # ask the printer now (ESC/POS: DLE EOT)
        else:
            code = p.status()
        if code:
            raise Fault(code, "printer status", "selftest")
        return "ready"

    async def _keypad_test(self):
        # A local panel whose keypad could not be built has none (its fault is logged already).
        if getattr(self.panel, "keypad", 0) is None:
            raise Fault("HW-05", "no keypad driver", "selftest")
        # The keypad controller drops invalid bytes; a full queue means keys are stuck.
        if self.panel.dropped:
            raise Fault("HW-05", "%d keys dropped" % self.panel.dropped, "selftest")
        return "ok"

    # ------------------------------------------------------------ console UART
    def event(self, text):
        """Unsolicited console line (`# ...`): tests and technicians follow the terminal live."""
        if self.console_s is not None:
            self.console_s.write(b"# " + text.encode() + b"\n")

    async def _console(self):
        if self.console_s is not None:
            await self.console.serve(self.console_s)

    # ------------------------------------------------------------ tasks
    async def _guard(self, name, fn):
        """Restart a device task that died; each death is a fault the technician sees."""
        while True:
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.diag.fault("SYS-09", name, repr(e))
                self.event("TASK %s restarted: %r" % (name, e))
                await asyncio.sleep_ms(500)

    async def _watchdog(self):
        while True:
            self.hal.wdt_feed()
            await asyncio.sleep_ms(1000)

    async def run(self):
        for e in self._key_events:
            self.event(e)
        n = await self.engine.recover()
        if n:
            self.event("RECOVERED %d in-flight transaction(s): reversal queued" % n)
        tasks = [
            asyncio.create_task(self._guard("panel", self.panel.run)),
            asyncio.create_task(self._guard("console", self._console)),
        ]
        tasks += [asyncio.create_task(self._guard(name, fn)) for name, fn in self.cards.tasks()]
        tasks += [
            asyncio.create_task(self._guard("link", self.sup.run)),
            asyncio.create_task(self._guard("workers", self.worker.run)),
            asyncio.create_task(self._guard("diag", self.diag.autosave)),
            asyncio.create_task(self._watchdog()),
        ]
        # Let every task take its first step (the keypad's first scan: a key closed then counts as held
        # since power-on, not as a press) before telling the world the terminal takes input.
        await asyncio.sleep_ms(0)
        self.event("READY payterm %s board=%s reset=%s" % (VERSION, self.board.get("name", "?"), self.reset_reason))
        await self._guard("cashier", self.cashier.run)
        for t in tasks:
            t.cancel()


def main(hal, board):
    app = App(hal, board)
    asyncio.run(app.run())

"""CardService: the readers' owner tasks and a sale's card presentment.

One asyncio task per reader owns it for the terminal's lifetime
(`tasks()`: the app runs and restarts them; `start()` runs them here for
tests and tools). A sale *arms* the readers with `present()`; only a card
presented while a sale waits for one is read for that sale. Whatever the
readers deliver at any other time (a swipe at the idle screen, during
amount entry, while a transaction is authorized) is read, overwritten and
discarded, and reported through `on_ignored("swipe")`. The PN532 owner
keeps looking at the field while no sale waits (every nfc_idle_ms), so a
card put down before the sale is known to be there (`on_ignored("tap")`
when it turns up) and stray answers from the reader are drained with each
command.

Presentment rules:
- `present()` first looks at the contactless field, then calls
  `prompt("present")`: the prompt appears once the terminal knows the field
  state. A card already in the field then (left from the previous sale, or
  put down before the sale started) is not read: `prompt("remove")` asks to
  take it away, and `prompt("present")` follows when the field was seen
  empty. A card that turns up between the last look while idle (at most
  nfc_idle_ms before) and the first look counts as presented for the sale;
  without a look in the last nfc_fresh_ms the field must be seen empty first.
- A contactless card is read only after the field was seen empty (PN532
  target released and not re-detected) since the prompt and since the last
  read, so a card left on the reader never pays twice. This does not look
  at UIDs: most cards and phones use a random UID per activation.
- After a tap the owner keeps polling until the field is empty, while the
  authorization goes on; `awaiting_removal` says whether it still waits,
  `on_field_empty()` is called when the card has gone (display: REMOVE CARD).
- A read error (a card code the catalog marks retryable: magstripe
  CRD-02..06, chip card swiped CRD-10, contactless CRD-11/12/13, and the
  reader frame error HW-02) keeps the sale waiting for another try:
  `prompt("error", fault)`, up to `card_read_tries` reads; the last error
  then ends the presentment with its code. Other failures end it at once.

A broken contactless reader must not stop swipes, so its fault is
remembered and only reported if nothing else happens before the timeout;
a broken reader also allows magstripe fallback for chip cards, as does a
chip read that just failed (EMV fallback rules).
"""
import asyncio
import time

from micropython import const

from payterm import codes
from payterm.errors import Fault
from payterm.card import emv
from payterm.card.card import Card
from payterm.card.magstripe import card_from_swipe
from payterm.card.pn532 import PN532

from payterm.config import DEFAULTS  # the one table of terminal parameters

# Failed taps after which a chip card may be swiped (EMV fallback): a read that broke off, and a
# tap the card or the limits send to another interface (CRD-14 above the contactless limit, CRD-15 6985).
_CHIP_FAILURES = ("CRD-11", "CRD-13", "CRD-14", "CRD-15", "CRD-16", "HW-02")
_MAG_MAX = const(512)
_CHUNK = const(64)
_STAGE = "card"


def _urandom(n):
    import os

    return os.urandom(n)


def read_error(code):
    """A failed read worth another try in the same sale (catalog: retryable card codes, HW-02)."""
    if code == "HW-02":
        return True
    if code == "CRD-01" or not codes.known(code):
        return False
    e = codes.lookup(code)
    return e[codes.CATEGORY] == "card" and e[codes.RETRYABLE]


class _Cfg:
    """cfg with DEFAULTS underneath, for any dict-like the app passes."""

    def __init__(self, cfg):
        self.cfg = cfg or {}

    def get(self, key, default=None):
        v = self.cfg.get(key, None)
        if v is None:
            v = DEFAULTS.get(key, default)
        return v


def _zero(b):
    for i in range(len(b)):
        b[i] = 0


class CardService:
    def __init__(self, mag_stream, nfc_stream, ticks, clock, cfg=None, rand=None):
        self.mag = mag_stream
        self.cfg = _Cfg(cfg)
        self.ticks = ticks
        self.clock = clock
        self.rand = rand or _urandom
        c = self.cfg
        self.nfc = None
        if nfc_stream is not None and c.get("nfc_enabled"):
            self.nfc = PN532(nfc_stream, ticks, c.get("nfc_ack_ms"), c.get("nfc_resp_ms"))
        self.nfc_fault = None
        self._fallback_at = None
        self._magbuf = bytearray(_MAG_MAX)
        self._magchunk = bytearray(_CHUNK)
        self._mag_readinto = getattr(mag_stream, "readinto", None)
        # callbacks the app sets: a swipe nobody waited for; the field emptied after a tap
        self.on_ignored = None
        self.on_field_empty = None
        self.ignored = 0
        self._started = False
        self._wake = asyncio.Event()
        # presentment state (one sale at a time)
        self._armed = False
        self._gen = 0
        self.read_ms = 0
        self._read_at = None
        self._slot = None
        self._ev = asyncio.Event()
        self._prompt = None
        self._prompted = False
        self._amount = 0
        self._currency = "978"
        # contactless field state
        self._need_empty = True  # a read must wait for an empty field
        self._watch = False  # poll until the field is empty (after a read, or a card seen)
        self._removing = False  # "remove" was told and not yet followed by "present"
        self._seen_at = None  # ticks of the last look at the field
        self._checked = asyncio.Event()  # set after each look (present() waits for one)
        self._ping_req = False
        self._ping_ev = asyncio.Event()
        self._ping_res = None

    # ------------------------------------------------------------ tasks
    def tasks(self):
        """(name, coroutine function) of each reader's owner task, for the app to run and restart."""
        self._started = True
        out = []
        if self.mag is not None:
            out.append(("magstripe", self.run_mag))
        if self.nfc is not None:
            out.append(("nfc", self.run_nfc))
        return out

    def start(self):
        """Run the owner tasks here (tests, tools) unless the app already runs them."""
        if not self._started:
            for _, fn in self.tasks():
                asyncio.create_task(fn())

    @property
    def armed(self):
        """True while a sale waits for a card."""
        return self._armed

    @property
    def awaiting_removal(self):
        """True while a card that was read (or seen) may still lie on the contactless reader."""
        return self.nfc is not None and self._watch

    # ------------------------------------------------------------ self-test
    async def ping(self):
        """Reader self-test (SelfTests check): re-initialise the PN532 and read its version.

        Returns a short detail string; raises HW-01/HW-02. Only the PN532 can
        be probed: a magstripe module is a silent talker. The owner task does
        the work, between its other commands.
        """
        if self.nfc is None:
            return "no contactless reader"
        self.start()
        self._ping_ev = asyncio.Event()
        self._ping_req = True
        self._wake.set()
        await self._ping_ev.wait()
        r = self._ping_res
        self._ping_res = None
        if isinstance(r, Fault):
            raise r
        return r

    # ------------------------------------------------------------ presentment
    async def present(self, amount, currency, timeout_ms, prompt=None):
        """Wait up to timeout_ms for a card; return Card or raise Fault.

        prompt(event, fault=None), optional: "present" (ask for a card),
        "remove" (a card lies on the reader that will not be read until it
        has left), "error" (a read error, fault: the sale waits for another try).
        """
        self.start()
        tries = int(self.cfg.get("card_read_tries")) or 1
        self._gen += 1
        self._slot = None
        self._ev = asyncio.Event()
        self._prompt = prompt
        self._prompted = False
        self._removing = False
        self._amount = amount
        self._currency = currency
        self.read_ms = 0  # time the readers spent reading for this sale (wait analysis: terminal time)
        self._read_at = None
        seen = self._seen_at
        if seen is None or time.ticks_diff(self.ticks(), seen) >= self.cfg.get("nfc_fresh_ms"):
            self._need_empty = True  # the field state is not known: a card there now must leave first
        self._armed = True
        try:
            if self.nfc is not None:
                # One look at the field before the prompt shows what to do.
                self._checked = asyncio.Event()
                self._wake.set()
                try:
                    await asyncio.wait_for_ms(self._checked.wait(), self.cfg.get("nfc_check_ms"))
                except asyncio.TimeoutError:
                    pass
            self._prompted = True
            self._tell("remove" if self._removing else "present")
            n = 0
            while True:
                r = await self._wait(timeout_ms)
                if r is None:
                    if self.nfc_fault is not None:
                        raise self.nfc_fault
                    raise Fault("CRD-01", "no card in %d ms" % timeout_ms, _STAGE)
                if isinstance(r, Fault):
                    n += 1
                    if not read_error(r.code) or n >= tries:
                        raise r
                    self._tell("error", r)
                    continue
                return r
        finally:
            self._armed = False
            self._prompt = None
            r = self._slot
            self._slot = None
            if isinstance(r, Card):
                r.wipe()  # delivered after the wait ended: nobody will use it

    async def _wait(self, timeout_ms):
        start = self.ticks()
        while self._slot is None:
            left = timeout_ms - time.ticks_diff(self.ticks(), start)
            if left <= 0:
                return None
            self._ev.clear()
            try:
                await asyncio.wait_for_ms(self._ev.wait(), min(left, 200))
            except asyncio.TimeoutError:
                pass
        r = self._slot
        self._slot = None
        return r

    def _tell(self, event, fault=None):
        p = self._prompt
        if p is not None and self._prompted:
            if fault is None:
                p(event)
            else:
                p(event, fault)

    def _deliver(self, r, gen):
        """A reader's result for the sale armed as `gen`; anything else is wiped and dropped."""
        if self._armed and gen == self._gen and self._slot is None:
            if self._read_at is not None:
                self.read_ms += time.ticks_diff(self.ticks(), self._read_at)
                self._read_at = None
            self._slot = r
            self._ev.set()
            return True
        if isinstance(r, Card):
            r.wipe()
        return False

    def _fallback_allowed(self):
        if self.nfc is None or self.nfc_fault is not None:
            return True
        if self._fallback_at is None:
            return False
        return time.ticks_diff(self.ticks(), self._fallback_at) < self.cfg.get("fallback_ms")

    # ------------------------------------------------------------ magstripe owner
    async def run_mag(self):
        """Owner of the magstripe UART: every swipe is read; only an armed sale gets it."""
        if self.mag is None:
            return
        c = self.cfg
        while True:
            try:
                n, gen = await self._read_swipe()
            except OSError as e:
                self._deliver(Fault("HW-01", "magstripe reader: %s" % e, "swipe"), self._gen if self._armed else -1)
                self.wipe_mag()
                await asyncio.sleep_ms(c.get("mag_retry_ms"))
                continue
            if not (self._armed and gen == self._gen):
                self.wipe_mag()
                self.ignored += 1
                if self.on_ignored is not None:
                    self.on_ignored("swipe")
                continue
            if n < 0:
                r = Fault("CRD-06", "swipe too long", "swipe")
            else:
                try:
                    r = card_from_swipe(memoryview(self._magbuf)[:n], self.clock(),
                                        c.get("chip_available") and self.nfc is not None,
                                        self._fallback_allowed(), c.get("mag_lrc_required"))
                except Fault as f:
                    r = f
            self.wipe_mag()
            if isinstance(r, Card):
                self._fallback_at = None
            self._deliver(r, gen)

    def wipe_mag(self):
        """Zero the swipe buffers (raw track data)."""
        _zero(self._magbuf)
        _zero(self._magchunk)

    async def _mag_read(self):
        if self._mag_readinto is not None:
            n = await self._mag_readinto(self._magchunk)
            return memoryview(self._magchunk)[:n] if n else None
        return await self.mag.read(_CHUNK)

    async def _read_swipe(self):
        """One swipe: the first byte, then everything until a quiet gap.

        Returns (length or -1 if longer than the buffer, arming generation at
        the first byte: 0 when no sale waited then).
        """
        buf = self._magbuf
        n = 0
        gap = self.cfg.get("mag_gap_ms")
        while True:
            chunk = await self._mag_read()
            if chunk:
                break
            # Woken with nothing to read (VMIN=0 pty, UART timeout): not a swipe.
            await asyncio.sleep_ms(gap)
        gen = self._gen if self._armed else 0
        if gen:
            self._read_at = self.ticks()  # the customer has swiped: from here the terminal reads
        while True:
            m = len(chunk)
            if n + m > _MAG_MAX:
                # Drain the rest of the burst so the next swipe starts clean.
                n = _MAG_MAX + 1
            else:
                buf[n:n + m] = chunk
                n += m
            try:
                chunk = await asyncio.wait_for_ms(self._mag_read(), gap)
            except asyncio.TimeoutError:
                break
            if not chunk:
                await asyncio.sleep_ms(gap)
                break
        return (-1 if n > _MAG_MAX else n), gen

    # ------------------------------------------------------------ contactless owner
    async def run_nfc(self):
        """Owner of the PN532: looks at the field all the time, reads only for a sale that waits.

        While no sale waits it polls every nfc_idle_ms, so the field state is
        known when a sale starts (a card put down early is seen), answers
        nobody waited for are drained with each command, and a card that
        turns up is reported through `on_ignored("tap")`.
        """
        nfc = self.nfc
        if nfc is None:
            return
        if nfc.busy:
            nfc.ready = False  # restarted in the middle of a command
        c = self.cfg
        while True:
            if self._ping_req:
                await self._do_ping(nfc)
                continue
            try:
                pause = await self._nfc_step(nfc)
            except OSError as e:
                self.nfc_fault = Fault("HW-01", "nfc stream: %s" % e, "nfc")
                nfc.ready = False
                pause = c.get("nfc_retry_ms")
            self._checked.set()
            if not pause:
                continue
            if not (self._armed or self._watch) and pause < c.get("nfc_idle_ms"):
                pause = c.get("nfc_idle_ms")
            self._wake.clear()
            try:
                await asyncio.wait_for_ms(self._wake.wait(), pause)
            except asyncio.TimeoutError:
                pass

    async def _nfc_step(self, nfc):
        """One look at the field (and a read when allowed); returns the pause before the next."""
        c = self.cfg
        if not nfc.ready:
            try:
                await nfc.begin()
                self.nfc_fault = None
            except Fault as f:
                self.nfc_fault = f
                return c.get("nfc_retry_ms")
        try:
            tgt = await nfc.poll()
            fault = None
        except Fault as f:
            if f.code.startswith("HW-"):
                self.nfc_fault = f
                nfc.ready = False
                return c.get("nfc_retry_ms")
            tgt = None
            fault = f  # a collision, or a card that is not ISO-DEP: something is in the field
        if tgt is None and fault is None:
            self._field_empty()
            self._seen_at = self.ticks()
            return c.get("nfc_poll_ms")
        self._seen_at = self.ticks()
        if self._armed and not self._need_empty:
            gen = self._gen
            self._need_empty = True
            self._watch = True
            self._read_at = self.ticks()  # the card is in the field: from here the terminal reads
            r = fault if fault is not None else await self._read_emv(nfc, tgt)
            self._deliver(r, gen)
            return c.get("nfc_poll_ms")
        if tgt is not None:
            await nfc.release(tgt.tg)
        if not self._armed and not self._watch:  # turned up while no sale waits (not the card just read)
            self.ignored += 1
            if self.on_ignored is not None:
                self.on_ignored("tap")
        self._card_seen()
        return c.get("nfc_poll_ms")

    def _card_seen(self):
        """A card is in the field that may not be read now: it has to leave first."""
        self._need_empty = True
        self._watch = True
        if self._armed and not self._removing:
            self._removing = True
            self._tell("remove")

    def _field_empty(self):
        self._need_empty = False
        if self._watch:
            self._watch = False
            if self.on_field_empty is not None:
                self.on_field_empty()
        if self._removing:
            self._removing = False
            if self._armed:
                self._tell("present")

    async def _do_ping(self, nfc):
        self._ping_req = False
        nfc.ready = False
        try:
            fw = await nfc.begin()
            self.nfc_fault = None
            res = "PN5%02x v%d.%d" % (fw[0], fw[1], fw[2])
        except Fault as f:
            self.nfc_fault = res = f
        except OSError as e:
            self.nfc_fault = res = Fault("HW-01", "nfc stream: %s" % e, "nfc")
        self._ping_res = res
        self._ping_ev.set()

    async def _read_emv(self, nfc, tgt):

        async def xchg(apdu):
            return await nfc.exchange(tgt.tg, apdu)

        try:
            card = await emv.read_card(xchg, self._amount, self._currency, self.cfg, self.clock(), self.rand(4))
            await nfc.release(tgt.tg)
        except Fault as f:
            if f.code in _CHIP_FAILURES:
                self._fallback_at = self.ticks()
            if f.code.startswith("HW-"):
                nfc.ready = False
            return f
        except OSError:
            raise
        except Exception as e:  # a bug in the read must end this sale's wait, not hang it
            return Fault("SYS-09", "emv: %s" % type(e).__name__, "nfc")
        finally:
            nfc.wipe()  # the frames held the records: PAN, track 2, cryptogram
        self._fallback_at = None
        return card

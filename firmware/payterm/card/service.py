"""CardService: wait for a swipe or a tap, whichever comes first.

Both readers are watched at once because the customer picks: the first
reader to produce a card (or a card-related failure) ends the wait and the
other is stopped. A broken contactless reader must not stop swipes, so
its fault is remembered and only reported if nothing else happens before
the timeout; a broken reader also allows magstripe fallback for chip
cards, as does a chip read that just failed (EMV fallback rules).
A card left in the field after a read is not read again until it has
been seen gone or `same_card_ms` has passed, so one tap does not pay
twice; cards with a random UID per activation look new on every tap.
"""
import asyncio
import time

from payterm.errors import Fault
from payterm.card import emv
from payterm.card.magstripe import card_from_swipe
from payterm.card.pn532 import PN532

DEFAULTS = {
    "chip_available": True,  # terminal reads chip/contactless: service code 2xx/6xx must not be swiped
    "fallback_ms": 60000,  # after a failed tap, a swipe of a chip card is accepted this long
    "mag_gap_ms": 80,  # silence that ends one swipe's burst of track data
    "mag_lrc_required": False,  # reject tracks without LRC (modules that always send one)
    "nfc_enabled": True,
    "nfc_ack_ms": 50,  # UM0701 6.2.2: ACK within 1 ms nominal; UART latency margin
    "nfc_resp_ms": 1000,
    "nfc_poll_ms": 150,  # pause between InListPassiveTarget polls
    "nfc_retry_ms": 2000,  # re-initialise a reader that stopped answering
    "same_card_ms": 3000,  # a card left on the reader is not read again within this time
    "aids": emv.DEFAULT_AIDS,
    "country": "0840",  # 9F1A terminal country code (ISO 3166 numeric)
    "ttq": "36000000",  # 9F66 terminal transaction qualifiers
    "terminal_type": "22",  # 9F35 attended, online with offline capability
    "capabilities": "E0F0C8",  # 9F33
}

_CHIP_FAILURES = ("CRD-11", "CRD-13", "HW-02")
_MAG_MAX = 512
_STAGE = "card"


def _urandom(n):
    import os

    return os.urandom(n)


class _Cfg:
    """cfg with DEFAULTS underneath, for any dict-like the app passes."""

    def __init__(self, cfg):
        self.cfg = cfg or {}

    def get(self, key, default=None):
        v = self.cfg.get(key, None)
        if v is None:
            v = DEFAULTS.get(key, default)
        return v


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
        self._last_uid = None
        self._last_at = 0
        self._magbuf = bytearray(_MAG_MAX)
        self._done = None
        self._result = None

    # ------------------------------------------------------------ self-test
    async def ping(self):
        """Reader self-test (SelfTests check): re-initialise the PN532 and read its version.

        Returns a short detail string; raises HW-01/HW-02. Only the PN532 can
        be probed: a magstripe module is a silent talker.
        """
        if self.nfc is None:
            return "no contactless reader"
        self.nfc.ready = False
        try:
            await self.nfc.begin()
        except Fault as f:
            self.nfc_fault = f
            raise
        self.nfc_fault = None
        fw = self.nfc.firmware
        return "PN5%02x v%d.%d" % (fw[0], fw[1], fw[2])

    # ------------------------------------------------------------ race
    async def present(self, amount, currency, timeout_ms):
        """Wait up to timeout_ms for a card; return Card or raise Fault."""
        self._result = None
        self._done = asyncio.Event()
        tasks = []
        if self.mag is not None:
            tasks.append(asyncio.create_task(self._guard(self._mag_task(), "swipe")))
        if self.nfc is not None:
            if self.nfc.busy:
                self.nfc.ready = False  # a cancelled command may still be running
            tasks.append(asyncio.create_task(self._guard(self._nfc_task(amount, currency), "nfc")))
        start = self.ticks()
        try:
            while not self._done.is_set():
                left = timeout_ms - time.ticks_diff(self.ticks(), start)
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for_ms(self._done.wait(), min(left, 200))
                except asyncio.TimeoutError:
                    pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.sleep_ms(0)
        r = self._result
        self._result = None  # the card lives only with the caller (wipe() after authorization)
        if isinstance(r, Fault):
            raise r
        if r is not None:
            return r
        if self.nfc_fault is not None:
            raise self.nfc_fault
        raise Fault("CRD-01", "no card in %d ms" % timeout_ms, _STAGE)

    async def _guard(self, coro, stage):
        """A reader task never dies silently: stream errors are HW-01, bugs SYS-09."""
        try:
            await coro
        except OSError as e:
            f = Fault("HW-01", "%s stream: %s" % (stage, e), stage)
            if stage == "nfc":
                self.nfc_fault = f  # swipes may still work: report at timeout
                self.nfc.ready = False
            else:
                self._finish(f)
        except Exception as e:  # CancelledError is not an Exception: cancellation passes
            self._finish(Fault("SYS-09", "%s: %r" % (stage, e), stage))

    def _finish(self, r):
        if self._result is None:
            self._result = r
            self._done.set()

    def _fallback_allowed(self):
        if self.nfc is None or self.nfc_fault is not None:
            return True
        if self._fallback_at is None:
            return False
        return time.ticks_diff(self.ticks(), self._fallback_at) < self.cfg.get("fallback_ms")

    # ------------------------------------------------------------ magstripe
    async def _mag_task(self):
        try:
            data = await self._read_swipe()
        except OSError as e:
            self._finish(Fault("HW-01", "magstripe reader: %s" % e, "swipe"))
            return
        if data is None:
            self._finish(Fault("CRD-06", "swipe too long", "swipe"))
            return
        c = self.cfg
        try:
            card = card_from_swipe(data, self.clock(), c.get("chip_available") and self.nfc is not None,
                                   self._fallback_allowed(), c.get("mag_lrc_required"))
        except Fault as f:
            self._finish(f)
            return
        self._fallback_at = None
        self._finish(card)

    async def _read_swipe(self):
        """Bytes of one swipe: the first byte, then everything until a quiet gap."""
        buf = self._magbuf
        n = 0
        gap = self.cfg.get("mag_gap_ms")
        while True:
            chunk = await self.mag.read(64)
            if chunk:
                break
            # Woken with nothing to read (VMIN=0 pty, UART timeout): not a swipe.
            await asyncio.sleep_ms(gap)
        while True:
            m = len(chunk)
            if n + m > _MAG_MAX:
                # Drain the rest of the burst so the next swipe starts clean.
                n = _MAG_MAX + 1
            else:
                buf[n:n + m] = chunk
                n += m
            try:
                chunk = await asyncio.wait_for_ms(self.mag.read(64), gap)
            except asyncio.TimeoutError:
                break
            if not chunk:
                await asyncio.sleep_ms(gap)
                break
        return None if n > _MAG_MAX else bytes(buf[:n])

    # ------------------------------------------------------------ contactless
    async def _nfc_task(self, amount, currency):
        nfc = self.nfc
        c = self.cfg
        while True:
            if not nfc.ready:
                try:
                    await nfc.begin()
                    self.nfc_fault = None
                except Fault as f:
                    self.nfc_fault = f
                    await asyncio.sleep_ms(c.get("nfc_retry_ms"))
                    continue
            try:
                tgt = await nfc.poll()
            except Fault as f:
                if f.code.startswith("HW-"):
                    self.nfc_fault = f
                    nfc.ready = False
                    await asyncio.sleep_ms(c.get("nfc_retry_ms"))
                    continue
                self._finish(f)  # collision, not an ISO-DEP card
                return
            if tgt is None or self._same_card(tgt):
                if tgt is None:
                    self._last_uid = None
                await asyncio.sleep_ms(c.get("nfc_poll_ms"))
                continue
            self._last_uid = bytes(tgt.uid)
            self._last_at = self.ticks()
            r = await self._read_emv(tgt, amount, currency)
            self._finish(r)
            return

    def _same_card(self, tgt):
        """The card just read, still lying on the reader (until taken away or same_card_ms)."""
        if self._last_uid is None or bytes(tgt.uid) != self._last_uid:
            return False
        return time.ticks_diff(self.ticks(), self._last_at) < self.cfg.get("same_card_ms")

    async def _read_emv(self, tgt, amount, currency):
        nfc = self.nfc

        async def xchg(apdu):
            return await nfc.exchange(tgt.tg, apdu)

        try:
            card = await emv.read_card(xchg, amount, currency, self.cfg, self.clock(), self.rand(4))
        except Fault as f:
            if f.code in _CHIP_FAILURES:
                self._fallback_at = self.ticks()
            if f.code.startswith("HW-"):
                nfc.ready = False
            return f
        await nfc.release(tgt.tg)
        self._fallback_at = None
        return card

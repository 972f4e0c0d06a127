"""PN532 NFC controller over HSU (high-speed UART), NXP UM0701-02.

The link is noisy in practice: a reader that was powered while the
terminal rebooted may still be answering a cancelled command, modules
emit garbage on power-up, and a frame can lose bytes. So the receiver
scans a preallocated buffer for the start code, checks LCS and DCS,
drops what does not parse (resynchronisation), asks for a retransmission
with NACK when a frame's checksum fails, and ignores answers to commands
it no longer waits for. Silence is HW-01 (reader not responding), bytes
that never form a valid frame are HW-02.

Card data passes through here (READ RECORD answers carry the PAN), so
bytes are read into preallocated buffers (`readinto` where the stream has
it), a frame's data is handed out as a view of one frame buffer (valid
until the next command), and `wipe()` zeroes every buffer after a read.
"""
from micropython import const
import asyncio
import time

from payterm.errors import Fault

# UM0701-02 6.2.1 normal information frame: 00 00 FF LEN LCS TFI PD.. DCS 00
_PREAMBLE = const(0x00)
_SC1 = const(0x00)  # start code
_SC2 = const(0xFF)
_TFI_HOST = const(0xD4)  # 6.2.1.1 host -> PN532
_TFI_PN = const(0xD5)  # PN532 -> host
_ERR_TFI = const(0x7F)  # 6.2.1.5 syntax error frame: 00 00 FF 01 FF 7F 81 00
_EXT = const(0xFF)  # 6.2.1.2 extended frame: LEN=FF LCS=FF LENM LENL LCS
# 7.2 commands
CMD_FIRMWARE = const(0x02)  # GetFirmwareVersion
CMD_SAM = const(0x14)  # SAMConfiguration
CMD_RFCONFIG = const(0x32)  # RFConfiguration
CMD_LIST = const(0x4A)  # InListPassiveTarget
CMD_EXCHANGE = const(0x40)  # InDataExchange
CMD_RELEASE = const(0x52)  # InRelease
_SAM_NORMAL = const(0x01)  # 7.2.10 mode 1: normal, no SAM
_RF_MAXRETRIES = const(0x05)  # 7.3.1 CfgItem 5: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation
_BRTY_106A = const(0x00)  # 7.3.5 106 kbps type A (ISO/IEC 14443 A)
_SEL_RES_ISO_DEP = const(0x20)  # ISO/IEC 14443-3 SAK bit 6: ISO/IEC 14443-4 compliant
# 7.1 error codes (Status byte, low 6 bits) meaning the card left the field
_RF_GONE = (0x01, 0x02, 0x03, 0x0B, 0x29, 0x2A, 0x2B)

_ACK = b"\x00\x00\xff\x00\xff\x00"  # 6.2.1.3
_NACK = b"\x00\x00\xff\xff\x00\x00"  # 6.2.1.4
# 6.3.2.3 HSU wake-up: 0x55 then enough bytes for the wake-up delay
_WAKE = b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

_RX_SIZE = const(300)  # largest normal frame is 262 bytes + garbage margin
_TX_SIZE = const(270)
_CHUNK = const(64)
_STAGE = "nfc"

_K_FRAME = const(0)
_K_ACK = const(1)
_K_NACK = const(2)
_K_ERR = const(3)
_K_BAD = const(4)


class Target:
    """The card found by InListPassiveTarget (106 kbps type A)."""

    def __init__(self, tg, sens_res, sel_res, uid, ats):
        self.tg = tg
        self.sens_res = sens_res
        self.sel_res = sel_res
        self.uid = uid
        self.ats = ats


class _Silence(Exception):
    pass


class PN532:
    def __init__(self, stream, ticks, ack_ms=50, resp_ms=1000, retries=2):
        self.s = stream
        self.ticks = ticks
        self.ack_ms = ack_ms
        self.resp_ms = resp_ms
        self.retries = retries
        self._rx = bytearray(_RX_SIZE)
        self._n = 0
        self._tx = bytearray(_TX_SIZE)
        self._fbuf = bytearray(_RX_SIZE)  # data of the last frame parsed
        self._chunk = bytearray(_CHUNK)
        self._readinto = getattr(stream, "readinto", None)
        self._got_bytes = False
        self.ready = False
        self.busy = False
        self.firmware = None
        self.stats = {"garbage": 0, "nack": 0, "stale": 0}

    # ------------------------------------------------------------ framing
    def _frame(self, cmd, params):
        """Build a normal information frame in the preallocated tx buffer."""
        ln = 2 + len(params)
        if ln > 255:
            raise Fault("HW-02", "command too long", _STAGE)
        t = self._tx
        t[0] = _PREAMBLE
        t[1] = _SC1
        t[2] = _SC2
        t[3] = ln
        t[4] = (-ln) & 0xFF
        t[5] = _TFI_HOST
        t[6] = cmd
        s = _TFI_HOST + cmd
        k = 7
        for b in params:
            t[k] = b
            s += b
            k += 1
        t[k] = (-s) & 0xFF
        t[k + 1] = 0x00
        return memoryview(t)[:k + 2]

    def _drop(self, k):
        """Discard the first k buffered bytes."""
        n = self._n
        if k >= n:
            self._n = 0
            return
        self._rx[0:n - k] = self._rx[k:n]
        self._n = n - k

    def _parse(self):
        """One (kind, payload) from the buffer, or None if more bytes are needed."""
        rx = self._rx
        while True:
            n = self._n
            k = -1
            for i in range(n - 1):
                if rx[i] == _SC1 and rx[i + 1] == _SC2:
                    k = i
                    break
            if k < 0:
                # Keep a trailing 00: it may be the first half of a start code.
                keep = 1 if n and rx[n - 1] == _SC1 else 0
                if n - keep:
                    self._note_garbage(rx, n - keep)
                self._drop(n - keep)
                return None
            if k:
                self._note_garbage(rx, k)
                self._drop(k)
            n = self._n
            if n < 4:
                return None
            ln = rx[2]
            lcs = rx[3]
            if ln == 0 and lcs == 0xFF:
                self._drop(4)
                return _K_ACK, None
            if ln == 0xFF and lcs == 0x00:
                self._drop(4)
                return _K_NACK, None
            if ln == _EXT and lcs == _EXT:
                if n < 7:
                    return None
                ln = (rx[4] << 8) | rx[5]
                if (rx[4] + rx[5] + rx[6]) & 0xFF or ln > _RX_SIZE - 9:
                    self.stats["garbage"] += 1
                    self._drop(2)
                    continue
                hdr = 7
            elif (ln + lcs) & 0xFF:
                # Not a frame after all: resynchronise past this start code.
                self.stats["garbage"] += 1
                self._drop(2)
                continue
            else:
                hdr = 4
            if ln == 0:
                self._drop(hdr)
                continue
            if n < hdr + ln + 1:
                return None
            s = 0
            for i in range(hdr, hdr + ln + 1):
                s += rx[i]
            if s & 0xFF:
                self._drop(hdr + ln + 1)
                return _K_BAD, None
            if ln == 1 and rx[hdr] == _ERR_TFI:
                self._drop(hdr + ln + 1)
                return _K_ERR, None
            fb = self._fbuf
            fb[0:ln] = memoryview(rx)[hdr:hdr + ln]
            self._drop(hdr + ln + 1)
            return _K_FRAME, memoryview(fb)[:ln]

    def _note_garbage(self, rx, k):
        for i in range(k):
            if rx[i] != _PREAMBLE:
                self.stats["garbage"] += 1
                return

    async def _recv(self, timeout_ms):
        start = self.ticks()
        while True:
            r = self._parse()
            if r is not None:
                return r
            left = timeout_ms - time.ticks_diff(self.ticks(), start)
            if left <= 0:
                raise _Silence()
            try:
                chunk = await asyncio.wait_for_ms(self._read(), left)
            except asyncio.TimeoutError:
                raise _Silence()
            if not chunk:
                # A pty/UART with VMIN=0 may wake with nothing to read: not EOF.
                await asyncio.sleep_ms(5)
                continue
            self._got_bytes = True
            m = len(chunk)
            room = _RX_SIZE - self._n
            if m > room:
                # Overflow can only be garbage: a frame fits in the buffer.
                self.stats["garbage"] += 1
                self._drop(m - room)
            self._rx[self._n:self._n + m] = chunk
            self._n += m

    async def _read(self):
        """Next bytes from the stream: a view of the chunk buffer (or bytes from read())."""
        if self._readinto is not None:
            n = await self._readinto(self._chunk)
            return memoryview(self._chunk)[:n] if n else None
        return await self.s.read(_CHUNK)

    def wipe(self):
        """Zero every buffer that held frames (card data) and forget buffered bytes."""
        for b in (self._rx, self._fbuf, self._chunk, self._tx):
            for i in range(len(b)):
                b[i] = 0
        self._n = 0

    async def _send(self, buf):
        self.s.write(buf)
        await self.s.drain()

    # ------------------------------------------------------------ commands
    async def command(self, cmd, params=b"", timeout_ms=None):
        """Send one command, wait for ACK and the response; return the response data.

        `busy` stays set if the caller is cancelled mid-command, so the owner
        knows the PN532 may still be working and re-initialises it.
        """
        self.busy = True
        r = await self._command(cmd, params, timeout_ms)
        self.busy = False
        return r

    async def _command(self, cmd, params, timeout_ms):
        if timeout_ms is None:
            timeout_ms = self.resp_ms
        self._got_bytes = False
        for attempt in range(self.retries):
            await self._send(self._frame(cmd, params))
            try:
                kind = await self._wait_ack()
            except _Silence:
                # HSU may have gone to sleep: wake it and try once more.
                await self._send(_WAKE)
                continue
            if kind == _K_ERR:
                raise Fault("HW-02", "error frame for %02x" % cmd, _STAGE)
            break
        else:
            self.ready = False
            if self._got_bytes:
                raise Fault("HW-02", "no ACK for %02x (garbage)" % cmd, _STAGE)
            raise Fault("HW-01", "no ACK for %02x" % cmd, _STAGE)
        nacks = 0
        while True:
            try:
                kind, data = await self._recv(timeout_ms)
            except _Silence:
                self.ready = False
                raise Fault("HW-01", "no response to %02x" % cmd, _STAGE)
            if kind == _K_BAD:
                nacks += 1
                self.stats["nack"] += 1
                if nacks > self.retries:
                    raise Fault("HW-02", "bad checksum x%d" % nacks, _STAGE)
                await self._send(_NACK)
                continue
            if kind == _K_ERR:
                raise Fault("HW-02", "error frame for %02x" % cmd, _STAGE)
            if kind != _K_FRAME or data is None:
                continue
            if len(data) < 2 or data[0] != _TFI_PN or data[1] != cmd + 1:
                self.stats["stale"] += 1
                continue
            return data[2:]

    async def _wait_ack(self):
        while True:
            kind, data = await self._recv(self.ack_ms)
            if kind == _K_ACK or kind == _K_ERR:
                return kind
            # A stale response or a damaged frame where the ACK should be.
            self.stats["stale"] += 1

    async def begin(self):
        """Wake the HSU link, abort anything pending, configure for polling; returns `firmware`
        (the GetFirmwareVersion reply: IC, version, revision, support)."""
        self._n = 0
        await self._send(_WAKE)
        await self._send(_ACK)  # 6.2.1.3: an ACK from the host aborts the current command
        await self.command(CMD_SAM, bytes((_SAM_NORMAL, 0x14, 0x00)))
        # Few activation retries: InListPassiveTarget returns at once with no card.
        await self.command(CMD_RFCONFIG, bytes((_RF_MAXRETRIES, 0xFF, 0x01, 0x02)))
        fw = await self.command(CMD_FIRMWARE)
        if len(fw) < 4:
            raise Fault("HW-02", "firmware version reply", _STAGE)
        self.firmware = bytes(fw)
        self.ready = True
        return self.firmware

    async def poll(self):
        """One InListPassiveTarget for up to two type A cards; None when the field is empty.

        Two targets is a collision (CRD-12): the terminal must not guess
        which card the customer meant to pay with.
        """
        r = await self.command(CMD_LIST, bytes((2, _BRTY_106A)))
        if not r:
            raise Fault("HW-02", "empty list reply", _STAGE)
        nb = r[0]
        if nb == 0:
            return None
        if nb > 1:
            raise Fault("CRD-12", "%d cards in field" % nb, _STAGE)
        return _parse_target(r)

    async def exchange(self, tg, apdu, timeout_ms=None):
        """InDataExchange: one APDU to the card; returns the response APDU (data + SW1 SW2).

        The response is a view of the frame buffer: valid until the next command.
        """
        r = await self.command(CMD_EXCHANGE, bytes((tg,)) + bytes(apdu), timeout_ms)
        if not r:
            raise Fault("HW-02", "empty exchange reply", _STAGE)
        st = r[0] & 0x3F
        if st in _RF_GONE:
            raise Fault("CRD-11", "card left the field (%02x)" % st, _STAGE)
        if st:
            raise Fault("HW-02", "exchange status %02x" % st, _STAGE)
        if len(r) < 3:
            raise Fault("CRD-13", "response without status word", _STAGE)
        return r[1:]

    async def release(self, tg=0):
        """InRelease (tg 0 = all); errors ignored, the card may already be gone."""
        try:
            await self.command(CMD_RELEASE, bytes((tg,)))
        except Fault:
            pass


def _parse_target(r):
    # 7.3.5 target data for 106 kbps type A: Tg SENS_RES(2) SEL_RES NFCIDLength NFCID [ATS]
    try:
        tg = r[1]
        sens = bytes(r[2:4])
        sel = r[4]
        ul = r[5]
        uid = bytes(r[6:6 + ul])
        if len(uid) != ul:
            raise IndexError
        ats = b""
        if len(r) > 6 + ul:
            al = r[6 + ul]
            ats = bytes(r[6 + ul:6 + ul + al])
    except IndexError:
        raise Fault("HW-02", "target data truncated", _STAGE)
    if not sel & _SEL_RES_ISO_DEP:
        raise Fault("CRD-09", "card is not ISO 14443-4 (SAK %02x)" % sel, _STAGE)
    return Target(tg, sens, sel, uid, ats)

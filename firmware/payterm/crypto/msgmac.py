"""The MAC keys of one request: field 64/128 of what goes out, the check of what comes back.

A `Seal` is made from the DUKPT transaction whose KSN the request carries in
field 53 (docs/keys.md): the request is MACed with its MAC-generation key and
the answer must carry a MAC under its MAC-verification key, so the terminal can
check the host but cannot forge an answer. The link calls `mac()` on the encoded
request (payterm.link.iso8583 `frame(msg, mac=...)`) and `check()` on the bytes
it received. Both keys are expanded once here and the derived key bytes wiped
at once; `wipe()` clears the CMAC state when the exchange is over.
"""
from micropython import const

from payterm.crypto import aes
from payterm.crypto.cmac import Cmac

MAC_LEN = const(8)  # ISO 8583:1987 fields 64/128: b 8 (leftmost 64 bits of the CMAC)


class Seal:
    def __init__(self, txn):
        self.ksn = txn.ksn
        k = txn.mac_key()
        try:
            self._out = Cmac(k)
        finally:
            aes.wipe(k)
        k = txn.response_mac_key()
        try:
            self._in = Cmac(k)
        finally:
            aes.wipe(k)

    def field53(self):
        from payterm.crypto.dukpt import field53

        return field53(self.ksn)

    def mac(self, data):
        """The 8 MAC bytes of a request (its encoded bytes from the MTI up to the MAC field)."""
        return self._out.mac(data, MAC_LEN)

    def check(self, data, tag):
        """KEY-07 unless `tag` is the host's MAC of `data` (KEY-05 for a tag of the wrong length)."""
        self._in.check(data, tag)

    def wipe(self):
        self._out.wipe()
        self._in.wipe()

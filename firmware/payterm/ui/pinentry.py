"""Cardholder PIN: when a sale asks for one, and its entry on the keypad.

When (`required`): online PIN is asked for a sale when
- a swiped card's service code says so (ISO/IEC 7813, third digit: 0 and 5
  "PIN required", 6 and 7 "prompt for PIN if a PIN pad is present": this
  terminal has one);
- the chip/contactless kernel chose online PIN as the cardholder verification
  (`card.cvm == "online_pin"`, e.g. above the CVM required limit; a card
  without the attribute counts as "none");
- the terminal parameter `pin_debit` is on and the card's application is a
  debit one (DEBIT_AIDS). A swiped debit card asks for its PIN by its
  service code: the stripe does not say "debit".
Refunds never ask for a PIN (the cardholder receives money).

Entry (`enter`): one `*` per digit on the display, 4 to 12 digits (ISO 9564-1);
E accepts (fewer than 4 digits: the screen says so and waits), B removes the
last digit, C clears the digits, C with none entered cancels the sale (PIN-04),
no key for `pin_timeout_ms` cancels it (PIN-03). The digits live only in one
preallocated bytearray, are handed over in a new bytearray that the PIN block
builder zeroes (payterm.crypto.pinblock.encipher), and the entry buffer and
the keypad queue are overwritten before `enter` returns, whatever the outcome.
Nothing here logs, displays or journals a digit.
"""
from micropython import const

from payterm import codes
from payterm.ui import screens

_PIN_MIN = const(4)  # ISO 9564-1 5.2.1: 4 to 12 digits
_PIN_MAX = const(12)
_HELP = "E:OK C:CLEAR B:BACK"
_TITLE = "ENTER PIN"

# Debit applications (EMV AIDs, ISO/IEC 7816-5 RID + PIX): Maestro, Visa Electron,
# V PAY, Interac, girocard. `pin_debit` asks these for a PIN on every sale.
DEBIT_AIDS = ("A0000000043060", "A0000000032010", "A0000000032020", "A0000002771010", "A0000003591010")

# ISO/IEC 7813 service code, third digit: PIN required (0, 5) or to be asked where a
# PIN pad is present (6, 7).
_SC_PIN = "0567"

_buf = bytearray(_PIN_MAX)  # the one place the digits are typed into


def is_debit(card):
    aid = getattr(card, "aid", "") or ""
    for d in DEBIT_AIDS:
        if aid.startswith(d):
            return True
    return False


def required(card, cfg):
    """True when this sale must carry the cardholder's online PIN."""
    if getattr(card, "cvm", "none") == "online_pin":
        return True
    sc = getattr(card, "service_code", "") or ""
    if card.source == "swipe" and len(sc) == 3 and sc[2] in _SC_PIN:
        return True
    return bool(cfg.get("pin_debit")) and is_debit(card)


def _wipe(buf):
    for i in range(len(buf)):
        buf[i] = 0


async def enter(panel, cfg, head="", training=False):
    """The PIN as a new bytearray of ASCII digits (the caller's to zero), or a failure code.

    panel: payterm.ui.panel.Panel (show, beep, key(timeout_ms), wipe_keys); training: every
    screen carries the TRAINING mark (payterm.ui.screens.mark).
    """
    timeout = cfg.get("pin_timeout_ms") or 30000
    buf = _buf
    n = 0
    note = ""
    try:
        while True:
            rows = [head, note or _TITLE, "*" * n if n else "_", _HELP]
            panel.show(screens.mark(rows) if training else rows)
            k = await panel.key(timeout)
            if k is None:
                return "PIN-03"
            note = ""
            if k == "E":
                if _PIN_MIN <= n:
                    pin = bytearray(n)
                    for i in range(n):
                        pin[i] = buf[i]
                    return pin
                note = codes.lookup("PIN-01")[codes.DISPLAY]
                panel.beep()
            elif k == "C":
                if not n:
                    return "PIN-04"
                n = 0
                _wipe(buf)
            elif k == "B":
                if n:
                    n -= 1
                    buf[n] = 0
            elif "0" <= k <= "9" and len(k) == 1:
                if n < _PIN_MAX:
                    buf[n] = ord(k)
                    n += 1
                else:
                    panel.beep()
    finally:
        _wipe(buf)
        k = None
        wipe = getattr(panel, "wipe_keys", None)
        if wipe is not None:
            wipe()  # the keypad queue's ring held the digits too


async def ask(app, kind, card, head="", training=False):
    """The cashier's step after the card read: None when this payment needs no PIN, else
    the PIN (bytearray) or a failure code (the card is wiped then: nothing will be sent).

    training: a practice sale: its events say so, and a failed entry is not the terminal's
    fault (nothing goes to the fault log or the statistics)."""
    if kind != "sale" or not required(card, app.cfg):
        return None
    mark = " training" if training else ""
    app.event("PIN REQUIRED" + mark)
    r = await enter(app.panel, app.cfg, head, training)
    if isinstance(r, str):
        card.wipe()
        if not training:
            app.diag.fault(r, "pin", "sale %s" % card.masked)
    else:
        app.event("PIN ENTERED" + mark)
    return r

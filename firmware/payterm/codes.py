"""Failure-code catalog: the single source of truth for what every failure means.

Each entry is one tuple so the whole catalog stays a few compact objects on
the ESP32 heap (and lives in flash when frozen):

    (id, category, severity, retryable, display, customer, cause, remedy)

`display` fits one 20-character panel row; `customer` is what the merchant
reads out; `cause`/`remedy` are for the technician (console, tech menu,
`payterm diag`, docs/failure-codes.md). Ids are stable: they are stored in
the fault log and journal, so an id never changes meaning. Issuer (ISO 8583
field 39) entries live in payterm.codes_iso; any response code without an
entry still maps to a generic issuer entry so a new host code never crashes
the display.
"""
from payterm.codes_iso import ISS

# tuple field indices
ID = 0
CATEGORY = 1
SEVERITY = 2
RETRYABLE = 3
DISPLAY = 4
CUSTOMER = 5
CAUSE = 6
REMEDY = 7
FIELDS = ("id", "category", "severity", "retryable", "display", "customer", "cause", "remedy")

CATEGORIES = ("card", "issuer", "network", "host", "hardware", "operator", "system")
SEVERITIES = ("info", "warning", "error", "critical")

# Every entry is made of literals only, so each is a constant the compiler keeps in flash when frozen
# (a name in an entry would build it on the heap at import).
LOCAL = (
    ("CRD-01", "card", "info", True, "NO CARD - TIME OUT", "No card was presented in time. Please try again.",
     "No swipe or tap before the presentation timeout.", "Ask the customer to present the card again; check reader LEDs if it repeats."),
    ("CRD-02", "card", "warning", True, "CARD READ ERROR", "The card could not be read. Please swipe again.",
     "Magstripe head saw a swipe but decoded no data.", "Swipe again at a steady speed; clean the read head if it repeats for many cards."),
    ("CRD-03", "card", "warning", True, "CARD READ ERROR", "The card could not be read. Please swipe again.",
     "Magstripe data had no start sentinel (partial or reversed swipe).", "Swipe again in the direction shown on the reader."),
    ("CRD-04", "card", "warning", True, "CARD READ ERROR", "The card could not be read. Please swipe again.",
     "Magstripe data had no end sentinel (swipe too fast or stopped).", "Swipe again at a steady speed."),
    ("CRD-05", "card", "warning", True, "CARD READ ERROR", "The card could not be read. Please swipe again.",
     "Magstripe LRC check failed (damaged stripe or noise).", "Swipe again; if many cards fail, clean or replace the read head."),
    ("CRD-06", "card", "warning", True, "CARD READ ERROR", "The card could not be read. Please swipe again.",
     "Magstripe parity or track format error.", "Swipe again; a damaged stripe needs chip/tap or a new card."),
    ("CRD-07", "card", "error", False, "INVALID CARD NUMBER", "This card number is not valid. Please use another card.",
     "Card number has a wrong length (12-19) or fails the Luhn check.", "Use another card; check the reader if valid cards are rejected."),
    ("CRD-08", "card", "error", False, "CARD EXPIRED", "This card has expired. Please use another card.",
     "Card expiry date is in the past (terminal clock used).", "Use another card; check the terminal clock if valid cards are rejected."),
    ("CRD-09", "card", "error", False, "CARD NOT SUPPORTED", "This payment method is not accepted here.",
     "Scheme, AID or service code is not enabled on this terminal.", "Use another card; ask the acquirer to enable the scheme if expected."),
    ("CRD-10", "card", "info", True, "USE CHIP OR TAP", "Please tap the card instead of swiping.",
     "A chip card was swiped (service code 2xx/6xx).", "Tap the card on the contactless reader."),
    ("CRD-11", "card", "warning", True, "CARD REMOVED", "The card was removed too early. Please tap again.",
     "Card left the field before the EMV exchange finished.", "Hold the card on the reader until the beep."),
    ("CRD-12", "card", "warning", True, "ONE CARD ONLY", "More than one card was detected. Please present one card.",
     "Contactless collision: several cards in the field.", "Take the card out of the wallet and tap it alone."),
    ("CRD-13", "card", "error", True, "CARD DATA ERROR", "The card could not be read. Please try again.",
     "Malformed TLV, EMV status word error or missing mandatory tag.", "Try again; if it repeats with one card, the card is faulty."),
    # Contactless kernel (payterm/card/emv.py): each EMV failure has its own code.
    ("CRD-14", "card", "info", True, "INSERT OR SWIPE CARD", "Amount above the contactless limit. Please swipe the card.",
     "The amount is above the contactless transaction limit of every application the card and terminal share; nothing was sent to the host.",
     "Swipe the card; check the per-AID tx_limit / cl_tx_limit parameters if the limit is wrong."),
    ("CRD-15", "card", "warning", True, "CARD REFUSED TAP", "This card cannot be tapped. Please swipe the card.",
     "GET PROCESSING OPTIONS answered 6985 (conditions of use not satisfied): the card asks for another interface.",
     "Swipe the card; the issuer does not allow contactless for it or for this transaction."),
    ("CRD-16", "card", "warning", True, "CARD DATA MISSING", "The card could not be read. Please try again.",
     "A record listed in the AFL is missing (6A83) or a mandatory data object (PAN, expiry, CDOL1) is absent.",
     "Try again; if it repeats with one card, the card is faulty."),
    ("CRD-17", "card", "error", False, "NO CARD CRYPTOGRAM", "This card cannot be used. Please use another card.",
     "The card returned no application cryptogram (9F26/9F27/9F10/9F36), or one that is not an ARQC for this online-only terminal.",
     "Use another card; report the card to its issuer if it repeats."),
    ("CRD-18", "card", "error", False, "DECLINED BY CARD", "Declined by the card. Please use another card.",
     "The card answered GENERATE AC (or GPO) with an AAC: it declined the transaction itself.",
     "Use another card; the customer contacts their bank."),
    ("CRD-19", "card", "error", False, "USE ANOTHER CARD", "This card cannot be used here. Please use another card.",
     "The card offers only mag-stripe mode (tag 56/9F6B, no EMV mode) and the terminal takes no mag-stripe mode taps (cl_magstripe off).",
     "Use another card or swipe it; turn cl_magstripe on where the acquirer accepts mag-stripe mode (CVC3)."),
    ("CRD-20", "card", "error", False, "OFFLINE NOT ALLOWED", "The bank is not reachable. Please pay another way.",
     "The host could not be reached and this card's cryptogram may not be authorized later (not an ARQC, or its AID does not allow deferred authorization).",
     "Restore the network, or take another card; check the AID's deferred parameter."),
    ("HW-01", "hardware", "critical", True, "READER FAULT", "The card reader is not working. Please wait.",
     "Card reader module does not answer (cable, power or firmware).", "Check the reader cable and power; run selftest; replace the reader module."),
    ("HW-02", "hardware", "error", True, "READER ERROR", "The card reader had a problem. Please try again.",
     "Reader frame/protocol error (bad checksum, unexpected frame).", "Check the reader cable and baud rate; replace the module if it repeats."),
    ("HW-03", "hardware", "error", False, "PRINTER PAPER OUT", "The receipt printer is out of paper.",
     "Printer reports paper out.", "Load a new paper roll and close the cover."),
    ("HW-04", "hardware", "error", False, "PRINTER FAULT", "The receipt printer has a problem.",
     "Printer reports an error (ESC/POS DLE EOT 3: paper jammed in the mechanism, head or circuit fault, "
     "head temperature), stays offline without a cause, or its driver cannot be set up.",
     "Open the cover, clear the jam, close it; let a hot head cool down; run selftest printer."),
    ("HW-05", "hardware", "critical", False, "KEYPAD FAULT", "The keypad is not working.",
     "Keypad sends no keys or stuck keys.", "Run the keypad self-test; check the panel cable; replace the keypad."),
    ("HW-06", "hardware", "critical", False, "DISPLAY FAULT", "The display is not working.",
     "Display does not acknowledge writes.", "Check the panel cable; replace the display."),
    ("HW-07", "hardware", "error", False, "PRINTER COVER OPEN", "The receipt printer cover is open.",
     "Printer reports its roll paper cover open (ESC/POS DLE EOT 2 bit 2).", "Close the printer cover firmly; check the cover switch if it repeats."),
    ("HW-08", "hardware", "error", False, "PRINTER CUTTER JAM", "The receipt printer paper is jammed.",
     "Printer reports an autocutter error (ESC/POS DLE EOT 3 bit 3): paper jammed in the cutter.",
     "Open the cover, remove the jammed paper from the cutter, close it; replace the cutter if it repeats."),
    ("HW-09", "hardware", "error", True, "PRINTER NO RESPONSE", "The receipt printer is not answering.",
     "Printer does not answer a real-time status request (DLE EOT) in time, or answers garbage.",
     "Check the printer power and its serial cable and baud rate; run selftest printer."),
    ("HW-20", "hardware", "warning", False, "BUZZER FAULT", "The terminal cannot beep. Payments still work.",
     "The buzzer named in the hardware map cannot be set up (PWM pin invalid or taken, driver missing).",
     "Check the buzzer entry of hardware.json against the board; deploy the firmware with its driver."),
    ("HW-21", "hardware", "warning", False, "STATUS LED FAULT", "The status light is off. Payments still work.",
     "The status LED named in the hardware map cannot be set up (pin invalid or taken, driver missing).",
     "Check the led entry of hardware.json against the board; deploy the firmware with its driver."),
    ("NET-01", "network", "error", True, "NETWORK DOWN", "Network problem. Please try again shortly.",
     "No network interface or no IP address (Wi-Fi/Ethernet down).", "Check Wi-Fi/cable and the router; check DHCP; run selftest comm."),
    ("NET-02", "network", "error", True, "NETWORK ERROR: DNS", "Network problem. Please try again shortly.",
     "Host name could not be resolved.", "Check the DNS server and host name in the configuration."),
    ("NET-03", "network", "error", True, "CANNOT REACH HOST", "Network problem. Please try again shortly.",
     "TCP connect to every host failed or timed out.", "Check internet access and firewall; check host address/port in config."),
    ("NET-04", "network", "error", True, "SECURE LINK FAILED", "Network problem. Please try again shortly.",
     "TLS handshake or certificate check failed.", "Check the terminal clock (certificate dates) and the CA certificate."),
    ("NET-05", "network", "error", True, "CONNECTION LOST", "Network problem. Please try again shortly.",
     "Connection closed during the exchange.", "Check link quality (stats); contact the acquirer if it repeats."),
    ("HST-01", "host", "error", True, "NO HOST RESPONSE", "No answer from the bank. The payment was cancelled.",
     "Request sent but no response before the timeout; a reversal is queued.", "Check network latency; the reversal is sent automatically."),
    ("HST-02", "host", "error", True, "BAD HOST RESPONSE", "Bank error. Payment cancelled.",
     "Response could not be decoded (ISO 8583 format), or has no or an unknown response code (field 39); a reversal is queued.",
     "Check host configuration (spec version); contact the acquirer."),
    ("HST-03", "host", "error", True, "HOST MISMATCH", "Bank error. Payment cancelled.",
     "Response STAN/MTI/TID or amount (field 4) does not match the request; a reversal is queued.",
     "Check the terminal id in config; contact the acquirer."),
    ("HST-04", "host", "error", True, "HOST UNAVAILABLE", "The bank is not reachable. Please try again later.",
     "Circuit breaker open after repeated host failures.", "Wait for the breaker to close; check network and host status."),
    ("HST-05", "host", "warning", True, "REVERSAL PENDING", "A previous payment is being cancelled. Please wait.",
     "A reversal is not yet acknowledged by the host.", "Keep the terminal online; the reversal repeats automatically."),
    ("HST-06", "host", "warning", True, "NO TIME FOR HOST", "The bank is not reachable. Please try again later.",
     "The wait budget was used up (slow connect or retries) before the request could be sent; it was not sent.",
     "Check network latency and connect_timeout_ms/max_wait_ms; nothing was charged."),
    ("HST-07", "host", "error", False, "ADVICE NOT DELIVERED", "An offline payment is not yet with the bank.",
     "An offline sale's advice reached the host saf_max_tries times without a clean answer; upload stopped.",
     "Check the host link, then retry it: tech menu STATUS page (E) or console `retry <ref>`."),
    ("HST-08", "host", "info", True, "BACKGROUND DEFERRED", "Please wait.",
     "A reversal, advice or echo in flight was cut short so a customer request could go first.",
     "None needed: it repeats (flagged as a repeat) once the customer request is done."),
    ("HST-09", "host", "error", False, "PARTIAL APPROVAL", "Payment cancelled: partial approval.",
     "Host approved a partial amount (field 39 = 10); the terminal does not support partial approval and reverses it.",
     "Ask for another card or a lower amount; the reversal is sent automatically."),
    ("OPR-01", "operator", "info", False, "CANCELLED", "The payment was cancelled.",
     "Operator pressed cancel.", "None needed."),
    ("OPR-02", "operator", "info", False, "INVALID AMOUNT", "The amount is not valid.",
     "Amount is zero or above the terminal limit.", "Enter a valid amount; check the limits in config."),
    ("OPR-03", "operator", "warning", False, "TECH PIN LOCKED", "Technician access is locked.",
     "Too many wrong technician PINs.", "Wait for the lockout to end, then enter the correct PIN."),
    ("OPR-04", "operator", "info", False, "REF NOT FOUND", "Transaction not found.",
     "No journal record with this reference.", "Check the reference on the receipt."),
    ("OPR-06", "operator", "info", False, "ALREADY VOIDED", "This payment was already cancelled.",
     "The transaction is voided already, or a void of it is in progress.", "Check the reference; look up its status (F 3)."),
    ("OPR-05", "operator", "warning", False, "WRONG TECH PIN", "Wrong technician PIN.",
     "Technician PIN did not match.", "Enter the correct technician PIN."),
    ("OPR-07", "operator", "warning", False, "WRONG MERCHANT PIN", "Wrong merchant PIN.",
     "The merchant (supervisor) PIN asked for a refund, a void or training mode did not match.",
     "Enter the merchant PIN; after 3 wrong tries it locks for 5 minutes."),
    ("OPR-08", "operator", "warning", False, "MERCHANT PIN LOCKED", "Refunds and voids are locked for a while.",
     "Too many wrong merchant PINs.", "Wait 5 minutes, then enter the correct merchant PIN."),
    ("OPR-09", "operator", "error", False, "NO MERCHANT PIN SET", "Refunds and voids are not set up here.",
     "No merchant PIN is provisioned (merchant_pin_hash), so refund, void and training mode stay closed.",
     "Re-provision with payterm provision --merchant-pin and deploy it."),
    ("OPR-10", "operator", "info", False, "AMOUNT TOO HIGH", "The amount is above the limit of this terminal.",
     "The amount typed is above the terminal's max_amount parameter.",
     "Check the amount; split the payment or raise max_amount with the acquirer's agreement."),
    ("OPR-11", "operator", "info", False, "END TRAINING FIRST", "Training mode is on.",
     "The technician menu was asked for while the terminal is in cashier training mode.",
     "Leave training mode (F 5), then open the technician menu."),
    ("OPR-12", "operator", "info", False, "NO RECEIPT TO PRINT", "There is no receipt to print again.",
     "A reprint was asked for before this terminal printed any receipt (in training mode: any training receipt).",
     "None needed: the last receipt is kept across restarts (receipt.json), a training one until training ends."),
    ("KEY-01", "system", "critical", False, "NO PIN KEY LOADED", "This terminal cannot take payments. Call support.",
     "No DUKPT initial key loaded: the key file was never provisioned or the key registers are empty.",
     "Load the initial key (`payterm provision` on the emulator, the key injection procedure on a board); see docs/keys.md."),
    ("KEY-02", "system", "critical", False, "KEY LOAD FAILED", "This terminal cannot take payments. Call support.",
     "Initial key file rejected: not readable, wrong key length, check value mismatch, or its key ID is already loaded.",
     "Provision a new initial key with a new initial key ID from the key injection facility; never reload the same key."),
    ("KEY-03", "system", "critical", False, "KEYS USED UP", "This terminal cannot take payments. Call support.",
     "DUKPT transaction counter exhausted: every counter of this initial key has been used.",
     "Inject a new initial key with a new initial key ID; the terminal takes payments again right after."),
    ("KEY-04", "system", "critical", False, "KEY DATA CORRUPT", "This terminal cannot take payments. Call support.",
     "DUKPT key registers in flash unreadable or inconsistent (storage damage).",
     "Re-provision a new initial key; export diagnostics and check the flash if it repeats."),
    ("KEY-05", "host", "error", False, "SECURITY DATA ERROR", "Payment could not be processed. Please try again.",
     "A PIN block (field 52), KSN (field 53) or MAC (field 64) is truncated or malformed.",
     "Check the field 52/53/64 formats of terminal and host (docs/keys.md); report the message trace to the acquirer."),
    ("KEY-06", "host", "error", False, "DATA DECRYPT ERROR", "Payment could not be processed. Please try again.",
     "Encrypted card data does not decrypt under its DUKPT data key (wrong KSN, key or damaged record).",
     "Check the terminal's initial key ID with the acquirer; the record's KSN must be sent with it unchanged."),
    ("KEY-07", "host", "error", False, "MAC CHECK FAILED", "Payment could not be processed. Please try again.",
     "Message authentication code (field 64/128) does not match: message altered or keys out of step. "
     "On the terminal: the host's answer is not trusted, the outcome is unknown and the payment is reversed.",
     "Retry once; if it repeats, check the initial key ID and KSN with the acquirer and re-provision the key."),
    ("KEY-08", "host", "error", False, "NO MAC FROM HOST", "Payment could not be processed. Please try again.",
     "The host answered a sealed request without a MAC (field 64/128): it could not derive this terminal's "
     "keys (wrong or unknown initial key, BDK not at the acquirer). The outcome is unknown: the payment is reversed.",
     "Check the terminal's initial key ID (console status) with the acquirer; inject a key from the right BDK."),
    ("KEY-09", "system", "error", False, "OFFLINE DATA LOST", "Payment could not be processed. Please try again.",
     "The encrypted card data of an offline sale is missing or damaged on flash: its advice goes up without it "
     "and the acquirer refuses it.",
     "Settle the sale with the acquirer by hand (reference in the console `saf`); check the flash if it repeats."),
    ("PIN-01", "operator", "info", True, "PIN: 4 TO 12 DIGITS", "Please enter a PIN of 4 to 12 digits.",
     "Entered PIN is shorter than 4 or longer than 12 digits (ISO 9564-1).", "Ask the cardholder to enter the PIN again."),
    ("PIN-02", "host", "error", True, "PIN CHECK FAILED", "The PIN could not be checked. Please try again.",
     "The host could not decipher the PIN block: wrong PIN key or KSN, or not an ISO 9564 format 4 block.",
     "Retry once; if it repeats, check the terminal's initial key ID with the acquirer and re-provision the key."),
    ("PIN-03", "operator", "info", True, "PIN TIMED OUT", "No PIN was entered in time. Payment cancelled.",
     "No key on the PIN entry screen for pin_timeout_ms: the sale was cancelled, nothing was sent.",
     "Start the sale again and enter the PIN; raise pin_timeout_ms if customers need longer."),
    ("PIN-04", "operator", "info", True, "PIN CANCELLED", "PIN entry cancelled. Payment cancelled.",
     "C pressed on an empty PIN entry: the cardholder cancelled, nothing was sent.",
     "Start the sale again if the customer wants to pay."),
    ("PIN-05", "system", "error", False, "PIN NEEDS THE BANK", "The bank is not reachable. Please pay another way.",
     "The card asks for an online PIN, and the host cannot be reached: a PIN cannot be checked offline, "
     "so no offline approval.",
     "Restore the network (NET-/HST- codes in the fault log); the customer pays another way meanwhile."),
    ("SYS-01", "system", "critical", False, "STORAGE FULL", "Terminal storage is full. Call support.",
     "Flash filesystem has no space for the journal/logs.", "Upload SAF, export and clear logs; check for stray files."),
    ("SYS-02", "system", "warning", False, "STORAGE RECOVERED", "Terminal recovered from a storage error.",
     "A corrupt record or file was found and skipped (power loss?).", "Check power supply; export diagnostics; replace flash if it repeats."),
    ("SYS-03", "system", "error", False, "CLOCK NOT SET", "Terminal clock not set. Call support.",
     "Real-time clock is not set (lost after power off).", "Set the time (NTP/host); replace the RTC battery."),
    ("SYS-04", "system", "error", False, "OFFLINE LIMIT", "Offline payments are full. Please pay another way.",
     "Store-and-forward queue reached its count or amount limit.", "Restore the network so SAF can upload; check SAF limits."),
    ("SYS-05", "system", "critical", True, "LOW MEMORY", "Terminal busy. Please try again.",
     "Free heap below the safety threshold.", "Restart the terminal; report the stats export to support."),
    ("SYS-06", "system", "critical", False, "WATCHDOG RESET", "The terminal restarted.",
     "The watchdog reset the terminal (a task hung).", "Export diagnostics and send them to support."),
    ("SYS-07", "system", "critical", False, "CONFIG ERROR", "Terminal not configured. Call support.",
     "Hardware map (hardware.json) or a setting missing or invalid.", "Redeploy for the right board: make deploy BOARD=... PORT=..."),
    ("SYS-08", "system", "error", False, "OFFLINE: ABOVE LIMIT", "The bank is not reachable. Please pay another way.",
     "Offline and the amount is above the floor limit.", "Restore the network or lower the amount."),
    ("SYS-09", "system", "critical", False, "INTERNAL ERROR", "Terminal error. Please try again.",
     "Unexpected internal error (a bug).", "Export diagnostics and send them to support; restart."),
    ("SYS-10", "system", "critical", False, "TXN NUMBER IN USE", "Terminal error. Please try again.",
     "A new transaction got the reference of one still in the journal (numbering rolled back?); nothing was sent.",
     "Try again (the next number is fresh); export diagnostics and send them to support."),
    # Provisioning (payterm/config.py): one code per bad field of provision.json; the console names the field.
    ("SYS-20", "system", "critical", False, "NOT PROVISIONED", "Terminal not configured. Call support.",
     "No provisioning file (provision.json) on the terminal.", "Write one: payterm provision, then make deploy PROVISION=..."),
    ("SYS-21", "system", "critical", False, "BAD PROVISION FILE", "Terminal not configured. Call support.",
     "provision.json is not valid JSON, not an object, or of an unknown format.", "Re-provision with payterm provision and deploy it."),
    ("SYS-22", "system", "critical", False, "BAD TERMINAL ID", "Terminal not configured. Call support.",
     "Terminal ID (field 41) missing or not 8 printable characters.", "Re-provision with the TID the acquirer assigned (--tid)."),
    ("SYS-23", "system", "critical", False, "BAD MERCHANT ID", "Terminal not configured. Call support.",
     "Merchant ID (field 42) missing or not 15 printable characters.", "Re-provision with the MID the acquirer assigned (--mid)."),
    ("SYS-24", "system", "critical", False, "BAD HOST ADDRESS", "Terminal not configured. Call support.",
     "Acquirer host list missing, empty, or an entry not host:port.", "Re-provision with --host host:port (primary first)."),
    ("SYS-25", "system", "critical", False, "BAD CURRENCY", "Terminal not configured. Call support.",
     "Currency missing or not an ISO 4217 numeric code the terminal knows.", "Re-provision with --currency (e.g. 978 for EUR)."),
    ("SYS-26", "system", "critical", False, "BAD LIMITS", "Terminal not configured. Call support.",
     "A floor or store-and-forward limit is negative, not a number, or inconsistent.", "Re-provision with the limits the acquirer agreed."),
    ("SYS-27", "system", "critical", False, "BAD TECH PIN HASH", "Terminal not configured. Call support.",
     "Technician PIN hash missing or not sha256$salt$hash.", "Re-provision with --tech-pin (only the hash is stored)."),
    ("SYS-28", "system", "critical", False, "BAD WLAN SETTINGS", "Terminal not configured. Call support.",
     "WLAN credentials missing or invalid on a board that joins a WLAN.", "Re-provision with --wlan-ssid and --wlan-password."),
    ("SYS-29", "system", "critical", False, "BAD PARAMETER", "Terminal not configured. Call support.",
     "A provisioning parameter is unknown or of the wrong type.", "Re-provision; payterm provision names the parameter."),
)

_GENERIC_ISS = ("issuer", "error", False, "DECLINED ", "Declined by the bank. Please use another card.",
                "Issuer/host response code without a catalog entry.", "Ask the customer to contact their bank.")

# The five causes merchants ask about (docs/architecture.md).
MERCHANT_CAUSES = (
    ("insufficient balance", ("ISS-51",)),
    ("wrong card number", ("CRD-07", "ISS-14")),
    ("network problem", ("NET-01", "NET-02", "NET-03", "NET-04", "NET-05")),
    ("payment method not supported", ("CRD-09", "ISS-57")),
    ("security check failed", ("ISS-N7", "ISS-82", "CRD-08", "ISS-54")),
)


def _find(code):
    table = ISS if code.startswith("ISS-") else LOCAL
    for e in table:
        if e[0] == code:
            return e
    return None


_SYS09 = next(e for e in LOCAL if e[0] == "SYS-09")  # the fallback texts of lookup()


def known(code):
    return _find(code) is not None


def lookup(code):
    """Entry for `code`; unknown issuer codes get a generic decline entry.

    Unknown non-issuer ids (a firmware bug) fall back to SYS-09's texts under
    the asked id, so the display and log never fail while reporting a failure.
    """
    e = _find(code)
    if e is not None:
        return e
    if code.startswith("ISS-"):
        g = _GENERIC_ISS
        return (code, g[0], g[1], g[2], g[3] + code[4:], g[4], g[5], g[6])
    return (code,) + _SYS09[1:]


def for_rc(rc):
    """Catalog id for ISO 8583 field 39; None for approval ("00", "08", "10", "11")."""
    if rc is None:
        return "HST-02"
    if isinstance(rc, (bytes, bytearray)):
        rc = rc.decode()
    if rc in ("00", "08", "10", "11"):
        return None
    return "ISS-" + rc


def all_ids():
    return [e[0] for e in LOCAL] + [e[0] for e in ISS]


def entries():
    for e in LOCAL:
        yield e
    for e in ISS:
        yield e


def export_json_lines(write):
    """One JSON object per entry (used by `payterm codes` through MicroPython)."""
    import json

    for e in entries():
        write(json.dumps(dict(zip(FIELDS, e))))

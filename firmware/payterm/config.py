"""Terminal parameters: the one table of defaults, and the provisioning file over it.

A terminal's own parameters (TID, MID, acquirer hosts, limits, technician PIN
hash, WLAN credentials, currency, tuning) live in one provisioning file at the
storage root, `provision.json`, written by `payterm provision` (and by
`make deploy` / the emulator, which use it). The hardware map (hardware.json)
says what the terminal is made of and holds no parameters.

`validate()` is the single check of that file: `payterm provision` runs it in
MicroPython before writing, and the terminal runs it at boot. Each bad field
gets its own failure code (SYS-20..SYS-29) with the field named in the detail,
so a technician knows what to fix; main.py does not start payments while any
error remains.
"""
import json

FILE = "provision.json"
FORMAT = 1  # "format" field of the provisioning file

# Every terminal parameter and its default. The engine and the card service read
# their keys from here too (they keep their own names for them).
DEFAULTS = {
    # identity and acquirer (provisioned; see REQUIRED)
    "terminal_id": "TERM0001",  # ISO 8583 field 41, ans 8
    "merchant_id": "MERCHANT0000001",  # field 42, ans 15
    "hosts": ["127.0.0.1:8583"],  # primary first: "host:port"
    "currency": 978,  # ISO 4217 numeric
    "tech_pin_hash": None,  # "sha256$<salt>$<hex of sha256(salt:pin)>"
    "merchant_pin_hash": None,  # the same format: the supervisor's PIN for refund, void and training mode
    "wlan": None,  # {"ssid": ..., "password": ...} on boards whose network is a WLAN
    "tls": None,  # {"ca": ..., "server_hostname": ...} or None for plain TCP
    # link
    "connect_timeout_ms": 5000,
    "read_timeout_ms": 15000,
    "max_wait_ms": 30000,  # customer-facing wait for one authorization
    "backoff_base_ms": 250,
    "backoff_cap_ms": 4000,
    "breaker_threshold": 3,
    "breaker_open_ms": 15000,      # first open period; each failed echo probe doubles it ...
    "breaker_open_max_ms": 120000,  # ... up to this (equal jitter)
    "max_attempts": 4,
    "min_read_ms": 3000,           # never send with less than this left to wait for the answer (HST-06)
    # store-and-forward and background work (payterm.txn.engine DEFAULTS, payterm.txn.worker)
    "floor_limit": 5000,
    "saf_max_count": 50,
    "saf_max_total": 100000,
    "saf_max_tries": 20,
    "worker_wait_ms": 10000,
    "retry_base_ms": 2000,
    "retry_cap_ms": 120000,
    "worker_scan_ms": 30000,
    # merchant (cardholder receipt header)
    "merchant_name": "",  # receipt line 1 and the idle screen (at most 32 characters)
    "merchant_address": (),  # up to 3 receipt lines of at most 32 characters
    # cashier
    "card_timeout_ms": 30000,
    "result_ms": 6000,  # a result screen closes by itself after this (longer when its text has more pages)
    "result_min_ms": 1500,  # ... and stays at least this long: a key pressed sooner waits, it is not lost
    "page_ms": 2500,  # a customer text longer than the screen pages every page_ms
    "max_amount": 1000000,  # highest amount (minor units) the keypad accepts: EUR 10,000.00
    "confirm_amount": 50000,  # amounts at or above this are shown again and need OK (0: never)
    "merchant_copy": False,  # also print a MERCHANT COPY of every receipt (always printed when a signature is needed)
    # cardholder PIN (payterm.ui.pinentry)
    "pin_debit": False,  # ask every debit card (Maestro, Visa Electron, V PAY, ...) for its PIN
    "pin_timeout_ms": 30000,  # no key for this long on the PIN screen cancels the sale (PIN-03)
    # card readers (payterm.card.service)
    "chip_available": True,  # terminal reads chip/contactless: service code 2xx/6xx must not be swiped
    "fallback_ms": 60000,  # after a failed tap, a swipe of a chip card is accepted this long
    "card_read_tries": 3,  # reads one sale may try (a read error asks for another try until then)
    "mag_gap_ms": 80,  # silence that ends one swipe's burst of track data
    "mag_lrc_required": False,  # reject tracks without LRC (modules that always send one)
    "mag_retry_ms": 500,  # pause after a magstripe UART error
    "nfc_enabled": True,
    "nfc_ack_ms": 50,  # UM0701 6.2.2: ACK within 1 ms nominal; UART latency margin
    "nfc_resp_ms": 1000,
    "nfc_poll_ms": 150,  # pause between InListPassiveTarget polls while a sale waits or a card is to leave
    "nfc_idle_ms": 250,  # pause between polls while no sale waits (the field state stays known)
    "nfc_fresh_ms": 1000,  # a look at the field older than this says nothing when a sale starts
    "nfc_retry_ms": 2000,  # re-initialise a reader that stopped answering
    "nfc_check_ms": 500,  # longest wait for the first look at the field before the prompt shows
    # Contactless AIDs (payterm.card.emvrisk): an AID string, or an object with its own
    # "kernel" (qvsdc | mchip; default by RID), "priority" (1-15, breaks ties of the card's
    # priorities), "tx_limit", "cvm_limit", "floor_limit" (minor units; default the terminal-wide
    # values below), "deferred" (an ARQC may be authorized later, offline; default: qvsdc) and "label".
    "aids": (
        {"aid": "A0000000031010", "label": "VISA"},  # Visa credit/debit
        {"aid": "A0000000032010", "label": "VISA ELECTRON"},
        {"aid": "A0000000032020", "label": "V PAY"},  # debit
        {"aid": "A0000000041010", "label": "MASTERCARD"},
        {"aid": "A0000000043060", "label": "MAESTRO"},  # debit
        {"aid": "A0000003591010028001", "label": "GIROCARD"},  # German debit (C-2 based kernel)
        {"aid": "A000000025", "label": "AMERICAN EXPRESS"},
        {"aid": "A0000001523010", "label": "DISCOVER"},
        {"aid": "A0000000651010", "label": "JCB"},
    ),
    "cl_tx_limit": 100000,  # contactless transaction limit: above it INSERT OR SWIPE CARD (CRD-14)
    "cl_cvm_limit": 5000,  # CVM required limit: above it signature / online PIN unless the device verified
    "online_pin": False,  # online PIN as CVM (set once PIN entry is available)
    "cl_magstripe": False,  # Mastercard mag-stripe mode taps (CVC3, entry mode 91); off: declined CRD-19
    "country": "0840",  # 9F1A terminal country code (ISO 3166 numeric)
    "ttq": "22004000",  # 9F66 TTQ base: qVSDC, signature, CDCVM supported (the kernel adds online/CVM bits)
    "terminal_type": "22",  # 9F35 attended, online with offline capability
    "capabilities": "402800",  # 9F33 magnetic stripe; signature, no CVM; no offline data authentication
    "additional_capabilities": "6000F0A001",  # 9F40 goods and services; keys, display, printer; code table 1
}

# What a terminal cannot take a payment without: no default stands in for these.
REQUIRED = ("terminal_id", "merchant_id", "hosts", "currency", "tech_pin_hash")

# Failure code for each provisioning field (payterm/codes.py has their texts).
_C_MISSING = "SYS-20"
_C_FILE = "SYS-21"
_C_TID = "SYS-22"
_C_MID = "SYS-23"
_C_HOSTS = "SYS-24"
_C_CURRENCY = "SYS-25"
_C_LIMITS = "SYS-26"
_C_PIN = "SYS-27"
_C_WLAN = "SYS-28"
_C_OTHER = "SYS-29"
_LIMITS = ("floor_limit", "saf_max_count", "saf_max_total", "saf_max_tries", "cl_tx_limit", "cl_cvm_limit",
           "max_amount", "confirm_amount")
_MAX_MINOR = 999999999999  # ISO 8583 field 4 is n12
_TEXT_MAX = 32  # receipt line (58 mm paper, font A)
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"
_HEX = "0123456789abcdef"
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _ans(v, n):
    """ISO 8583 ans of exactly n printable ASCII characters."""
    if not isinstance(v, str) or len(v) != n:
        return False
    for ch in v:
        if not 0x20 <= ord(ch) < 0x7F:
            return False
    return True


def _only(s, chars):
    for ch in s:
        if ch not in chars:
            return False
    return True


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _host_error(h):
    if not isinstance(h, str):
        return "not a \"host:port\" string"
    host, sep, port = h.rpartition(":")
    if not sep:
        return "%r is not host:port" % h
    if not host or len(host) > 253 or not _only(host, _HOST_CHARS):
        return "bad host name in %r" % h
    if not port or not _only(port, "0123456789") or not 0 < int(port) < 65536:
        return "bad port in %r" % h
    return None


def _pin_error(v):
    if not isinstance(v, str):
        return "missing (payterm provision --tech-pin)"
    parts = v.split("$")
    if len(parts) != 3 or parts[0] != "sha256":
        return "not sha256$<salt>$<hash>"
    if not 0 < len(parts[1]) <= 32 or not _only(parts[1], _ALNUM):
        return "salt must be 1-32 letters or digits"
    if len(parts[2]) != 64 or not _only(parts[2], _HEX):
        return "hash must be 64 lower-case hex digits"
    return None


def _wlan_error(v):
    if not isinstance(v, dict):
        return "missing: this board joins a WLAN (ssid, password)"
    for k in v:
        if k not in ("ssid", "password"):
            return "unknown key %r" % k
    ssid, pw = v.get("ssid"), v.get("password", "")
    if not isinstance(ssid, str) or not 0 < len(ssid.encode()) <= 32:
        return "ssid must be 1-32 bytes"
    if not isinstance(pw, str) or not (pw == "" or 8 <= len(pw) <= 63):
        return "password must be empty (open network) or 8-63 characters"
    return None


def _type_error(k, v):
    d = DEFAULTS[k]
    if d is None:  # tls
        return None if v is None or isinstance(v, dict) else "must be an object or null"
    if isinstance(d, bool):
        return None if isinstance(v, bool) else "must be true or false"
    if _int(d):
        return None if _int(v) and v >= 0 else "must be a whole number >= 0"
    if isinstance(d, str):
        return None if isinstance(v, str) else "must be a string"
    if isinstance(d, (list, tuple)):
        if not isinstance(v, (list, tuple)):
            return "must be a list"
        for x in v:
            if not isinstance(x, str):
                return "must be a list of strings"
    return None


def _aids_error(v):
    """The contactless AID list: 1-32 AID strings or objects (payterm.card.emvrisk.entry_error)."""
    from payterm.card.emvrisk import entry_error

    if not isinstance(v, (list, tuple)) or not 0 < len(v) <= 32:
        return "must be a list of 1-32 AIDs"
    for e in v:
        why = entry_error(e)
        if why:
            return why
    return None


def validate(params, board=None):
    """[(code, field, detail), ...] for a provisioning dict; [] when it is usable.

    `board` is the hardware map: a board whose network is a WLAN needs credentials.
    """
    errs = []
    if not isinstance(params, dict):
        return [(_C_FILE, FILE, "not a JSON object")]
    if params.get("format") != FORMAT:
        errs.append((_C_FILE, "format", "must be %d" % FORMAT))

    def bad(code, field, detail):
        errs.append((code, field, detail))

    for k in REQUIRED:
        if k not in params:
            bad({"terminal_id": _C_TID, "merchant_id": _C_MID, "hosts": _C_HOSTS, "currency": _C_CURRENCY,
                 "tech_pin_hash": _C_PIN}[k], k, "missing")
    if "terminal_id" in params and not _ans(params["terminal_id"], 8):
        bad(_C_TID, "terminal_id", "must be 8 printable characters")
    if "merchant_id" in params and not _ans(params["merchant_id"], 15):
        bad(_C_MID, "merchant_id", "must be 15 printable characters")
    if "hosts" in params:
        hs = params["hosts"]
        if not isinstance(hs, list) or not 0 < len(hs) <= 4:
            bad(_C_HOSTS, "hosts", "must be a list of 1-4 \"host:port\"")
        else:
            for h in hs:
                e = _host_error(h)
                if e:
                    bad(_C_HOSTS, "hosts", e)
    if "currency" in params:
        c = params["currency"]
        ok = _int(c)
        if ok:
            from payterm.txn import currency

            try:
                currency.alpha(c)
            except Exception:
                ok = False
        if not ok:
            bad(_C_CURRENCY, "currency", "%r is not an ISO 4217 numeric code this terminal knows" % (c,))
    if "tech_pin_hash" in params:
        e = _pin_error(params["tech_pin_hash"])
        if e:
            bad(_C_PIN, "tech_pin_hash", e)
    wlan_needed = bool(board) and (board.get("network") or {}).get("kind") == "wlan"
    if wlan_needed or params.get("wlan") is not None:
        e = _wlan_error(params.get("wlan"))
        if e:
            bad(_C_WLAN, "wlan", e)
    for k in _LIMITS:
        if k in params and not (_int(params[k]) and params[k] >= 0):
            bad(_C_LIMITS, k, "must be a whole number >= 0")
    mx = params.get("max_amount", DEFAULTS["max_amount"])
    if _int(mx) and not 0 < mx <= _MAX_MINOR:
        bad(_C_LIMITS, "max_amount", "must be 1..%d minor units" % _MAX_MINOR)
    if "merchant_pin_hash" in params and params["merchant_pin_hash"] is not None:
        e = _pin_error(params["merchant_pin_hash"])
        if e:
            bad(_C_OTHER, "merchant_pin_hash", e.replace("--tech-pin", "--merchant-pin"))
        elif params["merchant_pin_hash"] == params.get("tech_pin_hash"):
            bad(_C_OTHER, "merchant_pin_hash", "must differ from the technician PIN")
    for k in ("merchant_name", "merchant_address"):
        v = params.get(k)
        lines = [v] if isinstance(v, str) else v if isinstance(v, (list, tuple)) else ()
        if k == "merchant_address" and isinstance(v, (list, tuple)) and len(v) > 3:
            bad(_C_OTHER, k, "at most 3 lines")
        for line in lines:
            if isinstance(line, str) and (len(line) > _TEXT_MAX or not _ans(line, len(line))):
                bad(_C_OTHER, k, "lines of at most %d printable ASCII characters" % _TEXT_MAX)
                break
    fl, tot = params.get("floor_limit", DEFAULTS["floor_limit"]), params.get("saf_max_total", DEFAULTS["saf_max_total"])
    if _int(fl) and _int(tot) and fl > tot:
        bad(_C_LIMITS, "floor_limit", "above saf_max_total: one offline approval would not fit")
    for k, v in params.items():
        if k == "format" or k in REQUIRED or k in _LIMITS or k in ("wlan", "merchant_pin_hash"):
            continue
        if k not in DEFAULTS:
            bad(_C_OTHER, k, "unknown parameter")
            continue
        if k == "aids":
            e = _aids_error(v)
            if e:
                bad(_C_OTHER, k, e)
            continue
        e = _type_error(k, v)
        if e:
            bad(_C_OTHER, k, e)
    return errs


def read(storage_root):
    """(params, errors) from the provisioning file under storage_root."""
    path = _path(storage_root)
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, [(_C_MISSING, FILE, "no %s: run payterm provision" % path)]
    try:
        params = json.loads(text)
    except ValueError:
        return None, [(_C_FILE, FILE, "not valid JSON")]
    return params, []


def check(board, storage_root):
    """(params, errors): read and validate the terminal's provisioning file."""
    params, errs = read(storage_root)
    if params is None:
        return None, errs
    return params, validate(params, board)


def load(board, storage_root, overrides=None):
    """The merged parameters the application runs on: DEFAULTS < provisioning < overrides.

    Errors (see check) are kept in cfg["_errors"] and, as one line, cfg["_config_error"].
    """
    cfg = dict(DEFAULTS)
    params, errs = check(board, storage_root)
    if isinstance(params, dict):
        for k, v in params.items():
            if k in DEFAULTS:
                cfg[k] = v
    if overrides:
        cfg.update(overrides)
    if errs:
        cfg["_errors"] = errs
        cfg["_config_error"] = "; ".join("%s %s: %s" % e for e in errs)
    return cfg


def _path(storage_root):
    return storage_root.rstrip("/") + "/" + FILE


def hosts(cfg):
    """[(host, port), ...] from "host:port" strings."""
    out = []
    for h in cfg.get("hosts") or ():
        host, _, port = h.rpartition(":")
        out.append((host, int(port)))
    return out


def pin_hash(cfg, key="tech_pin_hash"):
    """(salt, hex digest) of the provisioned technician (or merchant: key) PIN, or None."""
    v = cfg.get(key)
    if not isinstance(v, str) or _pin_error(v):
        return None
    _, salt, h = v.split("$")
    return salt, h

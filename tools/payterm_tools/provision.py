"""`payterm provision`: write and validate a terminal's provisioning file (provision.json).

The file holds the terminal's own parameters (TID, MID, acquirer hosts,
limits, technician PIN hash, WLAN credentials, currency, tuning) for one
board; `make deploy` copies it to the device, the emulator writes one into its
state directory. It is checked by the firmware's own validator
(payterm.config.validate) run in MicroPython against the board's hardware map,
so the host refuses exactly what the terminal would refuse at boot.

Only salted SHA-256 hashes of the technician and merchant PINs are written, never a PIN.

The DUKPT initial key is a separate file, `ikey.json` (docs/keys.md): `--ikey`
writes it beside the provisioning file, from the acquirer simulator's test BDK
(or `--bdk`, `--ikid`); for the EMULATOR board it is written by default when
that directory (a state directory: the emulator's flash) holds no keys yet.
A real board's key comes from the key injection facility's HSM, not from here:
the parameters can be rewritten any time, a key only once per key ID.
"""
import hashlib
import json
import os
import secrets
import string
import subprocess
import sys

from payterm_tools import BOARDS, FIRMWARE, keyinject
from payterm_tools.runtime import micropython_binary

FILE = "provision.json"
FORMAT = 1

_VALIDATE = (
    "import json, sys\n"
    "from payterm import config\n"
    "d = json.loads(sys.stdin.read())\n"
    "for e in config.validate(d['params'], d['board']):\n"
    "    print(json.dumps(e))\n"
)


class Invalid(Exception):
    """The firmware refused the parameters: .errors is [(code, field, detail)]."""

    def __init__(self, errors):
        super().__init__("; ".join("%s %s: %s" % tuple(e) for e in errors))
        self.errors = [tuple(e) for e in errors]


def hardware_map(board):
    path = os.path.join(BOARDS, board, "hardware.json")
    if not os.path.exists(path):
        raise SystemExit("no hardware map %s (boards: %s)" % (path, ", ".join(boards())))
    with open(path) as f:
        return json.load(f)


def boards():
    return sorted(d for d in os.listdir(BOARDS) if os.path.exists(os.path.join(BOARDS, d, "hardware.json")))


def pin_hash(pin, salt=None):
    """"sha256$<salt>$<hex>" as payterm.diag.pin checks it: sha256("<salt>:<pin>")."""
    pin = str(pin)
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN must be 4-12 digits")
    if salt is None:
        alphabet = string.ascii_letters + string.digits
        salt = "".join(secrets.choice(alphabet) for _ in range(16))
    return "sha256$%s$%s" % (salt, hashlib.sha256(("%s:%s" % (salt, pin)).encode()).hexdigest())


def validate(params, board_map):
    """[(code, field, detail)] from the firmware's validator; [] when the terminal would accept it."""
    env = dict(os.environ, MICROPYPATH=".frozen:" + FIRMWARE)
    r = subprocess.run([micropython_binary(), "-c", _VALIDATE], input=json.dumps({"params": params, "board": board_map}),
                       env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("firmware validator failed:\n" + r.stdout + r.stderr)
    return [tuple(json.loads(l)) for l in r.stdout.splitlines() if l.strip()]


def make(board_map, tech_pin=None, merchant_pin=None, **params):
    """A provisioning dict; tech_pin / merchant_pin (plain) become their hashes. Raises Invalid."""
    p = {"format": FORMAT}
    if tech_pin is not None:
        p["tech_pin_hash"] = pin_hash(tech_pin)
    if merchant_pin is not None:
        if tech_pin is not None and str(merchant_pin) == str(tech_pin):
            raise ValueError("the merchant PIN must differ from the technician PIN")
        p["merchant_pin_hash"] = pin_hash(merchant_pin)
    p.update({k: v for k, v in params.items() if v is not None})
    errors = validate(p, board_map)
    if errors:
        raise Invalid(errors)
    return p


def write(path, params):
    """Write atomically (the emulator's state directory is the terminal's flash)."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(params, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def add_arguments(p):
    p.add_argument("--board", required=True, help="board folder under boards/ (its hardware map decides e.g. WLAN)")
    p.add_argument("--out", help="file to write (default: provision-<TID>.json)")
    p.add_argument("--check", metavar="FILE", help="only validate an existing provisioning file")
    p.add_argument("--tid", help="terminal ID, ISO 8583 field 41 (8 characters)")
    p.add_argument("--mid", help="merchant ID, field 42 (15 characters)")
    p.add_argument("--host", action="append", help="acquirer host:port, primary first (repeat for the secondary)")
    p.add_argument("--currency", type=int, help="ISO 4217 numeric currency, e.g. 978")
    p.add_argument("--tech-pin", help="technician PIN (4-12 digits); only its salted hash is written")
    p.add_argument("--merchant-pin", help="merchant (supervisor) PIN for refund, void and training mode (4-12 digits, "
                                          "not the technician's); only its salted hash is written")
    p.add_argument("--merchant-name", help="merchant name on receipts and the idle screen (at most 32 characters)")
    p.add_argument("--merchant-address", action="append", metavar="LINE",
                   help="a receipt address line (at most 32 characters; repeat for up to 3 lines)")
    p.add_argument("--max-amount", type=int, help="highest amount the keypad accepts, in minor units")
    p.add_argument("--confirm-amount", type=int, help="amounts from this (minor units) are asked again (0: never)")
    p.add_argument("--wlan-ssid", help="WLAN name, on boards that join a WLAN")
    p.add_argument("--wlan-password", default="", help="WLAN password (8-63 characters; empty for an open network)")
    p.add_argument("--floor-limit", type=int, help="offline approval limit in minor units (0: none)")
    p.add_argument("--saf-max-count", type=int, help="most offline sales kept for upload")
    p.add_argument("--saf-max-total", type=int, help="highest total of offline sales kept for upload, minor units")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="any other parameter of payterm.config, value as JSON (e.g. --set read_timeout_ms=20000)")
    p.add_argument("--ikey", action="store_true", default=None,
                   help="also write the DUKPT initial key file ikey.json beside --out "
                        "(default for --board EMULATOR when that directory holds no keys)")
    p.add_argument("--no-ikey", dest="ikey", action="store_false", help="never write ikey.json")
    p.add_argument("--bdk", default=None, help="BDK for --ikey, hex (default: the simulator's test BDK)")
    p.add_argument("--ikid", default=None, help="initial key ID for --ikey, 16 hex digits (default: a new one)")


def _say_errors(errors):
    for e in errors:
        sys.stderr.write("%s %s: %s\n" % tuple(e))


def run(args):
    board_map = hardware_map(args.board)
    if args.check:
        with open(args.check) as f:
            try:
                params = json.load(f)
            except ValueError:
                params = None
        errors = validate(params, board_map) if params is not None else [("SYS-21", FILE, "not valid JSON")]
        if errors:
            _say_errors(errors)
            return 1
        print("%s: valid for %s" % (args.check, args.board))
        return 0
    params = {"terminal_id": args.tid, "merchant_id": args.mid, "hosts": args.host, "currency": args.currency,
              "floor_limit": args.floor_limit, "saf_max_count": args.saf_max_count, "saf_max_total": args.saf_max_total,
              "merchant_name": args.merchant_name, "merchant_address": args.merchant_address,
              "max_amount": args.max_amount, "confirm_amount": args.confirm_amount}
    if args.wlan_ssid is not None:
        params["wlan"] = {"ssid": args.wlan_ssid, "password": args.wlan_password}
    for kv in args.set:
        k, sep, v = kv.partition("=")
        if not sep:
            raise SystemExit("--set wants KEY=JSON, got %r" % kv)
        try:
            params[k] = json.loads(v)
        except ValueError:
            params[k] = v  # a bare string
    try:
        p = make(board_map, tech_pin=args.tech_pin, merchant_pin=args.merchant_pin, **params)
    except ValueError as e:
        raise SystemExit(str(e))
    except Invalid as e:
        _say_errors(e.errors)
        return 1
    out = args.out or "provision-%s.json" % p["terminal_id"]
    write(out, p)
    print("wrote %s for %s (TID %s)" % (out, args.board, p["terminal_id"]))
    d = os.path.dirname(os.path.abspath(out))
    want = getattr(args, "ikey", None)
    if want is None:
        want = args.board == "EMULATOR" and not keyinject.has_keys(d)
    if want:
        bdk = keyinject.parse_bdk(args.bdk, "payterm provision") if args.bdk else keyinject.hsm.TEST_BDK
        rec = keyinject.inject(d, bdk, keyinject.parse_ikid(args.ikid, "payterm provision"))
        # The key itself is never printed: the ID and check value tell keys apart.
        print("wrote %s: initial key ID %s, check value %s" % (os.path.join(d, keyinject.FILE_NAME),
                                                              rec["ikid"], rec["kcv"]))
    return 0

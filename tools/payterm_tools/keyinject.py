"""`payterm inject-key`: write a terminal's DUKPT initial key file (docs/keys.md).

The key injection step of the emulator: the HSM (sim/hsm.py) derives the
initial key for an initial key ID from the BDK and writes
`<state>/ikey.json` ({"ikid", "ik", "kcv"}, owner-only). The terminal loads
it into its derivation registers at the next start and erases the file. On a
real board the same file is copied to the flash filesystem (mpremote) of a
device with flash encryption enabled; see docs/keys.md.

Every provisioning needs a new initial key ID: the terminal refuses an ID it
already has, because reloading the same key would repeat its counters. The
default takes the BDK ID and a random 4-byte derivation ID whose first digit
is a letter (A-F): the key ID is kept in the terminal's key state and shown
to technicians, and must never form a run of digits that looks like a card
number there.

`payterm provision --ikey` and the emulator (a state directory without keys)
write the same file with `inject()`.
"""
import os

from payterm_tools.sim import hsm

FILE_NAME = "ikey.json"
# What the terminal keeps once a key is loaded (payterm.app: State(root, "keys")).
_REGISTERS = ("keys.json", "keys.bak", "keys.tmp")


def new_ikid(bdk_id=hsm.TEST_BDK_ID):
    """BDK ID + a random derivation ID starting with a hex letter (no long digit runs)."""
    d = bytearray(os.urandom(4))
    d[0] = ((10 + (d[0] >> 4) % 6) << 4) | (d[0] & 0x0F)
    return bytes(bdk_id) + bytes(d)


def has_keys(state_dir):
    """True when the terminal in `state_dir` holds key registers or a key file waiting to load."""
    return any(os.path.exists(os.path.join(state_dir, n)) for n in _REGISTERS + (FILE_NAME,))


def inject(state_dir, bdk=hsm.TEST_BDK, ikid=None):
    """Write `<state_dir>/ikey.json` for a new initial key; returns the record (key included)."""
    ikid = new_ikid() if ikid is None else bytes(ikid)
    box = hsm.Hsm({ikid[:4]: bdk})
    os.makedirs(state_dir, exist_ok=True)
    rec = box.provisioning_record(ikid)
    hsm.write_provisioning_file(os.path.join(state_dir, FILE_NAME), rec)
    return rec


def add_arguments(p):
    p.add_argument("--state", default="state", help="terminal state directory (the emulator's flash; default: state)")
    p.add_argument("--bdk", default=hsm.TEST_BDK.hex().upper(),
                   help="BDK, hex (default: the X9.24-3 Annex B test BDK the acquirer simulator uses)")
    p.add_argument("--ikid", default=None,
                   help="initial key ID, 16 hex digits (default: BDK ID 12345678 + a random derivation ID)")


def run(args):
    bdk = parse_bdk(args.bdk, "payterm inject-key")
    ikid = parse_ikid(args.ikid, "payterm inject-key")
    path = os.path.join(args.state, FILE_NAME)
    rec = inject(args.state, bdk, ikid)
    # The key itself is never printed: the ID and check value are enough to tell keys apart.
    print("wrote %s: initial key ID %s, check value %s" % (path, rec["ikid"], rec["kcv"]))
    return 0


def parse_bdk(text, who):
    try:
        bdk = bytes.fromhex(text)
        hsm.kind_of(bdk)
    except (ValueError, hsm.HsmError):
        raise SystemExit("%s: --bdk must be 32, 48 or 64 hex digits" % who)
    return bdk


def parse_ikid(text, who):
    if text is None:
        return None
    try:
        ikid = bytes.fromhex(text)
    except ValueError:
        ikid = b""
    if len(ikid) != hsm.IKID_LEN:
        raise SystemExit("%s: --ikid must be 16 hex digits" % who)
    return ikid

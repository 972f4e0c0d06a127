"""`payterm inject-key`: write a terminal's DUKPT initial key file (docs/keys.md).

The key injection step of the emulator: the HSM (sim/hsm.py) derives the
initial key for an initial key ID from the BDK and writes
`<state>/ikey.json` ({"ikid", "ik", "kcv"}, owner-only). The terminal loads
it into its derivation registers at the next start and erases the file. On a
real board the same file is copied to the flash filesystem (mpremote) of a
device with flash encryption enabled; see docs/keys.md.

Every provisioning needs a new initial key ID: the terminal refuses an ID it
already has, because reloading the same key would repeat its counters. The
default takes the BDK ID and a random 4-byte derivation ID.
"""
import os

from payterm_tools.sim import hsm

FILE_NAME = "ikey.json"


def add_arguments(p):
    p.add_argument("--state", default="state", help="terminal state directory (the emulator's flash; default: state)")
    p.add_argument("--bdk", default=hsm.TEST_BDK.hex().upper(),
                   help="BDK, hex (default: the X9.24-3 Annex B test BDK the acquirer simulator uses)")
    p.add_argument("--ikid", default=None,
                   help="initial key ID, 16 hex digits (default: BDK ID 12345678 + a random derivation ID)")


def run(args):
    try:
        bdk = bytes.fromhex(args.bdk)
        hsm.kind_of(bdk)
    except (ValueError, hsm.HsmError):
        raise SystemExit("payterm inject-key: --bdk must be 32, 48 or 64 hex digits")
    if args.ikid is None:
        ikid = hsm.TEST_BDK_ID + os.urandom(4)
    else:
        try:
            ikid = bytes.fromhex(args.ikid)
        except ValueError:
            ikid = b""
        if len(ikid) != hsm.IKID_LEN:
            raise SystemExit("payterm inject-key: --ikid must be 16 hex digits")
    box = hsm.Hsm({ikid[:4]: bdk})
    os.makedirs(args.state, exist_ok=True)
    path = os.path.join(args.state, FILE_NAME)
    rec = box.provisioning_record(ikid)
    hsm.write_provisioning_file(path, rec)
    # The key itself is never printed: the ID and check value are enough to tell keys apart.
    print("wrote %s: initial key ID %s, check value %s" % (path, rec["ikid"], rec["kcv"]))
    return 0

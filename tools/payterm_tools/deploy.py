"""`payterm deploy`: put the firmware, the hardware map and the provisioning file on a terminal.

One mpremote session (`resume`: no soft reset first; mpremote's Ctrl-C stops
the running terminal, whose watchdog main.py then holds off) copies:

- the firmware compiled for the board's chip (`payterm build --board`), without
  the host HAL; with --frozen (an image from `make firmware`) only main.py;
- boards/<BOARD>/hardware.json to :hardware.json;
- the provisioning file to :provision.json, after the firmware's own validator
  accepted it for this board (--keep-provision leaves the terminal's file);

then resets the terminal so it boots what was copied. Remote paths are
relative to the REPL's working directory, which is the flash root on a device.
"""
import json
import os
import subprocess
import sys

from payterm_tools import BOARDS, build, provision


def add_arguments(p):
    p.add_argument("--port", required=True, help="serial port of the terminal, e.g. /dev/ttyUSB0 or /dev/ttyACM0")
    p.add_argument("--board", required=True, help="board folder under boards/, e.g. TERMINAL_ESP32S3")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--provision", metavar="FILE", help="provisioning file from `payterm provision`")
    g.add_argument("--keep-provision", action="store_true", help="leave the terminal's provision.json as it is")
    p.add_argument("--src", help="compiled firmware (default: build/mpy-<BOARD>, built now)")
    p.add_argument("--frozen", action="store_true", help="the image has the firmware frozen in: copy main.py only")
    p.add_argument("--no-reset", action="store_true", help="do not reset the terminal afterwards")
    p.add_argument("--dry-run", action="store_true", help="print the mpremote command only")


def mpremote():
    cand = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return cand if os.path.exists(cand) else "mpremote"


def hardware(board):
    path = os.path.join(BOARDS, board, "hardware.json")
    if not os.path.exists(path):
        raise SystemExit("no hardware map %s (boards: %s)" % (path, ", ".join(provision.boards())))
    with open(path) as f:
        hw = json.load(f)
    if hw.get("hal") == "host":
        raise SystemExit("%s is the emulator's board, not a device: `make emulate`" % board)
    return path, hw


def command(port, board, src, provision_file=None, frozen=False, reset=True):
    """The one mpremote command line that deploys."""
    hw_path, _ = hardware(board)
    cmd = [mpremote(), "connect", port, "resume"]
    if frozen:
        cmd += ["cp", os.path.join(src, "main.py"), ":main.py"]
    else:
        cmd += ["cp", "-r", src.rstrip("/") + "/.", ":"]
    cmd += ["+", "cp", hw_path, ":hardware.json"]
    if provision_file:
        cmd += ["+", "cp", provision_file, ":" + provision.FILE]
    if reset:
        cmd += ["+", "reset"]
    return cmd


def check_provision(path, hw):
    try:
        with open(path) as f:
            params = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit("%s: %s" % (path, e))
    errors = provision.validate(params, hw)
    if errors:
        for e in errors:
            sys.stderr.write("%s %s: %s\n" % tuple(e))
        raise SystemExit("%s is not valid for %s: not deployed (payterm provision --board %s ...)"
                         % (path, hw.get("name"), hw.get("name")))


def run(args):
    _, hw = hardware(args.board)
    if args.provision:
        check_provision(args.provision, hw)
    src = args.src
    if src is None:
        src = os.path.join("build", "mpy-" + args.board)
        if not args.dry_run:
            build.build(src, build.board_arch(args.board), device=True)
    elif not os.path.isdir(src):
        raise SystemExit("%s missing: run `payterm build --board %s --out %s`" % (src, args.board, src))
    cmd = command(args.port, args.board, src, args.provision, args.frozen, not args.no_reset)
    print(" ".join(cmd))
    if args.dry_run:
        return 0
    return subprocess.run(cmd).returncode

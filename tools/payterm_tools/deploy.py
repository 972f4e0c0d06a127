"""`payterm deploy`: copy the built firmware and the board map to a terminal with mpremote.

The board map goes to /board.json, where firmware/main.py looks for it, so
one firmware build serves every terminal model.
"""
import os
import subprocess
import sys

from payterm_tools import BOARDS


def add_arguments(p):
    p.add_argument("--port", required=True, help="serial port of the terminal, e.g. /dev/ttyUSB0")
    p.add_argument("--board", default="PAYTERM_S3")
    p.add_argument("--src", default="build/mpy", help="output of `payterm build`")
    p.add_argument("--dry-run", action="store_true", help="print the mpremote commands only")


def mpremote():
    cand = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return cand if os.path.exists(cand) else "mpremote"


def commands(port, board, src):
    board_json = os.path.join(BOARDS, board, "board.json")
    if not os.path.exists(board_json):
        raise SystemExit("no board map %s" % board_json)
    base = [mpremote(), "connect", port]
    cmds = []
    dirs = set()
    for d, _, files in os.walk(src):
        rel = os.path.relpath(d, src)
        if rel != "." and rel not in dirs:
            dirs.add(rel)
            cmds.append(base + ["mkdir", ":" + rel.replace(os.sep, "/")])
    cmds.append(base + ["cp", "-r", src + "/.", ":"])
    cmds.append(base + ["cp", board_json, ":board.json"])
    cmds.append(base + ["reset"])
    return cmds


def run(args):
    if not os.path.isdir(args.src):
        raise SystemExit("%s missing: run `make mpy` first" % args.src)
    for c in commands(args.port, args.board, args.src):
        print(" ".join(c))
        if not args.dry_run:
            r = subprocess.run(c)
            if r.returncode and c[3] != "mkdir":
                return r.returncode
    return 0

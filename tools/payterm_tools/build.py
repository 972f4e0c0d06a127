"""`payterm build`: cross-compile the firmware package to .mpy with mpy-cross.

Bytecode loads faster and uses less RAM on the ESP32 than source; main.py
stays source so the board boots it by name. `--board` picks the native
architecture from the board's chip and leaves out the host-only modules.
"""
import json
import os
import shutil
import subprocess
import sys

from payterm_tools import BOARDS, FIRMWARE

# Modules that exist for the emulator only: never copied to (or frozen into) a device.
HOST_ONLY = ("payterm/hal/host.py",)

# mpy-cross -march for each chip a board may name
ARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin", "esp32c3": "rv32imc", "host": "x64"}


def add_arguments(p):
    p.add_argument("--out", default="build/mpy", help="output directory")
    p.add_argument("--board", help="board under boards/: its chip's arch, without host-only modules")
    p.add_argument("--arch", help="native arch for -march (xtensawin, rv32imc, x64, ...); default from --board")


def mpy_cross():
    cand = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return cand if os.path.exists(cand) else (shutil.which("mpy-cross") or "mpy-cross")


def board_arch(board):
    with open(os.path.join(BOARDS, board, "hardware.json")) as f:
        chip = json.load(f).get("chip")
    if chip not in ARCH:
        raise SystemExit("board %s: no mpy-cross arch for chip %r" % (board, chip))
    return ARCH[chip]


def sources(device=False):
    """(relative path, absolute path) of every firmware .py; device=True leaves out HOST_ONLY."""
    out = []
    for d, dirs, files in os.walk(FIRMWARE):
        dirs[:] = [x for x in dirs if x not in ("cmodules", "__pycache__")]
        for f in sorted(files):
            if f.endswith(".py"):
                full = os.path.join(d, f)
                rel = os.path.relpath(full, FIRMWARE).replace(os.sep, "/")
                if not (device and rel in HOST_ONLY):
                    out.append((rel, full))
    return sorted(out)


def build(out, arch="xtensawin", device=False):
    if os.path.isdir(out):
        shutil.rmtree(out)
    built = []
    for rel, full in sources(device):
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if rel == "main.py":
            shutil.copy(full, dst)
        else:
            dst = dst[:-3] + ".mpy"
            subprocess.run([mpy_cross(), "-march=" + arch, "-s", rel, "-o", dst, full], check=True)
        built.append(os.path.relpath(dst, out))
    return built


def run(args):
    arch = args.arch or (board_arch(args.board) if args.board else "xtensawin")
    built = build(args.out, arch, device=bool(args.board) and args.board != "EMULATOR")
    print("built %d files into %s (%s)" % (len(built), args.out, arch))
    return 0

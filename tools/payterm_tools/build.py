"""`payterm build`: cross-compile the firmware package to .mpy with mpy-cross.

Bytecode loads faster and uses less RAM on the ESP32 than source; main.py
stays source so the board boots it by name.
"""
import os
import shutil
import subprocess
import sys

from payterm_tools import FIRMWARE


def add_arguments(p):
    p.add_argument("--out", default="build/mpy", help="output directory")
    p.add_argument("--arch", default="xtensawin", help="native arch for -march (xtensawin, rv32imc, ...)")


def mpy_cross():
    cand = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return cand if os.path.exists(cand) else (shutil.which("mpy-cross") or "mpy-cross")


def sources():
    """(relative path, absolute path) of every firmware .py that goes on the device."""
    out = []
    for d, dirs, files in os.walk(FIRMWARE):
        dirs[:] = [x for x in dirs if x not in ("cmodules", "__pycache__")]
        for f in sorted(files):
            if f.endswith(".py"):
                full = os.path.join(d, f)
                out.append((os.path.relpath(full, FIRMWARE), full))
    return sorted(out)


def build(out, arch="xtensawin"):
    if os.path.isdir(out):
        shutil.rmtree(out)
    built = []
    for rel, full in sources():
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
    built = build(args.out, args.arch)
    print("built %d files into %s" % (len(built), args.out))
    return 0

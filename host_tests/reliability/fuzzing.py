"""Runs the MicroPython fuzz driver (mp_fuzz.py) and judges what it reports.

The inputs for the host side come from the acquirer simulator itself: the
frames it answers a sale, a refund, a void, a reversal, an advice and an echo
with (approved and declined), plus its own broken frames (garbage,
truncated), written to a vectors file the driver mutates.
"""
import json
import os
import subprocess

import mpy_runtimes

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mp_fuzz.py")
CHUNK = 5000  # cases per VM: one stuck VM loses at most this many

# Crashes already reported, by signature: they are counted and shown as "known" instead of failing the fuzz
# run, and each has its own regression test (xfail) in test_fuzz_known.py. Remove an entry once fixed.
KNOWN = {}


def signature(crash):
    """target:last line of the traceback (the exception), e.g. 'console:RuntimeError: name too long'."""
    lines = [l for l in crash.get("detail", "").strip().splitlines() if l.strip()]
    return "%s:%s" % (crash["target"], lines[-1].strip() if lines else crash.get("kind"))


def _answer(req, action):
    """The frame a fresh acquirer simulator sends back over TCP for one request scripted with `action`."""
    import socket

    import iso8583
    from iso8583.specs import default as spec

    from payterm_tools.sim.acquirer import AcquirerSim

    body, _ = iso8583.encode(dict(req), spec)
    with AcquirerSim(name="vectors") as sim, socket.create_connection(sim.address, timeout=5) as s:
        sim.script(action)
        s.sendall(len(body).to_bytes(2, "big") + bytes(body))
        out = b""
        while len(out) < 2 or len(out) < 2 + int.from_bytes(out[:2], "big"):
            chunk = s.recv(4096)
            if not chunk:
                break  # a frame cut short (`truncated` announces its real length): what came is the vector
            out += chunk
        return out


def write_vectors(path):
    """ISO 8583 frames the acquirer simulator sends, for STAN 000123 / TERM0001.

    Each request goes to a fresh simulator (one book per request: the same
    STAN again would be a duplicate, 94), scripted to answer with the
    response code wanted; then its `garbage` and `truncated` answers.
    """
    base = {"3": "000000", "4": "000000001250", "7": "1123120000", "11": "000123", "12": "120000",
            "13": "1123", "22": "071", "41": "TERM0001", "42": "MERCHANT0000001", "49": "978",
            "2": "4761739001010010"}
    reqs = [("0200", {}, "00"), ("0200", {}, "51"), ("0200", {"3": "200000"}, "00"),
            ("0200", {"3": "020000", "90": "0200000122112312000000000000000000000000000"[:42]}, "00"),
            ("0400", {"90": "0200000123112312000000000000000000000000000"[:42]}, "00"),
            ("0401", {"90": "0200000123112312000000000000000000000000000"[:42]}, "00"),
            ("0220", {"38": "A1B2C3"}, "00"), ("0221", {}, "00"), ("0800", {"70": "301"}, "00"),
            ("0200", {}, "05"), ("0200", {}, "91")]
    frames = []
    for mti, extra, rc in reqs:
        req = dict(base, t=mti)
        req.update(extra)
        if mti == "0800":
            req = {"t": "0800", "7": "1123120000", "11": "000123", "41": "TERM0001", "70": "301"}
        frames.append(_answer(req, ("decline", rc)))  # "decline" with an rc answers exactly that rc
    frames.append(_answer(dict(base, t="0200"), "garbage"))
    frames.append(_answer(dict(base, t="0200"), "truncated"))
    for fr in frames:
        assert len(fr) > 2, "the acquirer simulator sent no answer: %r" % (frames,)
    with open(path, "w") as f:
        json.dump({"responses": [fr[2:].hex() for fr in frames], "frames": [fr.hex() for fr in frames]}, f)
    return path


def run_driver(target, seed, first, count, bound_ms, tmp, vectors=None, timeout=None):
    """One VM: returns (result dict, [crash/hang reports]). A VM that never finishes is one hang."""
    args = [mpy_runtimes.binary("unix"), DRIVER, target, str(seed), str(first), str(count), str(bound_ms)]
    if vectors:
        args.append(str(vectors))
    timeout = timeout or 30 + count * 0.05
    try:
        p = subprocess.run(args, env=mpy_runtimes.env_for("unix", tmp), cwd=mpy_runtimes.REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out, rc, stuck = p.stdout.decode("utf-8", "replace"), p.returncode, False
    except subprocess.TimeoutExpired as e:
        out, rc, stuck = (e.stdout or b"").decode("utf-8", "replace"), None, True
    reports = [json.loads(l.split(" ", 1)[1]) for l in out.splitlines() if l.startswith(("@@CRASH ", "@@HANG "))]
    res = [json.loads(l[len("@@RESULT "):]) for l in out.splitlines() if l.startswith("@@RESULT ")]
    if stuck:
        at = [int(l.split()[1]) for l in out.splitlines() if l.startswith("@@AT ")]
        last = at[-1] if at else first
        reports.append({"target": target, "seed": seed, "case": last, "kind": "hangs",
                        "detail": "VM stuck for %ds after case %d (the hang is in cases %d..%d)"
                                  % (timeout, last, last, min(last + 250, first + count) - 1), "input": ""})
        return {"target": target, "inputs": last - first, "crashes": 0, "hangs": 1, "bad": 0,
                "outcomes": {"hang": 1}, "signatures": {"%s:VM stuck" % target: 1},
                "max_ms": int(timeout * 1000)}, reports
    if rc != 0 or not res:
        raise AssertionError("fuzz driver for %s failed (exit %s): harness error, not a finding\n%s"
                             % (target, rc, out[-4000:]))
    return res[0], reports


def replay(target, seed, case, bound_ms, vectors=None):
    cmd = "MICROPYPATH=.frozen:firmware:host_tests/unit .venv/bin/micropython host_tests/reliability/mp_fuzz.py %s %d %d 1 %d" % (
        target, seed, case, bound_ms)
    return cmd + (" <vectors.json from fuzzing.write_vectors()>" if vectors else "")


def fuzz(rel, target, count, tmp, bound_ms=1000, vectors=None):
    """Run `count` cases of `target` in VMs of CHUNK cases; record the figures; fail on any unknown finding."""
    total = {"inputs": 0, "crashes": 0, "hangs": 0, "bad": 0, "max_ms": 0, "outcomes": {}, "signatures": {}}
    reports = []
    first = 0
    while first < count:
        n = min(CHUNK, count - first)
        res, reps = run_driver(target, rel.seed, first, n, bound_ms, tmp, vectors)
        for k in ("inputs", "crashes", "hangs", "bad"):
            total[k] += res[k]
        total["max_ms"] = max(total["max_ms"], res["max_ms"])
        for key in ("outcomes", "signatures"):
            for k, v in res.get(key, {}).items():
                total[key][k] = total[key].get(k, 0) + v
        reports.extend(reps)
        first += n
    known = sum(n for sig, n in total["signatures"].items() if sig in KNOWN)
    total["known"] = known
    rel.record("fuzz", inputs=total["inputs"], crashes=total["crashes"], hangs=total["hangs"], known=known,
               bad=total["bad"], max_case_ms=total["max_ms"], outcomes={target: total["outcomes"]})
    unknown = {sig: n for sig, n in total["signatures"].items() if sig not in KNOWN}
    if unknown:
        lines = ["%s: %d inputs, %d crashes (%d known), %d hangs, %d broken invariants; session seed %d, test seed %d"
                 % (target, total["inputs"], total["crashes"], known, total["hangs"], total["bad"],
                    rel.session_seed, rel.seed)]
        lines += ["  %dx %s" % (n, sig) for sig, n in sorted(unknown.items(), key=lambda kv: -kv[1])]
        for r in [r for r in reports if signature(r) not in KNOWN][:6]:
            lines.append("- %s case %d: %s\n  input %s\n  replay: %s" % (
                r["kind"], r["case"], r["detail"].strip()[-1200:], r.get("input", "")[:160],
                replay(target, rel.seed, r["case"], bound_ms, vectors)))
        raise AssertionError("\n".join(lines))
    return total

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


# The KSN of every vector request: counter 1 of the simulator's test initial key (each request goes to
# a fresh simulator, so the one KSN is never a replay there). The driver derives the same request's
# MAC keys with the firmware's own DUKPT from the initial key written with the vectors.
VECTOR_COUNTER = 1


def _answer(req, action, seal=True):
    """The first frame a fresh acquirer simulator sends back over TCP for one request scripted with
    `action`; the request sealed as the terminal seals it (field 53 + MAC) unless seal=False."""
    import socket

    import iso8583

    from payterm_tools.sim.acquirer import AcquirerSim, SPEC
    from sealclient import SealedClient

    with AcquirerSim(name="vectors") as sim:
        sim.script(action)
        cl = SealedClient(sim.address, first_counter=VECTOR_COUNTER)
        try:
            if seal:
                body = cl.encode(req)
                assert cl.last_ksn == _vector_ksn(), cl.last_ksn
            else:
                body = bytes(iso8583.encode(dict(req), SPEC)[0])
            cl.send_raw(body)
            s = cl.s
            out = b""
            while len(out) < 2 or len(out) < 2 + int.from_bytes(out[:2], "big"):
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    break
                if not chunk:
                    break  # a frame cut short (`truncated` announces its real length): what came is the vector
                out += chunk
        finally:
            cl.close()
        return out[:2 + int.from_bytes(out[:2], "big")] if len(out) >= 2 else out


def _vector_ksn():
    from payterm_tools.sim import hsm

    return hsm.ksn_hex(hsm.TEST_IKID, VECTOR_COUNTER)


def write_vectors(path):
    """ISO 8583 frames the acquirer simulator sends, for STAN 000123 / TERM0001, and the keys to check them.

    Each request goes to a fresh simulator (one book per request: the same
    STAN again would be a duplicate, 94), sealed with field 53 and its MAC as
    the terminal sends it, scripted to answer with the response code wanted:
    the simulator's HSM MACs each answer under the request's KSN. Then the
    same sale answered without a MAC and with a wrong one, answers that do
    not match (another STAN, MTI or terminal), and the `garbage` and
    `truncated` answers. `kinds` says what each frame is (ok: a correctly
    MACed answer; no_mac, bad_mac; other: no answer to a sale for STAN 000123
    / TERM0001 with a valid MAC; broken: no ISO 8583 message); `ik` (base64) and `ikid`, `counter` give the
    driver the request's keys (the test initial key, never a production one).
    """
    import base64

    from payterm_tools.sim import hsm

    base = {"3": "000000", "4": "000000001250", "7": "1123120000", "11": "000123", "12": "120000",
            "13": "1123", "22": "071", "41": "TERM0001", "42": "MERCHANT0000001", "49": "978",
            "2": "4761739001010010"}
    reqs = [("0200", {}, "00"), ("0200", {}, "51"), ("0200", {"3": "200000"}, "00"),
            ("0200", {"3": "020000", "90": "0200000122112312000000000000000000000000000"[:42]}, "00"),
            ("0400", {"90": "0200000123112312000000000000000000000000000"[:42]}, "00"),
            ("0401", {"90": "0200000123112312000000000000000000000000000"[:42]}, "00"),
            ("0220", {"38": "A1B2C3"}, "00"), ("0221", {}, "00"), ("0800", {"70": "301"}, "00"),
            ("0200", {}, "05"), ("0200", {}, "91")]
    frames, kinds, rcs = [], [], []
    for mti, extra, rc in reqs:
        req = dict(base, t=mti)
        req.update(extra)
        if mti == "0800":
            req = {"t": "0800", "7": "1123120000", "11": "000123", "41": "TERM0001", "70": "301"}
        # "decline" with an rc answers exactly that rc; a network message goes unsealed, as the terminal's
        frames.append(_answer(req, ("decline", rc), seal=mti != "0800"))
        kinds.append("ok" if mti == "0200" else "other")
        rcs.append(rc)
    for action, kind in ((("no_mac",), "no_mac"), (("bad_mac",), "bad_mac"), (("wrong_stan", False), "other"),
                         (("wrong_mti", False), "other"), (("wrong_tid", False), "other"),
                         (("garbage",), "broken"), (("truncated",), "broken")):
        frames.append(_answer(dict(base, t="0200"), action))
        kinds.append(kind)
        rcs.append("00")
    for fr in frames:
        assert len(fr) > 2, "the acquirer simulator sent no answer: %r" % (frames,)
    import iso8583

    from payterm_tools.sim.acquirer import SPEC

    box = hsm.Hsm()
    for fr, kind, rc in zip(frames, kinds, rcs):
        if kind == "ok":  # the simulator took the sealed request (no 30/63) and MACed its answer
            got = iso8583.decode(fr[2:], SPEC)[0]
            assert got.get("39") == rc and hsm.mac_tag(got) == fr[-8:], (rc, got)
            assert box.response_mac(_vector_ksn(), fr[2:-8]) == fr[-8:], "answer not MACed under the request's KSN"
    ik = box.initial_key(hsm.TEST_IKID)
    with open(path, "w") as f:
        json.dump({"responses": [fr[2:].hex() for fr in frames], "frames": [fr.hex() for fr in frames],
                   "kinds": kinds, "rcs": rcs, "ikid": hsm.TEST_IKID.hex().upper(), "counter": VECTOR_COUNTER,
                   "ksn": _vector_ksn(), "ik": base64.b64encode(ik).decode()}, f)
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

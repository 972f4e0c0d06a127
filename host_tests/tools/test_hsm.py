"""The simulator's HSM (sim/hsm.py, on `cryptography`) against the X9.24-3 vectors and psec,
and against the terminal's own code (payterm.crypto) run in the MicroPython VM.

Vector values: ANSI X9.24-3-2017 Annex B (BDK FEDCBA9876543210F1F1F1F1F1F1F1F1,
initial key ID 1234567890123456) and the ASC X9 X9.24-3 test-vector supplement;
NIST SP 800-38B Appendix D for CMAC; psec 1.3.0's own format 4 example.
The cross-checks batch many hypothesis cases into one VM run each (host_tests/tools/mp_crypto.py).
"""
import json
import os
import subprocess

import psec.pinblock as psec_pin
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpy_runtimes
from payterm_tools import codes as codes_tool
from payterm_tools.sim import hsm

DRIVER = os.path.join(mpy_runtimes.REPO, "host_tests", "tools", "mp_crypto.py")
BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IKID = bytes.fromhex("1234567890123456")
PAN = "4111111111111111"
PAD = bytes.fromhex("2F69ADDE2E9E7ACE")

# X9.24-3 supplement: (counter, PIN, MAC generation, data encryption) keys
USAGE_KEYS = (
    (0x00000001, "AF8CB133A78F8DC2D1359F18527593FB", "A2DC23DE6FDE0824A2BC321E08E4B8B7", "A35C412EFD41FDB98B69797C02DCD08F"),
    (0x00000002, "D30BDC73EC9714B000BEC66BDB7B6D09", "484C3B06E8562704528CD5B46FB12FB6", "D639514AA33AC43AD9229E433D6D4E5B"),
    (0x00000005, "35A43BC9EFEB09C756204B57E3FB7D4D", "0588185FE1FF8C7E22FAD78C1C61F065", "CA02DF6F30B39E14BD0B4A30E460920F"),
    (0x0001FFFE, "DDF7E08A84B5478C498D007C743BF762", "6D7623AD652734B8FAE1B6E093EACE3D", "8E4E5D5E0F01C54F01F4ACA1C8F8EDCE"),
    (0x00020000, "AB828BE7B58C7EC5D5ED0D5D320A0C9D", "0B59D3D7D93028D97135FB895CACE24E", "13361208975755318FE7AE28C9616014"),
)
# X9.24-3 supplement, format 4 examples (PIN 1234, PAN above, pad above)
X9_BLOCKS = ((1, "A912150391AB65A67E52883D81CE2D15"), (2, "52A00503BD34BA1383F6A7EE9FE2547F"))


def mp(cases):
    """Run payterm.crypto in MicroPython on a batch of cases; one result dict per case."""
    res = mpy_runtimes.run("unix", [DRIVER], stdin="".join(json.dumps(c) + "\n" for c in cases), timeout=120)
    assert res.returncode == 0, res.stdout[-4000:]
    out = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(out) == len(cases), res.stdout[-4000:]
    return out


def ones(n):
    return bin(n).count("1")


def next_valid(c):
    """Smallest counter >= c with at most 16 one bits (X9.24-3 6.1), or None past the end."""
    while c < 1 << 32 and ones(c) > 16:
        c += c & -c
    return c if c < 1 << 32 else None


def ksn(tc, ikid=IKID):
    return hsm.ksn_hex(ikid, tc)


# ---------------------------------------------------------------- HSM against the vectors

def test_hsm_initial_key_and_working_keys_match_the_x9_vectors():
    box = hsm.Hsm()
    assert box.initial_key(IKID).hex().upper() == "1273671EA26AC29AFA4D1084127652A1"
    for tc, pin, mac, data in USAGE_KEYS:
        assert box.working_key(ksn(tc), hsm.PIN_ENCRYPTION).hex().upper() == pin
        assert box.working_key(ksn(tc), hsm.MAC_GENERATION).hex().upper() == mac
        assert box.working_key(ksn(tc), hsm.DATA_ENCRYPT).hex().upper() == data
    ik256 = hsm.initial_key(BDK + BDK, IKID)
    assert ik256.hex().upper() == "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F"
    assert hsm.working_key(ik256, IKID, 1, hsm.PIN_ENCRYPTION).hex().upper() == "09C9C432966811D6B2C3336BAC1B1202"


def test_hsm_pin_blocks_match_the_x9_format4_examples_and_psec():
    box = hsm.Hsm()
    for tc, block in X9_BLOCKS:
        assert box.encipher_pin(ksn(tc), "1234", PAN, PAD).hex().upper() == block
        assert box.decrypt_pin(ksn(tc), bytes.fromhex(block), PAN) == "1234"
        assert psec_pin.decipher_pinblock_iso_4(box.working_key(ksn(tc), hsm.PIN_ENCRYPTION),
                                                bytes.fromhex(block), PAN) == "1234"


def test_hsm_cmac_matches_sp800_38b_including_aes192():
    msg = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411")
    k192 = bytes.fromhex("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b")
    assert hsm.cmac(k192, msg).hex() == "8a1de5be2eb31aad089a82e6ee908b0e"  # D.2 example, 40 bytes
    assert hsm.cmac(bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"), b"").hex() == "bb1d6929e95937287fa37d129b756746"


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
       pin=st.text("0123456789", min_size=4, max_size=12),
       pan=st.text("0123456789", min_size=1, max_size=19))
def test_hsm_and_psec_agree_on_format4_both_ways(key, pin, pan):
    box = hsm.Hsm({b"\x11\x22\x33\x44": key})
    k = "11223344AABBCCDD00000001"
    wk = box.working_key(k, hsm.PIN_ENCRYPTION)
    assert psec_pin.decipher_pinblock_iso_4(wk, box.encipher_pin(k, pin, pan), pan) == pin
    assert box.decrypt_pin(k, psec_pin.encipher_pinblock_iso_4(wk, pin, pan), pan) == pin


# ---------------------------------------------------------------- HSM refusals carry catalog codes

def test_every_hsm_refusal_is_a_catalog_code():
    box = hsm.Hsm()
    k = ksn(1)
    block = box.encipher_pin(k, "1234", PAN)
    msg = b"0200 request bytes"
    tag = box.request_mac(k, msg)
    cases = [
        ("KEY-05", lambda: box.decrypt_pin(k, block[:15], PAN)),  # truncated field 52
        ("KEY-05", lambda: box.decrypt_pin(k, b"", PAN)),
        ("KEY-05", lambda: box.decrypt_pin(k[:-1], block, PAN)),  # truncated field 53
        ("KEY-05", lambda: box.decrypt_pin(k[:20], block, PAN)),
        ("KEY-05", lambda: box.decrypt_pin("Z" * 24, block, PAN)),
        ("KEY-05", lambda: box.decrypt_pin(ksn(0), block, PAN)),  # counter 0 is never used
        ("KEY-05", lambda: box.decrypt_pin(ksn(0x1FFFF), block, PAN)),  # 17 one bits
        ("KEY-05", lambda: box.decrypt_pin(ksn(1, bytes.fromhex("99999999") + IKID[4:]), block, PAN)),
        ("PIN-02", lambda: box.decrypt_pin(ksn(2), block, PAN)),  # another counter's key
        ("PIN-02", lambda: box.decrypt_pin(k, block, "4111111111111112")),  # another PAN
        ("KEY-05", lambda: box.verify_mac(k, msg, tag[:7])),  # truncated field 64
        ("KEY-07", lambda: box.verify_mac(k, msg + b"!", tag)),
        ("KEY-07", lambda: box.verify_mac(ksn(2), msg, tag)),
        ("KEY-06", lambda: box.decrypt_data(k, box.encrypt_data(k, b"4111")[:-1])),
        ("KEY-06", lambda: box.decrypt_data(ksn(2), box.encrypt_data(k, b"4111111111111111=2512"))),
    ]
    entries, _ = codes_tool.load_catalog(mpy_runtimes.FIRMWARE)
    ids = {e["id"] for e in entries}
    for code, fn in cases:
        with pytest.raises(hsm.HsmError) as ei:
            fn()
        assert ei.value.code == code, (code, ei.value)
        assert code in ids, code
        assert ei.value.rc and len(ei.value.rc) == 2
        assert PAN not in str(ei.value) and "1234" not in str(ei.value).replace("12345678", "")
    assert box.verify_mac(k, msg, tag)
    assert box.verify_pin(k, block, PAN, "1234") and not box.verify_pin(k, block, PAN, "1235")


# ---------------------------------------------------------------- terminal (MicroPython) == HSM

@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
                          st.binary(min_size=8, max_size=8),
                          st.integers(1, 2 ** 32 - 1),
                          st.sampled_from([hsm.PIN_ENCRYPTION, hsm.MAC_GENERATION, hsm.MAC_VERIFICATION,
                                           hsm.DATA_ENCRYPT, hsm.KEY_ENCRYPTION, hsm.KEY_DERIVATION]),
                          st.sampled_from([hsm.AES128, hsm.AES256])),
                min_size=40, max_size=40))
def test_terminal_and_hsm_derive_the_same_keys_for_random_bdks_and_counters(cases):
    cases = [(b, i, tc, u, k if len(b) == 32 else hsm.AES128) for b, i, tc, u, k in cases]
    got = mp([{"op": "wk", "bdk": b.hex(), "ikid": i.hex(), "tc": tc, "usage": u, "kind": k}
              for b, i, tc, u, k in cases])
    for (b, i, tc, u, k), r in zip(cases, got):
        ik = hsm.initial_key(b, i)
        assert r["ik"] == ik.hex().upper()
        assert r["wk"] == hsm.working_key(ik, i, tc, u, k).hex().upper(), (hex(tc), hex(u))


txn_case = st.fixed_dictionaries({
    "bdk": st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
    "did": st.binary(min_size=4, max_size=4),
    "start": st.integers(1, 0xFFFF0000) | st.integers(1, 300) | st.integers(0xFFFE0000, 0xFFFF0000),
    "n": st.integers(1, 10),
    "pin": st.text("0123456789", min_size=4, max_size=12),
    "pan": st.text("0123456789", min_size=12, max_size=19),
    "pad": st.binary(min_size=8, max_size=8),
    "msg": st.binary(max_size=80),
})


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(txn_case, min_size=12, max_size=12))
def test_terminal_transactions_are_accepted_by_the_hsm(cases):
    """The device algorithm (registers, skipping, exhaustion) against the host's KSN-only view."""
    reqs = []
    for c in cases:
        bid = b"\x0a\x0b\x0c\x0d"
        c["ikid"] = bid + c["did"]
        c["box"] = hsm.Hsm({bid: c["bdk"]})
        reqs.append({"op": "seq", "ik": c["box"].initial_key(c["ikid"]).hex(), "ikid": c["ikid"].hex(),
                     "start": c["start"], "n": c["n"], "pin": c["pin"], "pan": c["pan"],
                     "pad": c["pad"].hex(), "msg": c["msg"].hex()})
    for c, r in zip(cases, mp(reqs)):
        box, want = c["box"], next_valid(c["start"])
        for t in r["txns"]:
            assert t["tc"] == want, (hex(c["start"]), t["tc"])
            assert ones(t["tc"]) <= 16
            k = t["f53"]
            assert k == ksn(t["tc"], c["ikid"])
            blk = bytes.fromhex(t["block"])
            assert box.decrypt_pin(k, blk, c["pan"]) == c["pin"]
            assert psec_pin.decipher_pinblock_iso_4(box.working_key(k, hsm.PIN_ENCRYPTION), blk, c["pan"]) == c["pin"]
            assert box.verify_mac(k, c["msg"], bytes.fromhex(t["mac"]))
            assert box.response_mac(k, c["msg"]).hex().upper() == t["rmac"]
            assert box.decrypt_data(k, bytes.fromhex(t["data"])) == c["msg"]
            want = next_valid(t["tc"] + 1)
        if len(r["txns"]) < c["n"]:
            assert r["err"] == "KEY-03" and want is None, (hex(c["start"]), r)
        else:
            assert r["err"] is None


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
                          st.text("0123456789", min_size=4, max_size=12),
                          st.text("0123456789", min_size=1, max_size=19),
                          st.binary(min_size=8, max_size=8)),
                min_size=30, max_size=30))
def test_terminal_pin_blocks_and_psec_agree_both_ways(cases):
    fw = mp([{"op": "pin", "key": k.hex(), "pin": p, "pan": pan, "pad": pad.hex()} for k, p, pan, pad in cases])
    for (k, p, pan, pad), r in zip(cases, fw):
        blk = bytes.fromhex(r["block"])
        assert psec_pin.decipher_pinblock_iso_4(k, blk, pan) == p
        # the PAN is bound into the block: psec recovers the PAN field we encoded
        b = bytes(x ^ y for x, y in zip(hsm._ecb(k).decryptor().update(blk), psec_pin.encode_pan_field_iso_4(pan)))
        assert psec_pin.decode_pin_field_iso_4(hsm._ecb(k).decryptor().update(b)) == p
    back = mp([{"op": "unpin", "key": k.hex(), "block": psec_pin.encipher_pinblock_iso_4(k, p, pan).hex(), "pan": pan}
               for k, p, pan, _ in cases])
    for (k, p, pan, _), r in zip(cases, back):
        assert r == {"pin": p}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
                          st.binary(max_size=300), st.integers(8, 16)),
                min_size=30, max_size=30))
def test_terminal_cmac_and_data_encryption_agree_with_cryptography(cases):
    reqs = []
    for k, m, n in cases:
        reqs.append({"op": "cmac", "key": k.hex(), "msg": m.hex(), "n": n})
        reqs.append({"op": "enc", "key": k.hex(), "plain": m.hex()})
    got = mp(reqs)
    for i, (k, m, n) in enumerate(cases):
        assert got[2 * i]["tag"] == hsm.cmac(k, m, n).hex().upper()
        # AES-CBC, zero IV, ISO 9797-1 padding method 2, decrypted on `cryptography`
        dec = Cipher(algorithms.AES(k), modes.CBC(bytes(16))).decryptor()
        plain = dec.update(bytes.fromhex(got[2 * i + 1]["c"])) + dec.finalize()
        assert plain == m + b"\x80" + bytes(15 - len(m) % 16)


def test_terminal_refuses_what_the_hsm_would_refuse():
    box = hsm.Hsm()
    k = ksn(1)
    wk = box.working_key(k, hsm.PIN_ENCRYPTION)
    block = box.encipher_pin(k, "1234", PAN)
    dk = box.working_key(k, hsm.DATA_ENCRYPT)
    c = box.encrypt_data(k, b"4111111111111111=2512")
    got = mp([
        {"op": "unpin", "key": wk.hex(), "block": block.hex(), "pan": PAN},
        {"op": "unpin", "key": wk.hex(), "block": block[:15].hex(), "pan": PAN},
        {"op": "unpin", "key": wk.hex(), "block": block.hex(), "pan": "4111111111111112"},
        {"op": "dec", "key": dk.hex(), "c": c.hex()},
        {"op": "dec", "key": dk.hex(), "c": c[:-1].hex()},
    ])
    assert got == [{"pin": "1234"}, {"err": "KEY-05"}, {"err": "PIN-02"},
                   {"plain": b"4111111111111111=2512".hex().upper()}, {"err": "KEY-06"}]


# ---------------------------------------------------------------- provisioning end to end

def test_provision_writes_a_key_file_the_terminal_loads_and_the_hsm_serves(tmp_path):
    state = tmp_path / "state"
    cli = os.path.join(os.path.dirname(mpy_runtimes.unix_binary()), "payterm")
    res = subprocess.run([cli, "inject-key", "--state", str(state), "--ikid", "1234567890ABCDEF"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert res.returncode == 0, res.stdout
    path = state / "ikey.json"
    rec = json.loads(path.read_text())
    assert rec["ikid"] == "1234567890ABCDEF"
    assert rec["ik"] not in res.stdout, "the initial key must never be printed"
    assert (path.stat().st_mode & 0o077) == 0, "key file readable by others"
    got = mp([{"op": "file", "path": str(path), "n": 3, "pin": "4321", "pan": PAN, "pad": PAD.hex(),
               "msg": b"0200".hex()}])[0]
    assert got["ikid"] == "1234567890ABCDEF" and got["err"] is None
    assert not path.exists(), "the terminal erases the initial key file after loading it"
    box = hsm.Hsm()  # the simulator's default BDK is the one provision used
    for n, t in enumerate(got["txns"]):
        assert t["f53"] == "1234567890ABCDEF%08X" % (n + 1)
        assert box.decrypt_pin(t["f53"], bytes.fromhex(t["block"]), PAN) == "4321"
        assert box.verify_mac(t["f53"], b"0200", bytes.fromhex(t["mac"]))
    # a tampered file is refused by the terminal (check value) and still erased
    res = subprocess.run([cli, "inject-key", "--state", str(state)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    assert res.returncode == 0, res.stdout
    rec = json.loads(path.read_text())
    assert rec["ikid"].startswith("12345678") and len(rec["ikid"]) == 16
    rec["ik"] = ("0" if rec["ik"][0] != "0" else "1") + rec["ik"][1:]
    path.write_text(json.dumps(rec))
    script = ("from payterm.crypto import dukpt\nfrom payterm.errors import Fault\n"
              "class S:\n d={}\n def get(s,k,v=None): return s.d.get(k,v)\n def set(s,k,v): s.d[k]=v\n"
              "try:\n dukpt.Dukpt(S()).install_file(%r)\nexcept Fault as e:\n print('CODE', e.code)\n" % str(path))
    res = mpy_runtimes.run("unix", ["-c", script])
    assert "CODE KEY-02" in res.stdout, res.stdout
    assert not path.exists()

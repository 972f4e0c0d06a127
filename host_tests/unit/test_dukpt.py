# runtimes: unix
"""AES DUKPT (payterm.crypto.dukpt) against the ANSI X9.24-3-2017 test vectors.

Vector values: ANSI X9.24-3-2017 Annex B (BDK FEDCBA9876543210F1F1F1F1F1F1F1F1,
initial key ID 1234567890123456) and the ASC X9 X9.24-3 test-vector supplement
(intermediate derivation key registers, working keys per counter and usage).
"""
import os
from binascii import a2b_base64, b2a_base64, hexlify, unhexlify

from mpt import eq, raises, tmpdir, read_bytes, write_bytes

from payterm.crypto import dukpt
from payterm.errors import Fault
from payterm.txn.state import State

BDK = unhexlify("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IKID = unhexlify("1234567890123456")
# X9.24-3-2017 Annex B: initial key for BDK/IKID above
IK = "1273671EA26AC29AFA4D1084127652A1"

# X9.24-3 test-vector supplement: the 32 intermediate derivation key registers
# right after the initial key is loaded (register i = key of counter 1 << i)
REGISTERS_AFTER_LOAD = (
    "4f21b565bad9835e112b6465635eae44", "2f34d68de10f68d38091a73b9e7c437c",
    "0eefc7ada628ba68878da9165a8a1887", "718ee6cf0b27e53d5f7af99c4d8146a2",
    "7459762eed7f51d08567ed6598dfbea2", "1ed39390b4448c69819eb55f4c616564",
    "c13bda0a56d6998e544e0a10a3d979da", "089f6b989ca13d49a6a0317f85460ce5",
    "065355a6a3dd4c2260bdddfa0c16704e", "cf16febc5cfd1a741a3280564a9681f2",
    "4bf8eb1daf9f4244332ed01663eb654e", "492248fee0fe87e8b5db7bb2ac7bc955",
    "18690547eb19d28efaf5ef6d22c271aa", "84f4cca45c4f1d4e063f1ce5b95b6c7f",
    "4ec5fc0c3cd62aff174a37b6fdc2b0d9", "9ef99a4d5fd548a23d299074047f7f6b",
    "f4c6237db49e28bf96e6a18cd8cdda00", "f7ae9025468a25d37b7249cffed224c8",
    "579594a986e87917382a181576fa7a9a", "5aaf46aad7593e0d224e05e13629ed1e",
    "5787eb837b6ffb3af24759f8625cec19", "988a3ab89b9332a15d0be2c54c279923",
    "e55171636976bdc5758a6fa4c25f0008", "df16d5bac52ffa7564d7dbd2de7c6ccf",
    "145e8c933fc0d61900592035cf18a5af", "fbdf917e209b42f9db8843d18bee8033",
    "61c70779f920bbd37815c21b5a1a7b75", "97d7bb3fc342b9e961308bb8b801775b",
    "69b453118411404db54ae2b751f02f43", "7cce4e679f4fc3478e3cd4509d64a7f3",
    "36af4aa9fc1100b2ae7742101540340a", "9dc56486499a2e857fdefc4740641ea8",
)
# register 0 after the second transaction: the key of counter 3
REGISTER0_AFTER_TX2 = "031504e530365cf81264238540518318"

# X9.24-3 test-vector supplement: AES-128 PIN encryption keys for counters 1..24
PIN_KEYS = (
    "af8cb133a78f8dc2d1359f18527593fb", "d30bdc73ec9714b000bec66bdb7b6d09",
    "7d69f01f3b45449f62c7816ece723268", "91a0588318ec2673214271f70137896e",
    "35a43bc9efeb09c756204b57e3fb7d4d", "02dcc6cd1201a3a2ca7099559c862123",
    "6ecf912f3b18ca11a7a27bb60705fd09", "4d9df3fbee3448fc3e676d04320a90f5",
    "b4273d0f8804829572aff61fa2bc417f", "ba7cf1abf6b4a23a16a07cde63f3514c",
    "fbb09b064691293a3ffba322f2c55014", "6743311b691a3065561bb075eb39da2d",
    "0bac7e46f72c543f06c7144080e2ad4b", "3453aa079ff413d9ff51e6055f03b664",
    "4a22d5a8b6b6c06292eaac6a1353c369", "a09c63853b707708deab907ba778c191",
    "0c30f0d8d070b90ff25d83b6e23bc1a4", "50233141fe61ddaa8c444df112eace8e",
    "155fa01a41971c9a185e125f2d99586c", "fd8ecd02676402dd573468d66c64f898",
    "5ecc93425a8bb6615f3857d3163f33a2", "41c280039c32390b817f30902ea389bf",
    "b7eaf85c830839be9d5523947c5d7072", "d22c707d6464a197a9186ffc8a5b9fc4",
)
# X9.24-3 test-vector supplement: (counter, PIN, MAC generation, data encryption) keys
USAGE_KEYS = (
    (0x00000001, "AF8CB133A78F8DC2D1359F18527593FB", "A2DC23DE6FDE0824A2BC321E08E4B8B7", "A35C412EFD41FDB98B69797C02DCD08F"),
    (0x00000002, "D30BDC73EC9714B000BEC66BDB7B6D09", "484C3B06E8562704528CD5B46FB12FB6", "D639514AA33AC43AD9229E433D6D4E5B"),
    (0x00000003, "7D69F01F3B45449F62C7816ECE723268", "A5DF7D9D800CA769766F0C77CA4E6E6C", "EF17F6AB45B4820C93A3DCB21BC491AD"),
    (0x00000004, "91A0588318EC2673214271F70137896E", "E6E4679647D8A9057C1FC15537CB4C4E", "B3BD44C08BB6BA27C3BB4711D7D70387"),
    (0x00000005, "35A43BC9EFEB09C756204B57E3FB7D4D", "0588185FE1FF8C7E22FAD78C1C61F065", "CA02DF6F30B39E14BD0B4A30E460920F"),
    (0x0001FFFE, "DDF7E08A84B5478C498D007C743BF762", "6D7623AD652734B8FAE1B6E093EACE3D", "8E4E5D5E0F01C54F01F4ACA1C8F8EDCE"),
    (0x0001FFFF, "73BA667D6368A2086E72576DF41A4037", "8B543DCF4A31EA3AB47DAD16B8ABD404", "D18ACA30B4D63DB61CE474D3F57733D3"),
    (0x00020000, "AB828BE7B58C7EC5D5ED0D5D320A0C9D", "0B59D3D7D93028D97135FB895CACE24E", "13361208975755318FE7AE28C9616014"),
)
# X9.24-3 test-vector supplement: every key usage at counter 1
COUNTER1_ALL_USAGES = (
    (dukpt.KEY_ENCRYPTION, "36A724B7BEFA5A25F5E7B5782A4554A2"),
    (dukpt.PIN_ENCRYPTION, "AF8CB133A78F8DC2D1359F18527593FB"),
    (dukpt.MAC_GENERATION, "A2DC23DE6FDE0824A2BC321E08E4B8B7"),
    (dukpt.MAC_VERIFICATION, "DBB463945B286C07CD3AD82EE96FD9C9"),
    (dukpt.MAC_BOTH, "85675439D18D7F1158BD8E3EAA3D502B"),
    (dukpt.DATA_ENCRYPT, "A35C412EFD41FDB98B69797C02DCD08F"),
    (dukpt.DATA_DECRYPT, "16292C6EA8F64C5420A0584BFBC577BE"),
    (dukpt.DATA_BOTH, "A308E080DD15A1B741F1721BF67DE11C"),
    (dukpt.KEY_DERIVATION, "30E54D3C69B22501A7FC43969D81D5C0"),
)
# X9.24-3 test-vector supplement, AES-256 BDK FEDCBA9876543210F1F1F1F1F1F1F1F1 x 2, counter 1
IK_256 = "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F"
PIN_128_FROM_256 = "09C9C432966811D6B2C3336BAC1B1202"
PIN_256_FROM_256 = "8C1AB7BEE973829E30242E0BBBDD4946D540C98FC1B5BDCF94790001A23FD502"


def H(b):
    return hexlify(b).decode().upper()


class MemState:
    """The get/set side of payterm.txn.state.State, in RAM; counts saves."""

    def __init__(self):
        self.data = {}
        self.saves = 0
        self.fail = False

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        if self.fail:
            raise Fault("SYS-01", "state write: injected", "txn")
        self.saves += 1
        import json

        self.data[key] = json.loads(json.dumps(value))  # what a reload would give


def regs(st):
    """The stored registers as lower-case hex (the vectors' form), None where erased."""
    return [None if r is None else hexlify(a2b_base64(r)).decode() for r in st.data["dukpt"]["reg"]]


def loaded(state=None, counter=1):
    d = dukpt.Dukpt(state if state is not None else MemState())
    d.install(bytearray(unhexlify(IK)), IKID, counter)
    return d


def test_initial_key_from_the_annex_b_bdk():
    eq(H(dukpt.initial_key(BDK, IKID)), IK)
    eq(H(dukpt.initial_key(BDK + BDK, IKID)), IK_256)


def test_registers_after_load_and_after_two_transactions_match_the_supplement():
    st = MemState()
    d = loaded(st)
    reg = regs(st)
    eq(reg, list(REGISTERS_AFTER_LOAD), "registers after load")
    eq(st.data["dukpt"]["tc"], 1)
    d.begin().wipe()
    reg = regs(st)
    eq(reg[0], None, "register 0 erased after counter 1")
    eq(reg[1:], list(REGISTERS_AFTER_LOAD[1:]))
    d.begin().wipe()
    reg = regs(st)
    eq(reg[0], REGISTER0_AFTER_TX2)
    eq(reg[1], None, "register 1 erased after counter 2")
    eq(reg[2:], list(REGISTERS_AFTER_LOAD[2:]))


def test_device_pin_keys_for_the_first_counters_match_the_supplement():
    d = loaded()
    for n, want in enumerate(PIN_KEYS):
        with d.begin() as t:
            eq(t.counter, n + 1)
            eq(t.field53(), "1234567890123456%08X" % (n + 1))
            eq(hexlify(t.pin_key()).decode(), want, "PIN key, counter %d" % (n + 1))


def test_pin_mac_and_data_keys_per_counter_match_the_supplement():
    ik = unhexlify(IK)
    for tc, pin, mac, data in USAGE_KEYS:
        eq(H(dukpt.working_key(ik, IKID, tc, dukpt.PIN_ENCRYPTION)), pin, "PIN %x" % tc)
        eq(H(dukpt.working_key(ik, IKID, tc, dukpt.MAC_GENERATION)), mac, "MAC %x" % tc)
        eq(H(dukpt.working_key(ik, IKID, tc, dukpt.DATA_ENCRYPT)), data, "data %x" % tc)
    # a counter with many one bits walks the whole ladder
    eq(H(dukpt.working_key(ik, IKID, 0x845FED, dukpt.PIN_ENCRYPTION)), "D1DDA386AA4A556AF0119FDCB5D132C6")


def test_every_usage_at_counter_one_and_the_transaction_helpers():
    ik = unhexlify(IK)
    for usage, want in COUNTER1_ALL_USAGES:
        eq(H(dukpt.working_key(ik, IKID, 1, usage)), want, "usage %04x" % usage)
    with loaded().begin() as t:
        eq(H(t.pin_key()), "AF8CB133A78F8DC2D1359F18527593FB")
        eq(H(t.mac_key()), "A2DC23DE6FDE0824A2BC321E08E4B8B7")
        eq(H(t.response_mac_key()), "DBB463945B286C07CD3AD82EE96FD9C9")
        eq(H(t.data_key()), "A35C412EFD41FDB98B69797C02DCD08F")
        eq(H(t.ksn), "123456789012345600000001")


def test_aes256_initial_key_gives_128_and_256_bit_working_keys():
    ik = unhexlify(IK_256)
    eq(H(dukpt.working_key(ik, IKID, 1, dukpt.PIN_ENCRYPTION)), PIN_128_FROM_256)
    eq(H(dukpt.working_key(ik, IKID, 1, dukpt.PIN_ENCRYPTION, dukpt.AES256)), PIN_256_FROM_256)
    d = dukpt.Dukpt(MemState())
    d.install(bytearray(ik), IKID)
    with d.begin() as t:
        eq(H(t.pin_key()), PIN_128_FROM_256)
        eq(H(t.key(dukpt.PIN_ENCRYPTION, dukpt.AES256)), PIN_256_FROM_256)


def test_device_skips_counters_with_more_than_16_one_bits():
    # 0x1FFFE has 16 one bits; 0x1FFFF (17) is never used: the next counter is 0x20000
    d = loaded(counter=0x1FFFE)
    with d.begin() as t:
        eq(t.counter, 0x1FFFE)
        eq(H(t.pin_key()), "DDF7E08A84B5478C498D007C743BF762")
    with d.begin() as t:
        eq(t.counter, 0x20000)
        eq(H(t.pin_key()), "AB828BE7B58C7EC5D5ED0D5D320A0C9D")
        eq(H(t.mac_key()), "0B59D3D7D93028D97135FB895CACE24E")


def test_last_counters_then_exhaustion_is_key03_and_stays_so_after_reboot():
    d_ = tmpdir("dukpt_end")
    st = State(d_)
    d = loaded(st, counter=0xFFFE0000)
    # 0xFFFE0000 has 15 one bits: one more bit below it, then 0xFFFF0000 (16), then the end
    want = [0xFFFE0000] + [0xFFFE0000 | (1 << k) for k in range(16)] + [0xFFFF0000]
    got = []
    ik = unhexlify(IK)
    for _ in range(len(want)):
        with d.begin() as t:
            got.append(t.counter)
            eq(t.pin_key(), dukpt.working_key(ik, IKID, t.counter, dukpt.PIN_ENCRYPTION), "key %x" % t.counter)
    eq(got, want)
    e = raises(Fault, d.begin)
    eq(e.code, "KEY-03")
    assert d.exhausted()
    again = dukpt.Dukpt(State(d_))
    eq(raises(Fault, again.begin).code, "KEY-03")
    # nothing of the key is left behind
    eq(State(d_).get("dukpt")["reg"], [None] * 32)


def test_counter_is_saved_before_the_keys_are_handed_out():
    d_ = tmpdir("dukpt_ahead")
    d = loaded(State(d_))
    t = d.begin()
    # a power cut now: the reboot must continue after counter 1, never at it
    after = dukpt.Dukpt(State(d_))
    eq(after.next_counter(), 2)
    with after.begin() as t2:
        eq(t2.counter, 2)
    t.wipe()


def test_failed_save_hands_out_no_key_and_the_counter_is_not_lost():
    st = MemState()
    d = loaded(st)
    st.fail = True
    eq(raises(Fault, d.begin).code, "SYS-01")
    st.fail = False
    with d.begin() as t:
        eq(t.counter, 1)  # never handed out, so still unused


def test_no_copy_of_the_state_keeps_a_used_register():
    d_ = tmpdir("dukpt_bak")
    d = loaded(State(d_))
    with d.begin() as t:
        eq(t.counter, 1)
    used = unhexlify(REGISTERS_AFTER_LOAD[0])
    for name in ("state.json", "state.bak"):
        body = read_bytes(d_ + "/" + name)
        for form in (hexlify(used), b2a_base64(used, newline=False)):
            assert form not in body, name
        assert b'"tc": 2' in body or b'"tc":2' in body, name


def _pan_like(body):
    """Runs of 12+ decimal digits in a state file, bare or in hex text (how a PAN scanner reads flash)."""
    from payterm.mask import pan_run

    r = pan_run(body, 0, True)
    return None if r is None else bytes(body[r[0]:r[1]])


def test_key_material_is_stored_base64_with_no_digit_run_a_pan_scanner_would_flag():
    # The register of counter 3 holds "...1264238540518318..." in hex: a Luhn-valid 16-digit run.
    d_ = tmpdir("dukpt_b64")
    d = loaded(State(d_))
    d.begin().wipe()
    d.begin().wipe()
    for name in ("state.json", "state.bak"):
        body = read_bytes(d_ + "/" + name)
        eq(_pan_like(body), None, name)
    rec = State(d_).get("dukpt")
    eq(rec["v"], 2)
    eq(a2b_base64(rec["ikid"]), IKID)
    eq(hexlify(a2b_base64(rec["reg"][0])).decode(), REGISTER0_AFTER_TX2)


def test_hex_registers_of_version_1_are_read_and_saved_again_as_base64():
    st = MemState()
    loaded(st, counter=3)
    rec = st.data["dukpt"]
    old = {"v": 1, "ikid": hexlify(IKID).decode(), "tc": rec["tc"],
           "reg": [None if r is None else hexlify(a2b_base64(r)).decode() for r in rec["reg"]]}
    d_ = tmpdir("dukpt_v1")
    s1 = State(d_)
    s1.set("dukpt", old)
    s1.set("dukpt", old)
    d = dukpt.Dukpt(State(d_))
    eq(d.ikid(), H(IKID))
    for name in ("state.json", "state.bak"):
        body = read_bytes(d_ + "/" + name)
        eq(_pan_like(body), None, name + ": no hex left in either copy")
        assert old["reg"][2].encode() not in body, name
    eq(State(d_).get("dukpt")["v"], 2)
    ik = unhexlify(IK)
    with d.begin() as t:
        eq(t.counter, 3)
        eq(t.pin_key(), dukpt.working_key(ik, IKID, 3, dukpt.PIN_ENCRYPTION))


def test_state_fallback_to_previous_copy_skips_a_counter():
    d_ = tmpdir("dukpt_fallback")
    loaded(State(d_))
    before = read_bytes(d_ + "/state.json")  # next counter 1
    d = dukpt.Dukpt(State(d_))
    d.begin().wipe()  # counter 1 handed out
    # power cut between the two saves, then the new main copy is found corrupt:
    write_bytes(d_ + "/state.bak", before)
    bad = bytearray(read_bytes(d_ + "/state.json"))
    bad[-3] ^= 1
    write_bytes(d_ + "/state.json", bad)
    st = State(d_)
    assert st.recovered
    eq(st.get("dukpt")["tc"], 1)
    with dukpt.Dukpt(st).begin() as t:
        eq(t.counter, 2, "counter 1 must never be used twice")


def test_no_key_loaded_is_key01_and_unreadable_registers_are_key04():
    eq(raises(Fault, dukpt.Dukpt(MemState()).begin).code, "KEY-01")
    st = MemState()
    loaded(st)
    rec = st.data["dukpt"]
    for bad in ({"reg": rec["reg"][:31]}, {"tc": 0}, {"ikid": "12"}, {"reg": ["zz"] * 32}, {"v": 9}):
        r = dict(rec)
        r.update(bad)
        s2 = MemState()
        s2.data["dukpt"] = r
        d = dukpt.Dukpt(s2)
        e = raises(Fault, d.begin)
        eq(e.code, "KEY-04", repr(bad))
        eq(e.stage, "key")


def test_install_rejects_wrong_keys_and_the_same_key_id_twice():
    d = dukpt.Dukpt(MemState())
    eq(raises(Fault, d.install, bytearray(15), IKID).code, "KEY-02")
    eq(raises(Fault, d.install, bytearray(24), IKID).code, "KEY-02")  # no AES-192 on the terminal
    eq(raises(Fault, d.install, bytearray(16), IKID[:7]).code, "KEY-02")
    ik = bytearray(unhexlify(IK))
    d.install(ik, IKID)
    eq(ik, bytearray(16), "initial key zeroed after the load")
    d.begin().wipe()
    e = raises(Fault, d.install, bytearray(unhexlify(IK)), IKID)
    eq(e.code, "KEY-02")
    eq(d.next_counter(), 2, "a refused reload leaves the counter where it was")
    # a new initial key ID starts a new counter range
    d.install(bytearray(unhexlify(IK)), unhexlify("1234567890123457"))
    with d.begin() as t:
        eq(t.counter, 1)
        eq(t.field53()[:16], "1234567890123457")


def _key_file(path, ik_hex, ikid_hex, kcv_hex=None):
    from payterm.crypto import cmac

    if kcv_hex is None:
        kcv_hex = H(cmac.mac(unhexlify(ik_hex), bytes(16), 5))
    write_bytes(path, ('{"ikid": "%s", "ik": "%s", "kcv": "%s"}' % (ikid_hex, ik_hex, kcv_hex)).encode())


def test_install_file_loads_the_key_and_erases_the_file():
    d_ = tmpdir("dukpt_file")
    path = d_ + "/ikey.json"
    d = dukpt.Dukpt(MemState())
    eq(d.install_file(path), None, "no file: nothing loaded")
    eq(raises(Fault, d.begin).code, "KEY-01")
    _key_file(path, IK, "1234567890123456")
    eq(d.install_file(path), "1234567890123456")
    assert "ikey.json" not in os.listdir(d_)
    with d.begin() as t:
        eq(H(t.pin_key()), "AF8CB133A78F8DC2D1359F18527593FB")


def _loaded_then_file_again(name, uses, left):
    """A key loaded from its file and used `uses` times; then the file is back as the power cut left it
    (`left(raw)`: the bytes on flash). Returns (dir, path, state)."""
    d_ = tmpdir(name)
    path = d_ + "/ikey.json"
    st = MemState()
    d = dukpt.Dukpt(st)
    _key_file(path, IK, "1234567890123456")
    eq(d.install_file(path), "1234567890123456")
    for _ in range(uses):
        d.begin().wipe()
    _key_file(path, IK, "1234567890123456")
    with open(path, "rb") as f:
        write_bytes(path, left(f.read()))
    return d_, path, st


def test_install_file_left_by_a_power_cut_after_its_load_is_erased_and_not_loaded_again():
    # the registers were saved, then the power went before the erase: the same file again at boot
    d_, path, st = _loaded_then_file_again("dukpt_again", 2, lambda raw: raw)
    d = dukpt.Dukpt(st)
    eq(d.install_file(path), None, "the key already loaded: nothing loaded")
    assert "ikey.json" not in os.listdir(d_), "the file is erased"
    eq(d.next_counter(), 3, "the counter goes on: no key is used twice")


def test_install_file_whose_erase_was_cut_is_erased_and_not_a_fault():
    # the erase overwrites the file from its start: the power went half-way through it
    d_, path, st = _loaded_then_file_again("dukpt_halferased", 1, lambda raw: bytes(len(raw) // 2) + raw[len(raw) // 2:])
    d = dukpt.Dukpt(st)
    eq(d.install_file(path), None, "the key already loaded: nothing loaded, no KEY-02")
    assert "ikey.json" not in os.listdir(d_), "the rest of the key's bytes are erased"
    eq(d.next_counter(), 2, "the counter goes on")


def test_install_file_with_a_wrong_key_is_key02_and_the_file_is_erased_anyway():
    d_ = tmpdir("dukpt_badfile")
    path = d_ + "/ikey.json"
    cases = (
        lambda: _key_file(path, IK, "1234567890123456", "0000000000"),  # check value mismatch
        lambda: _key_file(path, IK[:30], "1234567890123456", "0000000000"),  # 15-byte key
        lambda: _key_file(path, IK, "12345678901234"),  # 7-byte key ID
        lambda: write_bytes(path, b'{"ikid": "1234567890123456"}'),  # no key
        lambda: write_bytes(path, b"\x00\x00\x00"),  # not JSON
    )
    for i, make in enumerate(cases):
        make()
        d = dukpt.Dukpt(MemState())
        e = raises(Fault, d.install_file, path)
        eq(e.code, "KEY-02", "case %d" % i)
        assert IK not in str(e) and IK.lower() not in str(e), "key in the fault text"
        assert "ikey.json" not in os.listdir(d_), "case %d left the key file" % i
        eq(raises(Fault, d.begin).code, "KEY-01")


def test_transaction_keys_are_gone_after_the_transaction():
    d = loaded()
    with d.begin() as t:
        dk = t._dkey
        t.pin_key()
    eq(dk, bytearray(16), "derivation key zeroed")
    eq(raises(Fault, t.pin_key).code, "KEY-04")


def test_field53_round_trip_and_truncated_values_are_key05():
    ksn = dukpt.ksn_of(IKID, 0x845FED)
    v = dukpt.field53(ksn)
    eq(v, "123456789012345600845FED")
    eq(dukpt.parse_field53(v), (IKID, 0x845FED))
    eq(dukpt.parse_field53(v.encode()), (IKID, 0x845FED))
    for bad in (v[:-1], v[:20], "", None, "Z" * 24, v + "0"):
        e = raises(Fault, dukpt.parse_field53, bad)
        eq(e.code, "KEY-05", repr(bad))

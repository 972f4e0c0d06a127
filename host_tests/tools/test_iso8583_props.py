"""Cross-check of the firmware ISO 8583 codec against pyiso8583 (property tests).

Hypothesis builds messages in CPython; one MicroPython process running the
firmware codec answers batches of them as JSON lines (bytes as {"b": hex}).
Checked both ways: firmware-encoded bytes decode in pyiso8583 to the same
fields (and are byte-identical to pyiso8583's encoding), pyiso8583-encoded
bytes decode in the firmware to the same fields; cut or corrupted frames only
ever give Fault HST-02.
"""
import json
import os
import string
import subprocess

import iso8583
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from iso8583.specs import default as PYISO_DEFAULT

from payterm_tools.sim.acquirer import SPEC as SPEC87  # pyiso8583's default with AES DUKPT's 52/53

import mpy_runtimes

SERVER = r'''
import sys, json
from payterm.errors import Fault
from payterm.link.iso8583 import Codec, codec

codecs = {"spec87": codec()}


def unb(v):
    return bytes.fromhex(v["b"]) if isinstance(v, dict) else v


def tob(v):
    return {"b": v.hex()} if isinstance(v, (bytes, bytearray)) else v


def one(c, op, item):
    if op == "enc":
        try:
            return {"hex": c.encode(dict((k, unb(v)) for k, v in item.items())).hex()}
        except ValueError as e:
            return {"err": "ValueError", "detail": str(e)}
    try:
        d = c.decode(bytes.fromhex(item))
        return {"msg": dict((k, tob(v)) for k, v in d.items())}
    except Fault as f:
        return {"fault": f.code, "detail": f.detail}
    except Exception as e:
        return {"crash": repr(e)}


while True:
    line = sys.stdin.readline()
    if not line:
        break
    req = json.loads(line)
    if req["op"] == "spec":
        fields = dict((int(k), tuple(v)) for k, v in req["fields"].items())
        codecs[req["name"]] = Codec(fields, req["mti"], req["bitmap"], 8192)
        print(json.dumps("ok"))
        continue
    c = codecs[req["spec"]]
    print(json.dumps([one(c, req["op"], it) for it in req["items"]]))
'''


class FirmwareCodec:
    def __init__(self, tmp):
        path = os.path.join(tmp, "codec_server.py")
        with open(path, "w") as f:
            f.write(SERVER)
        self.p = subprocess.Popen(
            [mpy_runtimes.binary("unix"), path],
            env=mpy_runtimes.env_for("unix"),
            cwd=mpy_runtimes.REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line, "firmware codec process died"
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    c = FirmwareCodec(str(tmp_path_factory.mktemp("codec")))
    yield c
    c.close()


# ---------------------------------------------------------------- specs
# A second layout exercising BCD data, BCD/binary lengths, BCD MTI and an
# ASCII-hex bitmap, written once here and given to both codecs.
# field -> (len_type digits, max_len, data_enc, len_enc)
CUSTOM = {
    2: (2, 19, "n", "n"), 3: (0, 6, "n", "a"), 4: (0, 12, "a", "a"), 11: (0, 6, "n", "a"),
    14: (0, 4, "n", "a"), 22: (0, 3, "n", "a"), 35: (2, 37, "a", "b"), 37: (0, 12, "a", "a"),
    41: (0, 8, "a", "a"), 48: (3, 999, "a", "n"), 52: (0, 8, "b", "a"), 55: (3, 255, "b", "b"),
    62: (3, 999, "a", "a"), 70: (0, 3, "n", "a"), 90: (0, 42, "a", "a"), 100: (2, 11, "n", "a"),
    120: (3, 300, "b", "n"), 127: (2, 99, "b", "b"),
}


def _pyiso_custom():
    spec = {
        "h": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 0, "desc": ""},
        "t": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 2, "desc": ""},
        "p": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 16, "desc": ""},
        "1": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 16, "desc": ""},
    }
    for n, (lt, mx, de, le) in CUSTOM.items():
        f = {"desc": "", "max_len": mx, "len_enc": {"a": "ascii", "n": "bcd", "b": "b"}[le]}
        f["len_type"] = lt if le == "a" or lt == 0 else (lt + 1) // 2
        if de == "n":
            f.update(data_enc="b", len_count="nibbles", left_pad="0")
        else:
            f["data_enc"] = "b" if de == "b" else "ascii"
        spec[str(n)] = f
    return spec


PYISO_CUSTOM = _pyiso_custom()


def _fw_spec87_table():
    """Field table of firmware/payterm/link/spec87.py (plain Python, no MicroPython imports)."""
    ns = {}
    with open(os.path.join(mpy_runtimes.FIRMWARE, "payterm", "link", "spec87.py")) as f:
        exec(f.read(), ns)
    return ns["FIELDS"]


def _table_of(spec):
    want = {}
    for k, f in spec.items():
        if k.isdigit() and k not in ("1", "65"):
            want[int(k)] = (f["len_type"], f["max_len"], "b" if f["data_enc"] == "b" else "a", "a")
    return want


def test_spec87_table_matches_the_acquirer_spec():
    assert {n: v[:4] for n, v in _fw_spec87_table().items()} == _table_of(SPEC87)


def test_acquirer_spec_is_pyiso8583_default_but_for_dukpt_fields_52_and_53():
    ours, base = _table_of(SPEC87), _table_of(PYISO_DEFAULT)
    assert {n for n in ours if ours[n] != base[n]} == {52, 53}
    assert ours[52] == (0, 16, "b", "a") and ours[53] == (0, 24, "a", "a")  # docs/keys.md


# ---------------------------------------------------------------- strategies
_PRINTABLE = string.ascii_letters + string.digits + " .,-/:*#"


def _value(kind, size, cap):
    if kind == "a":
        return st.text(alphabet=_PRINTABLE, min_size=size if size is not None else 0, max_size=size if size is not None else cap)
    if kind == "b":
        return st.binary(min_size=size if size is not None else 0, max_size=size if size is not None else cap)
    return st.text(alphabet=string.digits, min_size=size if size is not None else 0, max_size=size if size is not None else cap)


def _messages(table, mti_bcd=False):
    numbers = sorted(table)

    @st.composite
    def message(draw):
        chosen = draw(st.lists(st.sampled_from(numbers), unique=True, max_size=14))
        mti = draw(st.sampled_from(["0100", "0110", "0200", "0210", "0220", "0221", "0230", "0400", "0401", "0410", "0800", "0810"]))
        msg = {"t": mti}
        for n in chosen:
            lt, mx, de = table[n][:3]
            msg[str(n)] = draw(_value(de, None if lt == 0 else None, min(mx, 130)) if lt else _value(de, mx, mx))
        return msg

    return message()


def _to_pyiso(msg, table):
    """Firmware form -> pyiso8583 form: binary fields as upper-case hex."""
    out = {}
    for k, v in msg.items():
        out[k] = v.hex().upper() if isinstance(v, bytes) else v
    return out


def _wire(v):
    return {"b": v.hex()} if isinstance(v, bytes) else v


def _from_wire(v):
    return bytes.fromhex(v["b"]) if isinstance(v, dict) else v


def _fields_only(d):
    return {k: v for k, v in d.items() if k not in ("p", "1")}


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check_both_ways(fw, spec_name, pyspec, table, msgs):
    enc = fw.call({"op": "enc", "spec": spec_name, "items": [{k: _wire(v) for k, v in m.items()} for m in msgs]})
    py_bytes = []
    for m, r in zip(msgs, enc):
        assert "hex" in r, (m, r)
        fw_bytes = bytes.fromhex(r["hex"])
        dec, _ = iso8583.decode(fw_bytes, pyspec)
        assert _fields_only(dec) == _to_pyiso(m, table)
        pb, _ = iso8583.encode(_to_pyiso(m, table), pyspec)
        assert bytes(pb) == fw_bytes, "same wire bytes as pyiso8583"
        py_bytes.append((bytes(pb), dec))
    dec = fw.call({"op": "dec", "spec": spec_name, "items": [b.hex() for b, _ in py_bytes]})
    for m, (b, pydec), r in zip(msgs, py_bytes, dec):
        assert "msg" in r, (m, r)
        got = {k: _from_wire(v) for k, v in r["msg"].items()}
        assert _fields_only(got) == m
        assert got["p"] == pydec["p"] and got.get("1") == pydec.get("1"), "bitmaps as pyiso8583 reports them"


@SETTINGS
@given(msgs=st.lists(_messages(_fw_spec87_table()), min_size=1, max_size=8))
def test_spec87_cross_check(fw, msgs):
    _check_both_ways(fw, "spec87", SPEC87, _fw_spec87_table(), msgs)


@pytest.fixture(scope="module")
def fw_custom(fw):
    fields = {str(n): [lt, mx, de, le, ""] for n, (lt, mx, de, le) in CUSTOM.items()}
    assert fw.call({"op": "spec", "name": "custom", "fields": fields, "mti": "n", "bitmap": "a"}) == "ok"
    return fw


@SETTINGS
@given(msgs=st.lists(_messages(CUSTOM), min_size=1, max_size=8))
def test_bcd_binary_lengths_cross_check(fw_custom, msgs):
    _check_both_ways(fw_custom, "custom", PYISO_CUSTOM, CUSTOM, msgs)


def _pyiso_decode(raw):
    """pyiso8583's reading of raw, None when it refuses it. A frame whose bit 65 is set makes it
    read a tertiary bitmap and look up fields 129+, which SPEC87 lacks: KeyError, its own refusal."""
    try:
        return iso8583.decode(raw, SPEC87)[0]
    except (iso8583.DecodeError, KeyError):
        return None


def test_frame_with_bit_65_is_refused_by_both(fw):
    good, _ = iso8583.encode({"t": "0100", "2": "000000", "67": "00"}, SPEC87)
    bad = bytearray(good)
    bad[12] |= 0x80  # the secondary bitmap's first bit: field 65 (pyiso8583: a tertiary bitmap)
    (r,) = fw.call({"op": "dec", "spec": "spec87", "items": [bytes(bad).hex()]})
    assert r.get("fault") == "HST-02", r
    assert _pyiso_decode(bytes(bad)) is None


@SETTINGS
@given(msg=_messages(_fw_spec87_table()), data=st.data())
def test_cut_or_corrupted_frames_only_give_hst02(fw, msg, data):
    good, _ = iso8583.encode(_to_pyiso(msg, None), SPEC87)
    good = bytes(good)
    cut = data.draw(st.integers(min_value=0, max_value=len(good) - 1))
    pos = data.draw(st.integers(min_value=0, max_value=len(good) - 1))
    flipped = bytearray(good)
    flipped[pos] = data.draw(st.integers(0, 255))
    noise = data.draw(st.binary(max_size=60))
    r_cut, r_flip, r_noise = fw.call({"op": "dec", "spec": "spec87", "items": [good[:cut].hex(), bytes(flipped).hex(), noise.hex()]})
    assert r_cut.get("fault") == "HST-02", r_cut
    for raw, r in ((bytes(flipped), r_flip), (noise, r_noise)):
        assert "crash" not in r, r
        pydec = _pyiso_decode(raw)
        if "msg" in r:
            # Whatever the firmware accepts, pyiso8583 reads the same way.
            assert pydec is not None, (raw, r)
            got = {k: _from_wire(v) for k, v in r["msg"].items()}
            assert _fields_only(_to_pyiso(got, None)) == _fields_only(pydec)
        else:
            assert r.get("fault") == "HST-02", r


@pytest.mark.parametrize("bad", [
    {"t": "0200", "2": "4" * 20},
    {"t": "0200", "3": "12345"},
    {"t": "0200", "65": {"b": "0102030405060708"}},
    {"t": "0200", "55": {"b": "9F" * 256}},
    {"t": "0200", "41": "TERM001"},
    {"t": "02000"},
])
def test_firmware_rejects_what_pyiso8583_rejects(fw, bad):
    (r,) = fw.call({"op": "enc", "spec": "spec87", "items": [bad]})
    assert r.get("err") == "ValueError", r
    py = {k: (v["b"].upper() if isinstance(v, dict) else v) for k, v in bad.items()}
    if "65" in py:
        return  # pyiso8583 silently drops 65 (its tertiary bitmap); the firmware refuses it
    with pytest.raises(iso8583.EncodeError):
        iso8583.encode(py, SPEC87)

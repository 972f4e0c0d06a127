"""MicroPython side of host_tests/tools/test_hsm.py: runs payterm.crypto on batches of cases.

Started as `micropython mp_crypto.py` with one JSON case per line on stdin; prints one
JSON result per line. Only test data goes through here (random keys, PINs, PANs).
"""
import json
import sys
from binascii import hexlify, unhexlify

from payterm.crypto import cmac, data, dukpt, pinblock
from payterm.errors import Fault


def h(b):
    return hexlify(b).decode().upper()


class MemState:
    def __init__(self):
        self.d = {}

    def get(self, k, default=None):
        return self.d.get(k, default)

    def set(self, k, v):
        self.d[k] = v


def fixed(pad):
    return lambda n: pad


def op_wk(c):
    ik = dukpt.initial_key(unhexlify(c["bdk"]), unhexlify(c["ikid"]))
    wk = dukpt.working_key(ik, unhexlify(c["ikid"]), c["tc"], c["usage"], c["kind"])
    return {"ik": h(ik), "wk": h(wk)}


def _txn(t, c):
    r = {"tc": t.counter, "f53": t.field53()}
    r["block"] = h(pinblock.encipher(t.pin_key(), bytearray(c["pin"].encode()), c["pan"], fixed(unhexlify(c["pad"]))))
    r["mac"] = h(cmac.mac(t.mac_key(), unhexlify(c["msg"]), 8))
    r["rmac"] = h(cmac.mac(t.response_mac_key(), unhexlify(c["msg"]), 8))
    r["data"] = h(data.encrypt(t.data_key(), unhexlify(c["msg"])))
    return r


def _run(d, c):
    out = []
    err = None
    for _ in range(c["n"]):
        try:
            with d.begin() as t:
                out.append(_txn(t, c))
        except Fault as e:
            err = e.code
            break
    return {"txns": out, "err": err}


def op_seq(c):
    d = dukpt.Dukpt(MemState())
    d.install(bytearray(unhexlify(c["ik"])), unhexlify(c["ikid"]), c["start"])
    return _run(d, c)


def op_file(c):
    d = dukpt.Dukpt(MemState())
    ikid = d.install_file(c["path"])
    r = _run(d, c)
    r["ikid"] = ikid
    return r


def op_pin(c):
    return {"block": h(pinblock.encipher(unhexlify(c["key"]), bytearray(c["pin"].encode()), c["pan"],
                                         fixed(unhexlify(c["pad"]))))}


def op_unpin(c):
    try:
        return {"pin": bytes(pinblock.decipher(unhexlify(c["key"]), unhexlify(c["block"]), c["pan"])).decode()}
    except Fault as e:
        return {"err": e.code}


def op_cmac(c):
    return {"tag": h(cmac.mac(unhexlify(c["key"]), unhexlify(c["msg"]), c["n"]))}


def op_enc(c):
    return {"c": h(data.encrypt(unhexlify(c["key"]), unhexlify(c["plain"])))}


def op_dec(c):
    try:
        return {"plain": h(data.decrypt(unhexlify(c["key"]), unhexlify(c["c"])))}
    except Fault as e:
        return {"err": e.code}


OPS = {"wk": op_wk, "seq": op_seq, "file": op_file, "pin": op_pin, "unpin": op_unpin,
       "cmac": op_cmac, "enc": op_enc, "dec": op_dec}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        c = json.loads(line)
        print(json.dumps(OPS[c["op"]](c)))


main()

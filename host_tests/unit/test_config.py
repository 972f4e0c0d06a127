# runtimes: unix
"""Provisioning file: one validator, one code per bad field, defaults in one place."""
import json

from mpt import eq, raises, tmpdir

from payterm import codes, config
from payterm.errors import Fault

# sha256("pt9:4321")
PIN_HASH = "sha256$pt9$" + "0" * 64
WLAN_BOARD = {"name": "T", "hal": "esp32", "network": {"kind": "wlan"}}
HOST_BOARD = {"name": "EMULATOR", "hal": "host", "network": {"kind": "host"}}


def _good(**kw):
    p = {"format": 1, "terminal_id": "TERM0042", "merchant_id": "MERCHANT0000042", "hosts": ["10.1.2.3:8583"],
         "currency": 978, "tech_pin_hash": PIN_HASH, "wlan": {"ssid": "shop", "password": "correct horse"}}
    p.update(kw)
    return p


def _codes(params, board=WLAN_BOARD):
    return [(c, f) for c, f, _ in config.validate(params, board)]


def test_good_file_has_no_errors_and_every_code_is_in_the_catalog():
    eq(config.validate(_good(), WLAN_BOARD), [])
    for i in range(20, 30):
        assert codes.known("SYS-%d" % i), i


def test_each_bad_field_has_its_own_code():
    cases = [
        ({"terminal_id": "T1"}, ("SYS-22", "terminal_id")),
        ({"terminal_id": "TERM\x0042"}, ("SYS-22", "terminal_id")),
        ({"merchant_id": "M" * 16}, ("SYS-23", "merchant_id")),
        ({"hosts": []}, ("SYS-24", "hosts")),
        ({"hosts": ["acq.example"]}, ("SYS-24", "hosts")),
        ({"hosts": ["acq.example:0"]}, ("SYS-24", "hosts")),
        ({"hosts": ["bad host:8583"]}, ("SYS-24", "hosts")),
        ({"currency": 999}, ("SYS-25", "currency")),
        ({"currency": "978"}, ("SYS-25", "currency")),
        ({"floor_limit": -1}, ("SYS-26", "floor_limit")),
        ({"saf_max_count": "50"}, ("SYS-26", "saf_max_count")),
        ({"floor_limit": 20000, "saf_max_total": 10000}, ("SYS-26", "floor_limit")),
        ({"tech_pin_hash": "4321"}, ("SYS-27", "tech_pin_hash")),
        ({"tech_pin_hash": "sha256$pt9$abc"}, ("SYS-27", "tech_pin_hash")),
        ({"wlan": {"ssid": "", "password": "correct horse"}}, ("SYS-28", "wlan")),
        ({"wlan": {"ssid": "shop", "password": "short"}}, ("SYS-28", "wlan")),
        ({"wlan": None}, ("SYS-28", "wlan")),
        ({"read_timeout_ms": "15s"}, ("SYS-29", "read_timeout_ms")),
        ({"floorlimit": 100}, ("SYS-29", "floorlimit")),
        ({"nfc_enabled": 1}, ("SYS-29", "nfc_enabled")),
        ({"format": 2}, ("SYS-21", "format")),
    ]
    for change, want in cases:
        eq(_codes(_good(**change)), [want], repr(change))


def test_required_fields_missing_each_say_missing():
    p = {"format": 1}
    got = config.validate(p, HOST_BOARD)
    eq(sorted((c, f) for c, f, _ in got),
       [("SYS-22", "terminal_id"), ("SYS-23", "merchant_id"), ("SYS-24", "hosts"), ("SYS-25", "currency"),
        ("SYS-27", "tech_pin_hash")])
    for _, _, detail in got:
        assert detail.startswith("missing"), detail


def test_wlan_credentials_only_where_the_board_joins_a_wlan():
    p = _good()
    del p["wlan"]
    eq(_codes(p, WLAN_BOARD), [("SYS-28", "wlan")])
    eq(_codes(p, HOST_BOARD), [])


def test_missing_and_unreadable_files():
    d = tmpdir("cfg_files")
    eq([c for c, _, _ in config.check(WLAN_BOARD, d)[1]], ["SYS-20"])
    with open(d + "/provision.json", "w") as f:
        f.write("{not json")
    eq([c for c, _, _ in config.check(WLAN_BOARD, d)[1]], ["SYS-21"])
    with open(d + "/provision.json", "w") as f:
        f.write("[1, 2]")
    eq([c for c, _, _ in config.check(WLAN_BOARD, d)[1]], ["SYS-21"])


def test_load_puts_the_file_over_the_defaults():
    d = tmpdir("cfg_load")
    with open(d + "/provision.json", "w") as f:
        json.dump(_good(floor_limit=0, read_timeout_ms=20000), f)
    cfg = config.load(WLAN_BOARD, d)
    assert "_errors" not in cfg, cfg.get("_config_error")
    eq((cfg["terminal_id"], cfg["floor_limit"], cfg["read_timeout_ms"]), ("TERM0042", 0, 20000))
    eq(cfg["max_attempts"], config.DEFAULTS["max_attempts"])
    eq(config.hosts(cfg), [("10.1.2.3", 8583)])
    eq(config.pin_hash(cfg), ("pt9", "0" * 64))
    with open(d + "/provision.json", "w") as f:
        json.dump(_good(terminal_id="X"), f)
    cfg = config.load(WLAN_BOARD, d)
    eq([c for c, _, _ in cfg["_errors"]], ["SYS-22"])
    assert "terminal_id" in cfg["_config_error"]


def test_one_table_of_defaults_agrees_with_the_layers_that_read_it():
    from payterm.card import emv, service
    from payterm.txn import engine

    eq(tuple(config.DEFAULTS["aids"]), tuple(emv.DEFAULT_AIDS))
    for layer in (engine.DEFAULTS, service.DEFAULTS):
        for k, v in layer.items():
            assert k in config.DEFAULTS, k
            eq(config.DEFAULTS[k], v, k)


def test_provisioned_pin_hash_replaces_the_stored_pin():
    import hashlib
    from binascii import hexlify

    from payterm.diag.pin import PinGate

    def h(salt, pin):
        return "sha256$%s$%s" % (salt, hexlify(hashlib.sha256((salt + ":" + pin).encode()).digest()).decode())

    d = tmpdir("cfg_pin")
    g = PinGate(d + "/pin.json", h("abc", "4321"), lambda: 1700000000)
    assert g.check("4321")
    # re-provisioned with a new PIN: the terminal takes it at the next boot
    g = PinGate(d + "/pin.json", h("xyz", "9876"), lambda: 1700000000)
    assert g.check("9876")
    with open(d + "/pin.json") as f:
        assert "9876" not in f.read()


def test_contactless_aid_list_and_limits_are_provisioning_parameters():
    aids = ["A0000000031010", {"aid": "A0000003591010028001", "kernel": "mchip", "priority": 1, "tx_limit": 25000,
                               "cvm_limit": 2500, "floor_limit": 0, "deferred": False, "label": "GIROCARD"}]
    eq(config.validate(_good(aids=aids, cl_tx_limit=50000, cl_cvm_limit=5000, online_pin=True), WLAN_BOARD), [])
    eq(config.validate(_good(aids=list(config.DEFAULTS["aids"])), WLAN_BOARD), [], "the defaults validate")
    for bad in ([], "A0000000031010", [{"aid": "A0000000031010", "kernel": "emv"}],
                [{"aid": "A0000000031010", "cvm_limit": -1}], [{"aid": "XYZ"}], [{"aid": "A0000000031010", "x": 1}]):
        eq(_codes(_good(aids=bad)), [("SYS-29", "aids")], repr(bad))
    eq(_codes(_good(cl_tx_limit=-5)), [("SYS-26", "cl_tx_limit")])
    eq(_codes(_good(online_pin="yes")), [("SYS-29", "online_pin")])


def test_merchant_parameters():
    ok = _good(merchant_pin_hash="sha256$m1$" + "1" * 64, merchant_name="CAFE CENTRAL",
               merchant_address=["1 MARKET STREET", "1010 VIENNA"], max_amount=500000, confirm_amount=20000,
               merchant_copy=True)
    eq(config.validate(ok, WLAN_BOARD), [])
    eq(config.pin_hash(ok, "merchant_pin_hash"), ("m1", "1" * 64))
    cases = [
        ({"merchant_pin_hash": "1234"}, ("SYS-29", "merchant_pin_hash")),
        ({"merchant_pin_hash": PIN_HASH}, ("SYS-29", "merchant_pin_hash")),  # the technician's PIN again
        ({"max_amount": 0}, ("SYS-26", "max_amount")),
        ({"max_amount": 10 ** 12}, ("SYS-26", "max_amount")),
        ({"confirm_amount": -5}, ("SYS-26", "confirm_amount")),
        ({"merchant_name": "X" * 33}, ("SYS-29", "merchant_name")),
        ({"merchant_address": ["A", "B", "C", "D"]}, ("SYS-29", "merchant_address")),
        ({"merchant_address": "1 MARKET STREET"}, ("SYS-29", "merchant_address")),
        ({"merchant_copy": "yes"}, ("SYS-29", "merchant_copy")),
    ]
    for change, want in cases:
        eq(_codes(_good(**change)), [want], repr(change))
    # no merchant PIN: still a usable file (refund, void and training stay closed: OPR-09)
    eq(config.validate(_good(), WLAN_BOARD), [])
    eq(config.DEFAULTS["merchant_pin_hash"], None)


def _h(salt, pin):
    import hashlib
    from binascii import hexlify

    return "sha256$%s$%s" % (salt, hexlify(hashlib.sha256((salt + ":" + pin).encode()).digest()).decode())


def test_pin_hash_is_stored_base64_and_a_hex_pin_file_of_older_firmware_is_converted():
    # This salt and PIN give a digest whose hex ends in "68805771062081385": a PAN scanner flags that run.
    import json

    from payterm.diag.pin import PinGate
    from payterm.mask import pan_run

    prov = _h("s110", "4321")
    hexhash = prov.split("$")[2]
    d = tmpdir("cfg_pin_b64")
    g = PinGate(d + "/pin.json", prov, lambda: 1700000000)
    assert g.check("4321")
    body = open(d + "/pin.json").read()
    assert hexhash not in body, "no hex digest in pin.json"
    eq(pan_run(body, 0, True), None)
    # pin.json as older firmware wrote it (hex hash, the provisioned string), one wrong try on record
    with open(d + "/pin.json", "w") as f:
        json.dump({"salt": "s110", "hash": hexhash, "prov": prov, "fails": 1, "until": 0}, f)
    g = PinGate(d + "/pin.json", prov, lambda: 1700000000)
    eq(json.load(open(d + "/pin.json"))["fails"], 1, "the same provisioning: the file is kept, tries included")
    assert hexhash not in open(d + "/pin.json").read(), "converted at once"
    assert g.check("4321")
    e = raises(Fault, PinGate(d + "/pin.json", prov, lambda: 1700000000).check, "1111")
    eq(e.code, "OPR-05")
    # a plain default PIN: also stored base64
    d2 = tmpdir("cfg_pin_b64_plain")
    assert PinGate(d2 + "/pin.json", "4321", lambda: 1700000000).check("4321")
    eq(len(json.load(open(d2 + "/pin.json"))["hash"]), 44)

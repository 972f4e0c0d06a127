"""`payterm leakscan`: planted card numbers and track data are found; masked and non-card numbers are not.

The scanner guards the reliability suite's claim that nothing the terminal
wrote holds a full PAN, so these controls prove it can see one in each form
the brief names (text, packed BCD, track 1, track 2 and its equivalents) and
that it stays quiet on what the terminal is allowed to write.
"""
import json
import random
import subprocess
import sys

import pytest

from payterm_tools import leakscan
from payterm_tools.sim.cardsim import TEST_CARDS

PAN = "4761739001010010"
LUHN_PANS = [c.pan for c in TEST_CARDS.values() if leakscan.luhn_ok(c.pan)]
PAYTERM = [sys.executable, "-m", "payterm_tools.cli"]


def kinds(data, **kw):
    return [(h.kind, h.masked) for h in leakscan.scan_bytes(data, **kw)]


def bcd(pan):
    return bytes.fromhex(pan + ("f" if len(pan) % 2 else ""))


def test_luhn_and_mask_match_the_firmware_rules():
    assert all(leakscan.luhn_ok(p) for p in LUHN_PANS) and not leakscan.luhn_ok("4761739001010011")
    assert leakscan.mask(PAN) == "476173******0010"
    assert leakscan.mask("374245455400126") == "374245*****0126"


@pytest.mark.parametrize("pan", LUHN_PANS)
def test_pan_as_text_found_with_its_offset_and_masked(pan):
    data = b"# TXN 000001 SALE card=" + pan.encode() + b" ok\n"
    (h,) = leakscan.scan_bytes(data)
    assert (h.kind, h.offset, h.masked) == ("pan-text", data.index(pan.encode()), leakscan.mask(pan))
    assert pan not in repr(h) and pan not in json.dumps(h.as_dict())


def test_pan_grouped_as_printed_and_zero_padded_field():
    assert kinds(b"CARD 4761 7390 0101 0010\n") == [("pan-text", "476173******0010")]
    assert kinds(b"CARD 3742-454554-00126\n") == [("pan-text", "374245*****0126")]
    assert kinds(b'{"2": "000000' + PAN.encode() + b'"}') == [("pan-text", "476173******0010")]


@pytest.mark.parametrize("pan", [p for p in LUHN_PANS if p != "5555555555554444"])
def test_pan_as_bcd_in_binary_found(pan):
    rnd = random.Random(pan)
    blob = bytes(rnd.choice(b"\xaa\xab\xac\xba\xbc\xca\xcb\xce\xea\xec") for _ in range(40))  # no digit nibbles
    data = blob[:17] + bcd(pan) + blob[17:]
    hits = leakscan.scan_bytes(data)
    assert [(h.kind, h.offset, h.masked) for h in hits] == [("pan-bcd", 17, leakscan.mask(pan))], hits


def test_base64_key_files_and_binary_integers_are_not_bcd():
    # What the terminal stores next to card data: key registers and PIN hashes in base64 (docs/keys.md),
    # and little-endian integers, mostly zero bytes. Neither is a card number, in any number of files.
    import base64
    import struct

    rnd = random.Random(20261202)
    for _ in range(300):
        reg = [base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(16))).decode() if rnd.getrandbits(1)
               else None for _ in range(32)]
        keys = {"v": 2, "ikid": base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(8))).decode(),
                "tc": rnd.randint(1, 1 << 20), "reg": reg}
        pin = {"salt": "pt1", "hash": base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(32))).decode(),
               "fails": 0, "until": 0}
        assert leakscan.scan_bytes(json.dumps(keys).encode() + b"\n" + json.dumps(pin).encode()) == []
        ints = struct.pack("<8I", *[rnd.choice((0, 1, 2, 5, 9, 12, 20, 99, 100, 1000)) for _ in range(8)])
        assert leakscan.scan_bytes(b"\xaa" + ints + b"\xbb") == [], ints.hex()


def test_provisioned_pin_hash_is_not_a_card_number():
    # What made a `make test` session fail its end scan with a random PIN salt: `payterm provision`
    # wrote "tech_pin_hash": "sha256$<salt>$<hex>" whose hex held a Luhn-valid 12-digit run (pan-text
    # and pan-bcd at the same offset).
    digest = "33a55fed40db1b429976a745fff07c9980ec929fdcc3761a0aae586338007543"
    assert leakscan.luhn_ok("586338007543")
    prov = ('{"tech_pin_hash": "sha256$2Ca3auzYPPQQvJEJ$%s",\n "merchant_pin_hash": "sha256$emu$%s"}'
            % (digest, digest)).encode()
    assert leakscan.scan_bytes(prov) == []
    assert kinds(b"dump " + digest.encode() + b"\n") != [], "the same hex outside a PIN hash is still judged"
    assert kinds(b'{"h": "sha256$s$' + digest.encode() + b'", "pan": "' + PAN.encode() + b'"}') == [
        ("pan-text", "476173******0010")]


def test_initial_key_file_key_is_not_a_card_number():
    # What made a `make test` session fail its end scan: `payterm provision` wrote ikey.json whose random
    # key hex held a Luhn-valid BCD run (pan-bcd 589756********7492).
    ik = "a9" + "5897561234567499" + "b" * 14
    assert leakscan.luhn_ok("5897561234567499")
    key_file = ('{"ikid": "12345678ABCDEF01", "ik": "%s", "kcv": "0A1B2C3D4E"}' % ik).encode()
    assert leakscan.scan_bytes(key_file) == []
    assert kinds(b"dump " + ik.encode() + b"\n") != [], "the same hex outside a key file is still judged"
    assert kinds(b'{"ik": "' + ik.encode() + b'", "pan": "' + PAN.encode() + b'"}') == [
        ("pan-text", "476173******0010")]


def test_text_fields_padded_with_nul_are_text_not_bcd():
    # A fixed-width text field (the fault log's stage, 11 bytes) padded with NULs, then the next field's
    # text: its letters are digit nibbles up to the "o" (6F reads as an F pad), NULs included, a Luhn-valid
    # 19-digit "number" (found once the six-zero rule was gone). Text and its padding are judged as text.
    import struct
    import zlib

    body = struct.pack("<BIIIH6s11s28s", 0xFA, 9, 1, 1, 1, b"SYS-09", b"dvawqogfiu", b"vrosa")
    slot = body + struct.pack("<I", zlib.crc32(body))
    assert leakscan.scan_bytes(slot) == []
    assert leakscan.scan_bytes(b"\xfa\xcc\xcc\xcc\xcc" + body[15:]) == []
    # a BCD number whose bytes are not text (99, 89, 01, 8F) with zeros inside: found
    assert kinds(b"\xcc" + bcd("6799998900000060018") + b"\xcc") == [
        ("pan-bcd", "679999*********0018")]


def test_integers_of_the_terminal_flash_formats_are_not_bcd():
    # Fault-log slots (payterm/diag/faultlog.py) with times and counts whose bytes happen to read as
    # BCD digits next to the text fields: found as "pan-bcd" when scanned raw, not once the slot checks out.
    import struct
    import zlib

    body = struct.pack("<BIIIH6s11s28s", 0xFA, 9, 0x6697245B, 0x66972463, 0x2F, b"HST-01", b"host", b"sale 000001")
    slot = body + struct.pack("<I", zlib.crc32(body))
    assert kinds(b"\xfb" + slot[1:]) == [("pan-bcd", "249766*****7662")], "raw, the bytes do read as a BCD number"
    assert leakscan.scan_bytes(slot) == []
    rec = b'{"ref": "000001", "pan": "476173******0010"}'
    journal = len(rec).to_bytes(4, "big") + zlib.crc32(rec).to_bytes(4, "big") + rec
    assert leakscan.blank_integers(journal)[:8] == b"\xaa" * 8
    # a card number stored in a text field is still found
    body = struct.pack("<BIIIH6s11s28s", 0xFA, 9, 1, 1, 1, b"SYS-09", b"txn", b"pan " + PAN.encode())
    slot = body + struct.pack("<I", zlib.crc32(body))
    assert kinds(slot) == [("pan-text", "476173******0010")]


def test_bcd_right_justified_in_a_zero_filled_field_of_a_hex_dump():
    assert ("pan-bcd", "541333******0434") in kinds(b"f2=ee000000" + b"5413330089010434" + b"ee\n")
    assert ("pan-bcd", "374245*****0126") in kinds(b"f2=ee000003" + b"74245455400126" + b"ee\n")


def test_bcd_made_of_printable_bytes_needs_structure():
    # 5555555555554444 in BCD is the text "UUUUUUDD": bare, it reads as text (documented limit);
    # with a pad, a tag, a length byte or as a known number it is found.
    pan = "5555555555554444"
    assert kinds(b"\xaa" + bcd(pan) + b"\xbb") == []
    assert kinds(b"\x5a\x08" + bcd(pan)) == [("pan-bcd", "555555******4444")]
    assert kinds(b"\xaa" + bcd(pan) + b"\xff\x00") == [("pan-bcd", "555555******4444")]
    assert kinds(b"\xaa" + bcd(pan) + b"\xbb", known=[pan]) == [("known-pan-bcd", "555555******4444")]


def test_bcd_in_emv_tlv_iso_field_and_hex_dump():
    t2 = bytes.fromhex(PAN + "d30121010000000f")
    tlv = b"\x70\x1c\x57" + bytes([len(t2)]) + t2 + b"\x5a\x08" + bcd(PAN)
    assert sorted(kinds(b"\x01\x02" + tlv)) == [("pan-bcd", "476173******0010"),
                                                 ("track2-bcd", "476173******0010D*******")]
    # an ISO 8583 BCD field 2 (LL in BCD, odd length left-padded with 0) in a hex dump
    assert kinds(b"tx 0200600000000e150374245455400126ee\n") == [("pan-bcd", "374245*****0126")]
    # a log line with the APDU response as hex
    assert kinds(b"apdu 70125A08" + PAN.encode() + b"5F24033012319000\n") == [("pan-bcd", "476173******0010")]


def test_track_data_found():
    c = TEST_CARDS["visa"]
    assert kinds(("%B" + c.pan + "^DOE/JOHN^3012101000000?").encode()) == [
        ("track1", "476173******0010^...^*******")]
    assert kinds(b"B" + c.pan.encode() + b"^DOE/JOHN^30121010000") == [("track1", "476173******0010^...^*******")]
    assert kinds((";" + c.pan + "=30121010000000?").encode()) == [("track2", "476173******0010=*******")]
    assert kinds(('{"35": "' + c.pan + '=3012101"}').encode()) == [("track2", "476173******0010=*******")]


def test_masked_pans_and_other_numbers_are_not_hits():
    rnd = random.Random(20251123)
    lines = [b"476173******0010", b"CARD ****0010", b"# TXN 000123 SALE APPROVED stan=000123 auth=A1B2C3",
             b"amount 000000001250 time 1763884800 tid TERM0001", b"2026-11-23 12:00:00 ISS-51 x3 host",
             b"0000000000000000", b"1111111111111111"]
    for _ in range(2000):
        n = rnd.randint(12, 19)
        d = str(rnd.randint(1, 9)) + "".join(str(rnd.randint(0, 9)) for _ in range(n - 1))
        if not leakscan.luhn_ok(d):
            lines.append(b"x " + d.encode() + b" y")
    data = b"\n".join(lines)
    assert leakscan.scan_bytes(data) == []
    assert leakscan.scan_bytes(b"\x00" + bytes.fromhex("4761739001010011") + b"\xff") == []  # BCD, not Luhn


def test_known_card_numbers_found_even_without_luhn():
    bad = TEST_CARDS["bad_luhn"].pan
    data = b"ctx " + bad.encode() + b"\x00\xaa" + bcd(bad) + b"\xee"
    assert kinds(data) == []
    got = kinds(data, known=[bad])
    assert got == [("known-pan-text", leakscan.mask(bad)), ("known-pan-bcd", leakscan.mask(bad))], got


def test_files_directories_large_files_and_cli(tmp_path):
    clean = tmp_path / "state"
    clean.mkdir()
    (clean / "journal.log").write_bytes(b'\x00\x00\x00\x2a\x12\x34\x56\x78{"ref": "000001", "pan": "476173******0010"}')
    (clean / "printer.out").write_text("CARD 476173******0010\nAUTH A1B2C3\n")
    planted = tmp_path / "leakscan-planted"  # skipped by the reliability suite's end-of-session scan
    planted.mkdir()
    (planted / "text.log").write_text("card " + PAN + "\n")
    (planted / "flash.bin").write_bytes(b"\xaa\xbb" + bcd(PAN) + b"\xcc")
    (planted / "track.txt").write_text(";" + PAN + "=30121010000000?")
    big = b"\xab" * (leakscan._CHUNK - 5) + PAN.encode() + b"\xab" * 100  # straddles a chunk boundary
    (planted / "big.bin").write_bytes(big)

    rep = leakscan.scan_paths([str(clean)])
    assert (rep.files, rep.hits) == (2, [])
    rep = leakscan.scan_paths([str(tmp_path)], exclude=["big.bin"])
    got = sorted((h.path.rsplit("/", 1)[-1], h.kind) for h in rep.hits)
    assert got == [("flash.bin", "pan-bcd"), ("text.log", "pan-text"), ("track.txt", "track2")], got
    (h,) = leakscan.scan_file(str(planted / "big.bin"))
    assert (h.kind, h.offset) == ("pan-text", leakscan._CHUNK - 5)

    r = subprocess.run(PAYTERM + ["leakscan", str(clean)], capture_output=True, text=True)
    assert r.returncode == 0 and "2 files" in r.stdout and "0 hits" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(PAYTERM + ["leakscan", "--exclude", "big.bin", str(planted)], capture_output=True, text=True)
    assert r.returncode == 1 and "3 hits" in r.stdout and "476173******0010" in r.stdout, r.stdout
    assert PAN not in r.stdout + r.stderr
    r = subprocess.run(PAYTERM + ["leakscan", "--json", "--exclude", "big.bin", str(planted)],
                       capture_output=True, text=True)
    assert len(json.loads(r.stdout)["hits"]) == 3 and PAN not in r.stdout

"""Fuzz the card readers' parsers inside MicroPython (mp_fuzz.py): swipes, track strings, BER-TLV,
the EMV read against a fake card, and PN532 frames through the driver on a fake UART.

Each target mutates the vectors the unit tests already hold (test_card_fakes'
EMV card and PN532, the swipes of test_card_fuzz) plus random bytes; any
exception but a Fault with a catalog code is a crash, a case over its time
bound a hang. 5,500 inputs here in `make test`, 55,000 in `make reliability`.
"""
import pytest

from reliability import fuzzing

SIZES = {"magstripe": (1500, 15000), "tracks": (1000, 10000), "tlv": (1000, 10000), "emv": (1000, 10000),
         "pn532": (1000, 10000)}
# Verdicts the mutations must reach: proof that the inputs get past the first check and into the parser.
REACH = {"magstripe": {"card", "CRD-04", "CRD-05", "CRD-06"}, "tracks": {"CRD-06"}, "tlv": {"parsed", "CRD-13"},
         "emv": {"card", "CRD-13"}, "pn532": {"ok", "HW-01", "HW-02"}}


@pytest.mark.reliability("fuzz")
@pytest.mark.parametrize("target", sorted(SIZES))
def test_fuzz_card_parsers(rel, tmp_path, target):
    n = rel.size(*SIZES[target])
    total = fuzzing.fuzz(rel, target, n, tmp_path)
    assert total["inputs"] == n
    missing = REACH[target] - set(total["outcomes"])
    assert not missing, "%s never reached %s: %r" % (target, sorted(missing), total["outcomes"])

"""Fuzz what the acquirer sends inside MicroPython (mp_fuzz.py): ISO 8583 responses into
`payterm.link.iso8583.decode`, and framed answers into `Link.exchange` on a fake connection.

The vectors are the acquirer simulator's own frames (fuzzing.write_vectors):
its answers to requests sealed as the terminal seals them (field 53, MAC),
MACed by its HSM under the request's KSN. The link target sends its sale with
the same request keys (the firmware's DUKPT and CMAC, `sec=`), so the
simulator's answers pass the MAC check; mutated answers are MACed again as
the host would MAC them, so they reach the decoder and the checks behind the
MAC check; a share is damaged on the way, sent without a MAC or with a wrong
one, and must be refused with KEY-07 / KEY-08 exactly. On top of "no crash,
no hang", every failure of an exchange whose request was written must say
`sent=True` (outcome unknown: the engine reverses), an unchanged answer must
be taken with its rc, and no response that does not match MTI, STAN and TID
may be accepted.
2,500 inputs in `make test`, 25,000 in `make reliability`.
"""
import pytest

from reliability import fuzzing

SIZES = {"iso8583": (1500, 15000), "link": (1000, 10000)}
REACH = {"iso8583": {"decoded", "HST-02"}, "link": {"rc=00", "HST-02", "KEY-07", "KEY-08"}}


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    return fuzzing.write_vectors(str(tmp_path_factory.mktemp("vectors") / "fuzz-vectors.json"))


@pytest.mark.reliability("fuzz")
@pytest.mark.parametrize("target", sorted(SIZES))
def test_fuzz_host_responses(rel, tmp_path, vectors, target):
    n = rel.size(*SIZES[target])
    total = fuzzing.fuzz(rel, target, n, tmp_path, vectors=vectors)
    assert total["inputs"] == n
    missing = REACH[target] - set(total["outcomes"])
    assert not missing, "%s never reached %s: %r" % (target, sorted(missing), total["outcomes"])

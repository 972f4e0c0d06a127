"""Fuzz what the acquirer sends inside MicroPython (mp_fuzz.py): ISO 8583 responses into
`payterm.link.iso8583.decode`, and framed answers into `Link.exchange` on a fake connection.

The vectors are the acquirer simulator's own frames (fuzzing.write_vectors).
On top of "no crash, no hang", every failure of an exchange whose request
was written must say `sent=True` (outcome unknown: the engine reverses), and
no response that does not match MTI, STAN and TID may be accepted.
2,500 inputs in `make test`, 25,000 in `make reliability`.
"""
import pytest

from reliability import fuzzing

SIZES = {"iso8583": (1500, 15000), "link": (1000, 10000)}
REACH = {"iso8583": {"decoded", "HST-02"}, "link": {"rc=00", "HST-02"}}


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

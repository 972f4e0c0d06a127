"""Every failure code the card layer can raise is in the catalog."""
import os
import re

from mpt import eq

from payterm import codes

_DIR = "firmware/payterm/card"
_RE = re.compile('Fault\\("([A-Z]+-[0-9A-Z]+)"')


def _raised():
    found = {}
    for name in os.listdir(_DIR):
        if not name.endswith(".py"):
            continue
        with open(_DIR + "/" + name) as f:
            for line in f:
                for part in line.split("Fault(")[1:]:
                    m = _RE.search("Fault(" + part)
                    if m:
                        found[m.group(1)] = name
    return found


def test_card_codes_are_in_catalog():
    found = _raised()
    for code in ("CRD-02", "CRD-07", "CRD-11", "CRD-12", "CRD-13", "HW-01", "HW-02"):
        assert code in found, "expected %s to be raised somewhere" % code
    for code, where in found.items():
        entry = codes.lookup(code)
        assert entry is not None and entry[codes.ID] == code, "%s (%s) not in the catalog" % (code, where)
    eq(codes.lookup("CRD-01")[codes.CATEGORY], "card")

"""Every failure code the firmware can raise is in the catalog; the Markdown reference is current.

The catalog is read by running firmware/payterm/codes.py in MicroPython
(through `payterm codes`' loader), never by importing firmware into CPython.
"""
import os
import re

import pytest

import mpy_runtimes
from payterm_tools import codes as codes_tool

CODE_RE = re.compile(r"""["'](CRD|HW|NET|HST|ISS|OPR|SYS|KEY|PIN)-([0-9A-Z]{2})["']""")


@pytest.fixture(scope="module")
def catalog():
    entries, causes = codes_tool.load_catalog(mpy_runtimes.FIRMWARE)
    return {e["id"]: e for e in entries}, causes


def _raised_codes():
    found = {}
    for root, _, files in os.walk(mpy_runtimes.FIRMWARE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            with open(path) as f:
                for m in CODE_RE.finditer(f.read()):
                    found.setdefault("%s-%s" % m.groups(), path)
    return found


def test_scan_finds_the_codes_the_firmware_uses():
    # guards the scanner itself: it must see the codes the diag modules write
    found = _raised_codes()
    assert "SYS-02" in found and "OPR-03" in found


def test_every_code_in_firmware_is_in_the_catalog(catalog):
    by_id, _ = catalog
    missing = {c: os.path.relpath(p, mpy_runtimes.REPO) for c, p in _raised_codes().items() if c not in by_id}
    assert not missing, "codes used in firmware/ but missing from payterm/codes.py: %r" % missing


def test_entries_are_complete(catalog):
    by_id, _ = catalog
    assert len(by_id) >= 70
    for cid, e in by_id.items():
        assert CODE_RE.match('"%s"' % cid), cid
        assert 0 < len(e["display"]) <= 20, e
        for k in ("customer", "cause", "remedy"):
            assert e[k].strip(), (cid, k)
        assert e["category"] in ("card", "issuer", "network", "host", "hardware", "operator", "system")


def test_issue_failures_all_have_entries(catalog):
    by_id, _ = catalog
    # local failures the issue lists, by the category the contract gives them
    want = {"HW-01": "hardware", "NET-01": "network", "NET-02": "network", "NET-03": "network",
            "NET-04": "network", "HST-01": "host", "HST-02": "host", "HW-03": "hardware", "HW-04": "hardware",
            "HW-05": "hardware", "SYS-01": "system", "SYS-02": "system", "SYS-03": "system", "SYS-04": "system",
            "SYS-05": "system", "SYS-06": "system"}
    for cid, cat in want.items():
        assert by_id[cid]["category"] == cat, cid
    for rc in ("01", "03", "04", "05", "06", "07", "12", "13", "14", "15", "19", "30", "41", "43", "51", "54",
               "55", "57", "58", "59", "61", "62", "63", "65", "75", "78", "82", "91", "92", "94", "96", "N7",
               "R0", "R1"):
        assert by_id["ISS-" + rc]["category"] == "issuer", rc


def test_five_merchant_causes_map_to_entries(catalog):
    by_id, causes = catalog
    got = dict(causes)
    assert set(got) == {"insufficient balance", "wrong card number", "network problem",
                        "payment method not supported", "security check failed"}
    for cause, ids in got.items():
        assert ids, cause
        for i in ids:
            assert i in by_id, (cause, i)
    assert "ISS-51" in got["insufficient balance"]
    assert "ISS-N7" in got["security check failed"]


def test_markdown_reference_is_up_to_date(catalog, tmp_path):
    out = tmp_path / "failure-codes.md"
    assert codes_tool.main_like(["--markdown", str(out)]) == 0
    committed = os.path.join(mpy_runtimes.REPO, "docs", "failure-codes.md")
    with open(committed) as f:
        assert f.read() == out.read_text(), "docs/failure-codes.md is stale: run `make codes`"
    by_id, _ = catalog
    text = out.read_text()
    for cid, e in by_id.items():
        assert "`%s`" % cid in text
        assert e["remedy"].replace("|", "\\|") in text


def test_cli_prints_every_code(catalog, capsys):
    assert codes_tool.main_like([]) == 0
    out = capsys.readouterr().out
    by_id, _ = catalog
    for cid in by_id:
        assert re.search(r"^%s\s" % re.escape(cid), out, re.M), cid

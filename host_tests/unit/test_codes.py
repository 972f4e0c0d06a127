# runtimes: unix
"""Failure-code catalog: shape of every entry and the lookup functions."""
from mpt import eq

from payterm import codes


def test_every_entry_is_complete_and_fits_the_display():
    seen = {}
    for e in codes.entries():
        eq(len(e), len(codes.FIELDS), "fields of " + e[0])
        assert e[0] not in seen, "duplicate " + e[0]
        seen[e[0]] = 1
        assert e[codes.CATEGORY] in codes.CATEGORIES, e
        assert e[codes.SEVERITY] in codes.SEVERITIES, e
        assert e[codes.RETRYABLE] in (True, False), e
        assert 0 < len(e[codes.DISPLAY]) <= 20, e
        assert e[codes.DISPLAY] == e[codes.DISPLAY].upper(), e
        for i in (codes.CUSTOMER, codes.CAUSE, codes.REMEDY):
            assert len(e[i]) > 5, e
        # ISO-8859-1 panel: ASCII only
        for ch in e[codes.DISPLAY] + e[codes.CUSTOMER]:
            assert ord(ch) < 128, e


def test_contract_ranges_are_all_present():
    ids = codes.all_ids()
    want = ["CRD-%02d" % i for i in range(1, 14)] + ["HW-%02d" % i for i in range(1, 7)]
    want += ["NET-%02d" % i for i in range(1, 6)] + ["HST-%02d" % i for i in range(1, 6)]
    want += ["OPR-%02d" % i for i in range(1, 6)] + ["SYS-%02d" % i for i in range(1, 10)]
    for rc in ("05", "14", "51", "54", "57", "91", "96", "N7", "82", "R0", "R1"):
        want.append("ISS-" + rc)
    for w in want:
        assert w in ids, w
        assert codes.known(w)


def test_for_rc_maps_approvals_to_none_and_declines_to_iss():
    for rc in ("00", "08", "10", "11", b"00"):
        eq(codes.for_rc(rc), None, rc)
    eq(codes.for_rc("51"), "ISS-51")
    eq(codes.for_rc(b"N7"), "ISS-N7")
    eq(codes.lookup(codes.for_rc("51"))[codes.CATEGORY], "issuer")


def test_unknown_issuer_code_gets_generic_decline():
    e = codes.lookup(codes.for_rc("Q4"))
    eq(e[codes.ID], "ISS-Q4")
    eq(e[codes.CATEGORY], "issuer")
    assert "Q4" in e[codes.DISPLAY] and len(e[codes.DISPLAY]) <= 20
    assert not codes.known("ISS-Q4")


def test_unknown_local_code_never_breaks_reporting():
    e = codes.lookup("SYS-77")
    eq(e[codes.ID], "SYS-77")
    eq(e[1:], codes.lookup("SYS-09")[1:])


def test_merchant_causes_point_at_catalog_entries():
    names = [c for c, _ in codes.MERCHANT_CAUSES]
    for want in ("insufficient balance", "wrong card number", "network problem",
                 "payment method not supported", "security check failed"):
        assert want in names, want
    for _, ids in codes.MERCHANT_CAUSES:
        for i in ids:
            assert codes.known(i), i


def test_customer_texts_never_reveal_fraud_reasons():
    # a bystander must not hear "stolen" or "fraud" from the terminal
    for e in codes.entries():
        t = (e[codes.DISPLAY] + " " + e[codes.CUSTOMER]).lower()
        for word in ("stolen", "fraud", "lost card", "pick up"):
            assert word not in t, e


def test_json_export_round_trips():
    import json

    lines = []
    codes.export_json_lines(lines.append)
    eq(len(lines), len(codes.all_ids()))
    first = json.loads(lines[0])
    eq(tuple(first[k] for k in codes.FIELDS), next(codes.entries()))

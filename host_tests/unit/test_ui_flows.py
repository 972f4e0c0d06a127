"""Cashier screens: customer messages fit the 20-column display without cutting words."""
from mpt import eq

from payterm.ui.flows import wrap


def test_wrap_breaks_between_words():
    eq(wrap("Insufficient balance. Please use another card."), ["Insufficient", "balance. Please use"])


def test_wrap_pads_short_text_and_cuts_long_words():
    eq(wrap("OK"), ["OK", ""])
    eq(wrap("x" * 25), ["x" * 20, ""])
    eq(wrap(""), ["", ""])


def test_every_catalog_message_fits():
    from payterm import codes

    for cid in codes.all_ids():
        rows = wrap(codes.lookup(cid)[codes.CUSTOMER])
        assert len(rows) == 2 and all(len(r) <= 20 for r in rows), (cid, rows)
        assert rows[0], cid

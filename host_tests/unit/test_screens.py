# runtimes: unix
"""4x20 screen layouts: every row fits, no word of a customer text is lost, room for TRAINING."""
from mpt import eq

from payterm import codes
from payterm.ui import screens

LONG_AMOUNT = "EUR 10000.00"
MASKED = "476173******0010"


def _fits(rows):
    eq(len(rows), 4, "rows of %r" % (rows,))
    for r in rows:
        assert len(r) <= 20, (r, rows)


def _layouts():
    """Every cashier layout, with the longest values they take."""
    out = [
        screens.idle("PAYTERM DEMO SHOP", "EUR"), screens.idle("A MERCHANT NAME LONGER THAN 20", "EUR", 12),
        screens.no_sale("PAYTERM DEMO SHOP"), screens.function_menu(False), screens.function_menu(True),
        screens.amount_entry("SALE", LONG_AMOUNT), screens.amount_entry("REFUND", LONG_AMOUNT, "MAX EUR 10000.00"),
        screens.ref_entry("VOID: REF", "000123"), screens.ref_entry("STATUS: REF", "", "REF IS 6 DIGITS"),
        screens.pin_entry("TRAINING", 12), screens.pin_entry("REFUND", 4, codes.lookup("OPR-07")[codes.DISPLAY]),
        screens.confirm_amount("SALE", LONG_AMOUNT), screens.confirm_card("REFUND", LONG_AMOUNT, MASKED),
        screens.confirm_void("000123", "refund", LONG_AMOUNT, MASKED), screens.paper_out("HW-03"),
        screens.card_prompt("SALE " + LONG_AMOUNT), screens.card_prompt("SALE " + LONG_AMOUNT, remove=True),
        screens.card_prompt("REFUND " + LONG_AMOUNT, "CARD READ ERROR"),
        screens.card_prompt("REFUND " + LONG_AMOUNT, "CARD READ ERROR", True),
        screens.processing("REFUND " + LONG_AMOUNT, MASKED, "WAITING FOR HOST", True),
        screens.processing("VOID REFUND 000123", MASKED, "RETRY 2/4"),
        screens.approved("sale", LONG_AMOUNT, "A1B2C3", "000001", offline=True),
        screens.approved("refund", LONG_AMOUNT, "A1B2C3", "000001"),
        screens.approved("void", LONG_AMOUNT, None, "000004", orig="000001", orig_kind="refund"),
        screens.print_failed("HW-03", "REFUND APPROVED"), screens.lookup("000001", "refund", LONG_AMOUNT, "void pending"),
        screens.notice("TRAINING MODE ON", "NOTHING IS CHARGED", "F 5: END TRAINING"),
    ]
    for cid in codes.all_ids():
        out += screens.declined(cid)
    return out


def test_wrap_breaks_between_words_and_keeps_every_word():
    eq(screens.wrap("Insufficient balance. Please use another card."),
       ["Insufficient", "balance. Please use", "another card."])
    eq(screens.wrap("x" * 25), ["x" * 20, "x" * 5])
    eq(screens.wrap(""), [""])


def test_every_catalog_customer_text_fits_its_result_screen_whole():
    for cid in codes.all_ids():
        text = codes.lookup(cid)[codes.CUSTOMER]
        pages = screens.pages(text)
        assert 1 <= len(pages) <= 3, (cid, pages)
        words = " ".join([w for p in pages for w in " ".join(p).split()])
        eq(words, " ".join(text.split()), cid)  # nothing cut, nothing dropped
        for w in text.split():
            assert len(w) <= 20, (cid, w)


def test_result_screens_page_the_customer_text_under_display_and_code():
    ps = screens.declined("ISS-51")
    eq(len(ps), 2)
    eq(ps[0], ["INSUFFICIENT FUNDS", "ISS-51  1/2", "Insufficient", "balance. Please use"])
    eq(ps[1][:2], ["INSUFFICIENT FUNDS", "ISS-51  2/2"])
    eq(ps[1][2], "another card.")
    one = screens.declined("OPR-01")
    eq(one, [["CANCELLED", "OPR-01", "The payment was", "cancelled."]])


def test_every_layout_fits_and_has_room_for_the_training_mark():
    for rows in _layouts():
        _fits(rows)
        assert screens.marked_row(rows) >= 0, ("no row has room for TRAINING", rows)
        m = screens.mark(rows)
        _fits(m)
        assert any(r.endswith("TRAINING") for r in m), m
        # marking keeps every character of the layout
        for a, b in zip(rows, m):
            assert b.startswith(a.rstrip()), (a, b)


def test_idle_keeps_the_menu_hint_beside_the_offline_queue():
    eq(screens.idle("", "EUR"), ["PAYTERM", "READY", "ENTER AMOUNT (EUR)", "F:MENU"])
    eq(screens.idle("SHOP", "EUR", 3)[3], "F:MENU   OFFLINE Q 3")


def test_a_void_result_reads_as_a_cancellation_not_a_charge():
    rows = screens.approved("void", "EUR 6.00", None, "000003", orig="000001", orig_kind="sale")
    eq(rows, ["VOID APPROVED", "SALE 000001 VOIDED", "EUR 6.00", "REF 000003"])
    eq(screens.approved("refund", "EUR 3.00", "A1", "000002")[0], "REFUND APPROVED")
    eq(screens.approved("sale", "EUR 3.00", "A1", "000002")[0], "APPROVED")


def test_printer_question_before_the_sale_shows_the_code():
    eq(screens.paper_out("HW-07"), ["PRINTER COVER OPEN", "HW-07", "CONTINUE WITHOUT", "RECEIPT? E:YES C:NO"])
    eq(screens.mark(screens.paper_out("HW-03"))[1], "HW-03       TRAINING")

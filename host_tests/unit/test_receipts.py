# runtimes: unix
"""Receipts: what a card scheme asks on a cardholder receipt, copies, signature line, training, duplicate."""
from mpt import eq

from payterm import printer
from payterm.txn.result import Result

CFG = {"terminal_id": "TERM0042", "merchant_id": "MERCHANT0000042", "merchant_name": "CAFE CENTRAL",
       "merchant_address": ["1 MARKET STREET", "1010 VIENNA"], "currency": 978}
WHEN = (2025, 11, 23, 9, 41, 7, 0, 327)
PAN = "4761739001010010"


class Card:
    def __init__(self, entry_mode, aid="", label="", cvm=None):
        self.entry_mode, self.aid, self.label = entry_mode, aid, label
        if cvm is not None:
            self.cvm = cvm


def _sale(card, approved=True, code=None, kind="sale"):
    r = Result(approved, code, "00" if approved else "51", "A1B2C3" if approved else None, "123456789012", "000042",
               "000017", False, "APPROVED" if approved else "INSUFFICIENT FUNDS", 1250, 978, kind, "476173******0010")
    return r.card_info(card)


def _has(lines, *want):
    for w in want:
        assert w in lines, (w, lines)


def test_contactless_sale_carries_every_field_a_scheme_asks_for():
    r = _sale(Card("071", "A0000000031010", "VISA CREDIT", "cdcvm"))
    lines = printer.receipt(r, CFG, WHEN)
    _has(lines, "CAFE CENTRAL", "1 MARKET STREET", "1010 VIENNA", "TID TERM0042", "MID MERCHANT0000042",
         "2025-11-23 09:41:07", "SALE", "CARD 476173******0010", "ENTRY CONTACTLESS", "APP VISA CREDIT",
         "AID A0000000031010", "RRN 123456789012", "AUTH CODE A1B2C3", "SALE APPROVED", "VERIFIED ON DEVICE",
         "-- CUSTOMER COPY --")
    assert "AMOUNT                 EUR 12.50" in lines, lines
    assert "REF 000017           STAN 000042" in lines, lines
    for l in lines:
        assert len(l) <= printer.WIDTH, l
        assert PAN not in l


def test_swiped_sale_has_no_chip_application_lines():
    lines = printer.receipt(_sale(Card("901", "A0000000031010", "VISA CREDIT")), CFG, WHEN)
    _has(lines, "ENTRY SWIPED")
    assert not [l for l in lines if l.startswith(("APP ", "AID "))], lines
    _has(printer.receipt(_sale(Card("801")), CFG, WHEN), "ENTRY SWIPED (CHIP FALLBACK)")


def test_signature_line_only_on_the_merchant_copy_when_the_cvm_is_signature():
    r = _sale(Card("071", "A0000000041010", "MASTERCARD", "signature"))
    eq(printer.copies(r, CFG), (printer.MERCHANT, printer.CUSTOMER))
    merchant = printer.receipt(r, CFG, WHEN, printer.MERCHANT)
    _has(merchant, "X" + "_" * 31, "CARDHOLDER SIGNATURE", "-- MERCHANT COPY --")
    customer = printer.receipt(r, CFG, WHEN, printer.CUSTOMER)
    _has(customer, "SIGNED ON MERCHANT COPY", "-- CUSTOMER COPY --")
    assert "CARDHOLDER SIGNATURE" not in customer
    # no signature: one customer copy (a merchant copy too when the terminal is set to print one)
    plain = _sale(Card("071", "A0000000041010", "MASTERCARD", "online_pin"))
    eq(printer.copies(plain, CFG), (printer.CUSTOMER,))
    _has(printer.receipt(plain, CFG, WHEN), "PIN VERIFIED")
    cfg = dict(CFG, merchant_copy=True)
    eq(printer.copies(plain, cfg), (printer.MERCHANT, printer.CUSTOMER))
    assert "CARDHOLDER SIGNATURE" not in printer.receipt(plain, cfg, WHEN, printer.MERCHANT)
    # a declined sale is never signed
    eq(printer.copies(_sale(Card("071", cvm="signature"), approved=False, code="ISS-51"), CFG), (printer.CUSTOMER,))


def test_decline_void_training_and_duplicate():
    d = printer.receipt(_sale(Card("901"), approved=False, code="ISS-51"), CFG, WHEN)
    _has(d, "SALE DECLINED ISS-51", "INSUFFICIENT FUNDS")
    v = _sale(Card("901"), kind="void")
    v.orig = "000012"
    _has(printer.receipt(v, CFG, WHEN), "VOID", "CANCELS REF 000012", "VOID APPROVED")
    t = printer.receipt(_sale(Card("901")), CFG, WHEN, training=True)
    eq(t[0], CFG["merchant_name"], "the title is the merchant's name in training too")
    eq(t[1], printer.TRAINING)
    eq(t[-1], printer.TRAINING)
    _has(printer.receipt(_sale(Card("901")), CFG, WHEN, duplicate=True), printer.DUPLICATE)
    assert printer.DUPLICATE not in printer.receipt(_sale(Card("901")), CFG, WHEN)


async def test_paper_state_only_when_the_printer_can_tell():
    class Asks:
        def __init__(self, code):
            self.code = code
            self.asked = 0

        def status(self):
            return None  # a cached state from before: not what the printer says now

        async def poll(self):
            self.asked += 1
            return self.code

    class Sensor:
        def __init__(self, code):
            self.code = code

        def status(self):
            return self.code

    class NoSensor:
        async def print_lines(self, lines):
            pass

    a = Asks("HW-03")
    eq(await printer.paper_state(a), "HW-03")
    eq(a.asked, 1, "a printer that can be asked is asked now")
    eq(await printer.paper_state(Sensor("HW-03")), "HW-03")
    eq(await printer.paper_state(Sensor(None)), None)
    eq(await printer.paper_state(NoSensor()), None)
    eq(await printer.paper_state(None), None)

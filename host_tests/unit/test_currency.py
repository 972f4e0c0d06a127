# runtimes: unix core
"""Currency: minor units with ISO 4217 exponents, keypad parsing."""
from mpt import eq, raises

from payterm.errors import Fault
from payterm.txn import currency as c


def test_format_uses_each_currency_exponent():
    eq(c.format_amount(1234, 978), "EUR 12.34")
    eq(c.format_amount(1234, 392), "JPY 1234")
    eq(c.format_amount(1234, 48), "BHD 1.234")
    eq(c.format_amount(7, 840), "USD 0.07")
    eq(c.format_amount(7, 48), "BHD 0.007")
    eq(c.format_amount(100000, 826), "GBP 1000.00")
    eq(c.format_amount(-250, 756), "CHF -2.50")
    eq(c.format_amount(1234, 752, symbol=False), "12.34")


def test_format_and_parse_round_trip_for_every_table_entry():
    for num, code, exp in c.TABLE:
        for minor in (1, 9, 10, 99, 100, 12345, 999999999999):
            text = c.format_amount(minor, num, symbol=False)
            eq(c.parse_amount(text, num), minor, "%s %s" % (code, text))
            eq(c.parse_amount(str(minor), num), minor)
        eq(c.alpha(num), code)
        eq(c.exponent(num), exp)
        eq(c.numeric_of(code), num)
        eq(c.field49(num), "%03d" % num)


def test_parse_keypad_entry():
    eq(c.parse_amount("1000", 978), 1000)
    eq(c.parse_amount("12.3", 978), 1230)
    eq(c.parse_amount(".5", 978), 50)
    eq(c.parse_amount("1.5", 48), 1500)
    for bad in ("", "0", "abc", "1.234", "1.2.3", ".", "12a", "1000000000000", "5.5"):
        num = 392 if bad == "5.5" else 978
        eq(raises(Fault, c.parse_amount, bad, num).code, "OPR-02", repr(bad))


def test_unknown_currency_is_a_configuration_error():
    eq(raises(Fault, c.format_amount, 1, 999).code, "SYS-07")
    eq(raises(Fault, c.numeric_of, "XXX").code, "SYS-07")

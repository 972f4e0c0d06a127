"""What a transaction ends with, for the display, the receipt and the console."""


class Result:
    __slots__ = ("approved", "code", "rc", "auth_code", "rrn", "stan", "ref", "offline", "text",
                 "amount", "currency", "kind", "masked", "cvm")

    def __init__(self, approved, code=None, rc=None, auth_code=None, rrn=None, stan=None, ref=None,
                 offline=False, text="", amount=0, currency=0, kind="sale", masked=""):
        self.approved = approved
        self.code = code
        self.rc = rc
        self.auth_code = auth_code
        self.rrn = rrn
        self.stan = stan
        self.ref = ref
        self.offline = offline
        self.text = text
        self.amount = amount
        self.currency = currency
        self.kind = kind
        self.masked = masked
        self.cvm = "none"  # cardholder verification the card's kernel chose (payterm.card.emvrisk)

    def amount_text(self):
        """'EUR 12.34' for the display and receipt."""
        from payterm.txn.currency import format_amount

        return format_amount(self.amount, self.currency) if self.currency else str(self.amount)

    def __repr__(self):
        return "Result(%s %s %s ref=%s code=%s rc=%s)" % (
            self.kind, "APPROVED" if self.approved else "DECLINED", self.masked, self.ref, self.code, self.rc)

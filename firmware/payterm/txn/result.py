"""What a transaction ends with, for the display, the receipt and the console."""


class Result:
    __slots__ = ("approved", "code", "rc", "auth_code", "rrn", "stan", "ref", "offline", "text",
                 "amount", "currency", "kind", "masked", "cvm", "entry_mode", "aid", "label", "orig")

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
        # From the card (the engine copies them; none is card data): for the receipt.
        # cvm: the cardholder verification the card's kernel chose (payterm.card.emvrisk):
        # "none" | "signature" | "online_pin" | "cdcvm"
        self.cvm = "none"
        self.entry_mode = None  # ISO 8583 field 22 ("901" swipe, "801" fallback swipe, "071" contactless)
        self.aid = ""  # EMV application identifier (chip / contactless)
        self.label = ""  # EMV application label
        self.orig = None  # a void: the ref of the transaction it cancels

    def card_info(self, card):
        """Copy what the receipt needs from the Card (before it is wiped: none of it is card data)."""
        if card is None:
            return self
        self.cvm = getattr(card, "cvm", None) or "none"
        self.entry_mode = getattr(card, "entry_mode", None)
        self.aid = getattr(card, "aid", "") or ""
        self.label = getattr(card, "label", "") or ""
        return self

    def amount_text(self):
        """'EUR 12.34' for the display and receipt."""
        from payterm.txn.currency import format_amount

        return format_amount(self.amount, self.currency) if self.currency else str(self.amount)

    def __repr__(self):
        return "Result(%s %s %s ref=%s code=%s rc=%s)" % (
            self.kind, "APPROVED" if self.approved else "DECLINED", self.masked, self.ref, self.code, self.rc)

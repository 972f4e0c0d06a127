"""The cashier's screens, laid out for the 4x20 display, and paging of long texts.

Every state of the cashier's flows has one layout here (a function returning
four rows of at most 20 characters), so what the customer and the cashier
read is decided in one place and checked by host_tests/unit/test_screens.py:
no row longer than the display, no word cut, room for the TRAINING mark.

Customer texts of the catalog are longer than two rows: `pages()` breaks one
between words into pages of two rows, and the result screen shows them one
after the other (the cashier flow turns the pages every `page_ms`), with
"1/2" beside the code. A word is never cut, so no instruction is lost.

Training mode marks every screen: `mark()` puts TRAINING at the right end
of the last row when it has room, else of the first, third or second row
(every layout here leaves one of them short enough).
"""
from micropython import const

from payterm import codes

ROWS = const(4)  # panel protocol: rows 0..3
COLS = const(20)  # panel protocol: at most 20 characters a row
TEXT_ROWS = const(2)  # rows a customer text gets on a result screen
BADGE = "TRAINING"
_MARK_ORDER = (3, 0, 2, 1)
REMOVE = "REMOVE CARD"


def wrap(text, width=COLS):
    """Lines of at most `width` characters, broken between words (a longer word is split)."""
    out = []
    cur = ""
    for w in text.split():
        while len(w) > width:
            if cur:
                out.append(cur)
                cur = ""
            out.append(w[:width])
            w = w[width:]
        if not cur:
            cur = w
        elif len(cur) + 1 + len(w) <= width:
            cur = cur + " " + w
        else:
            out.append(cur)
            cur = w
    if cur or not out:
        out.append(cur)
    return out


def pages(text, rows=TEXT_ROWS, width=COLS):
    """The text in pages of `rows` lines each (the last page padded with empty lines)."""
    lines = wrap(text, width)
    out = []
    for i in range(0, len(lines), rows):
        p = lines[i:i + rows]
        while len(p) < rows:
            p.append("")
        out.append(p)
    return out


def fit(rows):
    """Exactly four rows, none longer than the display."""
    rows = [str(r)[:COLS] for r in list(rows)[:ROWS]]
    while len(rows) < ROWS:
        rows.append("")
    return rows


def _right(left, right, width=COLS):
    """`left` and `right` on one row, `right` flush with the right edge."""
    if not right:
        return left[:width]
    room = width - len(right) - 1
    if room < 0:
        return right[:width]
    return left[:room] + " " * (width - len(right) - len(left[:room])) + right


def mark(rows, badge=BADGE):
    """Rows with `badge` at the right end of a row that has room for it (see module doc)."""
    rows = fit(rows)
    room = COLS - len(badge) - 1
    for i in _MARK_ORDER:
        if len(rows[i].rstrip()) <= room:
            rows[i] = _right(rows[i].rstrip(), badge)
            return rows
    rows[3] = _right(rows[3][:room], badge)
    return rows


def marked_row(rows, badge=BADGE):
    """Which row mark() would use without cutting text, or -1."""
    room = COLS - len(badge) - 1
    for i in _MARK_ORDER:
        if len(fit(rows)[i].rstrip()) <= room:
            return i
    return -1


# ------------------------------------------------------------------ idle and menus
def idle(name, cur_alpha, queued=0):
    return fit([name or "PAYTERM", "READY", "ENTER AMOUNT (%s)" % cur_alpha,
                _right("F:MENU", "OFFLINE Q %d" % queued if queued else "")])


def no_sale(name):
    return fit([name or "PAYTERM", "NO SALE IN PROGRESS", "ENTER AMOUNT FIRST", ""])


def function_menu(training):
    last = "5 END TRAINING" if training else "5 TRAINING  9 TECH"
    return fit(["FUNCTION", "1 REFUND  2 VOID", "3 STATUS  4 REPRINT", last])


def notice(title, line1="", line2="", hint="E:OK"):
    return fit([title, line1, line2, hint])


# ------------------------------------------------------------------ input
def amount_entry(title, amount_text, note=""):
    """Amount typed so far; `note` says why a key was refused (the E:OK hint while none)."""
    return fit([title, amount_text, note or "E:OK B:DELETE", "C:CANCEL"])


def ref_entry(title, ref, note=""):
    return fit([title, ref or "_", note or "E:OK B:DELETE", "C:CANCEL"])


def pin_entry(title, n, note=""):
    return fit([title, "MERCHANT PIN:", "*" * n, note or "E:OK C:CANCEL"])


def confirm_amount(title, amount_text):
    return fit([title, amount_text, "AMOUNT CORRECT?", "E:YES C:NO"])


def confirm_card(title, amount_text, masked):
    """Refund: the amount and the card it goes to, before anything is sent."""
    return fit([title + "?", amount_text, "TO CARD " + masked[-8:], "E:YES C:NO"])


def confirm_void(ref, kind, amount_text, masked):
    """Void: which transaction, its amount and card, before anything is sent."""
    return fit(["VOID %s %s?" % (kind.upper(), ref), amount_text, "CARD " + (masked[-8:] if masked else "-"),
                "E:YES C:NO"])


def paper_out(code):
    """The printer says it cannot print (paper out, cover open, jam): its display text and code
    (what the cashier tells the technician), then go on without a receipt, or stop before the sale."""
    return fit([codes.lookup(code)[codes.DISPLAY], code, "CONTINUE WITHOUT", "RECEIPT? E:YES C:NO"])


# ------------------------------------------------------------------ card and processing
def card_prompt(head, err_display=None, remove=False, swipe_only=False):
    """swipe_only: the tap was refused (above the contactless limit, CRD-14/15): the error and
    REMOVE CARD while the card is still in the field, no TRY AGAIN (only a swipe pays now)."""
    if swipe_only and err_display:
        return fit([head, err_display, REMOVE if remove else "", "C:CANCEL"])
    if remove:
        if err_display:
            return fit([head, err_display, REMOVE, "THEN TRY AGAIN"])
        return fit([head, REMOVE, "THEN SWIPE OR TAP", "C:CANCEL"])
    if err_display:
        return fit([head, err_display, "TRY AGAIN", "C:CANCEL"])
    return fit([head, "PRESENT CARD", "SWIPE OR TAP", "C:CANCEL"])


def processing(head, masked, status="PROCESSING", remove=False):
    return fit([head, "CARD " + masked[-8:] if masked else "", status, REMOVE if remove else ""])


# ------------------------------------------------------------------ results
_APPROVED = {"sale": "APPROVED", "refund": "REFUND APPROVED", "void": "VOID APPROVED"}


def approved_title(kind, offline=False):
    t = _APPROVED.get(kind, "APPROVED")
    return t + " OFFLINE" if offline else t


def approved(kind, amount_text, auth, ref, offline=False, orig=None, orig_kind="sale"):
    """A void names what it cancelled, so it never reads like a new charge."""
    if kind == "void":
        return fit([approved_title(kind), "%s %s VOIDED" % (orig_kind.upper(), orig or "-"), amount_text,
                    "REF %s" % (ref or "-")])
    return fit([approved_title(kind, offline), amount_text, "AUTH %s" % (auth or "-"), "REF %s" % (ref or "-")])


def declined(code):
    """One screen per page of the code's customer text: display, code (+ page), the text."""
    e = codes.lookup(code)
    ps = pages(e[codes.CUSTOMER])
    out = []
    for i, p in enumerate(ps):
        row1 = _right(code, "%d/%d" % (i + 1, len(ps)) if len(ps) > 1 else "", 11)
        out.append(fit([e[codes.DISPLAY], row1] + p))
    return out


def print_failed(code, what):
    """The receipt did not print; `what` says the transaction stands ("VOID APPROVED")."""
    return fit([codes.lookup(code)[codes.DISPLAY], code, "RECEIPT NOT PRINTED", what])


def lookup(ref, kind, amount_text, status):
    return fit(["REF %s %s" % (ref, kind.upper()), amount_text, "STATUS " + str(status).upper(), "E:OK"])

"""The technician's and the support person's view through the panel and the console UART.

Tech menu pages (status with link quality, queue with retry, recent
transactions, wait analysis with units), the console's `link`, `recent` and
`wait`, and the wait analysis telling the customer's time from the
terminal's: a slow customer and a slow card reader no longer look alike.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import dismiss, start_sale  # noqa: E402
from payterm_tools.sim.cardsim import TEST_PINS  # noqa: E402

HOST_WAIT = 30
PIN = "4321"


def _answer(lines):
    return [l for l in lines if l != "OK" and not l.startswith("# ")]


def _txn(terminal, timeout=HOST_WAIT):
    return [g.decode() for g in terminal.console.expect(r"# TXN (\S+) (\w+) (\w+)", timeout).groups()]


def _menu(terminal):
    """Opens the technician menu; the first whole screen of its first page, rows joined by ' | '."""
    terminal.panel.wait_screen("READY", 10)
    drawn = terminal.panel.frames
    terminal.panel.press("F9")
    terminal.panel.wait_screen("ENTER PIN", 10)
    terminal.panel.press(PIN + "E")
    return " | ".join(terminal.panel.wait_frame(drawn, r"^1/7 STATUS", timeout=10))


def _page_rows(terminal, title, scrolls=40):
    """Every body row of the page whose title starts with `title`, scrolling to its end with 8
    (one key, one whole screen drawn: half-drawn screens are never read)."""
    seen = []
    rows = terminal.panel.wait_frame(-1, r"^%s" % re.escape(title))
    for _ in range(scrolls):
        assert rows[0].startswith(title), rows
        for r in rows[1:]:
            if r and r not in seen:
                seen.append(r)
        if "8:MORE" not in rows[0]:
            return seen
        drawn = terminal.panel.frames
        terminal.panel.press("8")
        rows = terminal.panel.wait_frame(drawn, timeout=10)
    raise AssertionError("page %s still says 8:MORE after %d scrolls; rows: %s" % (title, scrolls, seen))


def _next_page(terminal, title):
    drawn = terminal.panel.frames
    terminal.panel.press("#")
    terminal.panel.wait_frame(drawn, r"^%s" % re.escape(title), timeout=5)


def _waited(terminal, ref, timeout=15):
    """The console's `# WAIT <ref> customer=..ms terminal=..ms <stage>=<ms>...` line, once the record is closed
    (after the receipt): {stage: ms} with the two sides' sums as "customer" and "terminal"."""
    m = terminal.console.expect(r"# WAIT %s customer=(\d+)ms terminal=(\d+)ms ([^\n]*)" % re.escape(ref), timeout)
    rec = dict((k, int(v)) for k, v in (kv.split("=") for kv in m.group(3).decode().split()))
    rec["customer"], rec["terminal"] = int(m.group(1)), int(m.group(2))
    return rec


def _history(terminal):
    w = [json.loads(l) for l in _answer(terminal.console.command("export")) if '"kind": "waits"' in l][0]
    return w["history"]


def test_menu_pages_show_link_quality_recent_transactions_and_waits_with_units(terminal, card_reader, acquirer):
    start_sale(terminal, "1250")
    card_reader.swipe("visa")
    ref = _txn(terminal)[0]
    dismiss(terminal)
    first = _menu(terminal)
    assert first.startswith("1/7 STATUS    8:MORE | #*:PAGE 8/2:SCROLL"), "the page says how to move: %s" % first
    status = _page_rows(terminal, "1/7 STATUS")
    host = "%s:%d" % tuple(acquirer.address)
    for want in ("LINK online", "HOST " + host, "BREAKER closed", "RETRIES 0 TRIPS 0"):
        assert want in status, (want, status)
    assert any(r.startswith("ECHO ") for r in status), status
    assert terminal.panel.display()[0] == "1/7 STATUS      2:UP", "at the end the title says where the rest is"
    _next_page(terminal, "2/7 FAULTS")
    _next_page(terminal, "3/7 QUEUE")
    assert _page_rows(terminal, "3/7 QUEUE") == ["NOTHING QUEUED"]
    _next_page(terminal, "4/7 RECENT")
    recent = _page_rows(terminal, "4/7 RECENT")
    assert recent[:2] == ["%s SALE APPROVED" % ref, " EUR 12.50 *0010"], recent
    _next_page(terminal, "5/7 WAITS")
    waits = _page_rows(terminal, "5/7 WAITS", 30)
    assert waits[0] == "TXNS 1", waits
    assert re.match(r"CUSTOMER \d+% OF WAIT", waits[1]) and re.match(r"TERMINAL \d+% OF WAIT", waits[3]), waits
    for r in waits:
        if r.startswith(" p50 "):
            assert re.match(r"^ p50 \d+(\.\d)?(ms|s) p95 \d+(\.\d)?(ms|s)$", r), "a time without its unit: %r" % r
    assert "PRESENT (CUST)" in waits and "HOST (TERM)" in waits and "READ (TERM)" in waits, waits
    terminal.panel.press("C")
    terminal.panel.wait_screen("READY", 10)


def test_queue_page_lists_a_pending_reversal_and_sends_it_now(terminal, card_reader, acquirer):
    acquirer.script("no_answer")  # the sale times out: a reversal is queued
    acquirer.script("no_answer", "no_answer", "no_answer", mti=("0400", "0401"))  # ... and answered late
    start_sale(terminal, "1250")
    card_reader.swipe("visa")
    ref = _txn(terminal)[0]
    dismiss(terminal)
    _menu(terminal)
    for title in ("2/7 FAULTS", "3/7 QUEUE"):
        _next_page(terminal, title)
    rows = _page_rows(terminal, "3/7 QUEUE")
    assert rows[0] == "REVERSAL %s" % ref and rows[1].startswith(" REVERSING TRY "), rows
    assert " EUR 12.50 NEXT " in rows[2] and "E: SEND ALL NOW" in rows, rows
    assert " HST-01" in rows
    terminal.panel.press("E")
    terminal.panel.wait_screen(r"^3/7 QUEUE.* \| SENDING 1 NOW", 5)
    deadline = time.monotonic() + HOST_WAIT
    while not any(e["kind"] == "reversal" and e["rc"] == "00" for e in acquirer.ledger):
        assert time.monotonic() < deadline, "the reversal was not sent"
        time.sleep(0.1)
    terminal.panel.press("C")
    terminal.panel.wait_screen("READY", 10)
    while _answer(terminal.console.command("saf")) != ["nothing queued"]:
        assert time.monotonic() < deadline + 5, "the acknowledged reversal stays queued"
        time.sleep(0.2)


def test_console_link_recent_and_why_customers_waited(terminal, card_reader, acquirer):
    acquirer.script("no_answer")
    start_sale(terminal, "1250")
    card_reader.swipe("visa")
    timed_out = _txn(terminal)[0]
    dismiss(terminal)
    start_sale(terminal, "300")
    card_reader.tap("mastercard")
    ok = _txn(terminal)[0]
    card_reader.remove()
    _waited(terminal, ok)  # the record closes after the receipt has printed
    link = dict(l.split(": ", 1) for l in _answer(terminal.console.command("link")))
    assert link["host"] == "%s:%d" % tuple(acquirer.address) and link["link"] == "online"
    assert link["breaker"] == "closed" and int(link["requests"]) >= 2 and int(link["ambiguous"]) == 1, link
    recent = _answer(terminal.console.command("recent 2"))
    assert recent[0].startswith("%s sale approved amt=300 cur=978 pan=541333******0434" % ok), recent
    assert recent[1].startswith("%s sale " % timed_out) and recent[1].endswith("code=HST-01"), recent
    for l in recent:
        assert "5413330089010434" not in l and "4761739001010010" not in l
    w = _answer(terminal.console.command("wait"))
    assert w[0] == "txns 2", w
    assert re.match(r"customer share=\d+% p50=\d+ms p95=\d+ms total=\d+ms", w[1]), w
    assert re.match(r"terminal share=\d+% p50=\d+ms p95=\d+ms total=\d+ms", w[2]), w
    why = [l for l in w if l.startswith("why ")]
    assert why and why[0].startswith("why customers wait most at host ("), w
    assert "the cause is HST-01 NO HOST RESPONSE; do: Check network latency" in why[0], why


def test_wait_analysis_tells_a_slow_customer_from_a_slow_reader(terminal, card_reader, acquirer):
    # Customer time: until the card is presented, typing the PIN. Terminal time: reading the card,
    # the host, printing. Each customer delay below is deliberate: it is what is measured.
    # a slow customer: 2 s to find the card, a normal swipe
    start_sale(terminal, "100")
    time.sleep(2.0)
    card_reader.swipe("visa")
    ref1 = _txn(terminal)[0]
    live1 = _waited(terminal, ref1)
    dismiss(terminal)
    # a slow reader: the card at once, but the magstripe module delivers its tracks over ~1.5 s
    r, w = os.pipe()
    real = card_reader.mag_fd
    card_reader.mag_fd = w
    card_reader.swipe("visa")
    card_reader.mag_fd = real
    data = os.read(r, 4096)
    os.close(r)
    os.close(w)
    start_sale(terminal, "200")
    for i in range(0, len(data), 4):  # each pause shorter than the 80 ms gap that ends a swipe
        os.write(real, data[i:i + 4])
        time.sleep(0.05)
    ref2 = _txn(terminal)[0]
    live2 = _waited(terminal, ref2)
    dismiss(terminal)
    # a slow PIN: the card at once, then 1.5 s to type the PIN
    start_sale(terminal, "300")
    card_reader.swipe("visa_pin")
    terminal.panel.wait_screen(r"ENTER PIN", HOST_WAIT)
    time.sleep(1.5)
    terminal.panel.press(TEST_PINS["visa_pin"] + "E")
    ref3 = _txn(terminal)[0]
    live3 = _waited(terminal, ref3)
    hist = dict((h[1], h[2]) for h in _history(terminal))
    slow_customer, slow_reader, slow_pin = hist[ref1], hist[ref2], hist[ref3]
    assert slow_customer["present"] >= 1900 and slow_customer["read"] < 600, slow_customer
    assert slow_reader["read"] >= 1000 and slow_reader["present"] < 900, slow_reader
    assert slow_pin["pin"] >= 1400 and slow_pin["present"] < 900 and slow_pin["read"] < 600, slow_pin
    for stages in (slow_customer, slow_reader, slow_pin):
        assert {"amount", "present", "read", "host", "print"} <= set(stages), stages
        assert "card" not in stages
    # the same record on the console as it closed, each stage on its side
    for stages, live in ((slow_customer, live1), (slow_reader, live2), (slow_pin, live3)):
        assert dict((k, v) for k, v in live.items() if k not in ("customer", "terminal")) == stages, (live, stages)
        cust = sum(v for k, v in stages.items() if k in ("amount", "confirm", "present", "pin"))
        assert (live["customer"], live["terminal"]) == (cust, sum(stages.values()) - cust), live
    assert live1["customer"] > live1["terminal"] and slow_customer["present"] >= 1900, "the customer was slow"
    assert slow_reader["read"] > slow_reader["present"], "the reader was slow: terminal time"
    assert live3["customer"] >= slow_pin["pin"] >= 1400, "typing the PIN is the customer's time"
    dismiss(terminal)


def test_payterm_diag_prints_why_customers_waited(terminal, card_reader, acquirer, capsys):
    from payterm_tools.cli import main

    acquirer.script(("decline", "51"))
    start_sale(terminal, "2000")
    card_reader.swipe("visa")
    _txn(terminal)
    dismiss(terminal)
    assert main(["diag", "--port", terminal.console_path, "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert "Why customers waited (1 payments)" in out
    assert re.search(r"  customer  +\d+% of all waiting  p50 +\d+ ms  p95 +\d+ ms per payment", out), out
    assert "customers wait most at " in out
    assert re.search(r"  present   customer p50 +\d+ ms", out) and re.search(r"  read      terminal p50", out), out
    assert "Last echo test" in out and "Recent transactions (newest first)" in out
    assert "4761739001010010" not in out

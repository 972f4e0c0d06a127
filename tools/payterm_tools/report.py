"""Self-contained HTML diagnostics report (inline CSS + SVG, no external assets).

Made for sending to support: one file that opens offline in any browser, read
at a glance. From the top:

- warnings first: offline sales not yet with the bank, failed advices
  (HST-07, with the technician's remedy), pending reversals, link offline;
- why customers waited: customer time apart from terminal time, and the
  answer "customers wait most at X; the cause is code Y; do Z";
- failures by code in a chosen window (the last `days` days of the
  terminal's per-day counts), customer-facing apart from background work,
  each bar in its category's colour;
- wait per stage as p50/p95 bars in ms, customer stages apart from terminal
  stages, and the ranked causes of terminal time;
- link quality, status (plain labels, units), offline queue, recent
  transactions, failures with remedies, the last faults.

Colours mean one thing each: a failure category always has the colour of
CAT_COLORS; wait charts use SIDE_COLORS (customer grey, terminal brown, p95 a
lighter tint), which no category uses. Cards sit in a dense grid, so the page
has no large empty area.
"""
import html as _html
import time

CAT_COLORS = {
    "card": "#4e79a7", "issuer": "#f28e2b", "network": "#e15759", "host": "#76b7b2",
    "hardware": "#59a14f", "operator": "#edc948", "system": "#b07aa1",
}
# side -> (p50 colour, p95 colour); disjoint from CAT_COLORS
SIDE_COLORS = {"customer": ("#7b7b7b", "#c9c9c9"), "terminal": ("#9c755f", "#d9c3b5")}
BACKGROUND_OPACITY = 0.35  # background-work failures: the category colour, lighter
DEFAULT_DAYS = 7

# status keys of the console export -> (label, formatter)
_BYTES = lambda v: "%.1f KiB" % (int(v) / 1024.0)  # noqa: E731
STATUS_LABELS = (
    ("tid", "Terminal ID", str), ("board", "Board", str), ("version", "Firmware", str),
    ("link", "Link to the bank", str), ("host", "Acquirer host", str), ("breaker", "Circuit breaker", str),
    ("saf_pending", "Offline sales waiting", lambda v: "%s" % v), ("saf_failed", "Offline sales failed (HST-07)", str),
    ("saf_failed_refs", "Failed offline sales (refs)", str), ("reversals_pending", "Reversals pending", str),
    ("saf", "Offline queue by state", str), ("uptime_s", "Up since boot", lambda v: fmt_s(v)),
    ("boot_count", "Boots", str), ("reset_reason", "Last reset", str), ("last_fault", "Last fault", str),
    ("mem_free", "Free heap", _BYTES), ("screen", "Display now", str),
)
LINK_LABELS = (
    ("link", "Link", str), ("host", "Host", str), ("breaker", "Breaker", str), ("last_echo", "Last echo test", str),
    ("requests", "Requests since boot", str), ("retries", "Retries since boot", str),
    ("retries_total", "Retries (all time)", str), ("breaker_trips", "Breaker trips since boot", str),
    ("host_switches", "Host switches since boot", str), ("ambiguous", "Answers missing (reversed)", str),
    ("probes", "Echo probes while offline", str),
)


def fmt_time(t):
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def fmt_s(s):
    s = int(s or 0)
    if s < 60:
        return "%d s" % s
    if s < 3600:
        return "%d min %d s" % (s // 60, s % 60)
    if s < 86400:
        return "%d h %d min" % (s // 3600, (s % 3600) // 60)
    return "%d d %d h" % (s // 86400, (s % 86400) // 3600)


def fmt_ms(ms):
    ms = int(ms or 0)
    return "%d ms" % ms if ms < 10000 else "%.1f s" % (ms / 1000.0)


def _e(s):
    return _html.escape(str(s), quote=True)


def humanize(key):
    return str(key).replace("_", " ")


# ---------------------------------------------------------------- data
def window_counts(stats, days=DEFAULT_DAYS, now=None):
    """{code: [customer-facing, background]} over the last `days` days of the per-day counts.

    Without per-day counts (older firmware) the lifetime counts stand in, with the background
    counts apart where known. Returns (counts, described window).
    """
    per_day = stats.get("days") or {}
    out = {}
    if per_day:
        last = int(now // 86400) if now else max(int(d) for d in per_day)
        for d, codes in per_day.items():
            if last - int(d) < days:
                for c, (fg, bg) in codes.items():
                    v = out.setdefault(c, [0, 0])
                    v[0] += fg
                    v[1] += bg
        return out, "last %d day%s" % (days, "" if days == 1 else "s")
    bgs = stats.get("background") or {}
    for c, n in (stats.get("codes") or {}).items():
        b = bgs.get(c, 0)
        out[c] = [n - b, b]
    return out, "since the counters were cleared"


def warnings(exp):
    """[(severity, text)] a support person must see first."""
    s, codes = exp.get("status", {}), exp.get("codes", {})
    out = []
    queue = exp.get("queue", [])
    failed = [q for q in queue if q.get("st") == "failed"]
    n_failed = int(s.get("saf_failed", len(failed)) or 0)
    if n_failed:
        rem = codes.get("HST-07", {}).get("remedy", "")
        refs = s.get("saf_failed_refs") or " ".join(q["ref"] for q in failed)
        out.append(("critical", "%d offline sale%s not delivered to the bank (HST-07): %s. %s" % (
            n_failed, "" if n_failed == 1 else "s", refs, rem)))
    pend = int(s.get("saf_pending", 0) or 0)
    if pend:
        out.append(("warning", "%d offline sale%s waiting to be uploaded (store-and-forward)." % (
            pend, "" if pend == 1 else "s")))
    rev = int(s.get("reversals_pending", 0) or 0)
    if rev:
        rem = codes.get("HST-05", {}).get("remedy", "")
        out.append(("warning", "%d reversal%s not yet acknowledged by the bank (HST-05). %s" % (
            rev, "" if rev == 1 else "s", rem)))
    if s.get("link") == "offline":
        out.append(("warning", "The terminal is offline: the circuit breaker is %s." % s.get("breaker", "open")))
    return out


def why(exp):
    """The terminal's answer "customers wait most at X; the cause is code Y; do Z" (HTML), or ''."""
    w = exp.get("waits", {})
    text = w.get("why") or ""
    if not text:
        return ""
    top = (w.get("top") or [{}])[0]
    out = _e(text[0].upper() + text[1:])
    st = top.get("stage")
    if st:
        out = out.replace("at %s (" % _e(st), "at <b>%s</b> (" % _e(st), 1)
    code = top.get("code")
    if code:
        out = out.replace(" %s " % _e(code), " <code>%s</code> " % _e(code), 1)
    return out + "."


# ---------------------------------------------------------------- charts
def hbars(items, width=540, label_w=210, unit="", opacity=None):
    """Horizontal bars: items = [(label, [(value, colour, tooltip)], right text)] (segments stack)."""
    if not items:
        return '<p class="none">none recorded</p>'
    row = 24
    h = row * len(items) + 6
    vmax = max(sum(v for v, _, _ in segs) for _, segs, _ in items) or 1
    bw = width - label_w - 90
    out = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img">' % (width, h)]
    for i, (label, segs, right) in enumerate(items):
        y = 3 + i * row
        out.append('<text x="%d" y="%d" class="lbl" text-anchor="end">%s</text>' % (label_w - 8, y + 15, _e(label)))
        x = label_w
        for j, (v, colour, tip) in enumerate(segs):
            if v <= 0:
                continue
            w = max(2, int(bw * v / vmax))
            op = ' fill-opacity="%s"' % opacity[j] if opacity and opacity[j] is not None else ""
            out.append('<rect x="%d" y="%d" width="%d" height="17" rx="2" fill="%s"%s><title>%s</title></rect>'
                       % (x, y + 2, w, colour, op, _e(tip)))
            x += w
        out.append('<text x="%d" y="%d" class="val">%s</text>' % (x + 6, y + 15, _e(right)))
    out.append("</svg>")
    return "".join(out)


def failure_bars(counts, codes):
    rows = sorted(counts.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))[:15]
    items = []
    for c, (fg, bg) in rows:
        e = codes.get(c, {})
        col = CAT_COLORS.get(e.get("category", "system"), "#999")
        label = "%s %s" % (c, e.get("display", ""))
        right = "%d" % fg + (" +%d bg" % bg if bg else "")
        items.append((label, [(fg, col, "%s: %d" % (label, fg)), (bg, col, "%s background: %d" % (label, bg))], right))
    return hbars(items, opacity=(None, BACKGROUND_OPACITY))


def category_bars(counts, codes):
    cats = {}
    for c, (fg, bg) in counts.items():
        cat = codes.get(c, {}).get("category", "system")
        v = cats.setdefault(cat, [0, 0])
        v[0] += fg
        v[1] += bg
    items = []
    for cat, (fg, bg) in sorted(cats.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        col = CAT_COLORS.get(cat, "#999")
        items.append((cat, [(fg, col, "%s: %d" % (cat, fg)), (bg, col, "%s background: %d" % (cat, bg))],
                      "%d" % fg + (" +%d bg" % bg if bg else "")))
    return hbars(items, label_w=110, opacity=(None, BACKGROUND_OPACITY))


def stage_bars(w):
    """p50 and p95 per stage (ms), customer stages first, one pair of bars per stage."""
    stages = w.get("stages") or {}
    if not stages:
        return '<p class="none">no transactions recorded</p>'
    order = sorted(stages, key=lambda k: (stages[k].get("side", "terminal") != "customer", -stages[k]["p95"]))
    width, label_w, row = 540, 130, 34
    h = row * len(order) + 8
    vmax = max(max(stages[k]["p95"], stages[k]["p50"]) for k in order) or 1
    bw = width - label_w - 120
    out = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img">' % (width, h)]
    for i, k in enumerate(order):
        s = stages[k]
        side = s.get("side", "terminal")
        c50, c95 = SIDE_COLORS.get(side, SIDE_COLORS["terminal"])
        y = 4 + i * row
        out.append('<text x="%d" y="%d" class="lbl" text-anchor="end">%s</text>' % (label_w - 8, y + 13, _e(k)))
        out.append('<text x="%d" y="%d" class="sub2" text-anchor="end">%s</text>' % (label_w - 8, y + 26, side))
        for j, (key, col) in enumerate((("p50", c50), ("p95", c95))):
            v = s[key]
            wpx = max(2, int(bw * v / vmax))
            yy = y + 2 + j * 14
            out.append('<rect x="%d" y="%d" width="%d" height="12" rx="2" fill="%s"><title>%s %s: %d ms</title></rect>'
                       % (label_w, yy, wpx, col, _e(k), key, v))
            out.append('<text x="%d" y="%d" class="val">%s %s</text>' % (label_w + wpx + 5, yy + 10, key, fmt_ms(v)))
    out.append("</svg>")
    return "".join(out)


def split_bar(w):
    """One bar: customer time against terminal time (share of all waiting), with p50/p95 per transaction."""
    c, t = w.get("customer") or {}, w.get("terminal") or {}
    tot = (c.get("total", 0) + t.get("total", 0)) or 1
    width = 1080
    cw = int(width * c.get("total", 0) / tot)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d 30" width="100%%" role="img">' % width]
    for x, wpx, side, d in ((0, cw, "customer", c), (cw, width - cw, "terminal", t)):
        if wpx <= 0:
            continue
        out.append('<rect x="%d" y="2" width="%d" height="26" fill="%s"><title>%s time: %d%%</title></rect>'
                   % (x, wpx, SIDE_COLORS[side][0], side, d.get("share", 0)))
        if wpx > 140:
            out.append('<text x="%d" y="20" class="inbar">%s %d%% &middot; p50 %s &middot; p95 %s per payment</text>'
                       % (x + 8, side, d.get("share", 0), fmt_ms(d.get("p50", 0)), fmt_ms(d.get("p95", 0))))
    out.append("</svg>")
    return "".join(out)


def cause_bars(w, codes):
    items = []
    for c in w.get("causes") or []:
        code = c.get("code")
        label = "%s: %s" % (c["stage"], code or "no failure")
        tip = "stage %s, %s: %d ms of terminal time" % (c["stage"], code or "no failure", c["total"])
        items.append((label, [(c["total"], SIDE_COLORS["terminal"][0], tip)],
                      "%d%% (%s)" % (c["share"], fmt_ms(c["total"]))))
    return hbars(items, label_w=170)


def legend_categories(cats):
    return "".join('<span class="key"><i style="background:%s"></i>%s</span>' % (CAT_COLORS.get(c, "#999"), _e(c))
                   for c in cats) + \
        '<span class="key"><i style="background:#888;opacity:%.2f"></i>lighter: background work</span>' % BACKGROUND_OPACITY


def legend_sides():
    return "".join('<span class="key"><i style="background:%s"></i>%s p50</span><span class="key"><i style="background:%s"></i>'
                   '%s p95</span>' % (SIDE_COLORS[s][0], s, SIDE_COLORS[s][1], s) for s in ("customer", "terminal"))


# ---------------------------------------------------------------- page
_CSS = """
body{max-width:1160px;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px auto;padding:0 12px;color:#222;background:#f6f7f9}
h1{font-size:21px;margin:0 0 2px} h2{font-size:15px;margin:0 0 8px;color:#333}
.sub{color:#666;margin-bottom:10px}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:12px;grid-auto-flow:row dense;align-items:start}
.wide{grid-column:1/-1}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:10px 14px}
table{border-collapse:collapse;width:100%} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{color:#555;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.lbl{font-size:12px;fill:#333} .val{font-size:11px;fill:#555} .sub2{font-size:10px;fill:#888} .inbar{font-size:12px;fill:#fff}
.none{color:#888;margin:4px 0}
.key{display:inline-block;margin-right:12px;font-size:12px} .key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.banner{border-radius:8px;padding:9px 14px;margin-bottom:8px;font-weight:600}
.banner.critical{background:#fde7e9;border:1px solid #e15759;color:#8a1c24} .banner.warning{background:#fff4dc;border:1px solid #edc948;color:#6b5200}
.banner.ok{background:#e8f4ea;border:1px solid #59a14f;color:#1e4d22}
.why{font-size:15px;margin:6px 0 8px}
.sev-critical{color:#b00020;font-weight:600} .sev-error{color:#c24b00} code{background:#f0f2f4;padding:0 3px;border-radius:3px}
"""


def html_report(exp, title="payterm diagnostics", days=DEFAULT_DAYS):
    st, w, s, codes = exp.get("stats", {}), exp.get("waits", {}), exp.get("status", {}), exp.get("codes", {})
    counts, window = window_counts(st, days, exp.get("now"))
    p = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>%s</title><style>%s</style></head><body>" % (_e(title), _CSS)]
    p.append("<h1>%s</h1><div class='sub'>terminal %s &middot; board %s &middot; firmware %s &middot; %d boots &middot; "
             "up %s%s</div>" % (_e(title), _e(s.get("tid", "-")), _e(s.get("board", "-")), _e(s.get("version", "-")),
                                st.get("boot_count", 0), fmt_s(st.get("uptime_s", 0)),
                                (" &middot; exported %s UTC" % fmt_time(exp["now"])) if exp.get("now") else ""))
    ws = warnings(exp)
    for sev, text in ws:
        p.append("<div class='banner %s'>%s</div>" % (sev, _e(text)))
    if not ws:
        p.append("<div class='banner ok'>No offline sales, failed advices or reversals waiting; link %s.</div>"
                 % _e(s.get("link", "?")))
    p.append("<div class='grid'>")
    sentence = why(exp)
    p.append("<div class='card wide'><h2>Why customers waited (%d payments)</h2>%s<p class='why'>%s</p>%s</div>" % (
        w.get("txns", 0), split_bar(w) if w.get("txns") else "", sentence or "No payments recorded yet.",
        "<div>%s</div>" % legend_sides() if w.get("txns") else ""))
    cats = sorted({codes.get(c, {}).get("category", "system") for c in counts})
    p.append("<div class='card'><h2>Failures by code, %s (customer-facing + background)</h2>%s<div>%s</div></div>" % (
        _e(window), failure_bars(counts, codes), legend_categories(cats) if counts else ""))
    p.append("<div class='card'><h2>Wait per stage: p50 and p95 per payment</h2>%s</div>" % stage_bars(w))
    p.append("<div class='card'><h2>Causes of terminal time (stage: failure code)</h2>%s</div>" % cause_bars(w, codes))
    p.append("<div class='card'><h2>Failures by category, %s</h2>%s</div>" % (_e(window), category_bars(counts, codes)))
    link = exp.get("link") or {}
    lq = "".join("<tr><td>%s</td><td class='n'>%s</td></tr>" % (_e(lbl), _e(f(link[k])))
                 for k, lbl, f in LINK_LABELS if k in link)
    lq += "".join("<tr><td>%s (all time)</td><td class='n'>%d</td></tr>" % (_e(humanize(k)), v)
                  for k, v in sorted((st.get("counters") or {}).items()))
    p.append("<div class='card'><h2>Link quality</h2><table>%s</table></div>" % (
        lq or "<tr><td>no link data</td></tr>"))
    known = set()
    rows = []
    for k, lbl, f in STATUS_LABELS:
        if k in s:
            known.add(k)
            rows.append("<tr><td>%s</td><td>%s</td></tr>" % (_e(lbl), _e(f(s[k]))))
    for k in sorted(s):
        if k not in known:
            rows.append("<tr><td>%s</td><td>%s</td></tr>" % (_e(humanize(k)), _e(s[k])))
    rb = "".join("<tr><td>reboots: %s</td><td>%d</td></tr>" % (_e(humanize(k)), v) for k, v in sorted(st.get("boots", {}).items()))
    p.append("<div class='card'><h2>Status</h2><table>%s%s</table></div>" % ("".join(rows), rb))
    queue = exp.get("queue", [])
    if queue:
        qr = "".join("<tr><td>%s</td><td><code>%s</code></td><td>%s</td><td class='n'>%s</td><td class='n'>%d</td>"
                     "<td>%s</td></tr>" % (_e(q["what"]), _e(q["ref"]), _e(q.get("st", "")), _e(_amount(q)),
                                          q.get("tries", 0), _e(q.get("code") or "")) for q in queue)
        p.append("<div class='card'><h2>Offline queue and reversals</h2><table><tr><th>what</th><th>ref</th><th>state</th>"
                 "<th>amount</th><th>tries</th><th>code</th></tr>%s</table></div>" % qr)
    recent = exp.get("recent", [])
    if recent:
        rr = "".join("<tr><td><code>%s</code></td><td>%s</td><td>%s</td><td class='n'>%s</td><td>%s</td><td>%s</td></tr>" % (
            _e(t["ref"]), _e(t.get("txn", "")), _e(t.get("status", "")), _e(_amount(t)), _e(t.get("pan", "")),
            _e(t.get("code") or "")) for t in recent)
        p.append("<div class='card'><h2>Recent transactions (newest first)</h2><table><tr><th>ref</th><th>kind</th>"
                 "<th>status</th><th>amount</th><th>card</th><th>code</th></tr>%s</table></div>" % rr)
    by_code = sorted(counts.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))[:15]
    tops = "".join("<tr><td><code>%s</code></td><td>%s</td><td class='n'>%d</td><td class='n'>%d</td><td>%s</td>"
                   "<td class='sev-%s'>%s</td><td>%s</td></tr>" % (
                       _e(c), _e(codes.get(c, {}).get("display", "")), n[0], n[1], _e(codes.get(c, {}).get("category", "")),
                       _e(codes.get(c, {}).get("severity", "")), _e(codes.get(c, {}).get("severity", "")),
                       _e(codes.get(c, {}).get("remedy", ""))) for c, n in by_code)
    p.append("<div class='card wide'><h2>Failures and remedies, %s</h2><table><tr><th>code</th><th>display</th>"
             "<th>customer-facing</th><th>background</th><th>category</th><th>severity</th><th>remedy</th></tr>%s</table></div>"
             % (_e(window), tops or "<tr><td colspan=7>none</td></tr>"))
    fl = "".join("<tr><td class='n'>%s</td><td><code>%s</code></td><td class='n'>%d</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
        _e(fmt_time(f["time"])), _e(f["code"]), f["count"], _e(f["stage"] or "-"),
        _e(codes.get(f["code"], {}).get("display", "")), _e(f.get("ctx", ""))) for f in exp.get("faults", [])[:20])
    p.append("<div class='card wide'><h2>Last faults (newest first)</h2><table><tr><th>time (UTC)</th><th>code</th><th>repeats</th>"
             "<th>stage</th><th>display</th><th>context</th></tr>%s</table></div>" % (fl or "<tr><td colspan=6>none</td></tr>"))
    p.append("</div></body></html>")
    return "".join(p)


def _amount(t):
    amt, cur = t.get("amt", 0), t.get("cur", 0)
    exp = 3 if cur in (48, 400, 414, 512, 788) else 0 if cur in (352, 392, 410) else 2
    if not exp:
        return "%d" % amt
    return "%d.%0*d" % (amt // 10 ** exp, exp, amt % 10 ** exp)


def html(exp, title="payterm diagnostics", days=DEFAULT_DAYS):
    """The report page for an export parsed by payterm_tools.diag.parse_export."""
    return html_report(exp, title, days)

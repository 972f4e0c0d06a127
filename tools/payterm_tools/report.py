"""Self-contained HTML diagnostics report (inline CSS + SVG, no external assets).

Made for sending to support: one file that opens offline in any browser.
Charts: failures by code and by category, wait per stage p50/p95, and wait per
stage over time (one stacked bar per recent transaction).
"""
import html as _html
import time

CAT_COLORS = {
    "card": "#4e79a7", "issuer": "#f28e2b", "network": "#e15759", "host": "#76b7b2",
    "hardware": "#59a14f", "operator": "#edc948", "system": "#b07aa1",
}
STAGE_COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]


def fmt_time(t):
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _e(s):
    return _html.escape(str(s), quote=True)


def hbars(items, width=560, label_w=230, color=lambda k: "#4e79a7", unit=""):
    """Horizontal bar chart: items = [(label, value, key)]."""
    if not items:
        return '<p class="none">none recorded</p>'
    row = 26
    h = row * len(items) + 10
    vmax = max(v for _, v, _ in items) or 1
    bw = width - label_w - 70
    out = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" style="max-width:%dpx" role="img">'
           % (width, h, width)]
    for i, (label, v, key) in enumerate(items):
        y = 5 + i * row
        w = max(2, int(bw * v / vmax))
        out.append('<text x="%d" y="%d" class="lbl" text-anchor="end">%s</text>' % (label_w - 8, y + 16, _e(label)))
        out.append('<rect x="%d" y="%d" width="%d" height="18" rx="3" fill="%s"><title>%s: %s</title></rect>'
                   % (label_w, y + 2, w, color(key), _e(label), v))
        out.append('<text x="%d" y="%d" class="val">%s%s</text>' % (label_w + w + 6, y + 16, v, unit))
    out.append("</svg>")
    return "".join(out)


def stacked_over_time(history, stages, width=1100, height=300):
    """One stacked bar per transaction: ms spent in each stage."""
    if not history:
        return '<p class="none">no transactions recorded</p>'
    left, bottom, top = 60, 40, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    totals = [sum(t[2].values()) for t in history]
    vmax = max(totals) or 1
    n = len(history)
    slot = plot_w / n
    bw = max(3, slot * 0.7)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img">' % (width, height)]
    for k in range(5):
        v = vmax * k / 4
        y = top + plot_h - plot_h * k / 4
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>' % (left, width - 10, y, y))
        out.append('<text x="%d" y="%.1f" class="axis" text-anchor="end">%.1fs</text>' % (left - 6, y + 4, v / 1000.0))
    for i, (t, ref, parts) in enumerate(history):
        x = left + i * slot + (slot - bw) / 2
        y = top + plot_h
        for j, st in enumerate(stages):
            ms = parts.get(st, 0)
            if not ms:
                continue
            hgt = plot_h * ms / vmax
            y -= hgt
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d ms</title></rect>'
                       % (x, y, bw, hgt, STAGE_COLORS[j % len(STAGE_COLORS)], _e(ref), _e(st), ms))
        if n <= 16 or i % max(1, n // 8) == 0:
            out.append('<text x="%.1f" y="%d" class="axis" text-anchor="middle">%s</text>'
                       % (x + bw / 2, top + plot_h + 16, _e(time.strftime("%H:%M", time.gmtime(t)))))
    out.append('<text x="%d" y="%d" class="axis">transactions, oldest to newest</text>' % (left, height - 6))
    out.append("</svg>")
    return "".join(out)


def legend(stages):
    return "".join('<span class="key"><i style="background:%s"></i>%s</span>' % (STAGE_COLORS[j % len(STAGE_COLORS)], _e(s))
                   for j, s in enumerate(stages))


_CSS = """
body{max-width:1140px;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:0 0 10px;color:#333}
.sub{color:#666;margin-bottom:18px}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:14px 16px;margin-bottom:16px}
table{border-collapse:collapse;width:100%} td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{color:#555;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
.lbl{font-size:12px;fill:#333} .val{font-size:12px;fill:#555} .axis{font-size:11px;fill:#666}
.grid{stroke:#e3e6ea} .none{color:#888}
.key{display:inline-block;margin-right:14px;font-size:12px} .key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.sev-critical{color:#b00020;font-weight:600} .sev-error{color:#c24b00} code{background:#f0f2f4;padding:0 3px;border-radius:3px}
"""


def html_report(exp, title="payterm diagnostics"):
    st, w, s, codes = exp["stats"], exp["waits"], exp["status"], exp["codes"]
    cat_of = lambda c: codes.get(c, {}).get("category", "system")  # noqa: E731
    by_code = sorted(st.get("codes", {}).items(), key=lambda kv: (-kv[1], kv[0]))[:15]
    code_items = [("%s %s" % (c, codes.get(c, {}).get("display", "")), n, cat_of(c)) for c, n in by_code]
    by_cat = sorted(st.get("categories", {}).items(), key=lambda kv: -kv[1])
    stages_d = w.get("stages", {})
    stages = sorted(stages_d, key=lambda k: -stages_d[k]["total"])
    for t in w.get("history", []):
        for k in t[2]:
            if k not in stages:
                stages.append(k)
    p = []
    p.append("<!DOCTYPE html><html><head><meta charset='utf-8'><title>%s</title><style>%s</style></head><body>" % (_e(title), _CSS))
    p.append("<h1>%s</h1><div class='sub'>terminal %s &middot; board %s &middot; firmware %s &middot; %d boots, up %ss</div>" % (
        _e(title), _e(s.get("tid", s.get("terminal", "-"))), _e(s.get("board", "-")), _e(s.get("version", "-")),
        st.get("boot_count", 0), st.get("uptime_s", 0)))
    p.append("<div class='grid2'><div class='card'><h2>Failures by code</h2>%s</div>" % hbars(
        code_items, color=lambda k: CAT_COLORS.get(k, "#999")))
    p.append("<div class='card'><h2>Failures by category</h2>%s</div></div>" % hbars(
        [(c, n, c) for c, n in by_cat], label_w=120, color=lambda k: CAT_COLORS.get(k, "#999")))
    p.append("<div class='card'><h2>Wait per stage over time</h2>%s<div>%s</div></div>" % (
        stacked_over_time(w.get("history", []), stages), legend(stages)))
    rows = "".join("<tr><td><i style='display:inline-block;width:10px;height:10px;background:%s'></i> %s</td><td class='n'>%d</td>"
                   "<td class='n'>%d ms</td><td class='n'>%d ms</td><td class='n'>%d ms</td></tr>" % (
                       STAGE_COLORS[j % len(STAGE_COLORS)], _e(k), stages_d[k]["n"], stages_d[k]["p50"], stages_d[k]["p95"], stages_d[k]["max"])
                   for j, k in enumerate(stages) if k in stages_d)
    top = ", ".join("%s (%d%%)" % (_e(c["stage"]), c["share"]) for c in w.get("top", [])) or "-"
    p.append("<div class='grid2'><div class='card'><h2>Wait analysis (%d transactions)</h2><table><tr><th>stage</th><th>n</th>"
             "<th>p50</th><th>p95</th><th>max</th></tr>%s</table><p>Customers waited most on: <b>%s</b></p></div>" % (
                 w.get("txns", 0), rows, top))
    lq = "".join("<tr><td>%s</td><td class='n'>%d</td></tr>" % (_e(k), v) for k, v in sorted(st.get("counters", {}).items()))
    rb = "".join("<tr><td>reboot: %s</td><td class='n'>%d</td></tr>" % (_e(k), v) for k, v in sorted(st.get("boots", {}).items()))
    sr = "".join("<tr><td>%s</td><td>%s</td></tr>" % (_e(k), _e(v)) for k, v in sorted(s.items()))
    p.append("<div class='card'><h2>Status, link quality, reboots</h2><table>%s%s%s</table></div></div>" % (
        sr, lq or "<tr><td>link</td><td>no retries or trips</td></tr>", rb))
    tops = "".join("<tr><td><code>%s</code></td><td>%s</td><td class='n'>%d</td><td>%s</td><td class='sev-%s'>%s</td><td>%s</td></tr>" % (
        _e(c), _e(codes.get(c, {}).get("display", "")), n, _e(codes.get(c, {}).get("category", "")),
        _e(codes.get(c, {}).get("severity", "")), _e(codes.get(c, {}).get("severity", "")),
        _e(codes.get(c, {}).get("remedy", ""))) for c, n in by_code)
    p.append("<div class='card'><h2>Top failures and remedies</h2><table><tr><th>code</th><th>display</th><th>count</th>"
             "<th>category</th><th>severity</th><th>remedy</th></tr>%s</table></div>" % (tops or "<tr><td colspan=6>none</td></tr>"))
    fl = "".join("<tr><td>%s</td><td><code>%s</code></td><td class='n'>%d</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
        _e(fmt_time(f["time"])), _e(f["code"]), f["count"], _e(f["stage"] or "-"),
        _e(codes.get(f["code"], {}).get("display", "")), _e(f.get("ctx", ""))) for f in exp["faults"][:20])
    p.append("<div class='card'><h2>Last faults (newest first)</h2><table><tr><th>time (UTC)</th><th>code</th><th>repeats</th>"
             "<th>stage</th><th>display</th><th>context</th></tr>%s</table></div>" % (fl or "<tr><td colspan=6>none</td></tr>"))
    p.append("</body></html>")
    return "".join(p)


def html(exp, title="payterm diagnostics"):
    """The report page for an export parsed by payterm_tools.diag.parse_export."""
    return html_report(exp, title)

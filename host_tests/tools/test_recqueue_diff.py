"""Differential test of recqueue: hypothesis builds operation sequences in
CPython, the C module (core runtime) and the pure-Python fallback (core and
unix runtimes) replay them, and every result, output buffer and error (type
and message) must match. A snapshot's CRC is also checked against zlib.
"""
import os
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpy_runtimes

# The replayer runs inside MicroPython. Each input line is a Python literal
# (MicroPython's core port has no json): the first is the constructor, the
# rest are operations. It prints one line per operation.
REPLAYER = r'''
import sys, time

def load(impl):
    if impl == "c":
        import recqueue
        assert recqueue.IMPL == "c", recqueue.IMPL
        return recqueue.RecordQueue, recqueue.DeadlineQueue
    from mpt import recqueue_fallback

    ns = recqueue_fallback()
    return ns["RecordQueue"], ns["DeadlineQueue"]

def due(v):
    # ("t", k): k ticks from 0, wrapping below 0 to the top of the period.
    if type(v) is tuple:
        return time.ticks_add(0, v[1])
    return v

def wbuf(spec):
    kind, n = spec
    if kind == "ro":
        return bytes(n)
    return bytearray(n)

def run(impl, path):
    RQ, DQ = load(impl)
    q = None
    snap = b""
    with open(path) as f:
        lines = f.read().split("\n")
    for line in lines:
        if not line:
            continue
        op = eval(line)
        name = op[0]
        try:
            if name == "ring":
                q = RQ(op[1], op[2], op[3])
                r = None
            elif name == "deadline":
                q = DQ(op[1], op[2])
                r = None
            elif name == "push":
                r = q.push(op[1])
            elif name == "dpush":
                r = q.push(due(op[1]), op[2])
            elif name in ("pop_into", "peek_into"):
                b = wbuf(op[1])
                r = (getattr(q, name)(b), bytes(b))
            elif name == "pop_due_into":
                b = wbuf(op[2])
                r = (q.pop_due_into(due(op[1]), b), bytes(b))
            elif name == "push_many":
                r = q.push_many(op[1], op[2])
            elif name == "pop_many_into":
                b = wbuf(op[1])
                r = (q.pop_many_into(b, op[2]), bytes(b))
            elif name == "find":
                r = q.find(op[1], op[2])
            elif name == "snapshot":
                b = wbuf(op[1])
                n = q.snapshot_into(b)
                snap = bytes(b[:n])
                r = (n, q.snapshot_size(), snap)
            elif name == "restore":
                s = bytearray(snap)
                if op[1] is not None and s:
                    s[op[1] % len(s)] ^= op[2]
                if op[3] is not None:
                    s = s[:op[3]]
                r = q.restore(s)
            elif name == "len":
                r = (len(q), q.free(), bool(q))
            elif name == "stats":
                r = q.stats()
            elif name == "next_due":
                r = q.next_due()
            elif name == "clear":
                r = q.clear()
            else:
                r = "unknown op " + name
        except Exception as e:
            r = "EXC %s: %s" % (type(e).__name__, e)
        print(repr(r))

run(sys.argv[1], sys.argv[2])
'''

SIZES = st.integers(min_value=1, max_value=6)


def _bytes(n):
    return st.binary(min_size=n, max_size=n)


def _rec(isz):
    # mostly the right size, sometimes off by one, rarely not a buffer
    return st.one_of(
        _bytes(isz), _bytes(isz), _bytes(isz), _bytes(isz),
        st.binary(max_size=isz + 2), st.just(7),
    )


def _wb(isz):
    return st.one_of(
        st.tuples(st.just("rw"), st.just(isz)),
        st.tuples(st.just("rw"), st.just(isz)),
        st.tuples(st.just("rw"), st.integers(0, isz + 2)),
        st.tuples(st.just("ro"), st.just(isz)),
    )


def _common(isz):
    return [
        st.tuples(st.just("len")),
        st.tuples(st.just("stats")),
        st.tuples(st.just("clear")),
        st.tuples(st.just("snapshot"), st.one_of(
            st.tuples(st.just("rw"), st.integers(16, 200)),
            st.tuples(st.just("rw"), st.just(400)),
            st.tuples(st.just("ro"), st.just(400)),
        )),
        st.tuples(st.just("restore"),
                  st.one_of(st.none(), st.none(), st.integers(0, 400)),
                  st.integers(1, 255),
                  st.one_of(st.none(), st.none(), st.integers(0, 60))),
    ]


@st.composite
def ring_program(draw):
    cap = draw(st.integers(1, 8))
    isz = draw(SIZES)
    ow = draw(st.booleans())
    ops = st.one_of(
        st.tuples(st.just("push"), _rec(isz)),
        st.tuples(st.just("push"), _rec(isz)),
        st.tuples(st.just("pop_into"), _wb(isz)),
        st.tuples(st.just("peek_into"), _wb(isz)),
        st.integers(-1, cap * 2 + 1).flatmap(lambda n: st.tuples(
            st.just("push_many"), st.binary(max_size=max(0, n) * isz + 2), st.just(n))),
        st.tuples(st.just("pop_many_into"),
                  st.tuples(st.sampled_from(["rw", "rw", "ro"]), st.integers(0, isz * (cap + 2))),
                  st.integers(-1, cap + 2)),
        st.tuples(st.just("find"), st.integers(-1, isz + 1), st.binary(max_size=isz + 1)),
        *_common(isz),
    )
    return [("ring", cap, isz, ow)] + draw(st.lists(ops, max_size=40))


@st.composite
def deadline_program(draw):
    cap = draw(st.integers(1, 8))
    isz = draw(SIZES)
    ticks = st.one_of(
        st.tuples(st.just("t"), st.integers(-40, 40)),
        st.tuples(st.just("t"), st.integers(-40, 40)),
        st.integers(-3, 3),
        st.just(2 ** 70 + 5),
        st.just("5"),
    )
    ops = st.one_of(
        st.tuples(st.just("dpush"), ticks, _rec(isz)),
        st.tuples(st.just("dpush"), ticks, _rec(isz)),
        st.tuples(st.just("pop_due_into"), ticks, _wb(isz)),
        st.tuples(st.just("next_due")),
        *_common(isz),
    )
    return [("deadline", cap, isz)] + draw(st.lists(ops, max_size=40))


@pytest.fixture(scope="module")
def replayer(tmp_path_factory):
    for rt in ("core", "unix"):
        mpy_runtimes.binary(rt)  # fail early with "run make core" if missing
    p = tmp_path_factory.mktemp("rqdiff") / "replay.py"
    p.write_text(REPLAYER)
    return p


def _replay(replayer, runtime, impl, program, tmp):
    prog = tmp / ("prog_%s_%s.txt" % (runtime, impl))
    prog.write_text("".join(repr(op) + "\n" for op in program))
    res = mpy_runtimes.run(runtime, [str(replayer), impl, str(prog)], timeout=60)
    assert res.returncode == 0, "%s/%s crashed:\n%s" % (runtime, impl, res.stdout[-3000:])
    return res.stdout.splitlines()


def _check(replayer, program, tmp):
    c = _replay(replayer, "core", "c", program, tmp)
    py_core = _replay(replayer, "core", "py", program, tmp)
    py_unix = _replay(replayer, "unix", "py", program, tmp)
    assert len(c) == len(program), c[-5:]
    for i, op in enumerate(program):
        assert c[i] == py_core[i] == py_unix[i], "op %d %r:\n C      %s\n py     %s\n py/unix %s" % (
            i, op, c[i], py_core[i], py_unix[i])
    # Every snapshot taken must carry zlib's CRC-32 of its contents.
    for i, op in enumerate(program):
        if op[0] == "snapshot" and not c[i].startswith("'EXC"):
            snap = eval(c[i])[2]  # noqa: S307 - our own repr output
            assert struct.unpack("<I", snap[-4:])[0] == zlib.crc32(snap[:-4])


_SETTINGS = settings(
    max_examples=int(os.environ.get("RQ_DIFF_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(program=ring_program())
def test_record_queue_c_matches_fallback(replayer, tmp_path, program):
    _check(replayer, program, tmp_path)


@_SETTINGS
@given(program=deadline_program())
def test_deadline_queue_c_matches_fallback(replayer, tmp_path, program):
    _check(replayer, program, tmp_path)


def test_replayer_sees_errors_and_results(replayer, tmp_path):
    """The comparison is only as good as the replayer: check it reports what
    the specification says for a fixed sequence."""
    program = [("ring", 2, 2, False), ("push", b"ab"), ("push", b"a"), ("push", b"cd"),
               ("push", b"ef"), ("stats",), ("pop_into", ("ro", 2)), ("pop_into", ("rw", 2))]
    out = _replay(replayer, "core", "c", program, tmp_path)
    assert out == ["None", "True", "'EXC ValueError: record size mismatch'", "True", "False",
                   "(2, 2, 1)", "'EXC TypeError: buffer is read-only'", "(True, b'ab')"]

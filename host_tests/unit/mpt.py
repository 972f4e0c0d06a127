"""Small assertion helpers for unit tests that run inside MicroPython.

MicroPython has no unittest/pytest; these keep the tests short and make a
failure message show what was seen.
"""


def raises(exc_type, fn, *args, **kw):
    """Call fn and return the exception it raised; fail if it raised nothing."""
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised by %r%r" % (exc_type.__name__, fn, args))


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what or "value", got, want))


class FakeClock:
    """A ticks source tests move by hand, so timeouts need no sleeping."""

    def __init__(self, start=0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, ms):
        # ticks_add wraps at the port's own period (2**30 on ESP32, wider on the
        # unix port), so firmware's ticks_diff sees the same arithmetic as on the device.
        import time

        self.now = time.ticks_add(self.now, ms)
        return self.now


def tmpdir(name):
    """A fresh directory under the runner's scratch area (real files stand for flash)."""
    import os

    base = os.getenv("PAYTERM_TMP") or "/tmp"
    path = base + "/" + name
    _rmtree(path)
    os.mkdir(path)
    return path


def _rmtree(path):
    import os

    try:
        st = os.stat(path)
    except OSError:
        return
    if st[0] & 0x4000:
        for n in os.listdir(path):
            _rmtree(path + "/" + n)
        os.rmdir(path)
    else:
        os.remove(path)


class RecDiag:
    """Diag stand-in that remembers the fault codes it was given."""

    def __init__(self):
        self.faults = []

    def fault(self, code, stage="", ctx=""):
        self.faults.append(code)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def recqueue_fallback():
    """The pure-Python recqueue as a namespace, even where the C module shadows it.

    Built-in modules are found before sys.path, so on the core runtimes
    `import recqueue` is the C module; the fallback is loaded from its file.
    """
    import sys

    for d in sys.path:
        try:
            with open(d + "/recqueue.py") as f:
                src = f.read()
        except OSError:
            continue
        ns = {"__name__": "recqueue_fallback"}
        exec(src, ns)
        return ns
    raise ImportError("firmware/recqueue.py not found on sys.path")

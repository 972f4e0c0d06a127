"""The one owner of the flash operations that must survive a power cut.

The journal (txn/journal.py), the terminal state and keys (txn/state.py),
the small JSON files (diag/_store.py: PIN lockout, counters, wait analysis,
last receipt), the fault log's slots and the card-data store change flash
only through these functions: `append`, `write` and `dump` (a whole file,
used for temporary copies), `patch` (bytes of a file in place), `rename`,
`remove`, `sync`, plus `size`/`read` to look. Their crash safety rests on
two facts about each operation: an append or a write can be torn (a prefix
of the bytes reaches flash), a rename or a remove happens wholly or not at
all.

The invariant the journal and the state keep on top of these, whatever
operation the power is cut at (before it, after it, or half-way through a
write): every journal record whose write returned is there after the reboot,
a torn one is dropped whole, and the state has one complete copy no older
than the newest save that returned (only a corrupt copy can make it one save
older, and that is reported: State.lost).

A hook installed with `set_hook(obj)` sees every operation: `obj.before(op,
path, nbytes)` returns how many of the bytes to write (fewer = a torn write)
and `obj.after(op, path)` runs once the operation is done. The host HAL
installs one on the emulator board (PAYTERM_CUT_AT) so the reliability tests
can count operations and cut the power before, after or in the middle of
any of them. Without a hook nothing is changed. Errors come back as OSError;
callers turn them into Fault("SYS-01") with their own context.
"""
import os

_hook = None

# Operations that change flash (the ones a power cut can interrupt).
WRITES = ("append", "write", "patch", "rename", "remove", "sync")


def set_hook(hook):
    """Install (or with None remove) the observer of every flash operation."""
    global _hook
    _hook = hook


def _before(op, path, n=0):
    h = _hook
    if h is None:
        return n
    got = h.before(op, path, n)
    return n if got is None else got


def _after(op, path):
    h = _hook
    if h is not None:
        h.after(op, path)


def size(path):
    """Bytes in `path`, -1 when it does not exist."""
    _before("size", path)
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def exists(path):
    return size(path) >= 0


def names(path):
    """Names of the files in directory `path` ([] when it cannot be listed)."""
    _before("list", path)
    try:
        return os.listdir(path)
    except OSError:
        return []


def read(path):
    """Whole file as bytes, None when it cannot be read."""
    _before("read", path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _put(mode, op, path, data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = (data,)
    if isinstance(data, (tuple, list)):
        seq = data
        chunks = lambda: seq  # noqa: E731
    else:
        chunks = data  # a generator function: one chunk in RAM at a time
    if _hook is None:
        with open(path, mode) as f:
            for c in chunks():
                f.write(c)
        return
    total = 0  # under a hook only: the hook is told the size, so the chunks are made twice
    for c in chunks():
        total += len(c)
    n = _before(op, path, total)
    with open(path, mode) as f:
        for c in chunks():
            if n <= 0:
                break
            if len(c) > n:
                c = memoryview(c)[:n]
            f.write(c)
            n -= len(c)
    _after(op, path)


def dump(path, fill):
    """Create or replace `path` with what `fill(f)` writes to the file `f` (f.write(str or bytes), json.dump):
    a large structure goes to flash piece by piece, never as one text in RAM. Under a hook (tests) the
    text is made in RAM first, so the hook is told its size and can tear it like any write."""
    if _hook is None:
        with open(path, "wb") as f:
            fill(f)
        return
    import io

    buf = io.BytesIO()  # json.dump needs a real stream, not a Python object with write()
    fill(buf)
    _put("wb", "write", path, buf.getvalue())  # pyright: ignore[reportAttributeAccessIssue] (stubs lack it)


def append(path, data):
    """Append bytes to `path` (or a sequence of chunks, or a function returning an iterator of them)."""
    _put("ab", "append", path, data)


def write(path, data):
    """Create or replace `path` (data as for `append`): for temporary copies."""
    _put("wb", "write", path, data)


def patch(path, offset, data):
    """Overwrite len(data) bytes of the existing file `path` at `offset` (a fixed-size slot of a ring):
    torn like a write, the bytes after the tear keep their old value."""
    n = _before("patch", path, len(data))
    with open(path, "r+b") as f:
        f.seek(offset)
        if n > 0:
            f.write(data if n >= len(data) else memoryview(data)[:n])
    _after("patch", path)


def rename(src, dst):
    _before("rename", dst)
    os.rename(src, dst)
    _after("rename", dst)


def remove(path):
    """Remove `path`; a missing file is not an error."""
    _before("remove", path)
    try:
        os.remove(path)
    except OSError:
        pass
    _after("remove", path)


def sync():
    # Some ports buffer the filesystem (ESP32 FAT); unix and littlefs write through.
    _before("sync", "")
    s = getattr(os, "sync", None)
    if s is not None:
        s()
    _after("sync", "")

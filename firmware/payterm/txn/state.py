"""Small terminal state (STAN and ref high-water marks, counters) replaced atomically.

Flash can lose power between any two writes. The state is written whole to
`<name>.tmp`, then the current copy becomes `<name>.bak` and the temporary
file takes its place, so at every instant one complete copy exists. Each copy
carries a CRC-32 on its first line; a torn or corrupt copy is skipped and the
next-best one is used (reported once as SYS-02).

Which copy is current after a cut:
- main readable: it is; a `.tmp` beside it belongs to a save that never
  returned (its value was never used) and is removed;
- main missing (cut between the two renames) and `.tmp` readable: the tmp is
  the newest save, it had been completely written before main moved away, so
  it is promoted (renamed to main), never discarded: discarding it would roll
  the next boot back to the backup;
- only the backup readable: the state is one save old (`lost` is True) and the
  caller must assume the last save is missing (the engine seeds its numbers
  above the journal for that).
All flash access goes through payterm.flash.
"""
import binascii
import json

from payterm import flash
from payterm.errors import Fault


def _parse(data):
    """Dict stored in `data`, or None when missing, torn or corrupt."""
    if data is None:
        return None
    nl = data.find(b"\n")
    if nl != 8:
        return None
    try:
        want = int(data[:8], 16)
    except ValueError:
        return None
    body = data[9:]
    if binascii.crc32(body) & 0xFFFFFFFF != want:
        return None
    try:
        d = json.loads(body)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def _load(path):
    return _parse(flash.read(path))


def _pieces(v):
    """The JSON text of `v` in small pieces (bytes): saving never needs the whole text in one block of RAM,
    which a fragmented heap may not have even with plenty free."""
    if isinstance(v, dict):
        yield b"{"
        sep = b""
        for k, x in v.items():
            yield sep
            yield json.dumps(k).encode()
            yield b": "
            yield from _pieces(x)
            sep = b", "
        yield b"}"
    elif isinstance(v, (list, tuple)):
        yield b"["
        sep = b""
        for x in v:
            yield sep
            yield from _pieces(x)
            sep = b", "
        yield b"]"
    else:
        yield json.dumps(v).encode()


class State:
    """Key/value state saved atomically on every change.

    After opening: `source` is the copy used ("main", "tmp", "bak" or None),
    `recovered` is True when a corrupt copy was skipped, `lost` is True when
    the newest save may be missing (only the backup was readable, or every copy
    was corrupt).
    """

    def __init__(self, root, name="state", diag=None):
        self._main = root + "/" + name + ".json"
        self._tmp = root + "/" + name + ".tmp"
        self._bak = root + "/" + name + ".bak"
        self.diag = diag
        self.recovered = False
        self.lost = False
        self.source = None
        self.data = {}
        try:
            self._open()
        except OSError as e:
            raise Fault("SYS-01", "state open: %s" % e, "txn")

    def _open(self):
        main_there = flash.exists(self._main)
        d = _load(self._main) if main_there else None
        if d is not None:
            self.data, self.source = d, "main"
            if flash.exists(self._tmp):
                flash.remove(self._tmp)  # a save that never returned: its value was never used
            return
        if main_there:
            self.recovered = True  # the main copy is there but unreadable: a corruption, not a cut
        d = _load(self._tmp)
        if d is not None:
            # Cut between "main -> bak" and "tmp -> main": the tmp is complete and newest.
            self.data, self.source = d, "tmp"
            if main_there:
                flash.remove(self._main)
            flash.rename(self._tmp, self._main)
            flash.sync()
        else:
            d = _load(self._bak)
            if d is not None:
                self.data, self.source = d, "bak"
                self.lost = True
                self.recovered = True
            else:
                self.lost = main_there or flash.exists(self._bak)
                self.recovered = self.lost
            if flash.exists(self._tmp):
                flash.remove(self._tmp)
            if main_there:
                flash.remove(self._main)  # keep the good backup: the next save must not rotate a corrupt main into it
        if self.recovered and self.diag is not None:
            self.diag.fault("SYS-02", "txn", "state copy corrupt, previous copy used")

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.update({key: value})

    def update(self, d):
        old = dict(self.data)
        self.data.update(d)
        try:
            self.save()
        except Fault:
            self.data = old  # not on flash: not handed out
            raise

    def save(self):
        # The pieces are made twice (CRC, then flash.write; three times under a test's flash hook) rather than
        # held: a few hundred bytes of JSON re-encoded is cheaper on a small heap than keeping them all at once.
        crc = 0
        for p in _pieces(self.data):
            crc = binascii.crc32(p, crc)
        head = b"%08x\n" % (crc & 0xFFFFFFFF)
        data = self.data

        def chunks():  # under a flash hook flash.write runs it twice: to count, then to write
            yield head
            yield from _pieces(data)

        try:
            flash.write(self._tmp, chunks)
        except OSError as e:
            try:
                flash.remove(self._tmp)
            except OSError:
                pass
            raise Fault("SYS-01", "state write: %s" % e, "txn")
        try:
            flash.sync()
            if flash.exists(self._main):
                flash.remove(self._bak)  # FAT cannot rename over an existing file
                flash.rename(self._main, self._bak)
            flash.rename(self._tmp, self._main)
            flash.sync()
        except OSError as e:
            raise Fault("SYS-01", "state replace: %s" % e, "txn")

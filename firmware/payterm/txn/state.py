"""Small terminal state (STAN high-water mark, counters) replaced atomically.

Flash can lose power between any two writes. The state is written whole to
`<name>.tmp`, then the current copy becomes `<name>.bak` and the temporary
file takes its place, so at every instant one complete copy exists. Each copy
carries a CRC-32 on its first line; a torn or corrupt copy is skipped and the
next-best one is used (reported once as SYS-02).
"""
import binascii
import json
import os


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _sync():
    # Some ports buffer the filesystem (ESP32 FAT); unix and littlefs write through.
    s = getattr(os, "sync", None)
    if s is not None:
        s()


def _load(path):
    """Dict stored at path, or None when missing, torn or corrupt."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
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


class State:
    """Key/value state saved atomically on every change."""

    def __init__(self, root, name="state", diag=None):
        self._main = root + "/" + name + ".json"
        self._tmp = root + "/" + name + ".tmp"
        self._bak = root + "/" + name + ".bak"
        self.diag = diag
        self.recovered = False
        self.data = {}
        self._open()

    def _open(self):
        for i, path in enumerate((self._main, self._tmp, self._bak)):
            d = _load(path)
            if d is not None:
                self.data = d
                if i and _exists(self._main):
                    # The main copy was there but unreadable: a corruption, not a cut mid-rename.
                    self.recovered = True
                break
        else:
            self.recovered = _exists(self._main) or _exists(self._bak)
        if self.recovered and self.diag is not None:
            self.diag.fault("SYS-02", "txn", "state copy corrupt, previous copy used")
        _remove(self._tmp)

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value
        self.save()

    def update(self, d):
        self.data.update(d)
        self.save()

    def save(self):
        body = json.dumps(self.data).encode()
        head = b"%08x\n" % (binascii.crc32(body) & 0xFFFFFFFF)
        try:
            with open(self._tmp, "wb") as f:
                f.write(head)
                f.write(body)
        except OSError as e:
            from payterm.errors import Fault

            _remove(self._tmp)
            raise Fault("SYS-01", "state write: %s" % e, "txn")
        _sync()
        if _exists(self._main):
            _remove(self._bak)  # FAT cannot rename over an existing file
            os.rename(self._main, self._bak)
        os.rename(self._tmp, self._main)
        _sync()

"""Self-tests a technician starts from the console or the tech menu.

The app registers the real checks (reader ping, comm echo 0800, storage,
printer status, keypad); each is an async callable that returns normally (or
a short detail string) on success and raises Fault with its catalog code on
failure. A check that hangs is cut off and reported as a failure, so one dead
peripheral cannot freeze the menu.
"""
from micropython import const

from payterm.errors import Fault

_TIMEOUT_S = const(10)


class SelfTests:
    def __init__(self, diag=None, timeout_s=_TIMEOUT_S):
        self._tests = []
        self._diag = diag
        self.timeout_s = timeout_s

    def add(self, name, fn):
        self._tests.append((name, fn))

    def names(self):
        return [t[0] for t in self._tests]

    async def run(self, only=None):
        """[(name, ok, code or None, detail)] in registration order."""
        import asyncio

        out = []
        for name, fn in self._tests:
            if only and name != only:
                continue
            try:
                r = await asyncio.wait_for(fn(), self.timeout_s)
                out.append((name, True, None, r if isinstance(r, str) else ""))
            except Fault as f:
                out.append((name, False, f.code, f.detail))
                if self._diag:
                    self._diag.fault(f.code, "selftest", name)
            except asyncio.TimeoutError:
                out.append((name, False, "SYS-09", "timeout"))
                if self._diag:
                    self._diag.fault("SYS-09", "selftest", name + " timeout")
            except Exception as e:  # a broken check must not abort the others
                out.append((name, False, "SYS-09", repr(e)[:40]))
                if self._diag:
                    self._diag.fault("SYS-09", "selftest", name)
        return out


_MIN_FREE_BYTES = const(16384)  # below this the journal/SAF cannot grow (SYS-01)
_PROBE = b"payterm-selftest-0123456789"


def storage_check(path, min_free=_MIN_FREE_BYTES):
    """Async check for SelfTests: write, read back and delete a probe file, check free space."""

    async def check():
        import os

        from payterm import flash

        p = path + "/.selftest"
        try:
            flash.write(p, _PROBE)
            back = flash.read(p)
            flash.remove(p)
        except OSError as e:
            raise Fault("SYS-01", "write failed %s" % e, "selftest")
        if back != _PROBE:
            raise Fault("SYS-02", "read-back mismatch", "selftest")
        try:
            st = os.statvfs(path)
            free = st[0] * st[4]
        except (AttributeError, OSError):
            return "free ?"
        if free < min_free:
            raise Fault("SYS-01", "free %d" % free, "selftest")
        return "free %dk" % (free // 1024)

    return check


def memory_check(min_free):
    """Async check for SelfTests: free heap after a collection (SYS-05 when low)."""

    async def check():
        import gc

        gc.collect()
        free = gc.mem_free()
        if free < min_free:
            raise Fault("SYS-05", "free %d" % free, "selftest")
        return "heap %dk" % (free // 1024)

    return check

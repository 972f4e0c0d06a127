"""Runs one test function of a unit-test file inside MicroPython.

Started by host_tests/conftest.py as `micropython mprunner.py FILE NAME`: one
VM per test keeps tests independent (a leaked heap_lock or a half-written file
cannot poison the next one). Results go to stdout as `@@PASS`/`@@FAIL` lines
so pytest can tell a failed assertion from a crashed VM.
"""
import sys


def _run(fn):
    r = fn()
    # `async def` tests return a generator/coroutine object in MicroPython.
    if r is not None and hasattr(r, "send"):
        import asyncio

        asyncio.run(r)


def main():
    path, name = sys.argv[1], sys.argv[2]
    d, _, f = path.rpartition("/")
    if d and d not in sys.path:
        sys.path.insert(0, d)
    mod = __import__(f[:-3] if f.endswith(".py") else f)
    fn = getattr(mod, name, None)
    if fn is None:
        print("@@FAIL", name)
        print("no test named", name, "in", path)
        return 1
    try:
        _run(fn)
    except Exception as e:  # report every failure with its traceback
        print("@@FAIL", name)
        sys.print_exception(e, sys.stdout)
        return 1
    print("@@PASS", name)
    return 0


sys.exit(main())

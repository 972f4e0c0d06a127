"""Small atomic JSON files (PIN lockout, counters, wait analysis, last receipt).

A save writes `<path>.tmp`, syncs, then renames it over `<path>`: rename() is
atomic on littlefs and on host filesystems, so after a power cut the file
holds either the old or the new content, never a mix. A port that refuses to
rename over an existing file (FAT) gets remove + rename; a cut between the
two leaves only the complete `.tmp`, which `load` takes (and renames into
place). A file that still fails to parse (flash damage) is reported so SYS-02
can be logged. Every change goes through payterm.flash, so the power-cut tests
cut these files too.
"""
import json

from payterm import flash


def _parse(path):
    """(data, ok): ok is False when the file is there but is not JSON; data None when it is missing."""
    try:
        with open(path) as f:
            return json.load(f), True
    except OSError:
        return None, True
    except (ValueError, TypeError):
        return None, False


def load(path):
    """(data or None, damaged: bool)."""
    data, ok = _parse(path)
    if data is not None or not ok or flash.exists(path):
        return data, not ok
    tmp = path + ".tmp"
    data, ok = _parse(tmp)  # a torn tmp (a save cut mid-write, no older copy) is no file, not damage
    if data is not None and ok:
        try:
            flash.rename(tmp, path)
            flash.sync()
        except OSError:
            pass  # read-only or failing flash: the data is good, the next save replaces both
    return (data if ok else None), False


def save(path, data):
    """`data` as JSON, or `data(f)` writing the file itself (a large state need not be copied to dump it).
    OSError when flash fails."""
    tmp = path + ".tmp"
    flash.dump(tmp, data if callable(data) else lambda f: json.dump(data, f))
    flash.sync()
    try:
        flash.rename(tmp, path)
    except OSError:
        # some ports refuse to rename over an existing file
        flash.remove(path)
        flash.rename(tmp, path)
    flash.sync()

"""Atomic JSON files in flash: write a temp file, then rename over the old one.

rename() is atomic on littlefs and on host filesystems, so after a power cut
the file holds either the old or the new content, never a mix. A file that
still fails to parse (flash damage) is reported so SYS-02 can be logged.
"""
import json
import os


def load(path):
    """(data or None, damaged: bool)."""
    try:
        with open(path) as f:
            return json.load(f), False
    except OSError:
        return None, False
    except (ValueError, TypeError):
        return None, True


def save(path, data):
    """`data` as JSON, or `data(f)` writing the file itself (a large state need not be copied to dump it)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        if callable(data):
            data(f)
        else:
            json.dump(data, f)
    try:
        os.rename(tmp, path)
    except OSError:
        # some ports refuse to rename over an existing file
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(tmp, path)

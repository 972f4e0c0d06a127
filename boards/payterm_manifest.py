# The payterm firmware as frozen into a terminal image, included by each board's manifest.py.
#
# Every module of the payterm package except the host HAL (ptys, termios, environment: the
# emulator's, never a device's); `include(..., host=True)` (the EMULATOR board's frozen image)
# keeps it. main.py stays a file on the filesystem (`make deploy` copies it): the port runs /main.py at boot, not a frozen one. recqueue.py is not frozen either:
# `make firmware` builds the recqueue C module in, which an import finds first.
import os

options.defaults(host=False)
HOST_ONLY = () if options.host else ("payterm/hal/host.py",)

_fw = os.path.abspath(os.path.join("..", "firmware"))  # the manifest runs in boards/
_files = []
for _dir, _subdirs, _names in os.walk(os.path.join(_fw, "payterm")):
    _subdirs.sort()
    for _n in sorted(_names):
        if _n.endswith(".py"):
            _rel = os.path.relpath(os.path.join(_dir, _n), _fw).replace(os.sep, "/")
            if _rel not in HOST_ONLY:
                _files.append(_rel)
for _rel in _files:
    module(_rel, base_path=_fw)

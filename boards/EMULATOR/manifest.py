# The emulator's frozen image: the unix port built with the firmware frozen in (`make emulator-frozen
# MPY_DIR=...`, 32-bit), so the emulator can run what a terminal's image holds: bytecode, constants and
# qstrs in the binary, only objects on the heap. Unlike a terminal's image it keeps the host HAL (ptys,
# termios, environment): the emulator's devices are ptys. asyncio comes from the port's extmod, as on ESP32.
include("$(MPY_DIR)/extmod/asyncio")
require("ssl")  # the unix port's ssl module (over its tls), as its own manifest has
include("../payterm_manifest.py", host=True)

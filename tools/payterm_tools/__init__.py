"""payterm host tools: emulator launcher, simulators, diagnostics reader, build and deploy."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(REPO, "firmware")
BOARDS = os.path.join(REPO, "boards")
# The unix port with the firmware frozen in, 32-bit (`make emulator-frozen MPY_DIR=...`).
FROZEN_EMULATOR = os.path.join(REPO, "build", "unix-frozen32", "micropython")

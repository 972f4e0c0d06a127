"""Memory budgets of the boards and their translation to the 64-bit emulator.

Each board's hardware map holds `memory.heap_budget_bytes` (the GC heap the
firmware may use on that 32-bit chip) and `memory.code_budget_bytes` (the
compiled `.mpy` firmware it may ship). The emulator runs the same firmware in
the 64-bit unix port, where the same objects take more heap: every pointer,
object header, dict and list slot and const table entry is 8 bytes instead of
4 and a GC block is 32 bytes instead of 16, while bytes, str and bytearray
payloads stay the same size.

HEAP_64_PER_32 is measured, not assumed: the firmware's own modules imported
into the core-only runtime built once for 64 bits and once for 32 bits
(tools/coreport, `-m64` / `-m32`, the same configuration otherwise) take
261,600 and 183,600 bytes of live heap (ratio 1.425; `make memory` prints the
ratio again when build/core-m32 exists). A board's budget B runs in the
emulator as `micropython -X heapsize=round(B * HEAP_64_PER_32)`.
(MicroPython's own `-X heapsize=Nw` doubles N on 64 bits: that fits a heap of
pointers only and would give the emulator about 40 % more room than the chip.)
"""
import json
import os

from payterm_tools import BOARDS

HEAP_64_PER_32 = 1.425


def board_memory(board):
    """The board's `memory` entry: {"heap_budget_bytes": n, "code_budget_bytes": n}."""
    with open(os.path.join(BOARDS, board, "hardware.json")) as f:
        return json.load(f)["memory"]


def emulator_heap(board):
    """Heap in bytes for the 64-bit emulator standing for `board`'s heap budget."""
    return int(round(board_memory(board)["heap_budget_bytes"] * HEAP_64_PER_32))


def parse_size(text, bits=64):
    """`393216`, `384K`, `1M` -> bytes; a board name (TERMINAL_ESP32S3) -> its heap budget, translated
    for the 64-bit emulator (bits=64) or as it is for a 32-bit VM (bits=32: the frozen emulator)."""
    t = text.strip()
    if os.path.isfile(os.path.join(BOARDS, t, "hardware.json")):
        return emulator_heap(t) if bits == 64 else board_memory(t)["heap_budget_bytes"]
    mult = 1
    if t[-1:] in ("k", "K"):
        mult, t = 1024, t[:-1]
    elif t[-1:] in ("m", "M"):
        mult, t = 1024 * 1024, t[:-1]
    if not t.isdigit() or int(t) <= 0:
        raise ValueError("heap size %r: bytes (e.g. 393216, 384K, 1M) or a board name" % text)
    return int(t) * mult


def terminal_boards():
    return sorted(b for b in os.listdir(BOARDS) if b.startswith("TERMINAL_")
                  and os.path.isfile(os.path.join(BOARDS, b, "hardware.json")))

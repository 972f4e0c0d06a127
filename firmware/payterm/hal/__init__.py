"""Hardware abstraction: the only layer that knows what the terminal is made of.

`load()` picks the implementation named by the board map, so the same
application runs on the ESP32 and on a laptop. Everything above gets HAL
objects (streams, storage root, ticks, clock, printer) in constructors.
"""
import json


def board_path():
    """Where the board map is: /board.json on the device; the emulator names it in PAYTERM_BOARD."""
    import os

    getenv = getattr(os, "getenv", None)  # ESP32 has no environment
    return (getenv and getenv("PAYTERM_BOARD")) or "/board.json"


def read_board(path):
    with open(path) as f:
        return json.load(f)


def load(board):
    kind = board.get("hal", "esp32")
    if kind == "host":
        from payterm.hal.host import HostHAL

        return HostHAL(board)
    from payterm.hal.esp32 import Esp32HAL

    return Esp32HAL(board)

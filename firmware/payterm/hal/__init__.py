"""Hardware abstraction: the only layer that knows what the terminal is made of.

`load()` picks the implementation the hardware map names, so the same
application runs on the ESP32 boards and on a laptop. Everything above gets
HAL objects (streams, storage root, ticks, clock, printer) in constructors.

The hardware map (boards/<NAME>/hardware.json, deployed as /hardware.json)
says which bus, pins and budget each part uses; the terminal's parameters are
not in it but in the provisioning file (payterm.config).
"""
import json

HARDWARE_FILE = "hardware.json"


def hardware_path():
    """Where the hardware map is: /hardware.json on the device; the emulator names it in PAYTERM_HARDWARE."""
    import os

    getenv = getattr(os, "getenv", None)  # ESP32 has no environment
    return (getenv and getenv("PAYTERM_HARDWARE")) or "/" + HARDWARE_FILE


def read_hardware(path):
    with open(path) as f:
        return json.load(f)


def load(board):
    kind = board.get("hal", "esp32")
    if kind == "host":
        from payterm.hal.host import HostHAL

        return HostHAL(board)
    from payterm.hal.esp32 import Esp32HAL

    return Esp32HAL(board)

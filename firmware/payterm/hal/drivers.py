"""Device drivers by the name the hardware map gives them.

A device entry in hardware.json names its bus and its driver, e.g.
`"display": {"bus": "i2c", "i2c": "panel", "addr": 39, "driver": "hd44780_i2c"}`.
The HAL builds the bus object and calls the driver's factory:

    make(bus, spec, pins) -> driver

- `bus`: what the HAL built for the entry's "bus": an asyncio stream over a
  machine.UART ("uart"), a transmit-only RMT serial line with write()/drain()
  ("rmt"), a machine.I2C ("i2c", the address is spec["addr"]), a machine.SPI
  ("spi", chip select in pins["cs"]), or (rows, cols) lists of machine.Pin for a
  key matrix ("matrix": rows driven high, cols inputs with pull-ups).
- `spec`: the device's entry from the hardware map, unchanged.
- `pins`: the entry's extra signals as machine.Pin objects: "in" pins (with pull-up)
  and "out" pins (driven high, the inactive level of active-low signals).

What each kind of driver offers (docs/architecture.md, "hardware map"):
- display: show(row, text), clear(); optional beep()
- keypad: scan() -> one key byte (b"0"-b"9", E, C, B, F, *, #) or None, without blocking
- printer: status() -> failure code or None; async print_lines(lines)

A factory is found in FACTORIES (drivers that ship with the HAL register there),
else as `make` in module payterm.drivers.<name>. Driver modules do not import
machine: they get the objects the HAL built.
"""
FACTORIES = {}


def register(name, make):
    FACTORIES[name] = make


def factory(name):
    """The factory for driver `name`, or None when this firmware has no such driver."""
    f = FACTORIES.get(name)
    if f is not None:
        return f
    try:
        mod = __import__("payterm.drivers." + name, None, None, ("make",))
    except ImportError:
        return None
    return getattr(mod, "make", None)

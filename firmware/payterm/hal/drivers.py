"""Device drivers by the name the hardware map gives them.

A device entry in hardware.json names its bus and its driver, e.g.
`"display": {"bus": "i2c", "i2c": "panel", "addr": 39, "driver": "hd44780"}`.
The HAL builds the bus object and calls the driver's factory:

    make(bus, spec, pins, hal) -> driver

- `bus`: what the HAL built for the entry's "bus": an asyncio stream over a
  machine.UART ("uart"), a transmit-only RMT serial line with write()/drain()
  ("rmt"), a machine.I2C ("i2c": the shared bus the entry names, the address is
  spec["addr"]), a machine.SPI ("spi", chip select in pins["cs"]), (rows, cols)
  lists of machine.Pin for a key matrix ("matrix": rows outputs, cols inputs
  with pull-ups), a machine.PWM at duty 0 ("pwm", spec["pin"]) or an output
  machine.Pin driven low ("gpio", spec["pin"]).
- `spec`: the device's entry from the hardware map, unchanged.
- `pins`: the entry's extra signals as machine.Pin objects: "in" pins (with pull-up)
  and "out" pins (driven high, the inactive level of active-low signals).
- `hal`: what a driver may need from the HAL besides its bus: `hal.ticks()`,
  `hal.disable_irq()` / `hal.enable_irq(state)` (machine's, on the device).

What each kind of driver offers (payterm.ui.localpanel.LocalPanel composes
display, keypad, buzzer and LED; docs/drivers.md):
- display: show(rows) (4 rows of at most 20 characters), Fault HW-06 when it does not answer
- keypad: `async run()` (its task), and the attributes on_key(byte) / on_fault(Fault) LocalPanel sets
- buzzer: beep(), `async run()`; led: set(name), `async run()`
- printer: status() -> failure code or None (last known), `async poll()` (ask now), `async print_lines(lines)`

A factory is found in FACTORIES (tests and out-of-tree drivers register there),
else as `make` in module payterm.drivers.<name> (the firmware's own drivers:
escpos, hd44780, ssd1306, keymatrix, pcf8574_keys, buzzer, led). Driver modules
do not import machine: they get the objects the HAL built.
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

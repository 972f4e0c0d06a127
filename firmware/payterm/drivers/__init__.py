"""Device drivers: each takes its bus (UART stream, I2C) or pins in the constructor.

Nothing here imports `machine`: the HAL builds the buses and pins and hands
them over, so unit tests pass fakes and the emulator passes pty-backed ones
(payterm.hal.host_buses). docs/drivers.md describes each driver, its wiring
and its failure codes.
"""

"""Boot: read the hardware map, check the provisioning file, build the HAL, run the terminal.

On the device the hardware map is /hardware.json and the parameters are
/provision.json (both written by `make deploy`); the emulator names the map in
PAYTERM_HARDWARE and keeps provision.json in its state directory.

A terminal whose provisioning file is missing or invalid takes no payment:
it says which field is wrong (one SYS-2x code per field) on the console and
the display until it is re-provisioned. A boot that cannot even start says
why on the console (`# FATAL <code> ...`) instead of rebooting silently.
"""
import sys

_hal = None
_REPEAT_MS = 10000  # how often an unprovisioned terminal repeats what is wrong


async def _not_provisioned(h, errors):
    import asyncio

    from payterm import codes
    from payterm.errors import Fault

    con = h.stream("console")
    code, field, _ = errors[0]
    rows = ("CONFIG ERROR", codes.lookup(code)[codes.DISPLAY], field[:20], "CALL SUPPORT")
    try:
        local = h.panel()  # the board's own display, or None where the panel is a UART
        panel = None if local is not None else h.stream("panel")
    except Fault:
        local = panel = None  # no display either: the console says it all
    if local is not None:
        local.show(rows)
    if panel is not None:
        for i, text in enumerate(rows):
            panel.write(b"D%d %s\n" % (i, text.encode()))
        await panel.drain()
    while True:
        if con is not None:
            for e in errors:
                con.write(("# CONFIG %s %s: %s\n" % e).encode())
            con.write(b"# NOT PROVISIONED: payterm provision, then make deploy\n")
            await con.drain()
        for _ in range(_REPEAT_MS // 1000):
            h.wdt_feed()
            await asyncio.sleep_ms(1000)


def boot():
    global _hal
    from payterm import config, hal
    from payterm.errors import Fault

    path = hal.hardware_path()
    try:
        board = hal.read_hardware(path)
    except (OSError, ValueError) as e:
        raise Fault("SYS-07", "hardware map %s: %r" % (path, e), "boot")
    _hal = h = hal.load(board)
    cfg = config.load(board, h.storage, h.config_overrides())
    errors = cfg.get("_errors")
    if errors:
        import asyncio

        asyncio.run(_not_provisioned(h, errors))
        return
    h.start(cfg)
    import gc

    gc.collect()
    from payterm.app import main

    gc.collect()

    main(h, board)


try:
    boot()
except KeyboardInterrupt:
    # Ctrl-C on the console: a technician (or mpremote) takes the REPL.
    if _hal is not None:
        _hal.hold_watchdog()
except SystemExit:
    raise
except Exception as e:
    from payterm.errors import Fault

    print("# FATAL %s %s" % (e.code, e.detail) if isinstance(e, Fault) else "# FATAL SYS-09 %r" % (e,))
    sys.print_exception(e)
    sys.exit(1)

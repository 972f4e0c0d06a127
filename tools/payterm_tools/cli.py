"""`payterm` command line: one entry point, one module per subcommand."""
import argparse
import importlib
import sys

# subcommand -> module in payterm_tools that provides add_arguments(p) and run(args)
COMMANDS = {
    "emulate": ("emulate", "run the terminal firmware in the emulator"),
    "diag": ("diag", "read on-device diagnostics over the console UART"),
    "codes": ("codes", "print the failure-code catalog / write its Markdown reference"),
    "build": ("build", "cross-compile the firmware to .mpy with mpy-cross"),
    "provision": ("provision", "write and validate a terminal's provisioning file (provision.json)"),
    "deploy": ("deploy", "copy firmware, hardware map and provisioning file to a device with mpremote"),
    "acquirer": ("sim.acquirer", "run the acquirer simulator on 127.0.0.1"),
    "inject-key": ("keyinject", "write the terminal's DUKPT initial key file (key injection)"),
    "leakscan": ("leakscan", "scan files for full card numbers and track data (text and BCD)"),
}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="payterm", description="payterm card terminal host tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    mods = {}
    for name, (modname, helptext) in COMMANDS.items():
        try:
            mod = importlib.import_module("payterm_tools." + modname)
        except ImportError as e:  # a half-installed tool must not hide the others
            p = sub.add_parser(name, help=helptext + " (unavailable: %s)" % e)
            mods[name] = None
            continue
        p = sub.add_parser(name, help=helptext)
        mod.add_arguments(p)
        mods[name] = mod
    args = ap.parse_args(argv)
    mod = mods[args.cmd]
    if mod is None:
        ap.error("%s is unavailable in this install" % args.cmd)
    return mod.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())

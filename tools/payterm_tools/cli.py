"""`payterm` command line: one entry point, one module per subcommand.

Every error a subcommand meets is one line on stderr, `payterm <cmd>: <what> (<remedy>)`, and exit
status 2; never a traceback (set PAYTERM_DEBUG=1 to see one). Every option has a help text.
"""
import argparse
import importlib
import os
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


def parser():
    """(the argparse parser of every subcommand, {subcommand: module or None})."""
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
    return ap, mods


def main(argv=None):
    ap, mods = parser()
    args = ap.parse_args(argv)
    mod = mods[args.cmd]
    if mod is None:
        ap.error("%s is unavailable in this install" % args.cmd)
    try:
        return mod.run(args) or 0
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:
        if isinstance(e.code, str):  # an expected error, said in one line
            return _say(args.cmd, e.code)
        raise
    except Exception as e:  # never a traceback at the user (PAYTERM_DEBUG=1 shows it)
        if os.environ.get("PAYTERM_DEBUG"):
            raise
        return _say(args.cmd, one_line(e))


def one_line(e):
    """An exception as one line a person can act on."""
    if isinstance(e, OSError):
        what = e.strerror or str(e)
        where = " %s" % e.filename if getattr(e, "filename", None) else ""
        return "%s%s (check the path, that the device is connected and your permission on it)" % (what, where)
    text = str(e).strip().splitlines()
    if isinstance(e, (RuntimeError, ValueError)) and text:
        return text[0]
    return "internal error: %s: %s (run again with PAYTERM_DEBUG=1 and report the traceback)" % (
        type(e).__name__, text[0] if text else "")


def _say(cmd, msg):
    msg = str(msg)
    prefix = "payterm %s: " % cmd
    sys.stderr.write((msg if msg.startswith("payterm") else prefix + msg) + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""`payterm emulate`: the terminal on a laptop, with a person at the keypad.

Starts the acquirer simulator on 127.0.0.1, the card reader simulator and the
firmware (MicroPython unix port) on the EMULATOR board, then shows the
terminal's display and takes keypad keys and simulator commands from stdin.
The acquirer's ledger is kept beside the state directory (`<state>.acquirer.jsonl`)
so it survives a restart like the terminal's flash does.
"""
import os
import re
import shlex
import sys
import threading
import time

from payterm_tools import FROZEN_EMULATOR as DEFAULT_FROZEN
from payterm_tools import provision
from payterm_tools.emulator import MERCHANT_PIN, TECH_PIN, Emulator
from payterm_tools.sim.acquirer import AcquirerSim
from payterm_tools.sim.cardsim import TEST_CARDS, TEST_PINS, CardReaderSim

HELP = """\
keys     type keypad keys and press Enter: digits, E (OK), C (cancel), B (back), F (function), * #
         e.g. `1250E` enters EUR 12.50; an empty line sends E
         F menu: 1 refund, 2 void, 3 status, 4 reprint, 5 training mode, 9 technician
         merchant PIN (refund, void, training) %s; technician PIN %s
swipe [CARD] [--no-start|--no-end|--bad-lrc|--garbage|--empty]   swipe a simulated card
tap [CARD]   hold a contactless card on the reader      remove   take it away
cards        list simulated cards with their test PINs (and which ask for a PIN)
PIN entry    digits show as *, E accepts (4-12 digits), B backs up, C clears (C on none: cancel)
host approve | decline RC | timeout      the acquirer's answer to the next request (RC: a catalog response
                                          code, 2 letters/digits: 51, N7, ...)
host partial AMOUNT                       approve the next sale for AMOUNT minor units only (rc 10)
host no39 | drop                          next request: approved but answered without field 39 /
                                          approved, then the connection dropped unanswered
host reversal RC                          answer the next reversal with RC (e.g. 96: the charge stays)
host down | up                            acquirer outage (offline approval, store-and-forward) / back
host badmac | nomac                       next answer with a wrong MAC / without a MAC (the terminal reverses)
paper ok|out|jam|cover|cutter             printer: fixed / out of paper / paper jam / cover open /
                                          the next cut jams (`paper` alone shows it)
console CMD  send a technician console command (status, faults, stats, wait, selftest, ...)
ledger       what the acquirer simulator saw (MTI STAN kind AMOUNT rc=RC PAN [REPEAT] arqc= pin= mac= card=)
receipt      last printed receipts
screen       show the display again                   quit      stop the terminal
"""

_SWIPE_FAULTS = {"--no-start": "no_start", "--no-end": "no_end", "--bad-lrc": "bad_lrc",
                 "--garbage": "parity", "--empty": "empty"}


def add_arguments(p):
    p.add_argument("--board", default="EMULATOR",
                   help="board under boards/ whose hardware map the emulator runs (a host-HAL board; default EMULATOR)")
    p.add_argument("--state", default="state", help="state directory standing for flash (kept across runs)")
    p.add_argument("--acquirer-port", type=int, default=0, help="acquirer simulator port on 127.0.0.1 (0: any)")
    p.add_argument("--script", default=None, help="read commands from this file instead of stdin")
    p.add_argument("--mpy", action="store_true",
                   help="run the deployed form: the firmware compiled to .mpy (for the host, host HAL included)")
    p.add_argument("--frozen", nargs="?", const=DEFAULT_FROZEN, default=None, metavar="PROGRAM",
                   help="run the firmware frozen into a 32-bit unix port, as a terminal runs its image "
                        "(default %s, built by `make emulator-frozen MPY_DIR=...`)" % os.path.relpath(DEFAULT_FROZEN))
    p.add_argument("--heap", default=None, metavar="SIZE",
                   help="GC heap of the VM: bytes (393216, 384K) or a board name, whose heap budget is "
                        "translated for the 64-bit emulator (payterm_tools.memory), or taken as it is with --frozen")
    p.add_argument("--panel", choices=("uart", "local"), default="uart",
                   help="uart: the panel protocol on a pty; local: the terminal's own display and keypad drivers "
                        "on I2C and GPIO ptys")
    p.add_argument("--display", choices=("hd44780", "ssd1306"), default="hd44780",
                   help="with --panel local: 20x4 LCD (HD44780 on a PCF8574) or 128x64 OLED (SSD1306)")


PAPER_USAGE = "usage: paper ok | out | jam | cover | cutter"
HOST_USAGE = ("usage: host approve | decline RC | partial AMOUNT | no39 | drop | reversal RC | timeout | down | up"
              " | badmac | nomac")
# A scripted session waits between steps as a person would (Session.settle): while a card is
# processed (its `# CARD swipe|tap` event not yet followed by `# TXN` / `# FAIL`) and until the
# screen has stayed the same for SETTLE_S, so keys are not typed into a screen that drops them.
_CARD_TAKEN = re.compile(rb"^# CARD (swipe|tap) ", re.M)
_CARD_DONE = re.compile(rb"^# (TXN|FAIL) ", re.M)
_CARD_SEEN = re.compile(rb"^# (CARD |PIN REQUIRED|TXN |FAIL )", re.M)
SETTLE_S = 0.6
STEP_MAX_S = 60.0

CONSOLE_USAGE = "usage: console CMD   (e.g. console status, console faults 5; console help lists them)"


def ledger_path(state_dir):
    """The acquirer's ledger file: beside the state directory (the terminal's flash), not in it."""
    return os.path.abspath(state_dir).rstrip(os.sep) + ".acquirer.jsonl"


def ledger_line(e):
    """`MTI STAN kind AMOUNT rc=RC PAN`, then ` REPEAT` for repeats, then the host's security
    findings (new fields go at the end, in this order: arqc= pin= mac= card=)."""
    line = "%s %s %s %s rc=%s %s%s" % (e["mti"], e["stan"], e["kind"], e["amount"], e["rc"], e["pan_masked"],
                                       " REPEAT" if e["repeat"] else "")
    line += " arqc=%s pin=%s mac=%s card=%s" % (e.get("arqc", "-"), e.get("pin", "-"), e.get("mac", "-"),
                                                e.get("card", "-"))
    return line


# payterm.ui.pinentry.DEBIT_AIDS (firmware; not importable here)
_DEBIT_AIDS = ("A0000000043060", "A0000000032010", "A0000000032020", "A0000002771010", "A0000003591010")


def _asks(card):
    """When the terminal asks this card for its PIN (payterm.ui.pinentry.required)."""
    sc = card.service_code
    if sc[0] not in "26" and sc[2] in "0567":
        return "  (swipe: PIN, service code %s)" % sc
    first = sorted(card.aids, key=lambda a: 99 if a[2] is None else a[2])[0][0]
    if first in _DEBIT_AIDS:  # the application the terminal selects is a debit one
        return "  (debit: PIN when pin_debit is on)"
    return ""


def _rc(word):
    return len(word) == 2 and word.isalnum() and word.isascii()


def _fresh(state_dir):
    return not any(os.path.exists(os.path.join(state_dir, f)) for f in ("journal.log", "state.json", "state.bak"))


def host_boards():
    """Boards the emulator can run: a hardware map with the host HAL."""
    import json

    out = []
    for b in provision.boards():
        with open(os.path.join(provision.BOARDS, b, "hardware.json")) as f:
            if json.load(f).get("hal") == "host":
                out.append(b)
    return out


class Session:
    def __init__(self, args, out=sys.stdout):
        if args.board not in host_boards():
            known = provision.boards()
            why = "is a device board (make deploy BOARD=%s)" % args.board if args.board in known else "does not exist"
            raise SystemExit("board %s %s; the emulator runs %s" % (args.board, why, ", ".join(host_boards())))
        self.out = out
        self.notes = []
        path = ledger_path(args.state)
        if os.path.exists(path) and _fresh(args.state):
            # A new terminal (empty flash) starts its STANs again: an old ledger would answer 94.
            os.replace(path, path + ".old")
            self.notes.append("acquirer ledger: the state directory is new, previous ledger kept as %s.old" % path)
        self.acq = AcquirerSim(host="127.0.0.1", port=args.acquirer_port, name="primary", ledger_path=path)
        if self.acq.ledger:
            self.notes.append("acquirer ledger: %s (%d entries from earlier runs)" % (path, len(self.acq.ledger)))
        self.acq.start()
        try:
            heap = None
            if getattr(args, "heap", None):
                from payterm_tools.memory import parse_size

                heap = parse_size(args.heap, bits=32 if getattr(args, "frozen", None) else 64)
                self.notes.append("heap: %d bytes (-X heapsize)" % heap)
            if getattr(args, "frozen", None):
                self.notes.append("firmware frozen into %s (32-bit)" % args.frozen)
            self.emu = Emulator(args.state, [self.acq.address], board=args.board, mpy=getattr(args, "mpy", False),
                                frozen=getattr(args, "frozen", None),
                                heap=heap, panel=getattr(args, "panel", "uart"),
                                display=getattr(args, "display", "hd44780"))
        except BaseException:
            self.acq.stop()  # e.g. the state directory is another emulator's, or a bad --heap
            raise
        self.reader = CardReaderSim(self.emu.ptys["mag"].fd, self.emu.ptys["nfc"].fd)
        self.reader.start()
        self._last = None
        self._stop = False
        self._rcs = None

    def say(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def start(self):
        self.emu.start()
        self.say("payterm emulator: state in %s, acquirer on %s:%d" % ((self.emu.state_dir,) + tuple(self.acq.address)))
        self.say("technician console: %s   (payterm diag --port %s)" % (self.emu.console_path, self.emu.console_path))
        if self.emu.injected:
            self.notes.append("DUKPT initial key %s (the acquirer simulator's test BDK) injected: PIN payments "
                              "and MACs work from the first sale" % self.emu.injected)
        for n in self.notes:
            self.say(n)
        self.say("type `help` for commands")
        threading.Thread(target=self._watch, daemon=True).start()
        self.show(force=True)

    def show(self, force=False):
        rows = self.emu.panel.display()
        if rows == self._last and not force:
            return
        self._last = rows
        bar = "+" + "-" * 22 + "+"
        self.say("\n".join([bar] + ["| %-20s |" % r for r in rows] + [bar]))

    def _watch(self):
        while not self._stop:
            time.sleep(0.15)
            if not self.emu.running() and not self._stop:
                self.say("terminal stopped:\n" + self.emu.firmware_output()[-1500:])
                return
            self.show()

    def command(self, line):
        words = shlex.split(line)
        if not words:
            self.emu.panel.press("E")
            return True
        cmd, rest = words[0].lower(), words[1:]
        if cmd in ("quit", "exit"):
            return False
        if cmd == "help":
            self.say(HELP % (MERCHANT_PIN, TECH_PIN))
        elif cmd == "cards":
            for name, c in TEST_CARDS.items():
                self.say("  %-16s %s  PIN %s%s" % (name, c.masked, TEST_PINS.get(name, "-"), _asks(c)))
        elif cmd == "swipe":
            name = next((w for w in rest if not w.startswith("--")), "visa")
            faults = {_SWIPE_FAULTS[w]: True for w in rest if w in _SWIPE_FAULTS}
            self._card(name) and self.reader.swipe(TEST_CARDS[name], **faults)
        elif cmd == "tap":
            name = rest[0] if rest else "mastercard"
            self._card(name) and self.reader.tap(TEST_CARDS[name])
        elif cmd == "remove":
            self.reader.remove()
        elif cmd == "host":
            self._host(rest)
        elif cmd == "paper":
            self._paper(rest)
        elif cmd == "console":
            self._console(rest)
        elif cmd == "ledger":
            for e in self.acq.ledger:
                self.say("  " + ledger_line(e))
        elif cmd == "receipt":
            self.say(self.emu.printed()[-1200:])
        elif cmd == "screen":
            self.show(force=True)
        elif all(ch in "0123456789ECBF*#" for ch in line.strip()):
            self.emu.panel.press(line.strip())
        else:
            self.say("unknown command %r: type `help`" % cmd)
        return True

    def mark(self):
        """Where the console output is now (settle() looks at what comes after)."""
        with self.emu.console.cond:
            return len(self.emu.console.buf)

    @staticmethod
    def _last_at(rx, buf):
        last = -1
        for m in rx.finditer(buf):
            last = m.start()
        return last

    def settle(self, line, since, quiet=SETTLE_S, timeout=STEP_MAX_S):
        """After a scripted step: wait until the terminal is done with it, as a person watching would.

        A card (swipe/tap) is first waited for until the terminal reacts to it; then, while a card is
        being processed, and until the screen has not changed for `quiet` seconds (at most `timeout`).
        """
        con = self.emu.console
        end = time.monotonic() + timeout
        word = (line.split() or [""])[0].lower()
        if word in ("swipe", "tap"):
            seen_by = min(end, time.monotonic() + 10.0)
            with con.cond:
                while not _CARD_SEEN.search(con.buf, since) and time.monotonic() < seen_by:
                    con.cond.wait(0.1)
        rows, changed = self.emu.panel.display(), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.05)
            now = self.emu.panel.display()
            if now != rows:
                rows, changed = now, time.monotonic()
                continue
            with con.cond:
                buf = bytes(con.buf)
            busy = self._last_at(_CARD_TAKEN, buf) > self._last_at(_CARD_DONE, buf)
            if not busy and time.monotonic() - changed >= quiet:
                return
            if not self.emu.running():
                return

    def _paper(self, rest):
        states = {"ok": "ok", "out": "paper_out", "jam": "jam", "cover": "cover_open", "cutter": "cutter_jam"}
        if len(rest) == 1 and rest[0].lower() in states:
            self.emu.set_printer(states[rest[0].lower()])
            return
        now = {v: k for k, v in states.items()}.get(self.emu.printer_status(), "ok")
        self.say("%s   (the printer is now: %s)" % (PAPER_USAGE, now))

    def decline_codes(self):
        """Response codes (field 39) the failure-code catalog names: ISS-xx."""
        if self._rcs is None:
            from payterm_tools import codes

            entries, _ = codes.load_catalog()
            self._rcs = {e["id"][4:] for e in entries if e["id"].startswith("ISS-")}
        return self._rcs

    def _card(self, name):
        if name not in TEST_CARDS:
            self.say("no card %r: see `cards`" % name)
            return False
        return True

    def _console(self, rest, timeout=15.0):
        if not rest:
            self.say(CONSOLE_USAGE)
            return
        if not self.emu.running():
            self.say("console: the terminal is not running")
            return
        line = " ".join(rest)
        try:
            lines = self.emu.console.command(line, timeout)
        except AssertionError:
            self.say("console: no answer to %r within %.0f s" % (line, timeout))
            return
        for l in lines:
            self.say("  " + l)

    def _host(self, rest):
        what, args = (rest[0].lower(), rest[1:]) if rest else ("", [])
        if what in ("approve", "timeout", "no39", "drop", "down", "up", "badmac", "nomac") and not args:
            if what == "down":
                if self.acq.running:
                    self.acq.stop()
            elif what == "up":
                if not self.acq.running:
                    self.acq.start()
            else:
                self.acq.script({"approve": "approve", "timeout": "no_answer", "no39": "no_rc",
                                 "drop": "approve_drop", "badmac": "bad_mac", "nomac": "no_mac"}[what])
        elif what == "decline" and len(args) == 1 and _rc(args[0]):
            rc = args[0].upper()
            if rc not in self.decline_codes():
                # the terminal would take an rc the catalog lacks as a garbled answer (HST-02), not a decline
                self.say("host decline %s: not a response code of the catalog; one of %s" % (
                    rc, " ".join(sorted(self.decline_codes()))))
                self.say(HOST_USAGE)
                return
            self.acq.script(("decline", rc))
        elif what == "reversal" and len(args) == 1 and _rc(args[0]):
            rc = args[0].upper()
            self.acq.script("approve" if rc == "00" else ("decline", rc), mti=("0400", "0401"))
        elif what == "partial" and len(args) == 1 and args[0].isdigit() and int(args[0]) > 0:
            self.acq.script(("partial", int(args[0])), mti="0200")
        else:
            self.say(HOST_USAGE)

    def close(self):
        self._stop = True
        self.emu.close()
        self.reader.stop()
        self.acq.stop()


def run(args):
    src = sys.stdin
    if args.script:
        try:
            src = open(args.script)
        except OSError as e:
            raise SystemExit("cannot read the script %s: %s (give a file of session commands, one a line)"
                             % (args.script, e.strerror))
    s = Session(args)
    try:
        s.start()
        for line in src:
            if args.script:
                s.say("> " + line.rstrip())
            since = s.mark() if args.script else 0
            try:
                if not s.command(line.strip()):
                    break
            except ValueError as e:  # e.g. an unbalanced quote on the line
                s.say("cannot read %r: %s" % (line.strip(), e))
            if args.script:
                s.settle(line.strip(), since)  # let the terminal answer before the next scripted step
                s.show()
    except KeyboardInterrupt:
        pass
    finally:
        s.close()
    return 0

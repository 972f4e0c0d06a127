"""Counters a technician reads to see what fails most and how the link behaves.

Counts per failure code and per category, link-quality counters (retries,
breaker trips, host switches...), reboot reasons and cumulative uptime. Kept
in RAM and written to flash atomically at most every few seconds (flash wear),
on boot and on explicit flush(); a power cut loses at most that window.

Lifetime counts alone mislead: a host outage makes the background worker
repeat its reversals and advices hundreds of times while few customers were
affected. So each code is also counted apart when it came from background
work (`background`, stages in BACKGROUND), and per day (`days`: the last
DAYS days, "<epoch day>" -> {code: [customer-facing, background]}), from
which `payterm diag` shows a chosen window.
"""
from micropython import const
import time

from payterm import codes
from payterm.diag import _store

_SAVE_EVERY_MS = const(10000)
DAYS = const(14)  # days of per-day counts kept
# Fault stages of work no customer waits for: the SAF/reversal worker and its repeats,
# technician actions and self-tests.
BACKGROUND = ("worker", "retry", "tech", "selftest", "console")


class Stats:
    def __init__(self, path, ticks, clock=None):
        self.path = path
        self._ticks = ticks
        self._clock = clock
        self._t0 = ticks()
        self._saved_at = self._t0
        self._dirty = False
        data, self.damaged = _store.load(path)
        self._reset(data if isinstance(data, dict) else None)

    def _reset(self, data=None):
        d = data or {}
        self.codes = d.get("codes", {})
        self.categories = d.get("categories", {})
        self.background = d.get("background", {})  # code -> count from background stages
        self.days = d.get("days", {})  # "<epoch day>" -> {code: [customer-facing, background]}
        self.counters = d.get("counters", {})
        self.boots = d.get("boots", {})
        self.boot_count = d.get("boot_count", 0)
        # earlier boots' total plus what the last boot ran before it was saved
        self.uptime_prev_s = d.get("uptime_total_s", 0) + d.get("uptime_this_s", 0)
        self.last_boot = d.get("last_boot", None)

    def uptime_s(self):
        return time.ticks_diff(self._ticks(), self._t0) // 1000

    def on_fault(self, code, stage=""):
        self.codes[code] = self.codes.get(code, 0) + 1
        cat = codes.lookup(code)[codes.CATEGORY]
        self.categories[cat] = self.categories.get(cat, 0) + 1
        bg = stage in BACKGROUND
        if bg:
            self.background[code] = self.background.get(code, 0) + 1
        if self._clock is not None:
            day = str(int(self._clock()) // 86400)
            d = self.days.get(day)
            if d is None:
                d = self.days[day] = {}
                if len(self.days) > DAYS:
                    for k in sorted(self.days, key=int)[:len(self.days) - DAYS]:
                        del self.days[k]
            c = d.get(code)
            if c is None:
                c = d[code] = [0, 0]
            c[1 if bg else 0] += 1
        self._touch()

    def count(self, key, n=1):
        self.counters[key] = self.counters.get(key, 0) + n
        self._touch()

    def boot(self, reason, now):
        self.boots[reason] = self.boots.get(reason, 0) + 1
        self.boot_count += 1
        self.last_boot = [now, reason]
        self.flush()

    def _touch(self):
        self._dirty = True
        if time.ticks_diff(self._ticks(), self._saved_at) >= _SAVE_EVERY_MS:
            self.flush()

    def flush(self):
        self._saved_at = self._ticks()
        _store.save(self.path, self.snapshot(persist=True))
        self._dirty = False

    def snapshot(self, persist=False):
        up = self.uptime_s()
        d = {
            "codes": self.codes,
            "categories": self.categories,
            "background": self.background,
            "days": self.days,
            "counters": self.counters,
            "boots": self.boots,
            "boot_count": self.boot_count,
            "last_boot": self.last_boot,
        }
        if persist:
            # uptime of earlier boots plus this one so far: a restart keeps the total
            d["uptime_total_s"] = self.uptime_prev_s
            d["uptime_this_s"] = up
            return d
        d["uptime_s"] = up
        d["uptime_total_s"] = self.uptime_prev_s + up
        return d

    def top_codes(self, n):
        items = sorted(self.codes.items(), key=lambda kv: (-kv[1], kv[0]))
        return items[:n]

    def clear(self):
        self._reset()
        self.flush()

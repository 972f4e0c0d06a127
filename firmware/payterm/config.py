"""Terminal parameters: defaults, then the board map, then flash, then the HAL.

One merged dict so every layer reads the same values; the flash file lets a
technician or the acquirer's parameter download change a terminal without a
new image, and the HAL layer lets the emulator point at its own simulator.
"""
import json

DEFAULTS = {
    "hosts": ["127.0.0.1:8583"],
    "connect_timeout_ms": 5000,
    "read_timeout_ms": 15000,
    "max_wait_ms": 30000,
    "card_timeout_ms": 30000,
    "result_ms": 6000,
    "terminal_id": "TERM0001",
    "merchant_id": "MERCHANT0000001",
    "currency": 978,
    "tech_pin": "4321",
    "tls": None,
    "backoff_base_ms": 250,
    "backoff_cap_ms": 4000,
    "breaker_threshold": 3,
    "breaker_open_ms": 15000,      # first open period; each failed echo probe doubles it ...
    "breaker_open_max_ms": 120000,  # ... up to this (equal jitter)
    "max_attempts": 4,
    "min_read_ms": 3000,           # never send with less than this left to wait for the answer (HST-06)
    # store-and-forward and background work (payterm.txn.engine DEFAULTS, payterm.txn.worker)
    "floor_limit": 5000,
    "saf_max_count": 50,
    "saf_max_total": 100000,
    "saf_max_tries": 20,
    "worker_wait_ms": 10000,
    "retry_base_ms": 2000,
    "retry_cap_ms": 120000,
    "worker_scan_ms": 30000,
}


def load(board, storage_root, overrides=None):
    cfg = dict(DEFAULTS)
    cfg.update(board.get("config", {}))
    try:
        with open(storage_root + "/config.json") as f:
            extra = json.load(f)
        if isinstance(extra, dict):
            cfg.update(extra)
    except OSError:
        pass  # no parameter file yet: board defaults apply
    except ValueError:
        cfg["_config_error"] = "config.json unreadable"
    if overrides:
        cfg.update(overrides)
    return cfg


def hosts(cfg):
    """[(host, port), ...] from "host:port" strings."""
    out = []
    for h in cfg.get("hosts") or ():
        host, _, port = h.rpartition(":")
        out.append((host, int(port)))
    return out

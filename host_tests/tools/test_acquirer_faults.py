"""Acquirer simulator faults used by the network fault matrix: reset mid-frame, idle drop, a slow host."""
import socket
import struct
import threading
import time

import pytest

from payterm_tools.sim.acquirer import AcquirerSim
from test_acquirer import Client, msg


@pytest.fixture
def sim():
    s = AcquirerSim(security=False).start()  # the tests send unsealed requests (no MAC, no PIN block)
    yield s
    s.stop()


def test_reset_mid_frame_books_sends_half_an_answer_then_resets(sim):
    sim.script("reset_mid")
    c = Client(sim.address)
    c.send(msg("0200", 1))
    (n,) = struct.unpack(">H", c._exact(2))
    got = b""
    with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
        while True:
            chunk = c.s.recv(4096)
            if not chunk:
                break
            got += chunk
    assert 0 < len(got) < n, "half of the frame, then the reset"
    assert [(e["stan"], e["booked"]) for e in sim.ledger] == [("000001", True)]
    c.close()


def test_drop_closes_idle_connections(sim):
    c = Client(sim.address)
    assert c.ask(msg("0200", 2))["39"] == "00"
    sim.drop()
    assert c.s.recv(10) == b"", "the host closed it (FIN)"
    c.close()
    c2 = Client(sim.address)
    assert c2.ask(msg("0200", 3))["39"] == "00", "new connections are served"
    c2.close()


def test_reversal_waits_for_an_original_the_host_is_still_deciding(sim):
    sim.script(("delay", 600))
    first = Client(sim.address)
    first.send(msg("0200", 7, amount=1200, **{"7": "0101120000"}))
    time.sleep(0.1)  # the original has arrived; the host is still deciding it
    rev = Client(sim.address)
    t0 = time.monotonic()
    a = rev.ask(msg("0400", 7, amount=1200, **{"7": "0101120000", "90": "0200" + "000007" + "0101120000" + "0" * 22}))
    assert a["39"] == "00" and time.monotonic() - t0 >= 0.4, "answered once the original was decided, not 25"
    assert sim.held("TERM0001", "000007") == 0
    assert [(e["kind"], e["rc"], e["booked"]) for e in sim.ledger] == [("auth", "00", True), ("reversal", "00", True)]
    first.close()
    rev.close()


def test_slow_host_does_not_hold_up_unrelated_reversals(sim):
    sim.script(("delay", 1500))
    first = Client(sim.address)
    first.send(msg("0200", 8))
    time.sleep(0.1)
    other = Client(sim.address)
    t0 = time.monotonic()
    a = other.ask(msg("0400", 9, **{"90": "0200" + "000009" + "0" * 32}))
    assert a["39"] == "25" and time.monotonic() - t0 < 1.0
    first.close()
    other.close()

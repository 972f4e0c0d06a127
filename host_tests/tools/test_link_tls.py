"""Link over TLS against the acquirer simulator: a self-signed server, and a local CA.

The certificates are made with the openssl CLI for each run; the firmware
side verifies the server with the configured CA (MicroPython ssl/mbedTLS).
With the local CA (reliability/tlsca.py) the terminal trusts the CA, not the
server certificate itself, and a server certificate from another CA, made for
the same host name, is refused with NET-04 before any request leaves.
"""
import shutil
import subprocess
import threading
import time

import pytest

from payterm_tools.sim.acquirer import AcquirerSim
from reliability import tlsca
from test_link import run_ops, sale

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed: cannot make test certificates")

HOSTNAME = "acquirer.test"
# The handshake (mbedTLS in the MicroPython VM, ECDSA) must fit the connect budget on a loaded machine:
# a budget of the default 1 s turns a refused certificate into a connect timeout (NET-03) under load.
CONNECT_MS = 8000


def _until(cond, timeout_s=10):
    """Wait for a condition the simulator's threads make true (the server side of a handshake ends
    after the client side has gone): True as soon as it holds, False after timeout_s."""
    ev = threading.Event()
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() >= deadline:
            return False
        ev.wait(0.02)
    return True


def _cert(d, name, cn):
    key, pem = d / (name + ".key"), d / (name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(pem), "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:" + cn], check=True, capture_output=True)
    return str(pem), str(key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return {"server": _cert(d, "server", HOSTNAME), "other": _cert(d, "other", HOSTNAME)}


@pytest.fixture
def tls_sim(certs):
    # security=False: TLS only; MACs: test_link_mac.py
    s = AcquirerSim(name="tls", tls=certs["server"], security=False).start()
    yield s
    s.stop()


@pytest.mark.parametrize("inline", [False, True], ids=["ca-path", "ca-bytes"])
def test_tls_approve(tmp_path, certs, tls_sim, inline):
    tls = {"ca": certs["server"][0], "server_hostname": HOSTNAME, "inline": inline}
    r = run_ops(tmp_path, [tls_sim.address], [{"fields": sale(1)}, {"fields": sale(2)}], tls=tls, read_ms=3000,
                connect_ms=CONNECT_MS)
    assert [x["ok"] for x in r] == [True, True], r
    assert r[0]["resp"]["11"] == "000001" and r[1]["resp"]["39"] == "00"
    assert tls_sim.connections == 1
    assert [e["stan"] for e in tls_sim.authorized()] == ["000001", "000002"]


@pytest.mark.parametrize("case", ["wrong-ca", "wrong-hostname"])
def test_tls_verification_failure_is_net04_not_sent(tmp_path, certs, tls_sim, case):
    ca = certs["other"][0] if case == "wrong-ca" else certs["server"][0]
    host = HOSTNAME if case == "wrong-ca" else "other.test"
    (r,) = run_ops(tmp_path, [tls_sim.address], [{"fields": sale(3)}], tls={"ca": ca, "server_hostname": host},
                   attempts=1, read_ms=3000, connect_ms=CONNECT_MS)
    assert r["ok"] is False and r["code"] == "NET-04" and r["sent"] is False, r
    assert tls_sim.ledger == [], "no application data reached the host"


@pytest.fixture(scope="module")
def ca_certs(tmp_path_factory):
    return tlsca.make(tmp_path_factory.mktemp("tls-ca"), HOSTNAME)


@pytest.mark.parametrize("server", ["server", "other_server"], ids=["signed-by-our-ca", "signed-by-another-ca"])
def test_tls_local_ca(tmp_path, ca_certs, server):
    sim = AcquirerSim(name="tls-ca", tls=ca_certs[server], security=False).start()
    try:
        (r,) = run_ops(tmp_path, [sim.address], [{"fields": sale(4)}], tls={"ca": ca_certs["ca"][0],
                       "server_hostname": HOSTNAME}, attempts=1, read_ms=3000, connect_ms=CONNECT_MS)
        if server == "server":
            assert r["ok"] is True and r["resp"]["39"] == "00", r
            assert [e["stan"] for e in sim.authorized()] == ["000004"]
        else:
            assert r["ok"] is False and r["code"] == "NET-04" and r["sent"] is False, r
            # the simulator's thread sees the refused handshake end after the terminal has gone: wait for it
            assert _until(lambda: sim.tls_failures >= 1), "the simulator saw no failed handshake"
            assert sim.ledger == [], "refused in the handshake, nothing reached the host"
    finally:
        sim.stop()

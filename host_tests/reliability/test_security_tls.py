"""The terminal (emulator) talks TLS to the acquirer simulator, trusting a local CA made at test time.

The terminal is configured with the CA (config `tls`: {"ca": path,
"server_hostname": name}) and offline approval off, so a refused host shows
as the sale's own code. A server certificate from that CA: the sale is
approved over TLS and reconciles. A certificate from another CA for the same
name: the handshake is refused, the sale fails with NET-04, the comm
self-test (even with the breaker open) reports NET-04, and nothing reached the host.
"""
import pytest

from payterm_tools.sim.acquirer import AcquirerSim
from reliability import tlsca

from ledger import read_journal, reconcile  # noqa: E402 (host_tests/system)
from payterm_system_fixtures import start_sale  # noqa: E402

pytestmark = [pytest.mark.emulator_only, pytest.mark.reliability("security"),
              pytest.mark.skipif(tlsca.OPENSSL is None, reason="openssl CLI not installed: cannot make the test CA")]

HOSTNAME = "acquirer.test"


@pytest.fixture(scope="module")
def ca_certs(tmp_path_factory):
    return tlsca.make(tmp_path_factory.mktemp("tls-ca"), HOSTNAME)


@pytest.fixture(params=["server", "other_server"], ids=["cert-from-our-ca", "cert-from-another-ca"])
def served(request):
    return request.param


@pytest.fixture
def acquirer(ca_certs, served):
    """The acquirer simulator serving TLS with the certificate under test (replaces the plain one)."""
    sim = AcquirerSim(name="primary", tls=ca_certs[served]).start()
    yield sim
    sim.stop()


@pytest.fixture
def terminal_config(ca_certs):
    return {"tls": {"ca": ca_certs["ca"][0], "server_hostname": HOSTNAME}, "floor_limit": 0}


def test_tls_against_local_ca(rel, terminal, card_reader, acquirer, served):
    start_sale(terminal, "1250")
    card_reader.swipe("visa")
    line = terminal.console.expect(r"# (TXN|FAIL) [^\n]*", 30).group(0).decode()
    if served == "server":
        assert "APPROVED" in line, line
        assert [e["kind"] for e in acquirer.ledger] == ["auth"]
        assert reconcile(read_journal(terminal.state_dir), acquirer.ledger) == {"sale_approved": 1}
        rel.record("security", tls_approved=1)
        return
    assert "code=NET-04" in line, "a certificate from another CA is refused with NET-04: %s" % line
    terminal.panel.wait_screen("NET-04", 10)
    # The sale's failed attempts opened the breaker; the technician's self-test still tries the host and says why
    # it failed (not HST-04), and fails the same way every time while the certificate stays wrong.
    for _ in range(2):
        st = [l for l in terminal.console.command("selftest comm", 30) if l.startswith(("PASS", "FAIL"))]
        assert st and st[0].startswith("FAIL comm NET-04"), st
    faults = terminal.console.command("faults 5")
    assert any("NET-04" in l for l in faults), faults
    assert acquirer.ledger == [] and acquirer.tls_failures >= 1, "refused in the handshake: nothing reached the host"
    recs = read_journal(terminal.state_dir)
    assert [(t["kind"], t["st"], t.get("code")) for t in recs] == [("sale", "failed", "NET-04")], recs
    assert reconcile(recs, acquirer.ledger) == {"sale_failed": 1}
    rel.record("security", tls="wrong CA refused: NET-04")

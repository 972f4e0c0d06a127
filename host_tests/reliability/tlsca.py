"""A local certificate authority made at test time with the openssl CLI.

`make(d, hostname)` creates two CAs and a server certificate from each for
`hostname` (subjectAltName DNS), so a test can give the terminal one CA and
let the acquirer simulator present the other's certificate: a certificate
that is well formed, for the right name, and still not to be trusted.
"""
import shutil
import subprocess

OPENSSL = shutil.which("openssl")
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _run(*args):
    subprocess.run([OPENSSL] + list(args), check=True, capture_output=True)


def ca(d, name):
    key, pem = d / (name + ".key"), d / (name + ".pem")
    _run("req", "-x509", *_EC, "-keyout", str(key), "-out", str(pem), "-days", "2", "-subj", "/CN=" + name,
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return str(pem), str(key)


def server(d, name, hostname, by):
    key, csr, pem = d / (name + ".key"), d / (name + ".csr"), d / (name + ".pem")
    _run("req", *_EC, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=" + hostname,
         "-addext", "subjectAltName=DNS:" + hostname, "-addext", "extendedKeyUsage=serverAuth")
    _run("x509", "-req", "-in", str(csr), "-CA", by[0], "-CAkey", by[1], "-CAcreateserial", "-out", str(pem),
         "-days", "2", "-copy_extensions", "copyall")
    return str(pem), str(key)


def make(d, hostname):
    """{"ca": (pem, key), "server": (pem, key) signed by ca, "other_ca": ..., "other_server": signed by other_ca}."""
    ours, other = ca(d, "payterm-test-ca"), ca(d, "other-ca")
    return {"ca": ours, "server": server(d, "acquirer", hostname, ours),
            "other_ca": other, "other_server": server(d, "impostor", hostname, other)}

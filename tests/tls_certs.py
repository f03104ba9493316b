"""Certificates for the TLS tests, made at test time with the ``openssl`` command (no key is
committed): a CA, a server certificate for ``localhost``/``127.0.0.1``, two client
certificates (one revoked, with the CA's CRL), an encrypted copy of the server key and a key
that matches nothing."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "correct horse"
CLIENT_SUBJECT = "/O=ftserver tests/CN=client, one"
#: ``CLIENT_SUBJECT`` as RFC 4514 writes it (the last RDN first, the comma escaped).
CLIENT_NAME = "CN=client\\, one,O=ftserver tests"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certs:
    dir: Path

    def __getattr__(self, name: str) -> str:  # certs.ca, certs.server_key...
        stem, _, kind = name.rpartition("_")
        if kind in ("key", "pem") and stem:
            return str(self.dir / f"{stem}.{kind}")
        return str(self.dir / f"{name}.pem")

    def client_context(self, cert: str | None = None, *, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """A client context that trusts the test CA, presenting ``cert`` (``client``, ``revoked``)."""
        context = ssl.create_default_context(cafile=str(self.dir / "ca.pem"))
        if cert is not None:
            context.load_cert_chain(str(self.dir / f"{cert}.pem"), str(self.dir / f"{cert}.key"))
        if maximum is not None:
            context.maximum_version = maximum
        return context


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(folder: Path) -> Certs:
    _run("req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=ftserver test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    signed = {
        "server": ("/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        "client": (CLIENT_SUBJECT, "extendedKeyUsage=clientAuth\n"),
        "revoked": ("/CN=revoked client", "extendedKeyUsage=clientAuth\n"),
    }
    for name, (subject, extensions) in signed.items():
        _run("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=folder)
        (folder / f"{name}.ext").write_text(extensions)
        _run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "30", "-extfile", f"{name}.ext", cwd=folder)
    (folder / "index.txt").write_text("")
    (folder / "crlnumber").write_text("01\n")
    (folder / "ca.cnf").write_text(
        "[ca]\ndefault_ca = CA_default\n[CA_default]\ndatabase = index.txt\ncrlnumber = crlnumber\n"
        "default_md = sha256\ndefault_crl_days = 30\ncertificate = ca.pem\nprivate_key = ca.key\n"
    )
    _run("ca", "-config", "ca.cnf", "-revoke", "revoked.pem", cwd=folder)
    _run("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", cwd=folder)
    _run("pkey", "-in", "server.key", "-aes256", "-passout", f"pass:{PASSWORD}", "-out", "encrypted.key", cwd=folder)
    _run("genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "other.key", cwd=folder)
    return Certs(folder)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return make_certs(tmp_path_factory.mktemp("tls"))

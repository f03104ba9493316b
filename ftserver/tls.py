"""TLS: the server's ``SSLContext``, built from the ``Config`` in each serving process, and
what one TLS connection tells the applications (``TLSInfo``). See ``docs/tls.md``."""

from __future__ import annotations

import os
import re
import ssl
from typing import TYPE_CHECKING, Any

from ftserver.config import ConfigError

if TYPE_CHECKING:
    from ftserver.config import Config

PROTOCOL_VERSIONS = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}
CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
#: The protocol numbers of the ASGI TLS extension's ``tls_version`` (as on the wire).
WIRE_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
#: ALPN protocol names (RFC 7301), the server's preference first.
ALPN_H2 = "h2"
ALPN_HTTP1 = "http/1.1"

_PEM_CERT_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class ServerContext(ssl.SSLContext):
    """The server's ``SSLContext``, with what every connection's ``TLSInfo`` shares: the
    server certificate (PEM) and the IANA number of each cipher suite it may agree on."""

    server_cert: str | None
    cipher_ids: dict[str, int]


def alpn_protocols(http2: bool) -> list[str]:
    """What the server offers in ALPN: ``h2`` first when HTTP/2 is served, then HTTP/1.1."""
    return [ALPN_H2, ALPN_HTTP1] if http2 else [ALPN_HTTP1]


def server_context(config: Config, *, http2: bool = False) -> ServerContext | None:
    """The ``SSLContext`` of ``config``'s TLS options, or ``None`` without ``ssl_certfile``.

    Built in each process that serves (a worker process builds its own, after the fork).
    A file that cannot be read or used, a wrong password, a key that does not match the
    certificate: a ``ConfigError`` whose message is one line naming the option.
    ``http2``: whether ALPN offers ``h2`` (the HTTP/2 driver must be there to serve it).
    """
    if config.ssl_certfile is None:
        return None
    context = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = PROTOCOL_VERSIONS[config.ssl_protocol_min]
    # No TLS compression (CRIME), no renegotiation (a client-initiated DoS), the server's
    # cipher order, fresh (EC)DH keys per handshake.
    context.options |= (
        ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_SINGLE_DH_USE | ssl.OP_SINGLE_ECDH_USE
    )
    _read("ssl_certfile", config.ssl_certfile)
    if config.ssl_keyfile is not None:
        _read("ssl_keyfile", config.ssl_keyfile)
    password: Any = config.ssl_keyfile_password
    if password is None:
        password = _no_password(config.ssl_keyfile or config.ssl_certfile)  # never a prompt on the terminal
    try:
        context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, password)
    except ssl.SSLError as exc:
        raise ConfigError(_key_error(config, exc)) from None
    except OSError as exc:
        raise ConfigError(f"ssl_certfile: cannot load {config.ssl_certfile!r}: {exc.strerror or exc}") from None
    if config.ssl_ciphers:
        try:
            context.set_ciphers(config.ssl_ciphers)
        except ssl.SSLError:
            raise ConfigError(f"ssl_ciphers: no cipher suite matches {config.ssl_ciphers!r} (an OpenSSL cipher list, for TLS 1.2)") from None
    context.verify_mode = CERT_REQS[config.ssl_cert_reqs]
    if config.ssl_ca_certs is not None:
        _load_verify("ssl_ca_certs", context, config.ssl_ca_certs)
    for crl in config.ssl_crl:
        _load_verify("ssl_crl", context, crl)
    if config.ssl_crl:
        # A revoked client certificate fails the handshake; so does one whose issuer has no CRL loaded.
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    context.set_alpn_protocols(alpn_protocols(http2))
    context.server_cert = _first_certificate(config.ssl_certfile)
    context.cipher_ids = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
    return context


def _read(option: str, path: str) -> None:
    """Fail with one line when ``path`` cannot be read."""
    try:
        with open(path, "rb") as file:
            file.read(1)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path!r}: {exc.strerror or exc}") from None


def _no_password(path: str) -> Any:
    def refuse() -> bytes:
        raise ConfigError(f"ssl_keyfile: {path!r} is encrypted: give its password with --ssl-keyfile-password")

    return refuse


def _key_error(config: Config, exc: ssl.SSLError) -> str:
    """One line for a certificate/key pair OpenSSL refused."""
    key = config.ssl_keyfile or config.ssl_certfile
    reason = (exc.reason or "").upper()
    if "KEY_VALUES_MISMATCH" in reason:
        return f"ssl_keyfile: the private key {key!r} does not match the certificate {config.ssl_certfile!r}"
    if config.ssl_keyfile_password is not None and ("DECRYPT" in reason or "BAD_PASSWORD" in reason or "PEM_LIB" in reason or not reason):
        return f"ssl_keyfile_password: it does not decrypt {key!r} (wrong password, or not an encrypted PEM key)"
    if config.ssl_keyfile is None:
        return f"ssl_certfile: {config.ssl_certfile!r} must hold a PEM certificate (chain) and its private key, or give --ssl-keyfile ({exc.reason or exc})"
    return f"ssl_certfile/ssl_keyfile: {config.ssl_certfile!r} and {key!r} must be a PEM certificate (chain) and its private key ({exc.reason or exc})"


def _load_verify(option: str, context: ssl.SSLContext, path: str) -> None:
    try:
        if os.path.isdir(path):
            context.load_verify_locations(capath=path)
        else:
            _read(option, path)
            context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ConfigError(f"{option}: {path!r} is not a PEM file of certificates or CRLs ({exc.reason or exc})") from None


def _first_certificate(path: str) -> str | None:
    with open(path, "rb") as file:
        match = _PEM_CERT_RE.search(file.read())
    return match.group().decode("ascii") + "\n" if match else None


# -- one connection -----------------------------------------------------------------------

#: RFC 4514 §3: the attribute types written by name; others are written as their OID.
_RFC4514_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_OIDS = {
    "emailAddress": "1.2.840.113549.1.9.1",
    "serialNumber": "2.5.4.5",
    "surname": "2.5.4.4",
    "givenName": "2.5.4.42",
    "title": "2.5.4.12",
    "initials": "2.5.4.43",
    "generationQualifier": "2.5.4.44",
    "dnQualifier": "2.5.4.46",
    "pseudonym": "2.5.4.65",
    "businessCategory": "2.5.4.15",
    "postalCode": "2.5.4.17",
    "organizationIdentifier": "2.5.4.97",
}
_ESCAPE_RE = re.compile(r'([\\"+,;<>\x00])')


def rfc4514_name(rdns: Any) -> str:
    """A distinguished name as ``ssl.getpeercert()`` gives it (RDNs, each a tuple of
    ``(type, value)``), written as RFC 4514 says: last RDN first, ``,`` between RDNs,
    ``+`` inside one, special characters escaped."""
    parts = []
    for rdn in reversed(rdns):
        parts.append("+".join(f"{_RFC4514_NAMES.get(kind) or _OIDS.get(kind, kind)}={_escape(value)}" for kind, value in rdn))
    return ",".join(parts)


def _escape(value: str) -> str:
    value = _ESCAPE_RE.sub(r"\\\1", value)
    if value[:1] in ("#", " "):
        value = "\\" + value
    if value.endswith(" ") and not value.endswith("\\ "):
        value = value[:-1] + "\\ "
    return value


class TLSInfo:
    """What a TLS connection tells the applications, computed once per connection
    (``ConnectionInfo.tls``): the ASGI ``tls`` extension and the WSGI ``SSL_*`` keys."""

    __slots__ = ("version", "cipher", "cipher_bits", "alpn", "server_cert", "client_chain", "client_name", "issuer_name", "asgi", "environ")

    def __init__(self, ssl_object: Any, context: ServerContext | None) -> None:
        self.version: str = ssl_object.version() or ""
        cipher = ssl_object.cipher()
        self.cipher: str = cipher[0] if cipher else ""
        self.cipher_bits: int | None = cipher[2] if cipher else None
        self.alpn: str | None = ssl_object.selected_alpn_protocol()
        self.server_cert: str | None = getattr(context, "server_cert", None)
        self.client_chain: list[str] = []
        self.client_name: str | None = None
        self.issuer_name: str | None = None
        peer = ssl_object.getpeercert()
        if peer:  # verified (a certificate that fails verification fails the handshake)
            self.client_name = rfc4514_name(peer.get("subject", ()))
            self.issuer_name = rfc4514_name(peer.get("issuer", ()))
            chain = ssl_object.get_unverified_chain() or [ssl_object.getpeercert(binary_form=True)]
            self.client_chain = [ssl.DER_cert_to_PEM_cert(_der(cert)) for cert in chain]
        ids = getattr(context, "cipher_ids", {})
        self.asgi: dict[str, Any] = {
            "server_cert": self.server_cert,
            "client_cert_chain": self.client_chain,
            "client_cert_name": self.client_name,
            "client_cert_error": None,
            "tls_version": WIRE_VERSIONS.get(self.version),
            "cipher_suite": ids.get(self.cipher),
        }
        self.environ: dict[str, str] = self._environ()

    def _environ(self) -> dict[str, str]:
        """The keys Apache's mod_ssl gives a WSGI app (``HTTPS``, ``SSL_PROTOCOL``, ...)."""
        environ = {"HTTPS": "on", "SSL_PROTOCOL": self.version, "SSL_CIPHER": self.cipher}
        if self.cipher_bits is not None:
            environ["SSL_CIPHER_USEKEYSIZE"] = str(self.cipher_bits)
        if self.server_cert is not None:
            environ["SSL_SERVER_CERT"] = self.server_cert
        if self.client_chain:
            environ["SSL_CLIENT_VERIFY"] = "SUCCESS"
            environ["SSL_CLIENT_CERT"] = self.client_chain[0]
            environ["SSL_CLIENT_S_DN"] = self.client_name or ""
            environ["SSL_CLIENT_I_DN"] = self.issuer_name or ""
            for index, cert in enumerate(self.client_chain[1:]):
                environ[f"SSL_CLIENT_CERT_CHAIN_{index}"] = cert
        else:
            environ["SSL_CLIENT_VERIFY"] = "NONE"
        return environ


def _der(cert: Any) -> bytes:
    """DER bytes of a chain entry (``bytes``, or an object with ``public_bytes``)."""
    if isinstance(cert, (bytes, bytearray)):
        return bytes(cert)
    return cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]

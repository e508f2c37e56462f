"""TLS for a deployment: each party's server certificate, issued at bootstrap, and a probe.

Every party serves HTTPS with a P-256 key of its own (``tls-key.pem``, 0600, never the signing
key: rotating one must not touch the other) and a TLS certificate from the central bank for its
role and name (``tls-cert.pem``), the DNS/IP names it is reached by (127.0.0.1 and localhost
on one machine, the container name in docker/). The bootstrap issues it next to the party's
signing certificate:

* where it holds the central bank's CA (the demo, :class:`~.local.LocalDeployment`, and the
  central bank's own certificate) with :meth:`CentralBankCA.certify_tls` directly
  (:func:`ca_issuer`);
* elsewhere (docker/: every party in its container) through the central bank's admin API,
  ``POST /v1/certify-tls`` (:meth:`~.bootstrap.CentralBankLink.issue_tls`).

A certificate still valid for a week, for the same key, identity and hosts, is kept, so a
container restart changes nothing. :func:`probe` opens one handshake to a running party and
reports what a client sees: protocol, the identity its certificate names, and whether the
server asked for a client certificate (mutual TLS) — the demo's evidence that it ran over TLS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.errors import ConfigError
from ecash_tpm.pki import certificate_fingerprint, load_certificate, tls_identity

__all__ = [
    "CENTRAL_BANK_NAME",
    "LOCAL_HOSTS",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "TlsIssue",
    "TlsProbe",
    "ca_issuer",
    "install_tls",
    "probe",
    "tls_paths",
]

TLS_CERT_FILE = "tls-cert.pem"
TLS_KEY_FILE = "tls-key.pem"
#: The name in the central bank's own TLS identity (``centralbank.centralbank.parties...``).
CENTRAL_BANK_NAME = "centralbank"
#: What a party on one machine is reached by.
LOCAL_HOSTS = ("127.0.0.1", "localhost")
#: Renew a kept TLS certificate when it expires sooner than this.
_RENEW_BEFORE = dt.timedelta(days=7)

#: ``issue(role, name, public_key, hosts)``: a TLS certificate from the central bank.
TlsIssue = Callable[[str, str, ec.EllipticCurvePublicKey, Sequence[str]], x509.Certificate]


def ca_issuer(ca_dir: Path) -> TlsIssue:
    """Issue with the central bank's CA in ``ca_dir`` (opened per certificate: the running
    service holds the same CA, and its state is transactional)."""
    from ecash_tpm.centralbank.ca import CentralBankCA

    def issue(
        role: str, name: str, public_key: ec.EllipticCurvePublicKey, hosts: Sequence[str]
    ) -> x509.Certificate:
        with CentralBankCA.open(ca_dir) as ca:
            return ca.certify_tls(role, name, public_key, hosts=tuple(hosts))

    return issue


def tls_paths(settings: Any) -> tuple[Path, Path]:
    """The party's TLS certificate and key files (settings ``tls_cert_file``/``tls_key_file``,
    default ``data_dir/tls-cert.pem`` and ``data_dir/tls-key.pem``)."""
    data = Path(settings.data_dir)
    cert = getattr(settings, "tls_cert_file", None) or data / TLS_CERT_FILE
    key = getattr(settings, "tls_key_file", None) or data / TLS_KEY_FILE
    return Path(cert), Path(key)


def _tls_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The TLS key in ``path``, made (P-256, PKCS#8, 0600) on first use."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError("the TLS key is not an EC key", detail={"path": str(path)})
        return key
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_file_atomic(path, pem, mode=0o600)
    return key


def _san_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = set(san.get_values_for_type(x509.DNSName))
    names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return names


def _normal_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _kept(
    cert_path: Path,
    root: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    identity: str,
    hosts: Sequence[str],
) -> x509.Certificate | None:
    """The certificate in ``cert_path`` if it may be served another week unchanged."""
    try:
        cert = load_certificate(cert_path.read_bytes())
    except Exception:  # noqa: BLE001 - a missing or unreadable file is issued anew
        return None
    soon = dt.datetime.now(dt.UTC) + _RENEW_BEFORE
    if cert.issuer != root.subject or cert.not_valid_after_utc < soon:
        return None
    try:
        cert.verify_directly_issued_by(root)
    except Exception:  # noqa: BLE001 - InvalidSignature, another key type: issue anew
        return None
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or (
        public.public_numbers() != key.public_key().public_numbers()
    ):
        return None
    names = _san_names(cert)
    if identity not in names or not {_normal_host(h) for h in hosts} <= names:
        return None
    return cert


def install_tls(
    role: str,
    name: str,
    settings: Any,
    root: x509.Certificate,
    issue: TlsIssue,
    *,
    hosts: Sequence[str] = LOCAL_HOSTS,
) -> dict[str, Any]:
    """Key and TLS certificate of a party in its data directory (both 0600); a certificate
    still good for the key, identity and ``hosts`` is kept. Returns what it says."""
    cert_path, key_path = tls_paths(settings)
    key = _tls_key(key_path)
    identity = tls_identity(role, name)
    cert = _kept(cert_path, root, key, identity, hosts)
    issued = cert is None
    if cert is None:
        cert = issue(role, name, key.public_key(), tuple(hosts))
        write_file_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o600)
    return {
        "identity": identity,
        "hosts": sorted(_san_names(cert) - {identity}),
        "serial": format(cert.serial_number, "x"),
        "fingerprint": certificate_fingerprint(cert),
        "not_after": int(cert.not_valid_after_utc.timestamp()),
        "issued_now": issued,
        "cert_file": str(cert_path),
        "key_file": str(key_path),
    }


@dataclass(frozen=True)
class TlsProbe:
    """What one handshake with a party showed."""

    protocol: str
    identity: str
    mutual: bool
    cipher: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "identity": self.identity,
            "mutual": self.mutual,
            "cipher": self.cipher,
        }


def probe(url: str, context: ssl.SSLContext, *, timeout: float = 5.0) -> TlsProbe:
    """One TLS handshake with ``url`` under ``context`` (which checks chain, identity and
    revocation as every client does); reports the protocol, the identity in the server's
    certificate and whether the server requested a client certificate.

    Whether a TLS 1.3 server sent a CertificateRequest is only visible in the (decrypted)
    handshake messages, so the probe watches them with OpenSSL's message callback on a copy
    of nothing but that flag; the verdict is what the wire showed, not what a setting says.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname is None:
        raise ConfigError("probe needs an https:// URL", detail={"url": url})
    requested: list[bool] = []

    def watch(_conn: Any, _direction: str, _version: Any, content: Any, msg: Any, _d: Any) -> None:
        if content == ssl._TLSContentType.HANDSHAKE and msg == (  # type: ignore[attr-defined]
            ssl._TLSMessageType.CERTIFICATE_REQUEST  # type: ignore[attr-defined]
        ):
            requested.append(True)

    previous = getattr(context, "_msg_callback", None)
    context._msg_callback = watch  # type: ignore[attr-defined]
    try:
        port = parts.port or 443
        with (
            socket.create_connection((parts.hostname, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            protocol = tls.version() or "unknown"
            cipher = (tls.cipher() or ("unknown",))[0]
    finally:
        context._msg_callback = previous  # type: ignore[attr-defined]
    names = _san_names(x509.load_der_x509_certificate(der)) if der else set()
    identity = next((n for n in sorted(names) if n.endswith(".parties.ecash-tpm.internal")), "")
    return TlsProbe(protocol, identity, bool(requested), cipher)

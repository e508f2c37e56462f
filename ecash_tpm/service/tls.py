"""TLS for every party: server and client contexts anchored on the central bank's root only,
typed handshake errors, and the verified client certificate of a mutual-TLS caller.

Why each choice:

* **TLS 1.3 only**, both ways: no downgrade to suites or renegotiation of older versions.
* **The central bank root is the only trust anchor**: contexts are built from scratch
  (``ssl.SSLContext``, never ``create_default_context``), so the system CA store is never
  loaded; a certificate from a public CA for the same name is as untrusted as a self-signed one.
* **Clients verify identity, not addresses**: a client that expects bank ``bank-1`` checks the
  server's certificate against :func:`~ecash_tpm.pki.tls_identity` (sent as SNI, whatever the
  URL's host), so a certificate for another role or another party fails in the handshake, before
  a byte of the request (password, TOTP, coins) leaves the client.
* **Revocation**: with a CRL the client checks the leaf against it (``VERIFY_CRL_CHECK_LEAF``);
  a CRL past its ``next_update`` is refused when the context is built (``tls.crl_stale``)
  rather than failing every handshake later with an obscure error.
* **Mutual TLS is optional per connection, required per route**: the server asks for a client
  certificate and verifies any it gets against the root (and its CRL), but does not demand one,
  because wallets have none; routes between parties call :func:`peer_party`.
  The peer certificate reaches the app through the ASGI TLS extension
  (``scope["extensions"]["tls"]["client_cert_chain"]``), filled in by
  :class:`ecash_tpm.service.tls_protocol.TlsH11Protocol`.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecash_tpm.errors import AuthenticationError, ConfigError, ForbiddenError
from ecash_tpm.pki import (
    CertificateRevokedError,
    CertificateWrongRoleError,
    CrlInput,
    CrlInvalidError,
    load_certificate,
    load_crl,
    verify_tls_peer,
)
from ecash_tpm.service.errors import RemoteCallError

if TYPE_CHECKING:  # the server framework stays unloaded for clients and settings
    from starlette.requests import Request

__all__ = [
    "ClientCertificateRequiredError",
    "ClientRevokedError",
    "ClientWrongRoleError",
    "CRL_KEY",
    "CrlFile",
    "CrlStaleError",
    "TlsClientUnconfiguredError",
    "TlsExpiredError",
    "TlsFiles",
    "TRUST_ROOT_KEY",
    "TlsHandshakeError",
    "TlsRevokedError",
    "TlsUntrustedError",
    "TlsWrongIdentityError",
    "client_context",
    "handshake_error",
    "peer_party",
    "root_pem",
    "server_context",
]

PemSource = bytes | str | Path

# --- errors ------------------------------------------------------------------------------------


class TlsHandshakeError(RemoteCallError):
    """The TLS handshake with a server failed: nothing of the request was sent to it.

    Subclasses say why, each with its own code; this class is everything else (no common
    protocol version, a server certificate without a TLS purpose, a reset during the handshake).
    """

    code = "tls.handshake_failed"

    def __init__(self, message: str, *, url: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=type(self).code, status=None, url=url, detail=detail)


class TlsUntrustedError(TlsHandshakeError):
    """The server's certificate does not chain to the central bank root (self-signed, another
    CA, a public CA)."""

    code = "tls.untrusted"


class TlsWrongIdentityError(TlsHandshakeError):
    """The certificate is the root's, but for another role or another party than expected."""

    code = "tls.wrong_identity"


class TlsExpiredError(TlsHandshakeError):
    """The server's certificate is outside its validity period."""

    code = "tls.expired"


class TlsRevokedError(TlsHandshakeError):
    """The server's certificate is on the central bank's CRL."""

    code = "tls.revoked"


class CrlStaleError(ConfigError):
    """The CRL given for TLS is past its ``next_update``: revocation status unknown."""

    code = "tls.crl_stale"


class TlsClientUnconfiguredError(ConfigError):
    """An https URL without a TLS context and an expected identity (or a TLS context for a plain
    http URL, which would silently send in the clear)."""

    code = "tls.client_unconfigured"


class ClientCertificateRequiredError(AuthenticationError):
    """The route is for another party, which must present its TLS client certificate."""

    code = "tls.client_certificate_required"


class ClientRevokedError(ForbiddenError):
    """The caller's client certificate is on the central bank's CRL."""

    code = "tls.client_revoked"


class ClientWrongRoleError(ForbiddenError):
    """The caller's client certificate is valid, but for a role this route does not serve."""

    code = "tls.client_wrong_role"


# --- files and contexts ------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """What a TLS server needs: its certificate and key, the root, optionally the CRL."""

    cert: Path
    key: Path
    root: Path
    crl: Path | None = None
    #: Longest wait for a complete request head before the connection is closed.
    header_timeout_s: float = 10.0


def _read(source: PemSource, what: str) -> bytes:
    """Bytes are the content; a Path is a file; a str is PEM text if it looks like PEM, else a
    file name."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        return source.encode("ascii")
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the TLS {what}: {exc.strerror or exc}",
            code="config.tls_missing",
            detail={"path": os.fspath(source), "file": what},
        ) from exc


def _root_pem(root: PemSource) -> tuple[x509.Certificate, str]:
    cert = load_certificate(_read(root, "root certificate"))
    return cert, cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _checked_crl(crl: PemSource, root: x509.Certificate) -> x509.CertificateRevocationList:
    """The CRL, checked to be the root's (``crl.invalid``) and current (``tls.crl_stale``)."""
    parsed = load_crl(_read(crl, "CRL"))
    root_key = root.public_key()
    try:
        valid = parsed.issuer == root.subject and parsed.is_signature_valid(root_key)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise CrlInvalidError("CRL signature cannot be checked") from exc
    if not valid:
        raise CrlInvalidError("CRL is not signed by the central bank root")
    next_update = parsed.next_update_utc
    if next_update is None or next_update < dt.datetime.now(dt.UTC):
        raise CrlStaleError(
            "the CRL is past its next update: fetch a fresh one (centralbank /crl)",
            detail={"next_update": None if next_update is None else next_update.isoformat()},
        )
    return parsed


def _load_crl(context: ssl.SSLContext, crl: PemSource, root: x509.Certificate) -> None:
    """Check the CRL and add it to ``context``'s store for the leaf's revocation check.

    OpenSSL reads CRLs only from PEM files, so the checked CRL goes through a temporary file.
    """
    pem = _checked_crl(crl, root).public_bytes(serialization.Encoding.PEM)
    with tempfile.NamedTemporaryFile(suffix=".pem") as handle:
        handle.write(pem)
        handle.flush()
        context.load_verify_locations(cafile=handle.name)
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


class CrlFile:
    """The server's CRL file, re-read when it changes (a renewed CRL needs no restart).

    Client certificates are checked against it in :func:`peer_party` rather than in the
    handshake: asyncio drops a refused TLS 1.3 client without an alert, so the caller could not
    tell "revoked" from a lost connection (and would retry); a route answers
    ``tls.client_revoked`` instead. Thread-safe enough: a reload is idempotent.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._crl: x509.CertificateRevocationList | None = None

    def current(self) -> x509.CertificateRevocationList:
        """The CRL as the file holds it now (``config.tls_missing`` if it is gone)."""
        try:
            info = self.path.stat()
        except OSError as exc:
            raise ConfigError(
                "the CRL file is gone", code="config.tls_missing", detail={"path": str(self.path)}
            ) from exc
        stamp = (info.st_mtime_ns, info.st_size)
        if self._crl is None or stamp != self._stamp:
            self._crl = load_crl(_read(self.path, "CRL"))
            self._stamp = stamp
        return self._crl


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.3 server context: the party's certificate, client certificates optional but
    verified against the root only. A CRL is checked here (the root's, current), and applied
    to client certificates by :func:`peer_party` (see :class:`CrlFile` for why)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        context.load_cert_chain(certfile=files.cert, keyfile=files.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate and key: {exc}",
            code="config.tls_missing",
            detail={"cert": os.fspath(files.cert), "key": os.fspath(files.key)},
        ) from exc
    root, root_pem = _root_pem(files.root)
    context.load_verify_locations(cadata=root_pem)
    context.verify_mode = ssl.CERT_OPTIONAL
    if files.crl is not None:
        _checked_crl(files.crl, root)
    return context


def client_context(
    root: PemSource,
    *,
    crl: PemSource | None = None,
    client: tuple[Path, Path] | None = None,
) -> ssl.SSLContext:
    """TLS 1.3 client context trusting only ``root``, checking host names (= party identities)
    and, with ``crl``, the server certificate's revocation; ``client`` = (cert, key) for
    mutual TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    parsed_root, root_pem = _root_pem(root)
    context.load_verify_locations(cadata=root_pem)
    if crl is not None:
        _load_crl(context, crl, parsed_root)
    if client is not None:
        try:
            context.load_cert_chain(certfile=client[0], keyfile=client[1])
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the TLS client certificate and key: {exc}",
                code="config.tls_missing",
                detail={"cert": os.fspath(client[0]), "key": os.fspath(client[1])},
            ) from exc
    return context


# --- handshake errors ----------------------------------------------------------------------------

_VERIFY_CODES: dict[int, type[TlsHandshakeError]] = {
    9: TlsExpiredError,  # not yet valid
    10: TlsExpiredError,
    23: TlsRevokedError,
    62: TlsWrongIdentityError,  # hostname mismatch
    2: TlsUntrustedError,  # unable to get issuer certificate
    7: TlsUntrustedError,  # certificate signature failure
    18: TlsUntrustedError,  # self-signed leaf
    19: TlsUntrustedError,  # self-signed certificate in chain
    20: TlsUntrustedError,  # unable to get local issuer
    21: TlsUntrustedError,  # unable to verify the first certificate
}


def handshake_error(
    exc: BaseException, url: str, *, connecting: bool = False
) -> TlsHandshakeError | None:
    """The typed TLS error behind a transport exception (httpx wraps httpcore wraps ssl), or
    None when the failure is not TLS (a refused connection stays ``remote.unreachable``).

    Certificate verification fails in the client's handshake, before anything is sent. Other
    TLS errors are a failed negotiation or the server's alert refusing our client certificate
    (TLS 1.3 reports that at the first read); either way the server processed nothing. A
    connection closed during the handshake (``connecting``: the failure happened while
    connecting) is the server refusing it, e.g. for an old protocol version.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            code = current.verify_code
            cls = _VERIFY_CODES.get(code, TlsHandshakeError)
            return cls(
                f"TLS: the server at {url} is refused: {current.verify_message}",
                url=url,
                detail={"url": url, "verify_code": code, "reason": current.verify_message},
            )
        if isinstance(current, ssl.SSLEOFError | ssl.SSLZeroReturnError) and not connecting:
            # A closed connection, not a refusal: after the handshake the request may have been
            # processed, so the caller's "outcome unknown" logic must decide.
            return None
        if isinstance(current, ssl.SSLError):
            return TlsHandshakeError(
                f"TLS handshake with {url} failed: {current.reason or current}",
                url=url,
                detail={"url": url, "reason": str(current.reason or current)},
            )
        current = current.__cause__ or current.__context__
    return None


# --- the client certificate inside the app -------------------------------------------------------

#: Keys of the TLS extension under which the server's protocol hands on the root it trusts
#: and its :class:`CrlFile` (or None).
TRUST_ROOT_KEY = "ecash_tpm_trust_root"
CRL_KEY = "ecash_tpm_crl"


def root_pem(root: PemSource) -> str:
    """``root`` (bytes, PEM text or a file) as PEM text, checked to be a certificate."""
    return _root_pem(root)[1]


def peer_party(request: Request, *, role: str) -> str:
    """The party name of the caller's verified TLS client certificate for ``role``.

    For routes only another party may call (merchant deposits at the bank, ...): no client
    certificate is ``tls.client_certificate_required`` (401); one for another role is
    ``tls.client_wrong_role`` (403); a revoked one ``tls.client_revoked`` (403). The TLS stack
    checked chain and validity; they are checked again with the root the server trusts, and
    revocation against the server's CRL file as it is now.
    """
    tls = (request.scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    root = tls.get(TRUST_ROOT_KEY)
    if not chain or not root:
        raise ClientCertificateRequiredError(
            f"this route is for the {role}: connect with its TLS client certificate",
            detail={"role": role},
        )
    # The party's current CRL (docs/protocol.md, "Revocation"), else the server's CRL file.
    crl_file = tls.get(CRL_KEY)
    crl: CrlInput | None = getattr(request.app.state, "crl", None)
    if crl is None and isinstance(crl_file, CrlFile):
        crl = crl_file.current()
    try:
        return verify_tls_peer(chain[0], root, role=role, crl=crl)
    except CertificateRevokedError as exc:
        raise ClientRevokedError(
            "the caller's TLS client certificate has been revoked", detail=exc.detail
        ) from exc
    except CertificateWrongRoleError as exc:
        raise ClientWrongRoleError(
            f"this route is for the {role}, not for the caller's role",
            detail={**exc.detail, "role": role},
        ) from exc

"""Where a party gets the central bank's CRL from: its settings (docs/protocol.md, "Revocation").

``crl_url`` (the central bank's base URL; ``GET /v1/crl`` over TLS checked against the root)
or ``crl_file`` (a PEM/DER file the deployment keeps fresh). Either becomes a
:class:`~ecash_tpm.pki.CrlSource` that every verifier of the party passes as ``crl=``; with
neither, :func:`crl_source` returns None and revocation is not checked (the deployments in
``ecash_tpm.deploy``, docker/ and the demo always configure one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecash_tpm.errors import ConfigError
from ecash_tpm.pki import CrlSource, load_certificate
from ecash_tpm.service.settings import ServiceSettings

__all__ = ["crl_source", "crl_source_for", "file_fetcher", "url_fetcher"]


def file_fetcher(path: Path) -> Callable[[], bytes]:
    """Reads ``path`` again only when its size or modification time changed."""
    cache: dict[str, object] = {}

    def fetch() -> bytes:
        try:
            info = path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if cache.get("stamp") != stamp:
                cache["data"] = path.read_bytes()
                cache["stamp"] = stamp
        except OSError as exc:
            raise ConfigError(
                f"cannot read the CRL file: {exc.strerror or exc}",
                code="config.tls_missing",
                detail={"path": os.fspath(path)},
            ) from exc
        data = cache["data"]
        return data if isinstance(data, bytes) else b""

    return fetch


def url_fetcher(url: str, root: Path, *, name: str, insecure: bool = False) -> Callable[[], bytes]:
    """Fetches ``url``/v1/crl from the central bank (TLS identity ``centralbank``/``name``)."""
    from ecash_tpm.clients.centralbank import CentralBankClient
    from ecash_tpm.clients.connect import link

    def fetch() -> bytes:
        peer = link(url, role="centralbank", name=name, root=root, insecure=insecure)
        with CentralBankClient(url, tls=peer.tls, expect=peer.expect, timeout=5.0) as client:
            return client.crl().public_bytes(serialization.Encoding.DER)

    return fetch


def crl_source(
    *,
    root: x509.Certificate | Path,
    crl_url: str | None,
    crl_file: Path | None,
    centralbank_name: str = "centralbank",
    refresh_s: int = 60,
    insecure: bool = False,
) -> CrlSource | None:
    """The party's CRL source from its settings (``crl_url`` first), or None without either."""
    root_cert = load_certificate(root.read_bytes() if isinstance(root, Path) else root)
    if crl_url:
        root_path = root if isinstance(root, Path) else None
        if root_path is None:
            raise ConfigError("crl_url needs the root certificate file", code="config.tls_missing")
        fetch = url_fetcher(crl_url, root_path, name=centralbank_name, insecure=insecure)
        return CrlSource(root_cert, fetch, refresh_s=refresh_s, label=crl_url)
    if crl_file is not None:
        # A file is only re-read when it changes, so looking at it on every check is cheap.
        return CrlSource(root_cert, file_fetcher(crl_file), refresh_s=0, label=str(crl_file))
    return None


def crl_source_for(settings: ServiceSettings, root: Path) -> CrlSource | None:
    """:func:`crl_source` from a party's settings (``crl_url``, ``crl_file``) and root file."""
    return crl_source(
        root=root,
        crl_url=settings.crl_url,
        crl_file=settings.crl_file,
        centralbank_name=settings.centralbank_name,
        refresh_s=settings.crl_refresh_s,
        insecure=settings.insecure_http,
    )

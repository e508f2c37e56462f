"""TLS for tests: a central bank CA's TLS certificates in files, and client contexts.

``TlsKit(ca, directory)`` issues a party's TLS key and certificate (what ``cert renew`` does,
without the admin API) and gives what ``running_server(app, tls=...)`` and clients need::

    kit = TlsKit.create(tmp_path)                  # a fresh CA (or TlsKit(pki._ca, tmp_path))
    bank_tls = kit.issue("bank", "bank")           # TlsFiles(cert, key, root)
    with running_server(app, tls=bank_tls) as url:  # https://127.0.0.1:port
        shop = kit.client(as_party=("merchant", "shop-a"))   # mutual TLS
        BankClient(url, tls=shop, expect=("bank", "bank"))
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.service.tls import TlsFiles, client_context

__all__ = ["LOCAL_HOSTS", "TlsKit"]

LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclass
class TlsKit:
    """Issues TLS certificates from ``ca`` into ``directory`` (one sub-directory per party)."""

    ca: Any
    directory: Path

    @classmethod
    def create(cls, directory: Path) -> TlsKit:
        """A kit on a new central bank CA in ``directory/central-bank``."""
        return cls(CentralBankCA.create(directory / "central-bank"), directory)

    @property
    def root(self) -> Path:
        """The root certificate as a PEM file (what parties keep as ``central-bank-root.pem``)."""
        path = self.directory / "tls-root.pem"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.ca.root_pem())
        return path

    def issue(
        self,
        role: str,
        name: str,
        *,
        hosts: tuple[str, ...] = LOCAL_HOSTS,
        into: Path | None = None,
        valid_days: int = 30,
        not_before: dt.datetime | None = None,
    ) -> TlsFiles:
        """A fresh key and TLS certificate for ``role``/``name`` in ``into`` (default
        ``directory/tls-<role>-<name>``), as ``tls-cert.pem``/``tls-key.pem``."""
        target = into or self.directory / f"tls-{role}-{name}"
        target.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        extra: dict[str, Any] = {} if not_before is None else {"not_before": not_before}
        cert = self.ca.certify_tls(
            role, name, key.public_key(), hosts=hosts, valid_days=valid_days, **extra
        )
        key_path, cert_path = target / "tls-key.pem", target / "tls-cert.pem"
        write_file_atomic(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            mode=0o600,
        )
        write_file_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return TlsFiles(cert=cert_path, key=key_path, root=self.root)

    def client(self, *, as_party: tuple[str, str] | None = None) -> ssl.SSLContext:
        """A client context trusting the root; ``as_party=(role, name)`` presents that party's
        TLS certificate (issued on first use) for mutual TLS."""
        if as_party is None:
            return client_context(self.root)
        files = self.issue(*as_party)
        return client_context(self.root, client=(files.cert, files.key))

    def close(self) -> None:
        close = getattr(self.ca, "close", None)
        if callable(close):
            close()

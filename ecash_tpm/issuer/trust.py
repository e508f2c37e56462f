"""The issuer's EK trust store: a directory of TPM manufacturer CA certificates.

Trust is explicit and per deployment (Keylime lesson: never bypass EK checks for emulators, give
the emulator its own CA): the operator copies the manufacturers' roots and intermediates into
the directory (PEM or DER; ``*.pem``, ``*.crt``, ``*.cer``, ``*.der``). Self-signed certificates
become roots, the others untrusted intermediates that only help build a chain. Verification is
the pure :func:`ecash_tpm.attest.verify_ek_certificate` plus the EK-public binding.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from ecash_tpm.attest import (
    PublicArea,
    ek_public_matches_certificate,
    load_ek_certificate,
    verify_ek_certificate,
)
from ecash_tpm.issuer.errors import EkTrustStoreConfigError
from ecash_tpm.pki import certificate_fingerprint

CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _load_file(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EkTrustStoreConfigError(f"cannot read {path}: {exc}") from exc
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise EkTrustStoreConfigError(
            f"{path} is not a certificate: {exc}", detail={"path": str(path)}
        ) from exc


@dataclass(frozen=True)
class EkTrustStore:
    """Trusted EK roots and helper intermediates."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_certificates(cls, certs: Iterable[x509.Certificate]) -> EkTrustStore:
        """Split certificates into roots (self-signed) and intermediates."""
        roots: list[x509.Certificate] = []
        inter: list[x509.Certificate] = []
        for c in certs:
            (roots if _is_self_signed(c) else inter).append(c)
        return cls(tuple(roots), tuple(inter))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> EkTrustStore:
        """Every certificate file in ``directory``; a missing directory is a config error.

        An empty directory gives an empty store, which refuses every EK
        (``ek.trust_store_invalid``) instead of accepting any.
        """
        path = Path(directory)
        if not path.is_dir():
            raise EkTrustStoreConfigError(
                f"EK trust store {path} is not a directory", detail={"path": str(path)}
            )
        certs: list[x509.Certificate] = []
        for f in sorted(path.iterdir()):
            if f.is_file() and f.suffix.lower() in CERT_SUFFIXES:
                certs.extend(_load_file(f))
        return cls.from_certificates(certs)

    @staticmethod
    def install(
        directory: str | os.PathLike[str], certs: Iterable[x509.Certificate], *, prefix: str = "ca"
    ) -> list[Path]:
        """Copy certificates into a trust store directory as PEM files (named by fingerprint)."""
        path = Path(directory)
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        written = []
        for c in certs:
            target = path / f"{prefix}-{certificate_fingerprint(c)[:16]}.pem"
            target.write_bytes(c.public_bytes(Encoding.PEM))
            written.append(target)
        return written

    def verify(
        self, ek_cert: bytes, ek_public: bytes | PublicArea, *, now: dt.datetime | None = None
    ) -> tuple[x509.Certificate, PublicArea]:
        """Check the EK certificate's chain and that its key is ``ek_public``.

        Returns the parsed certificate and EK public area. Raises the attest codes
        (``ek.unknown_root``, ``ek.cert_expired``, ``ek.public_mismatch`` ...).
        """
        cert = verify_ek_certificate(ek_cert, self.roots, self.intermediates, now=now)
        area = ek_public_matches_certificate(cert, ek_public)
        return cert, area


def ek_fingerprint(ek_cert: bytes) -> str:
    """Fingerprint of the EK certificate as presented (NV framing removed)."""
    return certificate_fingerprint(load_ek_certificate(ek_cert))

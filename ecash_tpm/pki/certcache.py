"""Verified party certificates, cached per certificate and revocation list (issue 13 item 3).

A bank checks the same merchant certificate on every deposit: parse, root signature, role, name
and CRL lookup cost more than the merchant's own signature check. :class:`PartyCertCache` keeps
the result of :func:`~ecash_tpm.pki.certificates.verify_party_certificate` per (certificate
bytes, role, name, fingerprint of the CRL that was current). What depends on the clock is
checked again on every hit: the certificate's and the root's validity; the CRL's freshness is
the provider's (its current list at ``now`` is looked up on every call, and a new list is a new
key). Anything unusual goes to the full check, which raises the usual error.

The cache belongs to one verifier object (no module state) and is bounded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.pki.certificates import (
    CrlProvider,
    load_certificate,
    verify_party_certificate,
)

__all__ = ["PartyCertCache"]


@dataclass(frozen=True, slots=True)
class _Entry:
    key: ec.EllipticCurvePublicKey
    not_before: dt.datetime
    not_after: dt.datetime


class PartyCertCache:
    """``verify(cert, role=, name=, now=)`` = ``verify_party_certificate`` with a cache."""

    def __init__(
        self,
        root_cert: x509.Certificate | bytes | str,
        *,
        crl: CrlProvider | None,
        max_entries: int = 1024,
    ) -> None:
        self._root = load_certificate(root_cert)
        self._crl = crl
        self._max = max_entries
        self._entries: dict[tuple[bytes, str, str | None, bytes], _Entry] = {}

    def verify(
        self, cert: bytes | str, *, role: str, name: str | None, now: dt.datetime
    ) -> ec.EllipticCurvePublicKey:
        """The certificate's P-256 key, or the error the full check raises."""
        raw = cert.encode() if isinstance(cert, str) else bytes(cert)
        crl = None if self._crl is None else self._crl.current_crl(now)
        crl_id = b"" if crl is None else crl.fingerprint(hashes.SHA256())
        slot = (raw, role, name, crl_id)
        hit = self._entries.get(slot)
        root = self._root
        if (
            hit is not None
            and hit.not_before <= now <= hit.not_after
            and root.not_valid_before_utc <= now <= root.not_valid_after_utc
        ):
            return hit.key
        key = verify_party_certificate(raw, root, role=role, name=name, now=now, crl=self._crl)
        leaf = load_certificate(raw)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[slot] = _Entry(key, leaf.not_valid_before_utc, leaf.not_valid_after_utc)
        return key

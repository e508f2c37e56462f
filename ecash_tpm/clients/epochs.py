"""Certified issuer epoch keys for public coin verification (docs/protocol.md §3.6, §7.4).

Merchants, the TTP and auditors verify coin credentials with pairings under the epoch's G2 keys
X2, Y2. They take those keys from the central bank's root-signed ``issuer-epoch-key``, fetched
from whoever publishes it (the bank's ``GET /v1/issuer-epochs/{epoch}``): the root's signature
and the pairing check of X2, Y2 against X, Y make the source irrelevant.

:class:`CertifiedEpochKeys` is the :data:`~ecash_tpm.protocol.spend.EpochKeyLookup` they pass to
:class:`~ecash_tpm.protocol.spend.PublicCredentialCheck`. An epoch whose certificate cannot be
fetched, does not verify, or predates issue 14 (no X2, Y2) gives a key without G2 or None: its
coins are left to the bank's verdict, and that is logged once per epoch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.groupsig import IssuerPublic
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.certified import IssuerEpochCertificate

__all__ = ["CertifiedEpochKeys"]

_log = logging.getLogger(__name__)


class CertifiedEpochKeys:
    """``epoch -> IssuerPublic | None`` from root-signed certificates, cached per epoch.

    ``fetch(epoch)`` returns the signed ``issuer-epoch-key`` (e.g. ``BankClient.issuer_epoch``);
    ``issuer`` (optional) is the issuer name the certificate must carry. A failed fetch is
    retried after ``retry_s`` seconds; a verified certificate is kept for good (one key per
    epoch, ever: protocol §3.6).
    """

    def __init__(
        self,
        fetch: Callable[[int], Mapping[str, Any]],
        root: x509.Certificate | bytes | str,
        *,
        issuer: str | None = None,
        retry_s: float = 30.0,
    ) -> None:
        self._fetch = fetch
        self._root = root
        self._issuer = issuer
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._keys: dict[int, IssuerPublic] = {}
        self._failed: dict[int, float] = {}
        #: epochs whose coins only the bank can check, with the reason (status pages)
        self.bank_only: dict[int, str] = {}

    def __call__(self, epoch: int) -> IssuerPublic | None:
        with self._lock:
            key = self._keys.get(epoch)
            failed_at = self._failed.get(epoch)
        if key is not None:
            return key
        if failed_at is not None and time.monotonic() - failed_at < self._retry_s:
            return None
        try:
            cert = IssuerEpochCertificate.from_signed(self._fetch(epoch), self._root)
            if cert.epoch != epoch or (self._issuer is not None and cert.issuer != self._issuer):
                raise EcashError(
                    "the certificate is for another epoch or issuer",
                    code="issuer_epoch.mismatch",
                )
        except EcashError as exc:
            _log.warning(
                "issuer epoch %s: no certified key (%s); its coins are left to the bank's "
                "credential check",
                epoch,
                exc.code,
            )
            with self._lock:
                self._failed[epoch] = time.monotonic()
                self.bank_only[epoch] = exc.code
            return None
        with self._lock:
            self._keys[epoch] = cert.public
            self._failed.pop(epoch, None)
            if cert.public.has_g2:
                self.bank_only.pop(epoch, None)
            else:
                self.bank_only[epoch] = "issuer_epoch.no_g2"
        if not cert.public.has_g2:
            _log.warning(
                "issuer epoch %s was certified without X2, Y2: its coins are left to the "
                "bank's credential check",
                epoch,
            )
        return cert.public

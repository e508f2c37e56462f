"""Certified issuer epoch keys for public coin verification (docs/protocol.md §3.6, §7.4).

Merchants, the TTP and auditors verify coin credentials with pairings under the epoch's G2 keys
X2, Y2. They take those keys from the central bank's root-signed ``issuer-epoch-key``, fetched
from whoever publishes it (the bank's ``GET /v1/issuer-epochs/{epoch}``): the root's signature
and the pairing check of X2, Y2 against X, Y make the source irrelevant.

:class:`CertifiedEpochKeys` is the :data:`~ecash_tpm.protocol.spend.EpochKeyLookup` they pass to
:class:`~ecash_tpm.protocol.spend.PublicCredentialCheck`. It fails closed, because the wallet
chooses a coin's epoch: an epoch the publisher answers 404 for refuses the coin
(``coin.unknown_epoch``); a failed fetch, a malformed answer or a certificate that does not
verify or is another issuer's refuses it as retryable (503 ``issuer_epoch.unavailable``). Only a
*verified* certificate made before issue 14 (no X2, Y2) leaves its coins to the bank's verdict,
which is logged once per epoch. Both caches are bounded (LRU), so made-up epochs cannot grow them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.groupsig import IssuerPublic
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.certified import IssuerEpochCertificate
from ecash_tpm.protocol.errors import EpochKeyUnavailableError, UnknownEpochError

__all__ = ["MAX_CACHED_EPOCHS", "CertifiedEpochKeys"]

_log = logging.getLogger(__name__)

#: Most epochs each cache (verified keys, recent refusals) holds; the least recently used goes.
MAX_CACHED_EPOCHS = 256


def _is_not_found(exc: EcashError) -> bool:
    """The publisher's "no such epoch": a remote 404 or a local NotFoundError."""
    status = getattr(exc, "status", None)
    return status == 404 if status is not None else exc.http_status == 404


class CertifiedEpochKeys:
    """``epoch -> IssuerPublic`` from root-signed certificates, cached per epoch (LRU).

    ``fetch(epoch)`` returns the signed ``issuer-epoch-key`` (e.g. ``BankClient.issuer_epoch``);
    ``issuer`` is the issuer name the certificate must carry (this deployment's issuer; None
    only where any root-certified issuer will do). A refusal is remembered for ``retry_s``
    seconds (the same error again, no fetch); a verified certificate is kept (one key per
    epoch, ever: protocol §3.6) until ``max_epochs`` newer ones push it out.
    """

    def __init__(
        self,
        fetch: Callable[[int], Mapping[str, Any]],
        root: x509.Certificate | bytes | str,
        *,
        issuer: str | None = None,
        retry_s: float = 30.0,
        max_epochs: int = MAX_CACHED_EPOCHS,
    ) -> None:
        self._fetch = fetch
        self._root = root
        self._issuer = issuer
        self._retry_s = retry_s
        self._max = max_epochs
        self._lock = threading.Lock()
        self._keys: OrderedDict[int, IssuerPublic] = OrderedDict()
        self._failed: OrderedDict[int, tuple[float, EcashError]] = OrderedDict()
        #: epochs whose coins only the bank can check (verified pre-issue-14 certificates)
        self.bank_only: OrderedDict[int, str] = OrderedDict()

    def _remember(self, cache: OrderedDict[int, Any], epoch: int, value: Any) -> None:
        cache[epoch] = value
        cache.move_to_end(epoch)
        while len(cache) > self._max:
            cache.popitem(last=False)

    def __call__(self, epoch: int) -> IssuerPublic | None:
        with self._lock:
            key = self._keys.get(epoch)
            if key is not None:
                self._keys.move_to_end(epoch)
                return key
            failed = self._failed.get(epoch)
        if failed is not None and time.monotonic() - failed[0] < self._retry_s:
            raise failed[1].recode(failed[1].code)  # a copy: the cached one keeps no traceback
        try:
            cert = self._certificate(epoch)
        except EcashError as exc:
            with self._lock:
                self._remember(self._failed, epoch, (time.monotonic(), exc))
            raise
        with self._lock:
            self._remember(self._keys, epoch, cert.public)
            self._failed.pop(epoch, None)
            if not cert.public.has_g2:
                self._remember(self.bank_only, epoch, "issuer_epoch.no_g2")
        if not cert.public.has_g2:
            _log.warning(
                "issuer epoch %s was certified without X2, Y2: its coins are left to the "
                "bank's credential check",
                epoch,
            )
        return cert.public

    def _certificate(self, epoch: int) -> IssuerEpochCertificate:
        """Fetch and verify; a typed refusal for anything but a certificate of this epoch and
        issuer under the root."""
        try:
            raw = self._fetch(epoch)
        except EcashError as exc:
            if _is_not_found(exc):
                raise UnknownEpochError(
                    "no certified issuer key for the coin's epoch",
                    detail={"epoch": epoch, "cause": exc.code},
                ) from exc
            raise self._unavailable(epoch, exc.code) from exc
        except (KeyError, TypeError, ValueError) as exc:  # a gateway that is not a BankClient
            raise self._unavailable(epoch, "remote.bad_response") from exc
        try:
            cert = IssuerEpochCertificate.from_signed(raw, self._root)
        except EcashError as exc:
            raise self._unavailable(epoch, exc.code) from exc
        if cert.epoch != epoch or (self._issuer is not None and cert.issuer != self._issuer):
            raise self._unavailable(epoch, "issuer_epoch.mismatch")
        return cert

    def _unavailable(self, epoch: int, cause: str) -> EpochKeyUnavailableError:
        _log.warning("issuer epoch %s: no usable certified key (%s)", epoch, cause)
        return EpochKeyUnavailableError(
            "the certified key of the coin's epoch cannot be had now: try again later",
            detail={"epoch": epoch, "cause": cause, "retry_after": int(self._retry_s)},
        )

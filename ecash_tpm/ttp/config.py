"""What the fair-exchange TTP is given: its identity and policy, and the parties it calls.

Kept apart from :mod:`.products` and :mod:`.disputes` so both can depend on it without
depending on each other's module or on the :class:`~ecash_tpm.ttp.domain.Ttp` facade.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.pki import CrlProvider, certificate_fingerprint

__all__ = [
    "MAX_SPENDS",
    "BankQueryGateway",
    "MerchantLink",
    "TtpConfig",
    "TtpSigner",
    "aware",
]

#: Most spends a dispute may name (as many as a payment may carry).
MAX_SPENDS = 64


class BankQueryGateway(Protocol):
    """The bank's TTP query endpoint (``POST /v1/ttp/deposit-query``): ``{answer, cert}``."""

    def ttp_query(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]: ...


class MerchantLink(Protocol):
    """One merchant as the TTP reaches it during a dispute: key requests."""

    def key_request(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TtpConfig:
    """The TTP's identity and policy."""

    name: str
    key: PartyKey
    cert_pem: str
    root: x509.Certificate
    dispute_window_s: int = 600
    registration_window_s: int = 300
    max_content_bytes: int = 4 * 1024 * 1024
    #: The central bank's current CRL: every certificate the TTP accepts is checked against it.
    crl: CrlProvider | None = None
    #: docs/protocol.md §3.6/§7.4: the issuer whose certified epoch keys coins are checked with
    #: (the certificate's ``issuer`` must be this name; None: any root-certified issuer).
    issuer_name: str | None = "issuer"


class TtpSigner:
    """Signs the TTP's objects, naming its certificate's fingerprint as the signer."""

    def __init__(self, config: TtpConfig) -> None:
        self._key = config.key
        self._signer = certificate_fingerprint(config.cert_pem)

    def __call__(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return sign_object(self._key, kind, body, signer=self._signer)


def aware(now: int) -> dt.datetime:
    """Unix seconds as the aware datetime certificate checks take."""
    return dt.datetime.fromtimestamp(now, dt.UTC)

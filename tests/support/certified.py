"""The central bank's certification of issuer epoch keys and bank keyset lists, in process, for
the test system (docs/protocol.md 3.6 and 4.1; issue 10, #6 and #7)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.certify import certify_issuer_epoch, certify_keyset_list
from ecash_tpm.issuer.keys import IssuerKeyStore


def certify_epoch(
    ca: CentralBankCA, keys: IssuerKeyStore, clock: Callable[[], int], epoch: int = 0
) -> None:
    """The central bank certifies the issuer's key of ``epoch`` (default: the current one)."""
    e = epoch or keys.current_epoch
    now = dt.datetime.fromtimestamp(clock(), dt.UTC)
    keys.save_epoch_certificate(
        e, certify_issuer_epoch(ca, "issuer", e, keys.public_for_epoch(e), now=now)
    )


def keyset_certifier(ca: CentralBankCA, clock: Callable[[], int]) -> Callable[..., dict[str, Any]]:
    """The bank's link to the central bank's keyset-list certification, in process."""

    def certify(bank_cert: str, descriptors: list[dict[str, Any]]) -> dict[str, Any]:
        now = dt.datetime.fromtimestamp(clock(), dt.UTC)
        return certify_keyset_list(ca, bank_cert, descriptors, now=now)

    return certify

"""What the bank needs from the parties it shares an operator or a duty with.

The issuer (group manager, same operator) owns the per-epoch credential secrets and the member
registry; the supervision department receives double-spend evidence. The bank depends only on
these small protocols, injected into :class:`~ecash_tpm.bank.domain.BankDomain`, so it can be
tested without either component and the real implementations can be wired in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from ecash_tpm.crypto.groupsig import IssuerSecret

Clock = Callable[[], int]
"""Unix seconds (UTC). Injected everywhere so tests control time."""


@runtime_checkable
class IssuerSecrets(Protocol):
    """The issuer's designated-verifier secret (x, y) of an epoch.

    Must raise :class:`~ecash_tpm.errors.NotFoundError` for an epoch it does not know; the bank
    then refuses the coin as having a bad credential. Any other error is an outage and is not
    held against the depositing merchant.
    """

    def secret_for_epoch(self, epoch: int) -> IssuerSecret: ...


@runtime_checkable
class MembershipCheck(Protocol):
    """Whether the group member registered for a bank account may withdraw (not revoked)."""

    def is_active_member(self, account_id: str) -> bool: ...


@runtime_checkable
class DoubleSpendReporter(Protocol):
    """Receives two bank-signed spend transcripts of the same serial (DESIGN §5).

    Called outside any money transaction; the return value (e.g. supervision's evidence
    bundle) is recorded with the report if it is JSON-like. Exceptions are recorded too and
    the report can be retried with :meth:`BankDomain.retry_double_spend_reports`.
    """

    def report(self, transcript_a: Mapping[str, Any], transcript_b: Mapping[str, Any]) -> Any: ...


@runtime_checkable
class KeysetCertifier(Protocol):
    """The central bank's certification of the bank's keyset list (docs/protocol.md 4.1):
    takes the bank certificate (PEM) and its signed descriptors, returns the root-signed
    ``bank-keyset-list``. Over HTTP: ``CentralBankClient.certify_keyset_list``."""

    def __call__(self, bank_cert: str, descriptors: list[dict[str, Any]]) -> dict[str, Any]: ...

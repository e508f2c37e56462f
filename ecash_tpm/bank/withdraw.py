"""Withdrawal: debit the account and blind-sign the wallet's coins, idempotently by request_id.

The wallet chooses the split into denominations; the bank checks each keyset is valid for
withdrawal now and in the account's currency, that the member behind the account is active, and
that the balance covers the sum. The RSA work happens before the transaction (it only produces
values that are released after the commit), so the write lock is held for a few inserts.

Idempotency (GNU Taler's lesson, Cashu's "stuck pending" pain): ``request_id`` is the primary
key of the withdrawal and the ledger reference of its debit, and the blind signatures are stored
in the same transaction. A retry after a lost answer with the same items gets the stored
signatures and no second debit; the same request_id with other items is a 409.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

from ecash_tpm.bank.errors import (
    KEYSET_EXPIRED,
    InsufficientFundsError,
    MemberNotActiveError,
    WithdrawConflictError,
)
from ecash_tpm.bank.keysets import KeysetStore
from ecash_tpm.bank.ledger import balance, customer_account, post_transaction
from ecash_tpm.bank.models import WithdrawResult
from ecash_tpm.bank.protocols import MembershipCheck
from ecash_tpm.bank.store import withdrawals as rows
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import canonical_encode
from ecash_tpm.errors import InputError
from ecash_tpm.protocol.errors import KeysetExpiredError, RequestMismatchError
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, Keyset, withdraw_fee
from ecash_tpm.storage import Database, Transaction, UniqueViolationError

__all__ = ["REQUEST_ID_RE", "Withdrawals", "items_digest"]

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
WithdrawItem = tuple[bytes, bytes]  # (keyset_id, blinded_msg)


def items_digest(items: Sequence[WithdrawItem]) -> bytes:
    """SHA-256 of the canonical item list: what "the same items" means for a retry."""
    return hashlib.sha256(
        canonical_encode(
            [{"keyset_id": b64u_encode(k), "blinded_msg": b64u_encode(m)} for k, m in items]
        )
    ).digest()


class Withdrawals:
    """Blind-signs withdrawals against customer balances."""

    def __init__(
        self,
        db: Database,
        keysets: KeysetStore,
        membership: MembershipCheck,
        *,
        currency: str,
        max_items: int,
        clock: Callable[[], int],
    ) -> None:
        self._db = db
        self._keysets = keysets
        self._membership = membership
        self._currency = currency
        self._max_items = max_items
        self._clock = clock

    def withdraw(
        self, account_id: str, request_id: str, items: Sequence[WithdrawItem]
    ) -> WithdrawResult:
        """The blind signatures and the amount debited; see the module docstring for the rules."""
        if not isinstance(request_id, str) or not REQUEST_ID_RE.match(request_id):
            raise InputError("request_id must be 8..64 characters of [A-Za-z0-9_-]")
        if not items or len(items) > self._max_items:
            raise InputError(
                f"a withdrawal has 1..{self._max_items} items", detail={"count": len(items)}
            )
        items = [(bytes(k), bytes(m)) for k, m in items]
        digest = items_digest(items)

        stored = self._stored(account_id, request_id, digest)
        if stored is not None:
            return stored
        if not self._membership.is_active_member(account_id):
            raise MemberNotActiveError(
                "the group member of this account is not active (revoked or not joined)",
                detail={"account_id": account_id},
            )

        now = self._clock()
        keysets: list[Keyset] = []
        for index, (keyset_id, blinded) in enumerate(items):
            keyset = self._keysets.get(keyset_id)
            try:
                keyset.require_withdraw(now)
            except KeysetExpiredError as exc:
                raise exc.recode(KEYSET_EXPIRED, detail={"index": index}) from exc
            if keyset.currency != self._currency:
                raise RequestMismatchError(
                    "keyset currency differs from the account currency",
                    detail={"index": index, "currency": keyset.currency},
                )
            if len(blinded) != blindrsa.modulus_len(keyset.public_key):
                raise InputError(
                    "blinded message length does not match the keyset key",
                    detail={"index": index},
                )
            keysets.append(keyset)
        amount = sum(k.value for k in keysets)
        fee = withdraw_fee(keysets)  # §4.2: charged on top of the coins' value

        with self._db.read() as tx:
            available = balance(tx, customer_account(account_id))
        if available < amount + fee:
            raise InsufficientFundsError(
                "balance does not cover the withdrawal and its fee",
                detail={"balance": available, "amount": amount} | ({"fee": fee} if fee else {}),
            )

        signatures = [
            blindrsa.blind_sign(self._keysets.private_key(k.keyset_id), blinded)
            for k, (_, blinded) in zip(keysets, items, strict=True)
        ]

        def book(tx: Transaction) -> WithdrawResult:
            again = self._stored_tx(tx, account_id, request_id, digest)
            if again is not None:
                return again
            current = balance(tx, customer_account(account_id))
            if current < amount + fee:
                raise InsufficientFundsError(
                    "balance does not cover the withdrawal and its fee",
                    detail={"balance": current, "amount": amount} | ({"fee": fee} if fee else {}),
                )
            entries: list[tuple[str, int]] = [(customer_account(account_id), -(amount + fee))]
            entries += [(k.ledger_account, k.value) for k in keysets]
            entries.append((FEE_ACCOUNT, fee))  # dropped by the ledger when zero
            txn_id = post_transaction(
                tx,
                kind="withdraw",
                ref=request_id,
                entries=entries,
                currency=self._currency,
                now=now,
            )
            rows.insert_withdrawal(
                tx,
                request_id=request_id,
                account_id=account_id,
                digest=digest,
                amount=amount,
                txn_id=txn_id,
                now=now,
            )
            rows.insert_items(tx, request_id, items, signatures)
            return WithdrawResult(request_id, tuple(signatures), amount)

        try:
            return self._db.run_in_transaction(book)
        except UniqueViolationError:
            # A concurrent twin committed first (PostgreSQL): answer from what it stored.
            stored = self._stored(account_id, request_id, digest)
            if stored is None:
                raise
            return stored

    def _stored(self, account_id: str, request_id: str, digest: bytes) -> WithdrawResult | None:
        with self._db.read() as tx:
            return self._stored_tx(tx, account_id, request_id, digest)

    @staticmethod
    def _stored_tx(
        tx: Transaction, account_id: str, request_id: str, digest: bytes
    ) -> WithdrawResult | None:
        row = rows.withdrawal(tx, request_id)
        if row is None:
            return None
        if row.account_id != account_id or row.items_digest != digest:
            raise WithdrawConflictError(
                "request_id already used for a different withdrawal",
                detail={"request_id": request_id},
            )
        return WithdrawResult(request_id, tuple(rows.blind_signatures(tx, request_id)), row.amount)

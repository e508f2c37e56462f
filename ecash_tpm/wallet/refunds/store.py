"""Refund claims saved before they are sent (table ``wallet_refund_claim``, schema component
``wallet_refunds``): the claim id, the permission and the blinded outputs with their secrets,
so a claim whose answer was lost is sent again identically and the bank answers it with the
same blind signatures (docs/protocol.md "Refunds")."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ecash_tpm.storage import Database, Migration
from ecash_tpm.wallet.coins import HeldCoin
from ecash_tpm.wallet.records import PendingCoin

__all__ = ["COMPONENT", "MIGRATIONS", "RefundClaimRecord", "RefundClaimStore"]

COMPONENT = "wallet_refunds"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "refund_claims",
        """
        CREATE TABLE wallet_refund_claim (
            refund_id TEXT PRIMARY KEY,
            claim_id TEXT NOT NULL UNIQUE,
            preq {blob} NOT NULL,
            amount BIGINT NOT NULL CHECK (amount > 0),
            currency TEXT NOT NULL,
            permission TEXT NOT NULL,
            cert TEXT NOT NULL,
            items TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
            error_code TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        """,
    ),
]


@dataclass(frozen=True)
class RefundClaimRecord:
    """One claim as saved before sending."""

    refund_id: str
    claim_id: str
    preq: bytes
    amount: int
    currency: str
    permission: dict[str, Any]
    cert: str
    items: list[PendingCoin]
    state: str
    error_code: str | None


def _record(row: dict[str, Any]) -> RefundClaimRecord:
    return RefundClaimRecord(
        refund_id=str(row["refund_id"]),
        claim_id=str(row["claim_id"]),
        preq=bytes(row["preq"]),
        amount=int(row["amount"]),
        currency=str(row["currency"]),
        permission=json.loads(row["permission"]),
        cert=str(row["cert"]),
        items=[PendingCoin.from_json(d) for d in json.loads(row["items"])],
        state=str(row["state"]),
        error_code=row["error_code"],
    )


class RefundClaimStore:
    """Refund claims in the wallet's coin database (migrates its own component)."""

    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        db.migrate(MIGRATIONS, component=COMPONENT)
        self._db = db
        self._clock = clock

    def get(self, refund_id: str) -> RefundClaimRecord | None:
        with self._db.read() as tx:
            row = tx.fetchone(
                "SELECT * FROM wallet_refund_claim WHERE refund_id = :r", {"r": refund_id}
            )
        return None if row is None else _record(dict(row))

    def pending(self) -> list[RefundClaimRecord]:
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT * FROM wallet_refund_claim WHERE state = 'pending' ORDER BY created_at"
            )
        return [_record(dict(r)) for r in rows]

    def add(
        self,
        *,
        refund_id: str,
        claim_id: str,
        preq: bytes,
        amount: int,
        currency: str,
        permission: dict[str, Any],
        cert: str,
        items: Sequence[PendingCoin],
    ) -> None:
        """Save a claim before it is sent."""
        now = self._clock()
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO wallet_refund_claim (refund_id, claim_id, preq, amount, currency,"
                " permission, cert, items, state, created_at, updated_at) VALUES (:r, :c, :p,"
                " :a, :cur, :perm, :cert, :i, 'pending', :t, :t)",
                {
                    "r": refund_id,
                    "c": claim_id,
                    "p": preq,
                    "a": amount,
                    "cur": currency,
                    "perm": json.dumps(permission, sort_keys=True),
                    "cert": cert,
                    "i": json.dumps([i.to_json() for i in items]),
                    "t": now,
                },
            )

    def complete(self, refund_id: str, coins: Sequence[HeldCoin]) -> None:
        """Store the fresh coins and close the claim, atomically (idempotent)."""
        now = self._clock()
        with self._db.transaction() as tx:
            state = tx.fetchval(
                "SELECT state FROM wallet_refund_claim WHERE refund_id = :r", {"r": refund_id}
            )
            if state != "pending":
                return
            for hc in coins:
                tx.execute(
                    "INSERT INTO wallet_coin (sigma, keyset_id, value, currency, deposit_until,"
                    " coin, state, created_at, updated_at)"
                    " VALUES (:s, :k, :v, :c, :du, :coin, 'unspent', :t, :t)",
                    {
                        "s": hc.sigma,
                        "k": hc.coin.keyset_id,
                        "v": hc.value,
                        "c": hc.currency,
                        "du": hc.deposit_until,
                        "coin": json.dumps(hc.coin.to_dict()),
                        "t": now,
                    },
                )
            tx.execute(
                "UPDATE wallet_refund_claim SET state = 'done', updated_at = :t"
                " WHERE refund_id = :r",
                {"r": refund_id, "t": now},
            )

    def fail(self, refund_id: str, code: str) -> None:
        """Give a claim up after a definite refusal (nothing was booked)."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE wallet_refund_claim SET state = 'failed', error_code = :e, updated_at = :t"
                " WHERE refund_id = :r AND state = 'pending'",
                {"r": refund_id, "e": code, "t": self._clock()},
            )

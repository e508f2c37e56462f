"""The merchant's refund permissions (table ``merchant_refund``, schema component
``merchant_refunds``, apart from the ``merchant`` component so it never collides with another
branch's next ``merchant`` migration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecash_tpm.storage import Database, Migration

__all__ = ["COMPONENT", "MIGRATIONS", "RefundStore", "StoredRefund"]

COMPONENT = "merchant_refunds"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "refunds",
        """
        CREATE TABLE merchant_refund (
            refund_id TEXT PRIMARY KEY,
            preq {blob} NOT NULL,
            amount BIGINT NOT NULL CHECK (amount > 0),
            permission TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE INDEX merchant_refund_preq ON merchant_refund (preq);
        """,
    ),
]


@dataclass(frozen=True, slots=True)
class StoredRefund:
    refund_id: str
    amount: int
    permission: dict[str, Any]


class RefundStore:
    """Refund permissions by payment request (migrates its own component)."""

    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        db.migrate(MIGRATIONS, component=COMPONENT)
        self._db = db
        self._clock = clock

    def add_if_within(
        self, preq: bytes, refund_id: str, amount: int, permission: dict[str, Any], limit: int
    ) -> bool:
        """Record a permission unless the request's refunds would exceed ``limit`` (one txn)."""
        with self._db.transaction() as tx:
            done = int(
                tx.fetchval(
                    "SELECT COALESCE(SUM(amount), 0) AS n FROM merchant_refund WHERE preq = :p",
                    {"p": preq},
                )
                or 0
            )
            if done + amount > limit:
                return False
            tx.execute(
                "INSERT INTO merchant_refund (refund_id, preq, amount, permission, created_at)"
                " VALUES (:r, :p, :a, :perm, :t)",
                {
                    "r": refund_id,
                    "p": preq,
                    "a": amount,
                    "perm": json.dumps(permission, sort_keys=True),
                    "t": self._clock(),
                },
            )
        return True

    def refunded(self, preq: bytes) -> int:
        with self._db.read() as tx:
            value = tx.fetchval(
                "SELECT COALESCE(SUM(amount), 0) AS n FROM merchant_refund WHERE preq = :p",
                {"p": preq},
            )
        return int(value or 0)

    def for_request(self, preq: bytes) -> list[StoredRefund]:
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT refund_id, amount, permission FROM merchant_refund WHERE preq = :p"
                " ORDER BY created_at, refund_id",
                {"p": preq},
            )
        return [
            StoredRefund(str(r["refund_id"]), int(r["amount"]), json.loads(r["permission"]))
            for r in rows
        ]

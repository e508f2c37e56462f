"""Queries on ``withdrawal`` and ``withdrawal_item`` (the blind signatures the bank issued)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ecash_tpm.storage import Transaction

__all__ = [
    "WithdrawalRow",
    "blind_signatures",
    "count_items",
    "insert_items",
    "insert_withdrawal",
    "total_amount",
    "withdrawal",
]


@dataclass(frozen=True, slots=True)
class WithdrawalRow:
    account_id: str
    items_digest: bytes
    amount: int


def withdrawal(tx: Transaction, request_id: str) -> WithdrawalRow | None:
    row = tx.fetchone(
        "SELECT account_id, items_digest, amount FROM withdrawal WHERE request_id = :r",
        {"r": request_id},
    )
    if row is None:
        return None
    return WithdrawalRow(str(row["account_id"]), bytes(row["items_digest"]), int(row["amount"]))


def blind_signatures(tx: Transaction, request_id: str) -> list[bytes]:
    """The stored blind signatures of a withdrawal, in item order."""
    rows = tx.fetchall(
        "SELECT blind_sig FROM withdrawal_item WHERE request_id = :r ORDER BY idx",
        {"r": request_id},
    )
    return [bytes(r["blind_sig"]) for r in rows]


def insert_withdrawal(
    tx: Transaction,
    *,
    request_id: str,
    account_id: str,
    digest: bytes,
    amount: int,
    txn_id: int,
    now: int,
) -> None:
    tx.execute(
        "INSERT INTO withdrawal (request_id, account_id, items_digest, amount, txn_id,"
        " created_at) VALUES (:r, :a, :d, :amount, :txn, :now)",
        {
            "r": request_id,
            "a": account_id,
            "d": digest,
            "amount": amount,
            "txn": txn_id,
            "now": now,
        },
    )


def insert_items(
    tx: Transaction,
    request_id: str,
    items: Sequence[tuple[bytes, bytes]],
    signatures: Sequence[bytes],
) -> None:
    """One row per ``(keyset_id, blinded_msg)`` item with its blind signature."""
    tx.executemany(
        "INSERT INTO withdrawal_item (request_id, idx, keyset_id, blinded_msg, blind_sig)"
        " VALUES (:r, :i, :k, :m, :s)",
        [
            {"r": request_id, "i": i, "k": k, "m": m, "s": s}
            for i, ((k, m), s) in enumerate(zip(items, signatures, strict=True))
        ],
    )


def count_items(tx: Transaction, keyset_id: bytes) -> int:
    """How many coins of a keyset the bank blind-signed."""
    return int(
        tx.fetchval(
            "SELECT COUNT(*) AS n FROM withdrawal_item WHERE keyset_id = :k", {"k": keyset_id}
        )
        or 0
    )


def total_amount(tx: Transaction) -> int:
    return int(tx.fetchval("SELECT COALESCE(SUM(amount), 0) AS s FROM withdrawal") or 0)

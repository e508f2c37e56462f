"""Queries on ``refund``, ``refund_coin`` and ``refund_item``; schema component ``bank_refunds``.

Kept apart from the main ``bank`` component (like ``bank_abuse``) so its migration never collides
with another branch's next ``bank`` migration. ``refund.refund_id`` is the idempotency key of a
claim; ``refund_coin`` names the coins whose ownership was proven; ``refund_item`` holds the
blind signatures on the fresh coins (docs/protocol.md "Refunds").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ecash_tpm.storage import Migration, Transaction

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "RefundRow",
    "blind_signatures",
    "count_items",
    "insert_refund",
    "refund",
    "refunded_for_deposit",
    "total_amount",
    "totals_per_merchant",
    "refunded_coins_per_keyset",
]

COMPONENT = "bank_refunds"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "refunds",
        """
        CREATE TABLE refund (
            refund_id TEXT PRIMARY KEY,
            claim_id TEXT NOT NULL,
            merchant_id TEXT NOT NULL REFERENCES merchant (merchant_id),
            deposit_id TEXT NOT NULL REFERENCES deposit (deposit_id),
            preq {blob} NOT NULL,
            amount BIGINT NOT NULL CHECK (amount > 0),
            currency TEXT NOT NULL,
            permission TEXT NOT NULL,
            merchant_cert TEXT NOT NULL,
            claim_digest {blob} NOT NULL,
            proofs TEXT NOT NULL,
            txn_id BIGINT NOT NULL REFERENCES ledger_txn (txn_id),
            claimed_at BIGINT NOT NULL
        );
        CREATE INDEX refund_deposit ON refund (deposit_id);
        CREATE TABLE refund_coin (
            refund_id TEXT NOT NULL REFERENCES refund (refund_id),
            sigma {blob} NOT NULL,
            PRIMARY KEY (refund_id, sigma)
        );
        CREATE TABLE refund_item (
            refund_id TEXT NOT NULL REFERENCES refund (refund_id),
            idx INTEGER NOT NULL,
            keyset_id {blob} NOT NULL,
            blinded_msg {blob} NOT NULL,
            blind_sig {blob} NOT NULL,
            PRIMARY KEY (refund_id, idx)
        );
        CREATE INDEX refund_item_keyset ON refund_item (keyset_id);
        """,
    ),
]


@dataclass(frozen=True, slots=True)
class RefundRow:
    """What a repeated claim is compared with."""

    refund_id: str
    claim_digest: bytes
    amount: int


def refund(tx: Transaction, refund_id: str) -> RefundRow | None:
    row = tx.fetchone(
        "SELECT refund_id, claim_digest, amount FROM refund WHERE refund_id = :r",
        {"r": refund_id},
    )
    if row is None:
        return None
    return RefundRow(str(row["refund_id"]), bytes(row["claim_digest"]), int(row["amount"]))


def blind_signatures(tx: Transaction, refund_id: str) -> list[bytes]:
    rows = tx.fetchall(
        "SELECT blind_sig FROM refund_item WHERE refund_id = :r ORDER BY idx", {"r": refund_id}
    )
    return [bytes(r["blind_sig"]) for r in rows]


def refunded_for_deposit(tx: Transaction, deposit_id: str) -> int:
    """The amount already refunded of one deposit (all its refunds)."""
    value = tx.fetchval(
        "SELECT COALESCE(SUM(amount), 0) AS n FROM refund WHERE deposit_id = :d",
        {"d": deposit_id},
    )
    return int(value or 0)


def insert_refund(
    tx: Transaction,
    *,
    refund_id: str,
    claim_id: str,
    merchant_id: str,
    deposit_id: str,
    preq: bytes,
    amount: int,
    currency: str,
    permission: str,
    merchant_cert: str,
    claim_digest: bytes,
    proofs: str,
    txn_id: int,
    serials: Sequence[bytes],
    items: Sequence[tuple[bytes, bytes]],
    signatures: Sequence[bytes],
    now: int,
) -> None:
    """The refund row, its proven coins and its fresh coins' blind signatures (one txn)."""
    tx.execute(
        "INSERT INTO refund (refund_id, claim_id, merchant_id, deposit_id, preq, amount,"
        " currency, permission, merchant_cert, claim_digest, proofs, txn_id, claimed_at)"
        " VALUES (:r, :c, :m, :d, :p, :a, :cur, :perm, :cert, :dig, :proofs, :txn, :now)",
        {
            "r": refund_id,
            "c": claim_id,
            "m": merchant_id,
            "d": deposit_id,
            "p": preq,
            "a": amount,
            "cur": currency,
            "perm": permission,
            "cert": merchant_cert,
            "dig": claim_digest,
            "proofs": proofs,
            "txn": txn_id,
            "now": now,
        },
    )
    tx.executemany(
        "INSERT INTO refund_coin (refund_id, sigma) VALUES (:r, :s)",
        [{"r": refund_id, "s": s} for s in serials],
    )
    tx.executemany(
        "INSERT INTO refund_item (refund_id, idx, keyset_id, blinded_msg, blind_sig)"
        " VALUES (:r, :i, :k, :m, :s)",
        [
            {"r": refund_id, "i": i, "k": k, "m": m, "s": s}
            for i, ((k, m), s) in enumerate(zip(items, signatures, strict=True))
        ],
    )


def count_items(tx: Transaction, keyset_id: bytes) -> int:
    """How many fresh coins of a keyset the bank blind-signed for refunds."""
    value = tx.fetchval(
        "SELECT COUNT(*) AS n FROM refund_item WHERE keyset_id = :k", {"k": keyset_id}
    )
    return int(value or 0)


def total_amount(tx: Transaction) -> int:
    """The amount of every refund (what the ledger moved into coins-outstanding)."""
    return int(tx.fetchval("SELECT COALESCE(SUM(amount), 0) AS n FROM refund") or 0)


def totals_per_merchant(tx: Transaction) -> dict[str, int]:
    """Refunded amount per merchant (what was debited from its account)."""
    rows = tx.fetchall("SELECT merchant_id, SUM(amount) AS total FROM refund GROUP BY merchant_id")
    return {str(r["merchant_id"]): int(r["total"]) for r in rows}


def refunded_coins_per_keyset(tx: Transaction) -> dict[bytes, int]:
    """Refunded coins per keyset of the coin: what the refund fees are charged on (4.2)."""
    rows = tx.fetchall(
        "SELECT s.keyset_id, COUNT(*) AS n FROM refund_coin c"
        " JOIN spent_coin s ON s.sigma = c.sigma GROUP BY s.keyset_id"
    )
    return {bytes(r["keyset_id"]): int(r["n"]) for r in rows}

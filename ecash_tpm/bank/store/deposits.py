"""Queries on ``deposit``, ``spend_transcript``, ``spent_coin`` and ``coin_lock``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ecash_tpm.storage import Transaction

__all__ = [
    "DepositRow",
    "DepositedCoinRow",
    "count_spent",
    "LockRow",
    "delete_lock",
    "delete_locks",
    "deposit",
    "deposited_coin",
    "first_lock_time",
    "insert_deposit",
    "insert_spent",
    "insert_transcript",
    "is_spent",
    "lock",
    "lock_detail",
    "lock_rows",
    "set_receipt",
    "spent_by",
    "totals_per_merchant",
    "spent_per_merchant_keyset",
    "transcript_body",
    "upsert_lock",
]


@dataclass(frozen=True, slots=True)
class DepositRow:
    """What an idempotent retry is compared with: who deposited what, and the receipt."""

    merchant_id: str
    content_digest: bytes
    receipt: str


@dataclass(frozen=True, slots=True)
class DepositedCoinRow:
    """A spent serial joined with its transcript (the TTP's deposit query)."""

    merchant_id: str
    preq: bytes
    deposit_id: str
    body: str
    spent_at: int


# --- deposit -----------------------------------------------------------------------------------


def deposit(tx: Transaction, deposit_id: str) -> DepositRow | None:
    row = tx.fetchone(
        "SELECT merchant_id, content_digest, receipt FROM deposit WHERE deposit_id = :d",
        {"d": deposit_id},
    )
    if row is None:
        return None
    return DepositRow(str(row["merchant_id"]), bytes(row["content_digest"]), str(row["receipt"]))


def insert_deposit(
    tx: Transaction,
    *,
    deposit_id: str,
    merchant_id: str,
    digest: bytes,
    preq: bytes,
    amount: int,
    currency: str,
    txn_id: int,
    now: int,
) -> None:
    """The deposit row with an empty receipt (set by :func:`set_receipt` in the same txn)."""
    tx.execute(
        "INSERT INTO deposit (deposit_id, merchant_id, content_digest, preq, amount,"
        " currency, receipt, txn_id, created_at) VALUES (:d, :m, :digest, :preq,"
        " :amount, :currency, '', :txn, :now)",
        {
            "d": deposit_id,
            "m": merchant_id,
            "digest": digest,
            "preq": preq,
            "amount": amount,
            "currency": currency,
            "txn": txn_id,
            "now": now,
        },
    )


def set_receipt(tx: Transaction, deposit_id: str, receipt_json: str) -> None:
    tx.execute(
        "UPDATE deposit SET receipt = :r WHERE deposit_id = :d",
        {"r": receipt_json, "d": deposit_id},
    )


def totals_per_merchant(tx: Transaction) -> dict[str, int]:
    """Sum of deposit amounts per merchant id."""
    rows = tx.fetchall("SELECT merchant_id, SUM(amount) AS total FROM deposit GROUP BY merchant_id")
    return {str(r["merchant_id"]): int(r["total"]) for r in rows}


# --- spend_transcript and spent_coin -----------------------------------------------------------


def insert_transcript(
    tx: Transaction,
    *,
    deposit_id: str,
    sigma: bytes,
    merchant_id: str,
    keyset_id: bytes,
    preq: bytes,
    body_json: str,
    now: int,
) -> int:
    """A spend transcript; returns its id."""
    return tx.insert_returning_id(
        "INSERT INTO spend_transcript (deposit_id, sigma, merchant_id, keyset_id,"
        " preq, body, created_at) VALUES (:d, :s, :m, :k, :preq, :body, :now)",
        {
            "d": deposit_id,
            "s": sigma,
            "m": merchant_id,
            "k": keyset_id,
            "preq": preq,
            "body": body_json,
            "now": now,
        },
        id_column="transcript_id",
    )


def transcript_body(tx: Transaction, transcript_id: int) -> str | None:
    """The stored (unsigned) transcript body as JSON text."""
    value = tx.fetchval(
        "SELECT body FROM spend_transcript WHERE transcript_id = :t", {"t": transcript_id}
    )
    return None if value is None else str(value)


def insert_spent(
    tx: Transaction,
    *,
    sigma: bytes,
    keyset_id: bytes,
    transcript_id: int,
    deposit_id: str,
    now: int,
) -> None:
    """Mark a serial spent; the primary key refuses a second row for it."""
    tx.execute(
        "INSERT INTO spent_coin (sigma, keyset_id, transcript_id, deposit_id,"
        " spent_at) VALUES (:s, :k, :t, :d, :now)",
        {"s": sigma, "k": keyset_id, "t": transcript_id, "d": deposit_id, "now": now},
    )


def spent_by(tx: Transaction, sigma: bytes) -> tuple[int, bytes] | None:
    """``(transcript_id, preq)`` of the deposit that spent ``sigma``, if any."""
    row = tx.fetchone(
        "SELECT s.transcript_id, t.preq FROM spent_coin s"
        " JOIN spend_transcript t ON t.transcript_id = s.transcript_id"
        " WHERE s.sigma = :s",
        {"s": sigma},
    )
    return None if row is None else (int(row["transcript_id"]), bytes(row["preq"]))


def is_spent(tx: Transaction, sigma: bytes) -> bool:
    return tx.fetchone("SELECT 1 AS x FROM spent_coin WHERE sigma = :s", {"s": sigma}) is not None


def count_spent(tx: Transaction, keyset_id: bytes) -> int:
    """How many serials of a keyset were deposited."""
    return int(
        tx.fetchval("SELECT COUNT(*) AS n FROM spent_coin WHERE keyset_id = :k", {"k": keyset_id})
        or 0
    )


def deposited_coin(tx: Transaction, sigma: bytes) -> DepositedCoinRow | None:
    row = tx.fetchone(
        "SELECT t.merchant_id, t.preq, t.deposit_id, t.body, s.spent_at FROM spent_coin s"
        " JOIN spend_transcript t ON t.transcript_id = s.transcript_id WHERE s.sigma = :s",
        {"s": sigma},
    )
    if row is None:
        return None
    return DepositedCoinRow(
        merchant_id=str(row["merchant_id"]),
        preq=bytes(row["preq"]),
        deposit_id=str(row["deposit_id"]),
        body=str(row["body"]),
        spent_at=int(row["spent_at"]),
    )


# --- coin_lock (the lock period T) -------------------------------------------------------------


def lock(tx: Transaction, sigma: bytes) -> tuple[str, int] | None:
    """``(merchant_id, locked_until)`` of a coin's lock row (live or expired), if any."""
    row = tx.fetchone(
        "SELECT merchant_id, locked_until FROM coin_lock WHERE sigma = :s", {"s": sigma}
    )
    return None if row is None else (str(row["merchant_id"]), int(row["locked_until"]))


def lock_detail(tx: Transaction, sigma: bytes) -> tuple[str, bytes, int] | None:
    """``(merchant_id, preq, locked_until)`` of a coin's lock row (for the signed coin status)."""
    row = tx.fetchone(
        "SELECT merchant_id, preq, locked_until FROM coin_lock WHERE sigma = :s", {"s": sigma}
    )
    if row is None:
        return None
    return (str(row["merchant_id"]), bytes(row["preq"]), int(row["locked_until"]))


def first_lock_time(
    tx: Transaction, merchant_id: str, preq: bytes, sigmas: Sequence[bytes], now: int
) -> int | None:
    """When this merchant had locked ALL of ``sigmas`` for this request (the latest of their
    lock times), or None when any of them has no live lock of its own: a lock on some coins
    of a request must not let other coins of the same request in late (§10)."""
    latest: int | None = None
    for sigma in sigmas:
        value = tx.fetchval(
            "SELECT locked_at FROM coin_lock WHERE sigma = :s AND merchant_id = :m"
            " AND preq = :p AND locked_until > :now",
            {"s": sigma, "m": merchant_id, "p": preq, "now": now},
        )
        if value is None:
            return None
        latest = int(value) if latest is None else max(latest, int(value))
    return latest


def upsert_lock(
    tx: Transaction, sigma: bytes, *, merchant_id: str, preq: bytes, now: int, until: int
) -> None:
    """Hold ``sigma`` for ``merchant_id`` until ``until`` (replacing an expired lock row)."""
    tx.execute(
        "INSERT INTO coin_lock (sigma, merchant_id, preq, locked_at, locked_until)"
        " VALUES (:s, :m, :p, :now, :until) ON CONFLICT (sigma) DO UPDATE SET"
        " merchant_id = excluded.merchant_id, preq = excluded.preq,"
        " locked_at = excluded.locked_at, locked_until = excluded.locked_until",
        {"s": sigma, "m": merchant_id, "p": preq, "now": now, "until": until},
    )


def delete_lock(tx: Transaction, sigma: bytes) -> None:
    tx.execute("DELETE FROM coin_lock WHERE sigma = :s", {"s": sigma})


def delete_locks(tx: Transaction, sigmas: Sequence[bytes]) -> None:
    """:func:`delete_lock` for several serials in one ``executemany``."""
    tx.executemany("DELETE FROM coin_lock WHERE sigma = :s", ({"s": s} for s in sigmas))


@dataclass(frozen=True, slots=True)
class LockRow:
    """A coin's lock row (live or expired), as the deposit booking reads it once."""

    merchant_id: str
    preq: bytes
    locked_at: int
    locked_until: int


def lock_rows(tx: Transaction, sigmas: Sequence[bytes]) -> dict[bytes, LockRow]:
    """The lock rows of ``sigmas`` that exist (one read per serial, for every lock check of a
    deposit booking: :func:`first_lock_time`'s rule and the other-merchant check)."""
    found: dict[bytes, LockRow] = {}
    for sigma in sigmas:
        row = tx.fetchone(
            "SELECT merchant_id, preq, locked_at, locked_until FROM coin_lock WHERE sigma = :s",
            {"s": sigma},
        )
        if row is not None:
            found[sigma] = LockRow(
                str(row["merchant_id"]),
                bytes(row["preq"]),
                int(row["locked_at"]),
                int(row["locked_until"]),
            )
    return found


def spent_per_merchant_keyset(tx: Transaction) -> list[tuple[str, bytes, int]]:
    """``(merchant_id, keyset_id, coins)`` deposited: what the deposit fees are charged on
    (docs/protocol.md 4.2)."""
    rows = tx.fetchall(
        "SELECT d.merchant_id, s.keyset_id, COUNT(*) AS n FROM spent_coin s"
        " JOIN deposit d ON d.deposit_id = s.deposit_id GROUP BY d.merchant_id, s.keyset_id"
    )
    return [(str(r["merchant_id"]), bytes(r["keyset_id"]), int(r["n"])) for r in rows]

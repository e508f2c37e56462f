"""Queries on ``swap``, ``swap_input`` and ``swap_output`` (docs/protocol.md §9.3); schema
component ``bank_swap``.

A swapped coin is spent: its serial is the primary key of ``swap_input`` (with the transcript of
its spend), and every spent check reads both ``spent_coin`` and ``swap_input``
(:func:`spent_by`). ``spent_coin`` and ``spend_transcript`` cannot hold a swap: their rows
reference a merchant's ``deposit``. Kept as its own component so this migration never collides
with another branch's next ``bank`` migration number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ecash_tpm.storage import Migration, Transaction

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "SwapRow",
    "SwappedCoin",
    "blind_signatures",
    "count_inputs",
    "count_outputs",
    "insert_input",
    "insert_outputs",
    "insert_swap",
    "migrated",
    "swap",
    "swapped",
    "total_out",
    "total_fee",
]

COMPONENT = "bank_swap"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "swap",
        """
        CREATE TABLE swap (
            request_id TEXT PRIMARY KEY,
            content_digest {blob} NOT NULL,
            preq {blob} NOT NULL UNIQUE,
            amount_in BIGINT NOT NULL CHECK (amount_in > 0),
            amount_out BIGINT NOT NULL CHECK (amount_out > 0),
            fee BIGINT NOT NULL CHECK (fee >= 0),
            currency TEXT NOT NULL,
            txn_id BIGINT NOT NULL REFERENCES ledger_txn (txn_id),
            created_at BIGINT NOT NULL
        );
        CREATE TABLE swap_input (
            sigma {blob} PRIMARY KEY,
            request_id TEXT NOT NULL REFERENCES swap (request_id),
            keyset_id {blob} NOT NULL REFERENCES keyset (keyset_id),
            value BIGINT NOT NULL CHECK (value > 0),
            body TEXT NOT NULL,
            spent_at BIGINT NOT NULL
        );
        CREATE INDEX swap_input_keyset ON swap_input (keyset_id);
        CREATE TABLE swap_output (
            request_id TEXT NOT NULL REFERENCES swap (request_id),
            idx INTEGER NOT NULL,
            keyset_id {blob} NOT NULL REFERENCES keyset (keyset_id),
            value BIGINT NOT NULL CHECK (value > 0),
            blinded_msg {blob} NOT NULL,
            blind_sig {blob} NOT NULL,
            PRIMARY KEY (request_id, idx)
        );
        CREATE INDEX swap_output_keyset ON swap_output (keyset_id);
        """,
    ),
]


@dataclass(frozen=True, slots=True)
class SwapRow:
    """What an idempotent retry is compared with."""

    request_id: str
    content_digest: bytes


@dataclass(frozen=True, slots=True)
class SwappedCoin:
    """A serial spent by a swap: the swap, its ``preq``, when, and the stored transcript."""

    request_id: str
    preq: bytes
    spent_at: int
    body: str


def swap(tx: Transaction, request_id: str) -> SwapRow | None:
    row = tx.fetchone(
        "SELECT request_id, content_digest FROM swap WHERE request_id = :r", {"r": request_id}
    )
    return None if row is None else SwapRow(str(row["request_id"]), bytes(row["content_digest"]))


def insert_swap(
    tx: Transaction,
    *,
    request_id: str,
    digest: bytes,
    preq: bytes,
    amount_in: int,
    amount_out: int,
    fee: int,
    currency: str,
    txn_id: int,
    now: int,
) -> None:
    tx.execute(
        "INSERT INTO swap (request_id, content_digest, preq, amount_in, amount_out, fee,"
        " currency, txn_id, created_at) VALUES (:r, :d, :p, :ai, :ao, :f, :c, :t, :now)",
        {
            "r": request_id,
            "d": digest,
            "p": preq,
            "ai": amount_in,
            "ao": amount_out,
            "f": fee,
            "c": currency,
            "t": txn_id,
            "now": now,
        },
    )


def insert_input(
    tx: Transaction,
    *,
    sigma: bytes,
    request_id: str,
    keyset_id: bytes,
    value: int,
    body_json: str,
    now: int,
) -> None:
    """Mark a serial spent by a swap; the primary key refuses a second swap of it."""
    tx.execute(
        "INSERT INTO swap_input (sigma, request_id, keyset_id, value, body, spent_at)"
        " VALUES (:s, :r, :k, :v, :b, :now)",
        {"s": sigma, "r": request_id, "k": keyset_id, "v": value, "b": body_json, "now": now},
    )


def insert_outputs(
    tx: Transaction,
    request_id: str,
    outputs: Sequence[tuple[bytes, int, bytes, bytes]],
) -> None:
    """``(keyset_id, value, blinded_msg, blind_sig)`` per output, in order."""
    for idx, (keyset_id, value, blinded, sig) in enumerate(outputs):
        tx.execute(
            "INSERT INTO swap_output (request_id, idx, keyset_id, value, blinded_msg,"
            " blind_sig) VALUES (:r, :i, :k, :v, :m, :s)",
            {"r": request_id, "i": idx, "k": keyset_id, "v": value, "m": blinded, "s": sig},
        )


def blind_signatures(tx: Transaction, request_id: str) -> list[bytes]:
    rows = tx.fetchall(
        "SELECT blind_sig FROM swap_output WHERE request_id = :r ORDER BY idx", {"r": request_id}
    )
    return [bytes(r["blind_sig"]) for r in rows]


def swapped(tx: Transaction, sigma: bytes) -> SwappedCoin | None:
    """The swap that spent ``sigma``, if any."""
    row = tx.fetchone(
        "SELECT i.request_id, s.preq, i.spent_at, i.body FROM swap_input i"
        " JOIN swap s ON s.request_id = i.request_id WHERE i.sigma = :s",
        {"s": sigma},
    )
    if row is None:
        return None
    return SwappedCoin(
        str(row["request_id"]), bytes(row["preq"]), int(row["spent_at"]), str(row["body"])
    )


def count_outputs(tx: Transaction, keyset_id: bytes) -> int:
    """How many coins of a keyset were signed by swaps (issued, like withdrawal items)."""
    return int(
        tx.fetchval("SELECT COUNT(*) AS n FROM swap_output WHERE keyset_id = :k", {"k": keyset_id})
        or 0
    )


def count_inputs(tx: Transaction, keyset_id: bytes) -> int:
    """How many serials of a keyset were spent by swaps."""
    return int(
        tx.fetchval("SELECT COUNT(*) AS n FROM swap_input WHERE keyset_id = :k", {"k": keyset_id})
        or 0
    )


def total_out(tx: Transaction) -> int:
    """The value all swaps have signed (what they added to the keysets' outstanding value)."""
    return int(tx.fetchval("SELECT COALESCE(SUM(amount_out), 0) AS s FROM swap") or 0)


def migrated(tx: Transaction) -> bool:
    """Whether this database holds the swap tables (a ledger checked without a bank domain,
    e.g. by an operator tool on an older database, may not)."""
    return (
        tx.fetchval(
            "SELECT MAX(version) AS v FROM schema_migrations WHERE component = :c",
            {"c": COMPONENT},
        )
        is not None
    )


def total_fee(tx: Transaction) -> int:
    """The refresh fees all swaps have booked (docs/protocol.md 4.2)."""
    return int(tx.fetchval("SELECT COALESCE(SUM(fee), 0) AS s FROM swap") or 0)

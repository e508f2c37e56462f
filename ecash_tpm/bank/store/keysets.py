"""Queries on ``keyset`` (one row per denomination key; the signed descriptor as JSON text)."""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.protocol.keysets import Keyset
from ecash_tpm.storage import Transaction

__all__ = [
    "KeysetRow",
    "all_descriptors",
    "all_rows",
    "denominations",
    "depositable_descriptors",
    "descriptor",
    "insert_keyset",
    "key_file",
    "key_files",
    "lock_keyset_creation",
    "open_values",
    "update_descriptor",
    "values_by_window",
]


@dataclass(frozen=True, slots=True)
class KeysetRow:
    """The columns of a keyset row next to its stored descriptor (checked before re-signing)."""

    keyset_id: bytes
    value: int
    currency: str
    withdraw_from: int
    withdraw_until: int
    deposit_until: int
    public_key: bytes
    variant: str
    descriptor: str


def insert_keyset(
    tx: Transaction, keyset: Keyset, *, descriptor_json: str, key_file_name: str, now: int
) -> None:
    tx.execute(
        "INSERT INTO keyset (keyset_id, value, currency, withdraw_from, withdraw_until,"
        " deposit_until, public_key, variant, descriptor, key_file, created_at)"
        " VALUES (:keyset_id, :value, :currency, :withdraw_from, :withdraw_until,"
        " :deposit_until, :public_key, :variant, :descriptor, :key_file, :created_at)",
        {
            **keyset.columns(),
            "descriptor": descriptor_json,
            "key_file": key_file_name,
            "created_at": now,
        },
    )


def descriptor(tx: Transaction, keyset_id: bytes) -> str | None:
    """The stored signed descriptor (JSON text) of a keyset."""
    value = tx.fetchval("SELECT descriptor FROM keyset WHERE keyset_id = :k", {"k": keyset_id})
    return None if value is None else str(value)


def key_file(tx: Transaction, keyset_id: bytes) -> str | None:
    value = tx.fetchval("SELECT key_file FROM keyset WHERE keyset_id = :k", {"k": keyset_id})
    return None if value is None else str(value)


def key_files(tx: Transaction, names: list[str]) -> list[str]:
    """Which of the key file ``names`` belong to a recorded keyset."""
    found: list[str] = []
    for name in names:
        value = tx.fetchval("SELECT key_file FROM keyset WHERE key_file = :f", {"f": name})
        if value is not None:
            found.append(str(value))
    return found


def all_descriptors(tx: Transaction) -> list[tuple[str, int]]:
    """``(descriptor, deposit_until)`` of every keyset, newest window first."""
    rows = tx.fetchall(
        "SELECT descriptor, deposit_until FROM keyset ORDER BY withdraw_from DESC, value ASC"
    )
    return [(str(r["descriptor"]), int(r["deposit_until"])) for r in rows]


def depositable_descriptors(tx: Transaction, now: int) -> list[str]:
    """Descriptors of keysets whose deposit window is still open, newest window first."""
    rows = tx.fetchall(
        "SELECT descriptor FROM keyset WHERE deposit_until > :now"
        " ORDER BY withdraw_from DESC, value ASC",
        {"now": now},
    )
    return [str(r["descriptor"]) for r in rows]


def all_rows(tx: Transaction) -> list[KeysetRow]:
    rows = tx.fetchall(
        "SELECT keyset_id, value, currency, withdraw_from, withdraw_until, deposit_until,"
        " public_key, variant, descriptor FROM keyset"
    )
    return [
        KeysetRow(
            keyset_id=bytes(r["keyset_id"]),
            value=int(r["value"]),
            currency=str(r["currency"]),
            withdraw_from=int(r["withdraw_from"]),
            withdraw_until=int(r["withdraw_until"]),
            deposit_until=int(r["deposit_until"]),
            public_key=bytes(r["public_key"]),
            variant=str(r["variant"]),
            descriptor=str(r["descriptor"]),
        )
        for r in rows
    ]


def update_descriptor(tx: Transaction, keyset_id: bytes, descriptor_json: str) -> None:
    tx.execute(
        "UPDATE keyset SET descriptor = :d WHERE keyset_id = :k",
        {"d": descriptor_json, "k": keyset_id},
    )


def values_by_window(tx: Transaction) -> list[tuple[bytes, int]]:
    """``(keyset_id, value)`` of every keyset, oldest window first (the ledger check)."""
    rows = tx.fetchall("SELECT keyset_id, value FROM keyset ORDER BY withdraw_from")
    return [(bytes(r["keyset_id"]), int(r["value"])) for r in rows]


def denominations(tx: Transaction) -> list[tuple[bytes, int, str]]:
    """``(keyset_id, value, currency)``, oldest window first then by value (supply report)."""
    rows = tx.fetchall(
        "SELECT keyset_id, value, currency FROM keyset ORDER BY withdraw_from, value"
    )
    return [(bytes(r["keyset_id"]), int(r["value"]), str(r["currency"])) for r in rows]


#: Advisory-lock key under which keysets are created (issue 13 item 4: concurrent start-ups).
KEYSET_LOCK_KEY = 0x65636173686B7379


def lock_keyset_creation(tx: Transaction) -> None:
    """Serialize keyset creation across processes: PostgreSQL advisory lock for the rest of
    ``tx`` (SQLite: the write transaction already excludes every other writer)."""
    tx.lock_keys([KEYSET_LOCK_KEY])


def open_values(tx: Transaction, currency: str, now: int) -> set[int]:
    """Denominations of ``currency`` that have a keyset open for withdrawal at ``now``."""
    rows = tx.fetchall(
        "SELECT DISTINCT value FROM keyset WHERE currency = :c"
        " AND withdraw_from <= :now AND withdraw_until > :now",
        {"c": currency, "now": now},
    )
    return {int(r["value"]) for r in rows}

"""Queries on ``ledger_txn`` and ``ledger_entry`` (the append-only double-entry ledger)."""

from __future__ import annotations

from collections.abc import Sequence

from ecash_tpm.storage import Transaction

__all__ = [
    "balance",
    "count_entries",
    "count_txns",
    "entries_total",
    "insert_entries",
    "insert_txn",
    "keyset_flows",
    "outstanding_as_of",
    "sum_by_prefix",
    "txns_without_entries",
    "unbalanced_txns",
]


def insert_txn(tx: Transaction, *, kind: str, ref: str, now: int) -> int:
    """A new ledger transaction; ``(kind, ref)`` is unique (``UniqueViolationError``)."""
    return tx.insert_returning_id(
        "INSERT INTO ledger_txn (kind, ref, created_at) VALUES (:kind, :ref, :now)",
        {"kind": kind, "ref": ref, "now": now},
        id_column="txn_id",
    )


def insert_entries(
    tx: Transaction, txn_id: int, lines: Sequence[tuple[str, int]], currency: str
) -> None:
    tx.executemany(
        "INSERT INTO ledger_entry (txn_id, account, amount, currency)"
        " VALUES (:txn_id, :account, :amount, :currency)",
        [{"txn_id": txn_id, "account": a, "amount": v, "currency": currency} for a, v in lines],
    )


def balance(tx: Transaction, account: str) -> int:
    """Current balance of a ledger account (sum of its entries)."""
    value = tx.fetchval(
        "SELECT COALESCE(SUM(amount), 0) AS b FROM ledger_entry WHERE account = :a",
        {"a": account},
    )
    return int(value or 0)


def sum_by_prefix(tx: Transaction, prefix: str) -> dict[str, int]:
    """Balance of every ledger account whose name starts with ``prefix``."""
    rows = tx.fetchall(
        "SELECT account, SUM(amount) AS total FROM ledger_entry"
        " WHERE account LIKE :pattern GROUP BY account",
        {"pattern": prefix + "%"},
    )
    return {str(r["account"]): int(r["total"]) for r in rows}


def outstanding_as_of(tx: Transaction, account: str, as_of: int) -> int:
    """Balance of ``account`` counting only transactions dated ``<= as_of``."""
    value = tx.fetchval(
        "SELECT COALESCE(SUM(e.amount), 0) AS total FROM ledger_entry e"
        " JOIN ledger_txn t ON t.txn_id = e.txn_id"
        " WHERE e.account = :account AND t.created_at <= :as_of",
        {"account": account, "as_of": as_of},
    )
    return int(value or 0)


# --- what the ledger check reads ---------------------------------------------------------------


def unbalanced_txns(tx: Transaction) -> list[tuple[int, int]]:
    """``(txn_id, sum)`` of transactions whose entries do not sum to 0 or are fewer than 2."""
    rows = tx.fetchall(
        "SELECT txn_id, SUM(amount) AS total, COUNT(*) AS n FROM ledger_entry"
        " GROUP BY txn_id HAVING SUM(amount) <> 0 OR COUNT(*) < 2"
    )
    return [(int(r["txn_id"]), int(r["total"])) for r in rows]


def txns_without_entries(tx: Transaction) -> list[int]:
    rows = tx.fetchall(
        "SELECT t.txn_id FROM ledger_txn t LEFT JOIN ledger_entry e ON e.txn_id = t.txn_id"
        " WHERE e.entry_id IS NULL"
    )
    return [int(r["txn_id"]) for r in rows]


def entries_total(tx: Transaction) -> int:
    return int(tx.fetchval("SELECT COALESCE(SUM(amount), 0) AS s FROM ledger_entry") or 0)


def count_txns(tx: Transaction) -> int:
    return int(tx.fetchval("SELECT COUNT(*) AS n FROM ledger_txn") or 0)


def count_entries(tx: Transaction) -> int:
    return int(tx.fetchval("SELECT COUNT(*) AS n FROM ledger_entry") or 0)


def keyset_flows(tx: Transaction, account: str) -> tuple[int, int, int]:
    """``(credited, debited, balance)`` of one account: withdrawn, deposited, outstanding."""
    sums = tx.fetchone(
        "SELECT COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS w,"
        " COALESCE(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END), 0) AS d,"
        " COALESCE(SUM(amount), 0) AS b FROM ledger_entry WHERE account = :a",
        {"a": account},
    ) or {"w": 0, "d": 0, "b": 0}
    return int(sums["w"]), int(sums["d"]), int(sums["b"])

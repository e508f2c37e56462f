"""Double-entry ledger: every money movement is one transaction whose entries sum to zero.

Ledger accounts are names, not rows: ``customer:<id>``, ``merchant:<id>``,
``coins-outstanding:<keyset hex>`` (value of that keyset's issued, not yet deposited coins) and
``external:funding`` (money that entered the system from outside, e.g. a cash deposit at the
counter). Amounts are signed minor units; a positive balance is what the bank owes.

    fund      customer:+a            external:funding:-a
    withdraw  customer:-sum          coins-outstanding:<k>:+value*n   (per keyset)
    deposit   coins-outstanding:<k>:-value*n (per keyset)   merchant:+sum

Balances are sums of entries (append-only), so concurrent deposits never contend on one row.
:func:`ledger_check` re-derives everything from the entries *and* from the independent coin
tables (signed withdrawal items, spent serials), which is what an outside auditor would do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ecash_tpm.bank.errors import LedgerInvariantError
from ecash_tpm.storage import Database, Transaction

__all__ = [
    "EXTERNAL_FUNDING",
    "balance",
    "customer_account",
    "ledger_check",
    "merchant_account",
    "post_transaction",
]

EXTERNAL_FUNDING = "external:funding"


def customer_account(account_id: str) -> str:
    return "customer:" + account_id


def merchant_account(merchant_id: str) -> str:
    return "merchant:" + merchant_id


def post_transaction(
    tx: Transaction,
    *,
    kind: str,
    ref: str,
    entries: Sequence[tuple[str, int]],
    currency: str,
    now: int,
) -> int:
    """Record one balanced transaction inside ``tx``; returns its id.

    ``(kind, ref)`` is unique, so the same withdrawal or deposit can never be booked twice even
    if a caller forgets its own idempotency check. Unbalanced input is a bug and raises.
    """
    merged: dict[str, int] = defaultdict(int)
    for account, amount in entries:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise LedgerInvariantError("ledger amounts must be integers")
        merged[account] += amount
    lines = [(a, v) for a, v in merged.items() if v != 0]
    if len(lines) < 2 or sum(v for _, v in lines) != 0:
        raise LedgerInvariantError(
            "refusing to book an unbalanced transaction",
            detail={"kind": kind, "ref": ref, "entries": lines},
        )
    txn_id = tx.insert_returning_id(
        "INSERT INTO ledger_txn (kind, ref, created_at) VALUES (:kind, :ref, :now)",
        {"kind": kind, "ref": ref, "now": now},
        id_column="txn_id",
    )
    tx.executemany(
        "INSERT INTO ledger_entry (txn_id, account, amount, currency)"
        " VALUES (:txn_id, :account, :amount, :currency)",
        [{"txn_id": txn_id, "account": a, "amount": v, "currency": currency} for a, v in lines],
    )
    return txn_id


def balance(tx: Transaction, account: str) -> int:
    """Current balance of a ledger account (sum of its entries)."""
    value = tx.fetchval(
        "SELECT COALESCE(SUM(amount), 0) AS b FROM ledger_entry WHERE account = :a",
        {"a": account},
    )
    return int(value or 0)


def _sum_prefix(tx: Transaction, prefix: str) -> dict[str, int]:
    rows = tx.fetchall(
        "SELECT account, SUM(amount) AS total FROM ledger_entry"
        " WHERE account LIKE :pattern GROUP BY account",
        {"pattern": prefix + "%"},
    )
    return {str(r["account"]): int(r["total"]) for r in rows}


def ledger_check(db: Database) -> dict[str, Any]:
    """Prove the ledger's invariants on one consistent snapshot; raise if any fails.

    Checked: every transaction has >= 2 entries summing to 0; all entries sum to 0; per
    keyset, withdrawn - deposited == outstanding >= 0, withdrawn == value x signed items,
    deposited == value x spent serials; total withdrawn equals the withdrawal amounts;
    customer balances are never negative; each merchant's balance equals its deposits.
    Returns a report (per-keyset figures and totals) for the audit.
    """
    problems: list[dict[str, Any]] = []
    with db.read() as tx:
        unbalanced = tx.fetchall(
            "SELECT txn_id, SUM(amount) AS total, COUNT(*) AS n FROM ledger_entry"
            " GROUP BY txn_id HAVING SUM(amount) <> 0 OR COUNT(*) < 2"
        )
        for row in unbalanced:
            problems.append(
                {"check": "txn_balanced", "txn_id": int(row["txn_id"]), "sum": int(row["total"])}
            )
        empty = tx.fetchall(
            "SELECT t.txn_id FROM ledger_txn t LEFT JOIN ledger_entry e ON e.txn_id = t.txn_id"
            " WHERE e.entry_id IS NULL"
        )
        for row in empty:
            problems.append({"check": "txn_has_entries", "txn_id": int(row["txn_id"])})
        total = int(tx.fetchval("SELECT COALESCE(SUM(amount), 0) AS s FROM ledger_entry") or 0)
        if total != 0:
            problems.append({"check": "entries_sum_zero", "sum": total})
        n_txn = int(tx.fetchval("SELECT COUNT(*) AS n FROM ledger_txn") or 0)
        n_entries = int(tx.fetchval("SELECT COUNT(*) AS n FROM ledger_entry") or 0)

        keysets_report = []
        withdrawn_total = 0
        for ks in tx.fetchall("SELECT keyset_id, value FROM keyset ORDER BY withdraw_from"):
            kid: bytes = bytes(ks["keyset_id"])
            value = int(ks["value"])
            account = "coins-outstanding:" + kid.hex()
            sums = tx.fetchone(
                "SELECT COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS w,"
                " COALESCE(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END), 0) AS d,"
                " COALESCE(SUM(amount), 0) AS b FROM ledger_entry WHERE account = :a",
                {"a": account},
            ) or {"w": 0, "d": 0, "b": 0}
            withdrawn, deposited, outstanding = int(sums["w"]), int(sums["d"]), int(sums["b"])
            issued = int(
                tx.fetchval(
                    "SELECT COUNT(*) AS n FROM withdrawal_item WHERE keyset_id = :k", {"k": kid}
                )
                or 0
            )
            spent = int(
                tx.fetchval("SELECT COUNT(*) AS n FROM spent_coin WHERE keyset_id = :k", {"k": kid})
                or 0
            )
            entry = {
                "keyset_id": kid.hex(),
                "value": value,
                "withdrawn": withdrawn,
                "deposited": deposited,
                "outstanding": outstanding,
                "coins_issued": issued,
                "coins_spent": spent,
            }
            keysets_report.append(entry)
            withdrawn_total += withdrawn
            if withdrawn - deposited != outstanding or outstanding < 0:
                problems.append({"check": "keyset_outstanding", **entry})
            if withdrawn != value * issued:
                problems.append({"check": "keyset_withdrawn_matches_items", **entry})
            if deposited != value * spent:
                problems.append({"check": "keyset_deposited_matches_spent", **entry})

        withdrawal_sum = int(
            tx.fetchval("SELECT COALESCE(SUM(amount), 0) AS s FROM withdrawal") or 0
        )
        if withdrawal_sum != withdrawn_total:
            problems.append(
                {
                    "check": "withdrawals_match_outstanding",
                    "withdrawals": withdrawal_sum,
                    "withdrawn": withdrawn_total,
                }
            )

        customers = _sum_prefix(tx, "customer:")
        for account, bal in customers.items():
            if bal < 0:
                problems.append({"check": "customer_non_negative", "account": account, "b": bal})

        merchants = _sum_prefix(tx, "merchant:")
        deposits = {
            "merchant:" + str(r["merchant_id"]): int(r["total"])
            for r in tx.fetchall(
                "SELECT merchant_id, SUM(amount) AS total FROM deposit GROUP BY merchant_id"
            )
        }
        for account in set(merchants) | set(deposits):
            if merchants.get(account, 0) != deposits.get(account, 0):
                problems.append(
                    {
                        "check": "merchant_matches_deposits",
                        "account": account,
                        "ledger": merchants.get(account, 0),
                        "deposits": deposits.get(account, 0),
                    }
                )
        external = _sum_prefix(tx, "external:")

    report: dict[str, Any] = {
        "ok": not problems,
        "transactions": n_txn,
        "entries": n_entries,
        "keysets": keysets_report,
        "customers_total": sum(customers.values()),
        "merchants_total": sum(merchants.values()),
        "outstanding_total": sum(k["outstanding"] for k in keysets_report),
        "external": external,
        "problems": problems,
    }
    if problems:
        raise LedgerInvariantError(
            f"ledger check failed: {len(problems)} problem(s)", detail=report
        )
    return report

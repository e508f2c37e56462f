"""The ledger: every transaction sums to zero, all entries sum to zero, no withdraw/deposit
transaction without its record, customers never negative, merchants hold their deposits.

:func:`load_ledger` runs first so that withdrawals and deposits can check their bookings
(:func:`check_booking`); :func:`check_ledger` runs after them, when it knows which
transactions a record pointed to.
"""

from __future__ import annotations

from collections import defaultdict

from ecash_tpm.supervision.audit.context import (
    COINS_OUTSTANDING,
    CUSTOMER,
    FEE_ACCOUNT,
    MERCHANT,
    AuditContext,
    entries_map,
)
from ecash_tpm.supervision.audit.store import BankTables, RefundTables

__all__ = ["check_booking", "check_ledger", "load_ledger"]


def load_ledger(ctx: AuditContext, tables: BankTables) -> None:
    """Fill the context's transactions, entries per transaction and sums per account."""
    for row in tables.ledger_txns():
        ctx.txns[int(row["txn_id"])] = row
    for row in tables.ledger_entries():
        ctx.entries_by_txn[int(row["txn_id"])].append(row)
    ctx.counts["ledger_txns"] = len(ctx.txns)
    ctx.counts["ledger_entries"] = sum(len(v) for v in ctx.entries_by_txn.values())
    for entries in ctx.entries_by_txn.values():
        for e in entries:
            amount = int(e["amount"])
            sums = ctx.account_sums[str(e["account"])]
            sums[0 if amount > 0 else 1] += abs(amount)


def check_booking(
    ctx: AuditContext,
    *,
    kind: str,
    violation: str,
    table: str,
    row_id: str,
    txn_id: int,
    expected: dict[str, int],
) -> None:
    """A withdrawal/deposit row's ledger transaction: right kind/ref, exactly ``expected``."""
    ctx.linked_txns.add(txn_id)
    txn = ctx.txns.get(txn_id)
    if txn is None:
        ctx.flag(
            violation,
            f"the {table}'s ledger transaction does not exist",
            table=table,
            row_id=row_id,
            expected=expected,
            found=None,
            txn_id=txn_id,
        )
        return
    if txn["kind"] != kind or txn["ref"] != row_id:
        ctx.flag(
            violation,
            f"the {table} points to another ledger transaction",
            table=table,
            row_id=row_id,
            expected={"kind": kind, "ref": row_id},
            found={"kind": txn["kind"], "ref": txn["ref"]},
            txn_id=txn_id,
        )
    found = entries_map(ctx.entries_by_txn.get(txn_id, []))
    if found != {k: v for k, v in sorted(expected.items()) if v != 0}:
        ctx.flag(
            violation,
            f"the {table}'s ledger entries differ from what it records",
            table=table,
            row_id=row_id,
            expected=expected,
            found=found,
            txn_id=txn_id,
        )


def check_ledger(ctx: AuditContext, tables: BankTables) -> None:
    """Balanced transactions, no orphans, then the balances (customers, merchants, coins)."""
    total = _check_transactions(ctx)
    if total != 0:
        ctx.flag(
            "ledger.total_nonzero",
            "all ledger entries together do not sum to zero",
            table="ledger_entry",
            expected=0,
            found=total,
        )
    _check_balances(ctx, tables)


def _check_transactions(ctx: AuditContext) -> int:
    """Each transaction and each entry without one; returns the sum of all entries."""
    total = 0
    for txn_id, txn in ctx.txns.items():
        entries = ctx.entries_by_txn.get(txn_id, [])
        if not entries:
            ctx.flag(
                "ledger.txn_empty",
                "ledger transaction without entries",
                table="ledger_txn",
                row_id=txn_id,
                txn_kind=txn["kind"],
                ref=txn["ref"],
            )
            continue
        s = sum(int(e["amount"]) for e in entries)
        total += s
        if s != 0 or len(entries) < 2:
            ctx.flag(
                "ledger.txn_unbalanced",
                "ledger transaction entries do not sum to zero",
                table="ledger_entry",
                row_id=txn_id,
                expected=0,
                found=s,
                entries=[
                    {
                        "entry_id": int(e["entry_id"]),
                        "account": e["account"],
                        "amount": int(e["amount"]),
                    }
                    for e in entries
                ],
                txn_kind=txn["kind"],
                ref=txn["ref"],
            )
        touches_coins = any(str(e["account"]).startswith(COINS_OUTSTANDING) for e in entries)
        if txn_id not in ctx.linked_txns and (
            txn["kind"] in ("withdraw", "deposit", "refund") or touches_coins
        ):
            ctx.flag(
                "ledger.orphan_txn",
                f"{txn['kind']} transaction {txn['ref']!r} has no withdrawal/deposit record",
                table="ledger_txn",
                row_id=txn_id,
                found={"kind": txn["kind"], "ref": txn["ref"]},
                entries=entries_map(entries),
            )
    orphan_entries = [t for t in ctx.entries_by_txn if t not in ctx.txns]
    for txn_id in orphan_entries:
        entries = ctx.entries_by_txn[txn_id]
        total += sum(int(e["amount"]) for e in entries)
        ctx.flag(
            "ledger.orphan_txn",
            "ledger entries of a transaction that does not exist",
            table="ledger_entry",
            row_id=txn_id,
            entries=entries_map(entries),
        )
    return total


def _check_balances(ctx: AuditContext, tables: BankTables) -> None:
    balances: dict[str, int] = defaultdict(int)
    for entries in ctx.entries_by_txn.values():
        for e in entries:
            balances[str(e["account"])] += int(e["amount"])
    for account, bal in sorted(balances.items()):
        if account.startswith(CUSTOMER) and bal < 0:
            ctx.flag(
                "ledger.negative_balance",
                "customer balance is negative",
                table="ledger_entry",
                row_id=account,
                expected=">= 0",
                found=bal,
            )
    deposits: dict[str, int] = defaultdict(int)
    for row in tables.deposits():
        deposits[MERCHANT + str(row["merchant_id"])] += int(row["amount"])
    for row in RefundTables(tables).refunds():  # refunds debit the merchant (issue 12, #3)
        deposits[MERCHANT + str(row["merchant_id"])] -= int(row["amount"])
    for account, fee in ctx.deposit_fees.items():  # 4.2: deposit fees are the bank's
        deposits[account] -= fee
    merchants = {a for a in balances if a.startswith(MERCHANT)} | set(deposits)
    for account in sorted(merchants):
        if balances.get(account, 0) != deposits.get(account, 0):
            ctx.flag(
                "ledger.merchant_balance_mismatch",
                "merchant balance differs from its deposits less deposit fees and refunds",
                table="ledger_entry",
                row_id=account,
                expected=deposits.get(account, 0),
                found=balances.get(account, 0),
            )
    earned = sum(ctx.fees.values())
    if balances.get(FEE_ACCOUNT, 0) != earned:
        ctx.flag(
            "fees.account_mismatch",
            "the fee account differs from the fees the coin tables imply",
            table="ledger_entry",
            row_id=FEE_ACCOUNT,
            expected=earned,
            found=balances.get(FEE_ACCOUNT, 0),
            fees=dict(ctx.fees),
        )
    known_accounts = {k.account for k in ctx.keysets.values()}
    for account in sorted(balances):
        if account.startswith(COINS_OUTSTANDING) and account not in known_accounts:
            ctx.flag(
                "ledger.unknown_keyset_account",
                "coins booked to a keyset the bank does not have",
                table="ledger_entry",
                row_id=account,
                found=balances[account],
            )

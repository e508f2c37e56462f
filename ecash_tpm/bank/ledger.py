"""Double-entry ledger: every money movement is one transaction whose entries sum to zero.

Ledger accounts are names, not rows: ``customer:<id>``, ``merchant:<id>``,
``coins-outstanding:<keyset hex>`` (value of that keyset's issued, not yet deposited coins),
``bank:fees`` (the fees the bank earned, docs/protocol.md 4.2) and ``external:funding`` (money
that entered the system from outside, e.g. a cash deposit at the counter). Amounts are signed
minor units; a positive balance is what the bank owes (or, for fees, has earned).

    fund      customer:+a            external:funding:-a
    withdraw  customer:-(sum+fw)     coins-outstanding:<k>:+value*n (per keyset)   bank:fees:+fw
    deposit   coins-outstanding:<k>:-value*n (per keyset)   merchant:+(sum-fd)     bank:fees:+fd
    refund    merchant:-amount       coins-outstanding:<k>:+value*n (fresh coins)  bank:fees:+fr
    swap      coins-outstanding:<in>:-value   coins-outstanding:<out>:+value   bank:fees:+fs
                                                                               (booked gross)
    redeem    coins-outstanding:<k>:-value*n (per keyset)   customer:+(sum-fd)     bank:fees:+fd

Balances are sums of entries (append-only), so concurrent deposits never contend on one row.
:func:`ledger_check` re-derives everything from the entries *and* from the independent coin
tables (signed withdrawal items, spent serials), which is what an outside auditor would do.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ecash_tpm.bank.errors import LedgerInvariantError
from ecash_tpm.bank.store import deposits as deposit_rows
from ecash_tpm.bank.store import keysets as keyset_rows
from ecash_tpm.bank.store import ledger as rows
from ecash_tpm.bank.store import redeems as redeem_rows
from ecash_tpm.bank.store import refunds as refund_rows
from ecash_tpm.bank.store import swaps as swap_rows
from ecash_tpm.bank.store import withdrawals as withdrawal_rows
from ecash_tpm.bank.store.ledger import balance
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, FEE_FIELDS, Fees
from ecash_tpm.storage import Database, Transaction

__all__ = [
    "EXTERNAL_FUNDING",
    "FEE_ACCOUNT",
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
    gross: bool = False,
) -> int:
    """Record one balanced transaction inside ``tx``; returns its id.

    ``(kind, ref)`` is unique, so the same withdrawal or deposit can never be booked twice even
    if a caller forgets its own idempotency check. Unbalanced input is a bug and raises.
    ``gross``: keep each entry as given instead of netting entries of one account (a swap that
    takes in and gives out coins of one keyset books both flows: docs/protocol.md 9.3).
    """
    merged: dict[str, int] = defaultdict(int)
    for account, amount in entries:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise LedgerInvariantError("ledger amounts must be integers")
        merged[account] += amount
    lines = [(a, v) for a, v in merged.items() if v != 0]
    if gross:
        lines = [(a, v) for a, v in entries if v != 0]
    if len(lines) < 2 or sum(v for _, v in lines) != 0:
        raise LedgerInvariantError(
            "refusing to book an unbalanced transaction",
            detail={"kind": kind, "ref": ref, "entries": lines},
        )
    txn_id = rows.insert_txn(tx, kind=kind, ref=ref, now=now)
    rows.insert_entries(tx, txn_id, lines, currency)
    return txn_id


def _fees_by_keyset(tx: Transaction) -> dict[bytes, Fees]:
    """Each keyset's fees from its stored descriptor (docs/protocol.md 4.2; none: zero)."""
    out = {}
    for row in keyset_rows.all_rows(tx):
        body = json.loads(row.descriptor).get("body", {})
        out[row.keyset_id] = Fees.from_fields(body, row.value) if FEE_FIELDS[0] in body else Fees()
    return out


def ledger_check(db: Database) -> dict[str, Any]:
    """Prove the ledger's invariants on one consistent snapshot; raise if any fails.

    Checked: every transaction has >= 2 entries summing to 0; all entries sum to 0; per
    keyset, withdrawn - deposited == outstanding >= 0, withdrawn == value x signed items,
    deposited == value x spent serials; total withdrawn equals the withdrawal amounts;
    customer balances are never negative; each merchant's balance equals its deposits less their
    deposit fees and its refunds; the fee account equals the fees the coin tables imply (4.2;
    a redeemed coin pays its deposit fee as a deposited one does, 9.4).
    Returns a report (per-keyset figures and totals) for the audit.
    """
    problems: list[dict[str, Any]] = []
    with db.read() as tx:
        for txn_id, txn_sum in rows.unbalanced_txns(tx):
            problems.append({"check": "txn_balanced", "txn_id": txn_id, "sum": txn_sum})
        for txn_id in rows.txns_without_entries(tx):
            problems.append({"check": "txn_has_entries", "txn_id": txn_id})
        total = rows.entries_total(tx)
        if total != 0:
            problems.append({"check": "entries_sum_zero", "sum": total})
        n_txn = rows.count_txns(tx)
        n_entries = rows.count_entries(tx)

        keysets_report = []
        withdrawn_total = 0
        swaps = swap_rows.migrated(tx)
        redeems = redeem_rows.migrated(tx)
        fees = _fees_by_keyset(tx)
        refunded_coins = refund_rows.refunded_coins_per_keyset(tx)
        earned = {"withdraw": 0, "deposit": 0, "refresh": 0, "refund": 0}
        for kid, value in keyset_rows.values_by_window(tx):
            account = "coins-outstanding:" + kid.hex()
            withdrawn, deposited, outstanding = rows.keyset_flows(tx, account)
            # fresh coins of refund claims are issued coins too (issue 12, #3); swaps
            # (docs/protocol.md 9.3) issue coins like withdrawals and spend like deposits
            issued = withdrawal_rows.count_items(tx, kid) + refund_rows.count_items(tx, kid)
            spent = deposit_rows.count_spent(tx, kid)
            fee = fees.get(kid, Fees())
            earned["withdraw"] += fee.withdraw * withdrawal_rows.count_items(tx, kid)
            earned["deposit"] += fee.deposit * spent
            earned["refund"] += fee.refund * refunded_coins.get(kid, 0)
            if swaps:
                issued += swap_rows.count_outputs(tx, kid)
                swapped_in = swap_rows.count_inputs(tx, kid)
                spent += swapped_in
                earned["refresh"] += fee.refresh * swapped_in
            if redeems:  # docs/protocol.md 9.4: redeemed coins are spent like deposited ones
                redeemed = redeem_rows.count_inputs(tx, kid)
                spent += redeemed
                earned["deposit"] += fee.deposit * redeemed  # 4.2: a redeem is a deposit
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

        # a refund's fresh coins are worth its amount less its refund fees (4.2)
        withdrawal_sum = withdrawal_rows.total_amount(tx) + refund_rows.total_amount(tx)
        withdrawal_sum -= earned["refund"]
        withdrawal_sum += swap_rows.total_out(tx) if swaps else 0
        if withdrawal_sum != withdrawn_total:
            problems.append(
                {
                    "check": "withdrawals_match_outstanding",
                    "withdrawals": withdrawal_sum,
                    "withdrawn": withdrawn_total,
                }
            )

        customers = rows.sum_by_prefix(tx, "customer:")
        for account, bal in customers.items():
            if bal < 0:
                problems.append({"check": "customer_non_negative", "account": account, "b": bal})

        merchants = rows.sum_by_prefix(tx, "merchant:")
        deposits = {
            merchant_account(m): total for m, total in deposit_rows.totals_per_merchant(tx).items()
        }
        for m, kid, coins in deposit_rows.spent_per_merchant_keyset(tx):  # 4.2: deposit fees
            deposits[merchant_account(m)] -= fees.get(kid, Fees()).deposit * coins
        for m, refunded in refund_rows.totals_per_merchant(tx).items():
            deposits[merchant_account(m)] = deposits.get(merchant_account(m), 0) - refunded
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
        external = rows.sum_by_prefix(tx, "external:")
        fee_account = balance(tx, FEE_ACCOUNT)
        booked_refresh = swap_rows.total_fee(tx) if swaps else 0
        if booked_refresh != earned["refresh"]:
            problems.append({"check": "swap_fees_match_inputs", "swaps": booked_refresh, **earned})
        if fee_account != sum(earned.values()):
            problems.append({"check": "fees_match_coins", "ledger": fee_account, **earned})

    report: dict[str, Any] = {
        "ok": not problems,
        "transactions": n_txn,
        "entries": n_entries,
        "keysets": keysets_report,
        "customers_total": sum(customers.values()),
        "merchants_total": sum(merchants.values()),
        "outstanding_total": sum(k["outstanding"] for k in keysets_report),
        "external": external,
        "fees_total": fee_account,
        "fees": earned,
        "problems": problems,
    }
    if problems:
        raise LedgerInvariantError(
            f"ledger check failed: {len(problems)} problem(s)", detail=report
        )
    return report

"""Money supply, per keyset: withdrawn - deposited = outstanding in the ledger, withdrawn =
value x signatures issued, deposited = value x serials spent (counts and values).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ecash_tpm.supervision.audit.context import AuditContext
from ecash_tpm.supervision.audit_report import KeysetSupplyAudit

__all__ = ["check_supply", "outstanding_as_of"]


def outstanding_as_of(ctx: AuditContext, as_of: int | None = None) -> dict[bytes, tuple[int, int]]:
    """Per known keyset ``(issued, spent)`` counts up to ``as_of`` (all if None)."""
    issued: Counter[bytes] = Counter(k for k, at in ctx.issued if as_of is None or at <= as_of)
    spent: Counter[bytes] = Counter(k for k, _, at in ctx.spent if as_of is None or at <= as_of)
    return {kid: (issued[kid], spent[kid]) for kid in ctx.keysets}


def check_supply(ctx: AuditContext) -> list[KeysetSupplyAudit]:
    """Each keyset's coin counts against its ledger account; the report's ``keysets``."""
    out = []
    counts = outstanding_as_of(ctx, None)
    for kid, keyset in ctx.keysets.items():
        issued, spent = counts[kid]
        withdrawn, deposited = ctx.account_sums.get(keyset.account, (0, 0))
        ledger_outstanding = withdrawn - deposited
        audit = KeysetSupplyAudit(
            keyset_id=keyset.b64,
            value=keyset.value,
            currency=keyset.currency,
            issued_count=issued,
            spent_count=spent,
            outstanding_count=issued - spent,
            outstanding_value=keyset.value * (issued - spent),
            ledger_withdrawn=withdrawn,
            ledger_deposited=deposited,
            ledger_outstanding=ledger_outstanding,
        )
        out.append(audit)
        where: dict[str, Any] = {
            "table": "ledger_entry",
            "row_id": keyset.account,
            "keyset_id": keyset.b64,
        }
        if withdrawn != keyset.value * issued:
            ctx.flag(
                "supply.withdrawn_mismatch",
                "ledger value withdrawn != value x signatures issued",
                expected=keyset.value * issued,
                found=withdrawn,
                issued_count=issued,
                **where,
            )
        if deposited != keyset.value * spent:
            ctx.flag(
                "supply.deposited_mismatch",
                "ledger value deposited != value x serials spent",
                expected=keyset.value * spent,
                found=deposited,
                spent_count=spent,
                **where,
            )
        if ledger_outstanding != audit.outstanding_value:
            ctx.flag(
                "supply.outstanding_mismatch",
                "ledger outstanding != value x (issued - spent)",
                expected=audit.outstanding_value,
                found=ledger_outstanding,
                **where,
            )
        if spent > issued:
            ctx.flag(
                "supply.negative_outstanding",
                "more serials spent than signatures issued",
                expected=f"<= {issued}",
                found=spent,
                **where,
            )
    return out

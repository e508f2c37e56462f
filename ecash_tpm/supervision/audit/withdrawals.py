"""Withdrawals: every stored blind signature verifies (s^e = blinded mod n), items were signed
inside the withdraw window, amounts match the items, the ledger transaction books exactly the
customer debit and the keysets' credit. Every signature counts as issued for the money supply.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ecash_tpm.supervision.audit.context import CUSTOMER, FEE_ACCOUNT, AuditContext, blob
from ecash_tpm.supervision.audit.ledger import check_booking
from ecash_tpm.supervision.audit.store import BankTables

__all__ = ["blind_signature_ok", "check_withdrawals"]


def check_withdrawals(ctx: AuditContext, tables: BankTables) -> None:
    """Each withdrawal with its items; items of no withdrawal are issued all the same."""
    items: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in tables.withdrawal_items():
        items[str(row["request_id"])].append(row)
    withdrawals = tables.withdrawals()
    ctx.counts["withdrawals"] = len(withdrawals)
    ctx.counts["withdrawal_items"] = sum(len(v) for v in items.values())
    known = {str(w["request_id"]) for w in withdrawals}
    for request_id in sorted(set(items) - known):
        for item in items[request_id]:
            kid = blob(item["keyset_id"])
            ctx.issued.append((kid, ctx.now))  # a signature is out there all the same
            ctx.flag(
                "withdrawal.orphan_item",
                "a signed item belongs to no withdrawal",
                table="withdrawal_item",
                row_id=f"{request_id}/{int(item['idx'])}",
                keyset_id=kid.hex(),
            )
    for w in withdrawals:
        _check_withdrawal(ctx, w, items.get(str(w["request_id"]), []))


def _check_withdrawal(
    ctx: AuditContext, w: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> None:
    request_id = str(w["request_id"])
    created = int(w["created_at"])
    value = fee = 0
    expected: dict[str, int] = defaultdict(int)
    for item in items:
        where = f"{request_id}/{int(item['idx'])}"
        kid = blob(item["keyset_id"])
        ctx.issued.append((kid, created))
        keyset = ctx.keysets.get(kid)
        if keyset is None:
            ctx.flag(
                "withdrawal.unknown_keyset",
                "withdrawal item under an unknown keyset",
                table="withdrawal_item",
                row_id=where,
                found=kid.hex(),
            )
            continue
        value += keyset.value
        fee += keyset.fees.withdraw  # 4.2: charged on top of the coins
        expected[keyset.account] += keyset.value
        check_issued_coin(
            ctx,
            ("withdrawal.keyset_not_withdrawable", "withdrawal.bad_blind_signature"),
            "withdrawal_item",
            where,
            keyset,
            created,
            item,
        )
    amount = int(w["amount"])
    if amount != value or not items:
        ctx.flag(
            "withdrawal.amount_mismatch",
            "withdrawal amount differs from the value of its signed items",
            table="withdrawal",
            row_id=request_id,
            expected=value,
            found=amount,
            items=len(items),
        )
    expected[CUSTOMER + str(w["account_id"])] -= amount + fee
    expected[FEE_ACCOUNT] += fee
    ctx.add_fee("withdraw", fee, created)
    check_booking(
        ctx,
        kind="withdraw",
        violation="withdrawal.ledger_mismatch",
        table="withdrawal",
        row_id=request_id,
        txn_id=int(w["txn_id"]),
        expected=dict(expected),
    )


def blind_signature_ok(key: rsa.RSAPublicKey, blinded: bytes, sig: bytes) -> bool:
    """RFC 9474 BlindSign's own check: s^e mod n == blinded message (as integers)."""
    numbers = key.public_numbers()
    size = (key.key_size + 7) // 8
    if len(sig) != size or len(blinded) != size:
        return False
    s, m = int.from_bytes(sig, "big"), int.from_bytes(blinded, "big")
    return s < numbers.n and m < numbers.n and pow(s, numbers.e, numbers.n) == m


def check_issued_coin(
    ctx: AuditContext,
    kinds: tuple[str, str],
    table: str,
    where: str,
    keyset: Any,
    created: int,
    row: Mapping[str, Any],
) -> None:
    """A coin the bank signed (withdrawal item, swap output): inside its keyset's withdraw
    window, and the stored blind signature verifies under the keyset key (``kinds``: the
    caller's violation kinds for the two)."""
    if not keyset.withdraw_from <= created < keyset.withdraw_until:
        ctx.flag(
            kinds[0],
            "coin signed outside its keyset's withdraw window",
            table=table,
            row_id=where,
            expected=[keyset.withdraw_from, keyset.withdraw_until],
            found=created,
        )
    if keyset.public_key is not None and not blind_signature_ok(
        keyset.public_key, blob(row["blinded_msg"]), blob(row["blind_sig"])
    ):
        ctx.flag(
            kinds[1],
            "stored blind signature does not verify under the keyset key",
            table=table,
            row_id=where,
            keyset_id=blob(row["keyset_id"]).hex(),
        )

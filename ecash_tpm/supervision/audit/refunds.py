"""Refunds (issue 12, item 3; docs/protocol.md "Refunds"): every refund row is re-checked from
what the bank stored — the merchant's signature on the permission and that it says what the row
records, the refunded coins booked in that deposit, the request's refund deadline, the ownership
proofs over the recomputed claim digest, the fresh coins' blind signatures and values, the
deposit not over-refunded, and the ledger transaction (merchant debit, keysets' credit). Every
fresh coin counts as issued for the money supply; the merchant balance check of the ledger area
subtracts refunds (:func:`refunded_per_merchant`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import SpendProof, verify_spend_proof
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import Coin, PaymentRequest
from ecash_tpm.protocol.refunds import RefundPermission, refund_claim_digest
from ecash_tpm.supervision.audit.context import FEE_ACCOUNT, MERCHANT, AuditContext, blob
from ecash_tpm.supervision.audit.ledger import check_booking
from ecash_tpm.supervision.audit.store import BankTables, RefundTables
from ecash_tpm.supervision.audit.withdrawals import blind_signature_ok

__all__ = ["check_refunds", "refunded_per_merchant"]


def refunded_per_merchant(tables: BankTables) -> dict[str, int]:
    """``merchant:<id>`` -> refunded amount (what the ledger debited from the merchant)."""
    out: dict[str, int] = defaultdict(int)
    for row in RefundTables(tables).refunds():
        out[MERCHANT + str(row["merchant_id"])] += int(row["amount"])
    return dict(out)


def check_refunds(ctx: AuditContext, tables: BankTables) -> None:
    """Each refund with its proven coins and fresh coins (see the module docstring)."""
    refund_tables = RefundTables(tables)
    refunds = refund_tables.refunds()
    coins: dict[str, list[bytes]] = defaultdict(list)
    for row in refund_tables.refund_coins():
        coins[str(row["refund_id"])].append(blob(row["sigma"]))
    items: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in refund_tables.refund_items():
        items[str(row["refund_id"])].append(row)
    ctx.counts["refunds"] = len(refunds)
    ctx.counts["refund_items"] = sum(len(v) for v in items.values())
    transcripts = {blob(t["sigma"]): t for t in tables.transcripts()}
    deposits = {str(d["deposit_id"]): d for d in tables.deposits()}
    known = {str(r["refund_id"]) for r in refunds}
    for refund_id in sorted(set(items) - known):
        for item in items[refund_id]:
            ctx.issued.append((blob(item["keyset_id"]), ctx.now))  # signed all the same
            ctx.flag(
                "refund.amount_mismatch",
                "a refund's signed coin belongs to no refund",
                table="refund_item",
                row_id=f"{refund_id}/{int(item['idx'])}",
            )
    per_deposit: dict[str, int] = defaultdict(int)
    for r in refunds:
        per_deposit[str(r["deposit_id"])] += int(r["amount"])
        _check_refund(
            ctx,
            r,
            coins.get(str(r["refund_id"]), []),
            items.get(str(r["refund_id"]), []),
            transcripts,
        )
    for deposit_id, total in sorted(per_deposit.items()):
        d = deposits.get(deposit_id)
        if d is None or total > int(d["amount"]):
            ctx.flag(
                "refund.amount_mismatch",
                "a deposit's refunds exceed the deposit",
                table="refund",
                row_id=deposit_id,
                expected=None if d is None else int(d["amount"]),
                found=total,
            )


def _check_refund(
    ctx: AuditContext,
    r: Mapping[str, Any],
    serials: Sequence[bytes],
    items: Sequence[Mapping[str, Any]],
    transcripts: Mapping[bytes, Mapping[str, Any]],
) -> None:
    refund_id = str(r["refund_id"])
    at = int(r["claimed_at"])
    amount = int(r["amount"])

    def flag(kind: str, message: str, **kw: Any) -> None:
        ctx.flag(kind, message, table="refund", row_id=refund_id, **kw)

    # the permission: the merchant's signature, and what the row records
    try:
        perm = RefundPermission.from_signed(
            json.loads(r["permission"]), r["merchant_cert"], ctx.root, now=at
        )
    except (EcashError, ValueError) as exc:
        flag("refund.bad_permission", f"refund permission: {exc}")
        perm = None
    if perm is not None and (
        perm.refund_id != refund_id
        or perm.merchant_id != r["merchant_id"]
        or perm.deposit_id != r["deposit_id"]
        or perm.preq != blob(r["preq"])
        or perm.amount != amount
        or perm.currency != r["currency"]
        or sorted(perm.serials) != sorted(serials)
    ):
        flag("refund.bad_permission", "the refund row differs from its signed permission")
    # the fresh coins: keysets, blind signatures, values; issued for the supply
    value = 0
    expected: dict[str, int] = defaultdict(int)
    outputs = []
    for item in items:
        kid = blob(item["keyset_id"])
        outputs.append((kid, blob(item["blinded_msg"])))
        ctx.issued.append((kid, at))
        keyset = ctx.keysets.get(kid)
        if keyset is None:
            flag("refund.amount_mismatch", "a refund's fresh coin is under an unknown keyset")
            continue
        value += keyset.value
        expected[keyset.account] += keyset.value
        if keyset.public_key is not None and not blind_signature_ok(
            keyset.public_key, blob(item["blinded_msg"]), blob(item["blind_sig"])
        ):
            flag("refund.bad_blind_signature", "a refund's blind signature does not verify")
    # 4.2, 9.2: the refunded coins' refund fees are kept from the fresh coins
    fee = 0
    for sigma in serials:
        t = transcripts.get(sigma)
        keyset = None if t is None else ctx.keysets.get(blob(t["keyset_id"]))
        fee += 0 if keyset is None else keyset.fees.refund
    if value != amount - fee or not items:
        flag(
            "refund.amount_mismatch",
            "refund amount less its refund fee != value of its fresh coins",
            expected=value + fee,
            found=amount,
            fee=fee,
        )
    # the refunded coins: booked in this deposit; the deadline; the ownership proofs
    digest = refund_claim_digest(refund_id, str(r["claim_id"]), outputs)
    if digest != blob(r["claim_digest"]):
        flag("refund.bad_proof", "the stored claim digest is not the claim's")
    proofs = {str(p.get("sigma")): p.get("proof") for p in json.loads(r["proofs"])}
    for sigma in serials:
        t = transcripts.get(sigma)
        if t is None or t["deposit_id"] != r["deposit_id"] or blob(t["preq"]) != blob(r["preq"]):
            flag(
                "refund.unknown_coin",
                "a refunded coin is not booked in the refund's deposit",
                serial=sigma,
            )
            continue
        body = json.loads(t["body"])
        coin = Coin.from_dict(body["spend"]["coin"])
        request = PaymentRequest.from_body(body["request"]["body"])
        if request.refund_deadline is None or at > request.refund_deadline:
            flag(
                "refund.after_deadline",
                "refund booked without or after the refund deadline",
                expected=request.refund_deadline,
                found=at,
            )
        try:
            verify_spend_proof(
                SpendProof.from_dict(proofs.get(b64u_encode(sigma))),
                hop=ctx.hop,
                preq=digest,
                keyset_id=coin.keyset_id,
                epoch=coin.epoch,
                sigma=coin.sigma,
                coin=coin.credential,
            )
        except EcashError as exc:
            flag("refund.bad_proof", f"ownership proof: {exc.message}", serial=sigma)
    expected[MERCHANT + str(r["merchant_id"])] -= amount
    expected[FEE_ACCOUNT] += fee
    ctx.add_fee("refund", fee, at)
    check_booking(
        ctx,
        kind="refund",
        violation="refund.ledger_mismatch",
        table="refund",
        row_id=refund_id,
        txn_id=int(r["txn_id"]),
        expected=dict(expected),
    )

"""Deposits: each transcript verifies (:mod:`.transcripts`), the merchant signed the payment
request (certificate from the central bank), the bank signed the receipt and the receipt says
what the deposit records; amounts and the ledger transaction match the coins.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import canonical_digest, verify_object
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import verify_party_certificate
from ecash_tpm.protocol.coins import PAYMENT_REQUEST_KIND, RECEIPT_KIND
from ecash_tpm.supervision.audit.context import FEE_ACCOUNT, MERCHANT, AuditContext, blob, utc
from ecash_tpm.supervision.audit.ledger import check_booking
from ecash_tpm.supervision.audit.store import BankTables
from ecash_tpm.supervision.audit.transcripts import check_transcript

__all__ = ["check_deposits"]

#: The bank's signed-object kinds the audit re-verifies (docs/api.md); spelled out here, not
#: imported from the bank, on purpose.

_RECEIPT_FIELDS = (
    "deposit_id",
    "merchant_id",
    "preq",
    "amount",
    "currency",
    "serials",
    "transcript_ids",
    "deposited_at",
)


def check_deposits(ctx: AuditContext, tables: BankTables) -> None:
    """Every deposit with its transcripts; transcripts of no deposit are checked all the same."""
    merchants = {str(r["merchant_id"]): str(r["cert_pem"]) for r in tables.merchants()}
    deposits = {str(r["deposit_id"]): r for r in tables.deposits()}
    by_deposit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tables.transcripts():
        ctx.transcripts[int(t["transcript_id"])] = t
        by_deposit[str(t["deposit_id"])].append(t)
    ctx.counts["deposits"] = len(deposits)
    ctx.counts["transcripts"] = len(ctx.transcripts)
    # §7.4: with public keys given, an epoch without any is flagged per coin and one without
    # G2 keys skipped per epoch (transcripts.py); only with nothing given is the check skipped
    if ctx.secrets is None and ctx.issuer_public is None:
        ctx.skipped.append(
            {
                "check": "coin.credential",
                "reason": "no issuer secrets and no certified G2 keys given: the credential "
                "check (S = y*R, T = x*(R + W)) of deposited coins was not run",
            }
        )
    for deposit_id in sorted(set(by_deposit) - set(deposits)):
        for t in by_deposit[deposit_id]:
            ctx.flag(
                "transcript.row_mismatch",
                "transcript of a deposit that does not exist",
                table="spend_transcript",
                row_id=int(t["transcript_id"]),
                serial=blob(t["sigma"]),
                found=deposit_id,
                field="deposit_id",
            )
            check_transcript(ctx, t, None)
    for deposit_id, d in deposits.items():
        _check_deposit(ctx, d, by_deposit.get(deposit_id, []), merchants)


def _check_deposit(
    ctx: AuditContext,
    d: Mapping[str, Any],
    transcripts: Sequence[Mapping[str, Any]],
    merchants: Mapping[str, str],
) -> None:
    deposit_id = str(d["deposit_id"])
    merchant_id = str(d["merchant_id"])
    preq = blob(d["preq"])
    amount = int(d["amount"])
    if not transcripts:
        ctx.flag(
            "deposit.no_transcripts",
            "deposit without any transcript",
            table="deposit",
            row_id=deposit_id,
        )
    value = fee = 0
    expected: dict[str, int] = defaultdict(int)
    requests: dict[str, Any] = {}
    for t in transcripts:
        body = check_transcript(ctx, t, d)
        keyset = ctx.keysets.get(blob(t["keyset_id"]))
        if keyset is not None:
            value += keyset.value
            fee += keyset.fees.deposit  # 4.2: kept from the merchant's credit
            expected[keyset.account] -= keyset.value
        if body is not None and "request" in body:
            requests[json.dumps(body["request"], sort_keys=True)] = body["request"]
    if transcripts and value != amount:
        ctx.flag(
            "deposit.amount_mismatch",
            "deposit amount differs from the value of its coins",
            table="deposit",
            row_id=deposit_id,
            expected=value,
            found=amount,
        )
    expected[MERCHANT + merchant_id] += amount - fee
    expected[FEE_ACCOUNT] += fee
    ctx.deposit_fees[MERCHANT + merchant_id] += fee
    ctx.add_fee("deposit", fee, int(d["created_at"]))
    check_booking(
        ctx,
        kind="deposit",
        violation="deposit.ledger_mismatch",
        table="deposit",
        row_id=deposit_id,
        txn_id=int(d["txn_id"]),
        expected=dict(expected),
    )
    if len(requests) > 1:
        ctx.flag(
            "transcript.row_mismatch",
            "the transcripts of one deposit carry different payment requests",
            table="deposit",
            row_id=deposit_id,
            found=len(requests),
            expected=1,
            field="request",
        )
    for doc in requests.values():
        _check_request(ctx, doc, d, merchants.get(merchant_id), preq)
    _check_receipt(ctx, d, transcripts)


def _merchant_key(
    ctx: AuditContext, merchant_id: str, cert_pem: str | None, at: int
) -> ec.EllipticCurvePublicKey | None:
    """The merchant's certified key at ``at``; a problem is flagged once per merchant."""
    if cert_pem is None:
        ctx.flag_once(
            merchant_id,
            "merchant.certificate_invalid",
            "the depositing merchant is not registered (no certificate)",
            table="merchant",
            row_id=merchant_id,
        )
        return None
    try:
        return verify_party_certificate(
            cert_pem, ctx.root, role="merchant", name=merchant_id, now=utc(at)
        )
    except EcashError as exc:
        ctx.flag_once(
            merchant_id,
            "merchant.certificate_invalid",
            f"merchant certificate: {exc.message}",
            table="merchant",
            row_id=merchant_id,
            found=exc.code,
        )
        return None


def _check_request(
    ctx: AuditContext, doc: Any, d: Mapping[str, Any], cert_pem: str | None, preq: bytes
) -> None:
    deposit_id = str(d["deposit_id"])
    merchant_id = str(d["merchant_id"])
    try:
        digest = canonical_digest(doc["body"]) if isinstance(doc, Mapping) else None
    except EcashError:
        digest = None
    if digest != preq:
        ctx.flag(
            "request.preq_mismatch",
            "the recorded preq is not the digest of the payment request",
            table="deposit",
            row_id=deposit_id,
            expected=b64u_encode(preq),
            found=None if digest is None else b64u_encode(digest),
        )
    key = _merchant_key(ctx, merchant_id, cert_pem, int(d["created_at"]))
    if key is None:
        return
    try:
        body = verify_object(doc, key, PAYMENT_REQUEST_KIND)
    except EcashError as exc:
        ctx.flag(
            "request.bad_signature",
            f"payment request not signed by the merchant's key: {exc.message}",
            table="deposit",
            row_id=deposit_id,
            found=exc.code,
            merchant_id=merchant_id,
        )
        return
    wanted = {
        "merchant_id": merchant_id,
        "bank": ctx.bank_id,
        "currency": str(d["currency"]),
        "amount": int(d["amount"]),
    }
    for name, value in wanted.items():
        if body.get(name) != value:
            ctx.flag(
                "request.mismatch",
                f"payment request field {name} does not match the deposit",
                table="deposit",
                row_id=deposit_id,
                expected=value,
                found=body.get(name),
                field=name,
            )


def _check_receipt(
    ctx: AuditContext, d: Mapping[str, Any], transcripts: Sequence[Mapping[str, Any]]
) -> None:
    deposit_id = str(d["deposit_id"])
    try:
        body = verify_object(json.loads(d["receipt"]), ctx.bank_key, RECEIPT_KIND)
    except (EcashError, ValueError, TypeError) as exc:
        message = exc.message if isinstance(exc, EcashError) else str(exc)
        ctx.flag(
            "receipt.bad_signature",
            f"deposit receipt: {message}",
            table="deposit",
            row_id=deposit_id,
        )
        return
    ordered = sorted(transcripts, key=lambda t: int(t["transcript_id"]))
    expected = {
        "deposit_id": deposit_id,
        "merchant_id": str(d["merchant_id"]),
        "preq": b64u_encode(blob(d["preq"])),
        "amount": int(d["amount"]),
        "currency": str(d["currency"]),
        "serials": [b64u_encode(blob(t["sigma"])) for t in ordered],
        "transcript_ids": [int(t["transcript_id"]) for t in ordered],
        "deposited_at": int(d["created_at"]),
    }
    for name in _RECEIPT_FIELDS:
        if body.get(name) != expected[name]:
            ctx.flag(
                "receipt.mismatch",
                f"signed receipt field {name} differs from the deposit's records",
                table="deposit",
                row_id=deposit_id,
                expected=expected[name],
                found=body.get(name),
                field=name,
            )

"""Claiming a refund, device side (issue 12, item 3; docs/protocol.md "Refunds").

1. Fetch the merchant's refund permissions for a paid request (``GET
   /v1/payments/{preq}/refund``) and check each: merchant certificate from the central-bank root
   (role ``merchant``, CN = merchant id, not on the CRL), signature, this ``preq``, and serials
   that are coins this wallet spent.
2. Plan fresh blinded coins for the amount (like a withdrawal: keysets only with the bank's
   signature and on the central bank's list) and **save** the claim — claim id, permission,
   blinded outputs and their secrets — before anything is sent.
3. Per refunded coin a TPM spend proof (section 7) over ``refund_claim_digest(refund_id,
   claim_id, outputs)``: one Commit and one Sign with the DAA key the coin was bound to.
4. ``POST /v1/refunds/claim`` (anonymous), unblind and verify every signature, store the coins.

A lost answer leaves the claim pending; claiming again re-sends the same claim id and outputs
(with fresh proofs) and the bank answers with the stored signatures, booking once. What the bank
learns: the spent coins it already holds the transcripts of, a fresh encryption of the member's
T0 under the opener key (as in any payment), and blinded fresh coins it cannot link.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import (
    Credential,
    RandomizedCredential,
    coin_message,
    make_spend_proof,
)
from ecash_tpm.errors import ProtocolError, RemoteError
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.protocol.keysets import refund_fee
from ecash_tpm.protocol.payments import KeysetBook
from ecash_tpm.protocol.refunds import RefundAmountError, RefundPermission, refund_claim_digest
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.coins import HeldCoin
from ecash_tpm.wallet.context import SpendingContext
from ecash_tpm.wallet.records import PendingCoin
from ecash_tpm.wallet.refunds.store import RefundClaimRecord, RefundClaimStore
from ecash_tpm.wallet.withdraw import WalletBank, fetch_keysets, plan_withdrawal

__all__ = [
    "RefundBank",
    "RefundClaimPendingError",
    "RefundClaimResult",
    "RefundMerchant",
    "RefundNotOursError",
    "claim_refunds",
    "resume_refund_claims",
]

_RETRYABLE_STATUS = frozenset({408, 429})


class RefundClaimPendingError(RemoteError):
    """The bank's answer to a claim was lost; the claim is saved and is sent again as is."""

    code = "wallet.refund_pending"


class RefundNotOursError(ProtocolError):
    """The permission is for another request or names coins this wallet did not spend."""

    code = "wallet.refund_not_ours"


class RefundBank(WalletBank, Protocol):
    """The bank as a refund claimer needs it (:class:`~ecash_tpm.clients.bank.BankClient`)."""

    def claim_refund(
        self,
        *,
        claim_id: str,
        permission: Mapping[str, Any],
        merchant_cert: str,
        outputs: Sequence[tuple[bytes, bytes]],
        proofs: Sequence[Mapping[str, Any]],
    ) -> list[bytes]: ...


class RefundMerchant(Protocol):
    """The shop as a refund claimer needs it (``MerchantClient``)."""

    def refund(self, preq: bytes) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RefundClaimResult:
    """The refunds claimed for one request and the fresh coins now in the wallet."""

    refund_ids: list[str]
    amount: int
    currency: str
    coins: list[HeldCoin]

    def to_dict(self) -> dict[str, Any]:
        return {
            "refund_ids": list(self.refund_ids),
            "amount": self.amount,
            "currency": self.currency,
            "coins": sorted((c.value for c in self.coins), reverse=True),
        }


def claim_refunds(
    ctx: SpendingContext,
    bank: RefundBank,
    merchant: RefundMerchant,
    preq: bytes,
    *,
    credential: Credential,
    epoch: int,
) -> RefundClaimResult:
    """Claim every refund the merchant granted for the paid request ``preq`` (module steps
    1-4); refunds claimed before are skipped, pending ones are sent again as saved."""
    claims = RefundClaimStore(ctx.store.db, ctx.clock)
    answer = merchant.refund(preq)
    now = ctx.clock()
    held = {c.sigma: c for c in ctx.store.coins()}
    book: KeysetBook | None = None
    ids: list[str] = []
    coins: list[HeldCoin] = []
    amount, currency = 0, ""
    for doc in answer.get("refunds", []):
        # (1) the merchant's permission, for this request and coins this wallet spent
        perm = RefundPermission.from_signed(
            doc, answer.get("cert", ""), ctx.root, now=now, crl=ctx.crl
        )
        if perm.preq != preq or any(s not in held for s in perm.serials):
            raise RefundNotOursError(
                "the refund permission is not for this wallet's payment",
                detail={"refund_id": perm.refund_id},
            )
        record = claims.get(perm.refund_id)
        if record is not None and record.state != "pending":
            continue
        if book is None:
            book = fetch_keysets(bank, ctx.root, now=now, bank_name=ctx.bank_name, store=ctx.store)
        if record is None:  # (2) planned and saved before anything is sent
            # 4.2, 9.2: the fresh coins are worth the amount less the refunded coins' fees
            fee = refund_fee([book.get(held[s].coin.keyset_id) for s in perm.serials])
            if perm.amount <= fee:
                raise RefundAmountError(
                    "the refund does not cover its refund fee",
                    detail={"amount": perm.amount, "fee": fee},
                )
            items = plan_withdrawal(
                book, credential, epoch, perm.amount - fee, perm.currency, now=now
            )
            claims.add(
                refund_id=perm.refund_id,
                claim_id=secrets.token_urlsafe(24),
                preq=preq,
                amount=perm.amount,
                currency=perm.currency,
                permission=dict(doc),
                cert=str(answer.get("cert", "")),
                items=items,
            )
            record = claims.get(perm.refund_id)
            if record is None:  # pragma: no cover - just written
                raise RefundClaimPendingError("the refund claim was not saved")
        got = _send(ctx, bank, claims, record, perm, held, book)
        ids.append(perm.refund_id)
        coins += got
        amount += perm.amount
        currency = perm.currency
    return RefundClaimResult(ids, amount, currency, coins)


def resume_refund_claims(ctx: SpendingContext, bank: RefundBank) -> RefundClaimResult:
    """Send again every saved claim whose answer was lost, without asking the merchant: the
    saved permission (checked when it was saved), claim id and outputs; the bank books once."""
    claims = RefundClaimStore(ctx.store.db, ctx.clock)
    pending = claims.pending()
    held = {c.sigma: c for c in ctx.store.coins()}
    ids: list[str] = []
    coins: list[HeldCoin] = []
    amount, currency = 0, ""
    if pending:
        now = ctx.clock()
        book = fetch_keysets(bank, ctx.root, now=now, bank_name=ctx.bank_name, store=ctx.store)
        for record in pending:
            perm = RefundPermission.from_body(record.permission.get("body"))
            coins += _send(ctx, bank, claims, record, perm, held, book)
            ids.append(record.refund_id)
            amount += record.amount
            currency = record.currency
    return RefundClaimResult(ids, amount, currency, coins)


def _send(
    ctx: SpendingContext,
    bank: RefundBank,
    claims: RefundClaimStore,
    record: RefundClaimRecord,
    perm: RefundPermission,
    held: Mapping[bytes, HeldCoin],
    book: KeysetBook,
) -> list[HeldCoin]:
    """(3) the ownership proofs over the claim digest, (4) the claim, the fresh coins."""
    outputs = [(i.keyset_id, i.blinded_msg) for i in record.items]
    digest = refund_claim_digest(record.refund_id, record.claim_id, outputs)
    proofs = []
    for sigma in perm.serials:
        coin = held[sigma].coin
        proof = make_spend_proof(
            ctx.signer,
            hop=ctx.hop,
            preq=digest,
            keyset_id=coin.keyset_id,
            epoch=coin.epoch,
            sigma=coin.sigma,
            coin=coin.credential,
            expected_t0=ctx.expected_t0,
        )
        proofs.append({"sigma": b64u_encode(sigma), "proof": proof.to_dict()})
    try:
        sigs = bank.claim_refund(
            claim_id=record.claim_id,
            permission=record.permission,
            merchant_cert=record.cert,
            outputs=outputs,
            proofs=proofs,
        )
    except RemoteCallError as exc:
        definite = exc.status is not None and 400 <= exc.status < 500
        if definite and exc.status not in _RETRYABLE_STATUS:
            claims.fail(record.refund_id, exc.code)
            raise
        raise RefundClaimPendingError(
            "no answer from the bank; the refund claim is saved, claim again to finish it",
            detail={"refund_id": record.refund_id, "cause": exc.code},
        ) from exc
    coins = _finalize(record.items, sigs, book)
    claims.complete(record.refund_id, coins)
    return coins


def _finalize(
    items: Sequence[PendingCoin], sigs: Sequence[bytes], book: KeysetBook
) -> list[HeldCoin]:
    """Unblind and verify every signature (section 5.1) before a coin is stored."""
    if len(sigs) != len(items):
        raise ProtocolError(
            "the bank returned a different number of signatures",
            code="wallet.bad_refund_answer",
            detail={"expected": len(items), "got": len(sigs)},
        )
    coins = []
    for item, blind_sig in zip(items, sigs, strict=True):
        ks = book.get(item.keyset_id)
        rc = RandomizedCredential.from_dict(item.credential)
        prepared = item.msg_prefix + coin_message(item.keyset_id, item.epoch, item.sigma, rc)
        sig = blindrsa.finalize(
            ks.public_key, prepared, blind_sig, item.inv, salt_length=ks.variant.salt_length
        )
        coin = Coin(item.keyset_id, item.epoch, item.sigma, rc, item.msg_prefix, sig)
        coins.append(HeldCoin(coin, item.value, item.currency, item.deposit_until))
    return coins

"""Refunds in a :class:`~support.bankworld.BankWorld` (domain calls, no HTTP): a refundable
payment and a claim with the member's (software) DAA key, for the audit and ledger tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import make_spend_proof
from ecash_tpm.protocol.coins import Coin, sign_payment_request
from ecash_tpm.protocol.refunds import refund_claim_digest, sign_refund_permission
from support.bankworld import BankWorld
from support.coinmint import Member, prepare_coin, split_amount

__all__ = ["Claim", "Refunded", "make_claim", "permission", "refund", "refundable_payment"]


@dataclass(frozen=True)
class Refunded:
    refund_id: str
    receipt: dict[str, Any]
    coins: list[Coin]


def refundable_payment(
    w: BankWorld, member: Member, merchant: str, amount: int, *, refund_in: int = 3600
) -> tuple[dict[str, Any], list[Coin]]:
    """Pay ``amount`` with a request carrying a refund deadline; ``(receipt, spent coins)``."""
    coins = w.withdraw(member, amount)
    party = w.pki.merchants[merchant]
    deadline = w.clock() + 600
    request = sign_payment_request(
        party.key,
        merchant_id=merchant,
        amount=amount,
        currency="EUR",
        contract_hash=secrets.token_bytes(32),
        nonce=secrets.token_bytes(16),
        deadline=deadline,
        bank=w.bank.bank_name,
        refund_deadline=deadline + refund_in,
    )
    receipt = w.deposit(merchant, request, w.spends(member, coins, request))
    return receipt, coins


def permission(
    w: BankWorld,
    merchant: str,
    receipt: dict[str, Any],
    coins: list[Coin],
    amount: int,
    *,
    key: Any = None,
) -> dict[str, Any]:
    """The merchant's signed ``refund-permission`` (``key``: sign with another key)."""
    party = w.pki.merchants[merchant]
    body = receipt["body"]
    return sign_refund_permission(
        key or party.key,
        refund_id="ref-" + secrets.token_hex(16),
        merchant_id=merchant,
        preq=b64u_decode(body["preq"]),
        deposit_id=body["deposit_id"],
        serials=[c.sigma for c in coins],
        amount=amount,
        currency="EUR",
        issued_at=w.clock(),
    )


@dataclass(frozen=True)
class Claim:
    """A claim's parts: what the wallet sends, and the blinded coins to finalize."""

    claim_id: str
    permission: dict[str, Any]
    outputs: list[tuple[bytes, bytes]]
    proofs: list[dict[str, Any]]
    pending: list[Any]

    def send(self, w: BankWorld, merchant: str, **override: Any) -> Any:
        kwargs: dict[str, Any] = {
            "claim_id": self.claim_id,
            "permission": self.permission,
            "merchant_cert": w.pki.merchants[merchant].cert_pem,
            "outputs": self.outputs,
            "proofs": self.proofs,
        }
        kwargs.update(override)
        return w.bank.claim_refund(**kwargs)


def make_claim(
    w: BankWorld,
    member: Member,
    perm: dict[str, Any],
    coins: list[Coin],
    *,
    signer: Any = None,
    value: int | None = None,
) -> Claim:
    """Fresh outputs for the permission's amount (or ``value``: the amount less refund fees,
    docs/protocol.md 4.2) and TPM-like ownership proofs of ``coins`` over the claim digest
    (``signer``: another DAA key)."""
    amount = int(perm["body"]["amount"]) if value is None else value
    pending = [prepare_coin(member, k) for k in split_amount(amount, w._latest_keysets())]
    outputs = [p.item for p in pending]
    claim_id = "claim-" + secrets.token_hex(8)
    digest = refund_claim_digest(perm["body"]["refund_id"], claim_id, outputs)
    proofs = [
        {
            "sigma": b64u_encode(c.sigma),
            "proof": make_spend_proof(
                signer or member.signer,
                hop=w.issuer.hop,
                preq=digest,
                keyset_id=c.keyset_id,
                epoch=c.epoch,
                sigma=c.sigma,
                coin=c.credential,
                self_check=signer is None,
            ).to_dict(),
        }
        for c in coins
    ]
    return Claim(claim_id, perm, outputs, proofs, pending)


def refund(
    w: BankWorld,
    member: Member,
    merchant: str,
    receipt: dict[str, Any],
    coins: list[Coin],
    amount: int,
) -> Refunded:
    """The merchant's permission for ``amount`` and the member's claim of it."""
    perm = permission(w, merchant, receipt, coins, amount)
    claim = make_claim(w, member, perm, coins)
    result = claim.send(w, merchant)
    fresh = [p.finalize(s) for p, s in zip(claim.pending, result.blind_signatures, strict=True)]
    return Refunded(perm["body"]["refund_id"], receipt, fresh)

"""Refund helpers for tests (issue 12, item 3): grant a refund at a merchant's admin route,
claim it with a wallet, and a thief's claim with another DAA key (for the refusal tests)."""

from __future__ import annotations

import secrets
from typing import Any

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import make_spend_proof
from ecash_tpm.protocol.refunds import RefundPermission, refund_claim_digest
from ecash_tpm.wallet.refund import RefundClaimResult, claim_refunds
from support.system import System, WalletHandle

__all__ = ["ADMIN_TOKEN", "claim", "grant", "preq_of", "thief_claim"]

ADMIN_TOKEN = "refund-admin-token-0123456789"


def preq_of(paid: Any) -> bytes:
    """The request digest of a wallet payment (from its bank-signed receipt)."""
    return b64u_decode(paid.receipt["body"]["preq"])


def grant(system: System, preq: bytes, amount: int | None = None, merchant: str = "shop-1") -> Any:
    """The merchant's admin call: ``{refunds: [permission], cert}``."""
    return system.merchant_client(merchant).create_refund(preq, amount, admin_token=ADMIN_TOKEN)


def claim(
    wallet: WalletHandle, preq: bytes, merchant: str = "shop-1", **kw: Any
) -> RefundClaimResult:
    """The wallet claims every refund of ``preq`` over an anonymous bank connection."""
    system = wallet.system
    return claim_refunds(
        wallet.spending(),
        kw.pop("bank", None) or system.bank_client(),
        system.merchant_client(merchant),
        preq,
        credential=wallet.membership.credential,
        epoch=wallet.membership.epoch,
    )


def thief_claim(
    wallet: WalletHandle, granted: dict[str, Any], signer: Any, coins: dict[bytes, Any]
) -> Any:
    """Claim ``granted`` with ``signer`` (not the coins' DAA key) and fresh outputs: what someone
    who learnt the permission (it is served to anyone knowing preq) would try."""
    system = wallet.system
    doc = granted["refunds"][0]
    perm = RefundPermission.from_body(doc["body"])
    bank = system.bank_client()
    book = bank.keysets()
    ks = next(k for k in book.keysets if k.value == perm.amount and k.can_withdraw(system.clock()))
    prepared = blindrsa.prepare(secrets.token_bytes(32))
    blinded, _ = blindrsa.blind(ks.public_key, prepared)
    claim_id = "thief-" + secrets.token_hex(8)
    digest = refund_claim_digest(perm.refund_id, claim_id, [(ks.keyset_id, blinded)])
    proofs = []
    for sigma in perm.serials:
        coin = coins[sigma]
        proof = make_spend_proof(
            signer,
            hop=wallet.membership.opener_public,
            preq=digest,
            keyset_id=coin.keyset_id,
            epoch=coin.epoch,
            sigma=coin.sigma,
            coin=coin.credential,
            self_check=False,
        )
        proofs.append({"sigma": b64u_encode(sigma), "proof": proof.to_dict()})
    return bank.claim_refund(
        claim_id=claim_id,
        permission=doc,
        merchant_cert=granted["cert"],
        outputs=[(ks.keyset_id, blinded)],
        proofs=proofs,
    )

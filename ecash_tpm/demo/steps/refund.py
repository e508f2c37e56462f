"""Step ``refund`` (issue 12, item 3; docs/protocol.md "Refunds"): merchant A refunds part of
the payment of step ``pay``; the wallet fetches the merchant-signed permission by ``preq`` and
claims it at the bank anonymously, proving with its TPM that it holds the key the refunded coins
were bound to; fresh coins come back and the bank debits merchant A."""

from __future__ import annotations

from typing import Any

from ecash_tpm.demo.context import DemoCheckError, StoryContext, now

#: Refunded of the 37 paid at merchant A (a partial refund).
REFUND_AMOUNT = 5


def refund(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Merchant A signs a refund permission; the wallet claims it; the books move."""
    from ecash_tpm.protocol.coins import verify_payment_request
    from ecash_tpm.wallet.context import WalletContext
    from ecash_tpm.wallet.refund import claim_refunds

    dep = ctx.dep
    if ctx.signer is None:
        raise DemoCheckError("the wallet's TPM signer is not open")
    offer = ctx.paid.offer
    req = verify_payment_request(offer["request"], offer["cert"], dep.root_pem())
    before, wallet_before = ctx.books(), ctx.wallet_balance()
    shop = ctx.merchant("merchant-a")
    granted = shop.create_refund(req.preq, REFUND_AMOUNT, admin_token=dep.merchant_token)
    permission = granted["refunds"][0]["body"]
    ctx.fact(
        "permission",
        f"merchant A signs refund {permission['refund_id']} of {permission['amount']} "
        f"{permission['currency']} (refund deadline {req.refund_deadline})",
    )
    wallet = WalletContext(ctx.wallet, dep.root_pem(), now, "bank", crl=dep.crl_source())
    result = claim_refunds(
        wallet.spending(ctx.signer, hop=ctx.member.opener_public, expected_t0=ctx.member.t0),
        ctx.bank_session,
        shop,
        req.preq,
        credential=ctx.member.credential,
        epoch=ctx.member.epoch,
    )
    after, wallet_after = ctx.books(), ctx.wallet_balance()
    debited = before["merchant-a"] - after["merchant-a"]
    gained = wallet_after.get("unspent", 0) - wallet_before.get("unspent", 0)
    ctx.fact("claim", f"TPM ownership proofs accepted; fresh coins {result.to_dict()['coins']}")
    ctx.fact("merchant A (bank)", f"{after['merchant-a']} {dep.currency} (-{debited})")
    ctx.fact("coins outstanding", f"{after['outstanding']} {dep.currency}")
    detail.update(
        refund_id=permission["refund_id"],
        amount=result.amount,
        coins=result.to_dict()["coins"],
        merchant_a_debited=debited,
        wallet_gained=gained,
    )
    if not (result.amount == debited == gained == REFUND_AMOUNT):
        raise DemoCheckError(
            "the refund did not move the books as it should",
            detail={"claimed": result.amount, "debited": debited, "gained": gained},
        )

"""Step 7, ``double_spend_rejected``: a tampered wallet re-spends one of the coins paid at
merchant A at merchant B, which must get 409 ``bank.double_spend`` from the bank."""

from __future__ import annotations

from typing import Any

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.demo.context import DemoCheckError, Respent, StoryContext, refusal


def double_spend_rejected(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Re-spend the smallest paid coin (a correct wallet would not offer it)."""
    spent = [hc for hc in ctx.wallet.coins("spent") if hc.sigma in ctx.paid.serials]
    hc = min(spent, key=lambda c: c.value)
    shop = ctx.merchant("merchant-b")
    offer = shop.create_request(hc.value)
    ctx.fact(
        "re-spent coin",
        f"{hc.value} {ctx.dep.currency}, serial "
        f"{b64u_encode(hc.sigma)[:16]}... (already spent at merchant A)",
    )
    spend = ctx.spend(hc, offer)
    err = refusal(lambda: shop.pay(offer["request"], [spend]), what="the double spend")
    if err.code != "bank.double_spend" or err.status != 409:
        raise DemoCheckError(
            f"expected 409 bank.double_spend, got {err.status} {err.code}",
            detail={"code": err.code},
        )
    ctx.respent_coin = Respent(sigma=hc.sigma, spend=spend)
    ctx.fact(
        "merchant B",
        f"refused: HTTP {err.status} {err.code} (bank's verdict), "
        f"earlier transcript #{err.detail.get('transcript_id')}",
    )
    credited = ctx.books()["merchant-b"]
    ctx.fact("merchant B (bank)", f"{credited} {ctx.dep.currency}: nothing was credited")
    detail.update(
        refused=True,
        http_status=err.status,
        code=err.code,
        serial=err.detail.get("serial"),
        transcript_id=err.detail.get("transcript_id"),
        merchant="merchant-b",
        merchant_b_balance=credited,
    )

"""Step 10, ``expired_coin_rejected``: once the short-lived keyset's deposit window has closed,
its coin is refused by the merchant and, deposited directly, by the bank."""

from __future__ import annotations

import time
from typing import Any

from ecash_tpm.demo.context import DemoCheckError, StoryContext, refusal


def expired_coin_rejected(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Wait for the window to close, then spend the coin as a modified wallet would."""
    exp = ctx.expiring
    wait = exp.deposit_until + 0.2 - time.time()
    if wait > 0:
        ctx.fact("waiting", f"{wait:.1f} s for the keyset's deposit window to close")
        time.sleep(wait)
    hc = next(c for c in ctx.wallet.coins() if c.sigma == exp.sigma)
    wallet = ctx.wallet_balance()
    ctx.fact(
        "wallet",
        f"shows the {hc.value} coin as expired ({wallet.get('expired')} "
        "expired): it would not offer it",
    )
    shop = ctx.merchant("merchant-a")
    offer = shop.create_request(hc.value)
    spend = ctx.spend(hc, offer)
    at_merchant = refusal(lambda: shop.pay(offer["request"], [spend]), what="expired coin")
    at_bank = refusal(
        lambda: ctx.deposit_at_bank("merchant-a", offer, [spend]), what="expired deposit"
    )
    codes = (at_merchant.code, at_bank.code)
    if codes != ("coin.keyset_expired", "bank.keyset_expired"):
        raise DemoCheckError(f"expected keyset_expired refusals, got {codes}")
    ctx.fact("merchant A", f"refused: HTTP {at_merchant.status} {at_merchant.code}")
    ctx.fact("bank (direct deposit)", f"refused: HTTP {at_bank.status} {at_bank.code}")
    detail.update(
        refused=True,
        keyset_id=exp.keyset_id,
        deposit_until=exp.deposit_until,
        merchant={"code": at_merchant.code, "http_status": at_merchant.status},
        bank={"code": at_bank.code, "http_status": at_bank.status},
    )

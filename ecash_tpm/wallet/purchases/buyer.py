"""A wallet ready to buy: its spending context and its purchase store, as one object."""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.wallet.context import SpendingContext
from ecash_tpm.wallet.purchases.api import DisputeApi, ProductSource, ShopApi
from ecash_tpm.wallet.purchases.buy import buy, dispute
from ecash_tpm.wallet.purchases.records import PurchaseResult
from ecash_tpm.wallet.purchases.store import PurchaseStore

__all__ = ["Buyer"]


@dataclass(frozen=True)
class Buyer:
    """:func:`buy` and :func:`dispute` with the wallet's context and purchases filled in."""

    ctx: SpendingContext
    purchases: PurchaseStore

    def buy(
        self,
        product_id: str,
        *,
        source: ProductSource,
        shop: ShopApi,
        merchant_url: str | None = None,
        ttp_name: str | None = None,
    ) -> PurchaseResult:
        return buy(
            self.ctx,
            self.purchases,
            product_id,
            source=source,
            shop=shop,
            merchant_url=merchant_url,
            ttp_name=ttp_name,
        )

    def dispute(self, purchase_id: str, *, ttp: DisputeApi) -> PurchaseResult:
        return dispute(self.purchases, purchase_id, ttp=ttp, clock=self.ctx.clock)

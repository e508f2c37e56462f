"""Buying digital goods with a fair exchange and an offline TTP (docs/protocol.md 16), wallet side.

::

    spending = wallet_ctx.spending(signer, hop=m.opener_public, expected_t0=m.t0)
    buyer = Buyer(spending, PurchaseStore.open(data_dir, clock))
    result = buyer.buy(product_id, source=ShopCatalogueClient(url), shop=MerchantClient(url))
    buyer.dispute(purchase_id, ttp=TtpClient(ttp_url))  # no key, or a wrong one: ask the TTP

- :mod:`.buy` — :func:`fetch_offer`, :func:`buy`, :func:`dispute` (the protocol steps)
- :mod:`.buyer` — :class:`Buyer`, the two verbs on one wallet
- :mod:`.store` — :class:`PurchaseStore`, ``<data_dir>/purchases.db`` (all of its SQL)
- :mod:`.records` — :class:`Offer`, :class:`PurchaseRecord`, :class:`PurchaseResult`
- :mod:`.api` — the Protocols of shop, catalogue and TTP, and :class:`ShopCatalogueClient`
- :mod:`.errors` — the refusals, one class and code per failure
"""

from __future__ import annotations

from ecash_tpm.wallet.purchases.api import (
    DisputeApi,
    ProductSource,
    ShopApi,
    ShopCatalogueClient,
)
from ecash_tpm.wallet.purchases.buy import buy, dispute, fetch_offer
from ecash_tpm.wallet.purchases.buyer import Buyer
from ecash_tpm.wallet.purchases.errors import (
    CiphertextTamperedError,
    ContentKeyInvalidError,
    ContentKeyMissingError,
    DescriptorInvalidError,
    OfferMismatchError,
    PurchaseStateError,
    UnknownPurchaseError,
)
from ecash_tpm.wallet.purchases.records import Offer, PurchaseRecord, PurchaseResult
from ecash_tpm.wallet.purchases.store import COMPONENT, PURCHASES_DB_FILE, PurchaseStore

__all__ = [
    "COMPONENT",
    "PURCHASES_DB_FILE",
    "Buyer",
    "CiphertextTamperedError",
    "ContentKeyInvalidError",
    "ContentKeyMissingError",
    "DescriptorInvalidError",
    "DisputeApi",
    "Offer",
    "OfferMismatchError",
    "ProductSource",
    "PurchaseRecord",
    "PurchaseResult",
    "PurchaseStateError",
    "PurchaseStore",
    "ShopApi",
    "ShopCatalogueClient",
    "UnknownPurchaseError",
    "buy",
    "dispute",
    "fetch_offer",
]

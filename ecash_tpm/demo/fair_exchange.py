"""The fair-exchange story for the demo: an honest purchase, then a dispute the TTP resolves.

:func:`run_fair_exchange_story` talks to running parties over HTTP only (the demo runs them as
processes) and uses a wallet the caller has opened (:class:`~ecash_tpm.wallet.purchases.Buyer`:
TPM signer, coin store, purchase store). Inputs:

* ``buyer`` — a joined wallet with coins that can pay both prices exactly;
* ``ttp_url`` — the TTP (its ``dispute_window_s`` should be short in a demo, e.g. 3 s, unless
  ``advance`` moves an injected clock);
* ``honest_url`` / ``cheating_url`` — two merchants configured with ``ttp_url``; the cheating
  one has the ``no_key`` or ``wrong_key`` key release of :mod:`ecash_tpm.demo.cheating` injected
  (``python -m ecash_tpm.demo.cheating --strategy no_key --config FILE`` as a process);
* ``honest_product`` / ``cheating_product`` — product ids already listed by each shop, or
  ``admin_tokens`` (``{url: token}``, the shops' ``admin_token``) to register ``content`` at
  ``price`` through ``POST /v1/products`` first;
* ``advance`` — optional ``advance(seconds)`` of a shared injected clock (in-process systems);
  without it the story waits in real time for the dispute deadline (``sleep``), at most
  ``poll_timeout_s``.

The returned detail dict (JSON-safe) says what happened: the honest purchase (and that the
TTP's dispute/bank-query/key-request counters did not move), the cheating shop's failure code, the
dispute id, how it was resolved, the strike recorded, and the content sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.clients.merchant import MerchantClient
from ecash_tpm.clients.ttp import TtpClient
from ecash_tpm.errors import InputError
from ecash_tpm.protocol.errors import DisputePendingError
from ecash_tpm.wallet.purchases import (
    Buyer,
    ContentKeyInvalidError,
    ContentKeyMissingError,
    ShopCatalogueClient,
)

__all__ = ["WATCHED_COUNTERS", "register_over_http", "run_fair_exchange_story"]

#: Counters that must not move during an honest purchase: the TTP stays offline.
WATCHED_COUNTERS = ("disputes_opened", "disputes_refused", "bank_queries", "key_requests")


def register_over_http(
    merchant_url: str,
    admin_token: str,
    *,
    title: str,
    price: int,
    content: bytes,
    link: Mapping[str, Any] | None = None,
) -> str:
    """Register a product through a shop's admin route; returns the product id. ``link``:
    the client's ``tls=``/``expect=`` for the shop (the token is sent only after the shop's
    certificate checked out)."""
    with ServiceClient(merchant_url, timeout=60.0, token=admin_token, **(link or {})) as http:
        listing = http.post_json(
            "/v1/products",
            {"title": title, "price": price, "content": content},
            headers=http.auth_headers(),
        )
    return str(listing["descriptor"]["body"]["product_id"])


def _watched(ttp: TtpClient) -> dict[str, int]:
    counters = ttp.stats()["counters"]
    return {k: int(counters.get(k, 0)) for k in WATCHED_COUNTERS}


def run_fair_exchange_story(
    *,
    buyer: Buyer,
    ttp_url: str,
    honest_url: str,
    cheating_url: str,
    honest_product: str | None = None,
    cheating_product: str | None = None,
    admin_tokens: Mapping[str, str] | None = None,
    content: bytes = b"ecash-tpm demo content: a short story about fair exchange.\n" * 16,
    price: int = 3,
    advance: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    poll_timeout_s: float = 30.0,
    links: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run the story (see the module docstring) and return its detail dict. ``links``: URL ->
    the ``tls=``/``expect=`` a client of that server needs (empty over plain HTTP)."""
    tokens = dict(admin_tokens or {})
    how = dict(links or {})

    def kw(url: str) -> dict[str, Any]:
        return dict(how.get(url, {}))

    ids: dict[str, str] = {}
    for url, given, title in (
        (honest_url, honest_product, "Honest shop's story"),
        (cheating_url, cheating_product, "Cheating shop's story"),
    ):
        if given is not None:
            ids[url] = given
        elif url in tokens:
            ids[url] = register_over_http(
                url, tokens[url], title=title, price=price, content=content, link=kw(url)
            )
        else:
            raise InputError(
                "give a product id or an admin token for every shop",
                code="scenario.no_product",
                detail={"merchant_url": url},
            )
    detail: dict[str, Any] = {}
    with (
        TtpClient(ttp_url, **kw(ttp_url)) as ttp,
        MerchantClient(honest_url, **kw(honest_url)) as honest,
        MerchantClient(cheating_url, **kw(cheating_url)) as cheating,
        ShopCatalogueClient(honest_url, **kw(honest_url)) as honest_catalogue,
        ShopCatalogueClient(cheating_url, **kw(cheating_url)) as cheating_catalogue,
    ):
        window = int(ttp.info()["dispute_window_s"])
        before = _watched(ttp)
        ok = buyer.buy(
            ids[honest_url], source=honest_catalogue, shop=honest, merchant_url=honest_url
        )
        after = _watched(ttp)
        detail["honest"] = {
            "product_id": ids[honest_url],
            "purchase_id": ok.purchase.purchase_id,
            "delivered_by": ok.purchase.delivered_by,
            "bytes": len(ok.content),
            "ttp_contacted": after != before,
        }

        try:
            buyer.buy(
                ids[cheating_url],
                source=cheating_catalogue,
                shop=cheating,
                merchant_url=cheating_url,
            )
        except (ContentKeyMissingError, ContentKeyInvalidError) as exc:
            purchase_id = str(exc.detail["purchase_id"])
            failure = exc.code
        else:
            raise InputError(
                "the cheating shop delivered a good key: run it with no_key or wrong_key",
                code="scenario.merchant_honest",
            )
        start = time.monotonic()
        dispute_id = None
        while True:
            try:
                result = buyer.dispute(purchase_id, ttp=ttp)
                break
            except DisputePendingError as exc:
                dispute_id = exc.detail.get("dispute_id", dispute_id)
                wait = int(exc.detail.get("retry_after", window) or window)
                if advance is not None:
                    advance(wait)
                elif time.monotonic() - start + wait > poll_timeout_s:
                    raise
                else:
                    sleep(min(float(wait), 1.0))
        dispute_id = result.purchase.dispute_id
        view = ttp.dispute(str(dispute_id))
        strikes = [s for s in ttp.strikes() if s["dispute_id"] == dispute_id]
        detail["cheating"] = {
            "product_id": ids[cheating_url],
            "purchase_id": purchase_id,
            "failure": failure,
            "dispute_id": dispute_id,
            "resolution": view["resolution"],
            "merchant_answer": view["merchant_answer"],
            "strike": strikes[0]["reason"] if strikes else None,
            "delivered_by": result.purchase.delivered_by,
            "bytes": len(result.content),
            "waited_s": round(time.monotonic() - start, 2),
        }
        detail["dispute_window_s"] = window
    return detail

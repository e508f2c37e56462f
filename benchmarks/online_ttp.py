"""The online-TTP baseline of ``bench_fair_exchange.py``: a relay that puts the TTP into every
payment. It is a comparison for the benchmark, not a feature: the TTP of ``ecash_tpm`` stays
offline (docs/protocol.md §16.6).

* :class:`OnlineTtpRelay` does what an online TTP would do, with the TTP's public API: check
  the request as for a dispute (:meth:`~ecash_tpm.ttp.products.ProductEscrow.product_request`:
  the product's merchant signed it, for that product, with a customer key) and that it is still
  open, forward the payment to the merchant (``MerchantClient.pay``), verify the bank's receipt
  and seal the TTP's escrowed key to the customer.
* :func:`create_relay_app` serves it as ``POST /v1/relay/pay`` ``{request, cert, spends}`` ->
  ``{receipt, cert, content_key}``, so the baseline pays the extra HTTP hop an online TTP costs;
  :class:`RelayClient` calls it.
* :class:`RelayShop` is the wallet's ``ShopApi`` for that flow: payment requests come from the
  shop, payments go through the relay; pass it as ``buy(..., shop=RelayShop(...))``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import Field

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.clients.merchant import MerchantClient
from ecash_tpm.errors import RemoteError
from ecash_tpm.protocol.api.base import ApiModel
from ecash_tpm.protocol.coins import parse_spends, require_open
from ecash_tpm.protocol.payments import verify_receipt
from ecash_tpm.service.app import create_app
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.ttp.domain import Ttp

__all__ = ["MerchantPool", "OnlineTtpRelay", "RelayClient", "RelayShop", "create_relay_app"]

MAX_SPENDS = 64


class MerchantUnavailableError(RemoteError):
    """The merchant could not be reached or refused the relayed payment (carries its code)."""

    code = "ttp.merchant_unavailable"
    http_status = 502


class MerchantPool:
    """``url -> MerchantClient``, one pooled client per shop (thread-safe); :meth:`close`.

    ``link(url)`` gives the ``tls=``/``expect=`` for the shop at ``url`` (an https shop is
    checked like by any client); without it the shops must be plain HTTP.
    """

    def __init__(self, link: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        self._clients: dict[str, MerchantClient] = {}
        self._lock = threading.Lock()
        self._link = link or (lambda _url: {})

    def __call__(self, url: str) -> MerchantClient:
        with self._lock:
            if url not in self._clients:
                self._clients[url] = MerchantClient(url, **self._link(url))
            return self._clients[url]

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


class OnlineTtpRelay:
    """An online TTP: every payment goes through it (thread-safe; counts its relays)."""

    def __init__(self, ttp: Ttp, merchants: Callable[[str], MerchantClient]) -> None:
        self.ttp = ttp
        self.merchants = merchants
        self.relays = 0
        self._lock = threading.Lock()

    def pay(self, request_doc: Any, merchant_cert: str, raw_spends: Any) -> dict[str, Any]:
        """Forward the payment, verify the receipt, release k sealed to the buyer."""
        with self._lock:
            self.relays += 1
        now = self.ttp.clock()
        req, product = self.ttp.escrow.product_request(request_doc, merchant_cert, now=now)
        require_open(req, now)
        spends = parse_spends(raw_spends, max_spends=MAX_SPENDS)
        try:
            answer = self.merchants(product.merchant_url).pay(
                request_doc, [sp.to_dict() for sp in spends]
            )
        except RemoteCallError as exc:
            err = MerchantUnavailableError(exc.message, code=exc.code, detail=dict(exc.detail))
            if exc.status is not None and 400 <= exc.status < 500:
                err.http_status = exc.status
            raise err from exc
        receipt, bank_cert = answer.get("receipt"), answer.get("cert")
        verify_receipt(
            receipt,
            bank_cert,  # type: ignore[arg-type]  # verify_receipt refuses a missing one
            self.ttp.config.root,
            preq=req.preq,
            merchant_id=req.merchant_id,
            amount=req.amount,
            currency=req.currency,
            serials=[sp.coin.sigma for sp in spends],
            now=self.ttp.clock(),
        )
        return {
            "receipt": receipt,
            "cert": bank_cert,
            "content_key": self.ttp.escrow.seal_for_customer(req, product),
        }


class RelayBody(ApiModel):
    """The customer's payment for the relay: the request, the merchant's cert, the spends."""

    request: dict[str, Any]
    cert: str = Field(max_length=16384)
    spends: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_SPENDS)


def create_relay_app(relay: OnlineTtpRelay, data_dir: Path) -> FastAPI:
    """``POST /v1/relay/pay`` over ``relay`` (the service app factory: errors as JSON)."""
    router = APIRouter(prefix="/v1", tags=["relay"])

    @router.post("/relay/pay", summary="Online-TTP baseline: relay a payment, release the key")
    def relay_pay(body: RelayBody) -> dict[str, Any]:
        return relay.pay(body.request, body.cert, body.spends)

    return create_app(
        "relay",
        settings=ServiceSettings(data_dir=data_dir),
        routers=[router],
        description="benchmark baseline: an online TTP relaying every payment",
    )


class RelayClient(ServiceClient):
    """The relay's HTTP API."""

    default_timeout = 30.0

    def relay_pay(
        self, request: Mapping[str, Any], cert: str, spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """``POST /v1/relay/pay`` -> ``{receipt, cert, content_key}``."""
        answer = self.post_json(
            "/v1/relay/pay",
            {"request": dict(request), "cert": cert, "spends": [dict(s) for s in spends]},
        )
        if not isinstance(answer, dict):
            raise RemoteCallError(
                "relay: expected a JSON object",
                code="remote.bad_response",
                status=200,
                url=self.base_url,
            )
        return answer


class RelayShop:
    """The wallet's ``ShopApi`` in the online-TTP flow: requests from the shop, payment through
    the relay (with the merchant certificate that came with the request)."""

    def __init__(self, shop: MerchantClient, relay: RelayClient) -> None:
        self._shop = shop
        self._relay = relay
        self._certs: dict[str, str] = {}
        self._lock = threading.Lock()

    def create_request(
        self,
        amount: int,
        currency: str | None = None,
        *,
        product_id: str | None = None,
        customer_key: bytes | None = None,
    ) -> dict[str, Any]:
        doc = self._shop.create_request(
            amount, currency, product_id=product_id, customer_key=customer_key
        )
        with self._lock:
            self._certs[str(doc["request"]["signature"])] = str(doc["cert"])
        return doc

    def pay(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        with self._lock:
            cert = self._certs[str(request["signature"])]
        return self._relay.relay_pay(request, cert, spends)

"""What buying needs from the outside, as narrow Protocols, and the shop's catalogue client.

The Protocols let tests, the demo and the benchmarks substitute any party (a tampering mirror,
a relay through the TTP) without the wallet knowing; the HTTP implementations are
:class:`ShopCatalogueClient`, :class:`~ecash_tpm.clients.merchant.MerchantClient` and
:class:`~ecash_tpm.clients.ttp.TtpClient`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.wallet.pay import MerchantApi

__all__ = ["DisputeApi", "ProductSource", "ShopApi", "ShopCatalogueClient"]


class ProductSource(Protocol):
    """Where descriptor and ciphertext come from: the shop (``ShopCatalogueClient``) or the TTP
    (``TtpClient``); both are checked against the TTP's signature, so either will do."""

    def product(self, product_id: str) -> dict[str, Any]: ...

    def ciphertext(self, product_id: str) -> bytes: ...


class ShopApi(MerchantApi, Protocol):
    """The shop for buying: payment requests and payment (``MerchantClient``)."""

    def create_request(
        self,
        amount: int,
        currency: str | None = None,
        *,
        product_id: str | None = None,
        customer_key: bytes | None = None,
    ) -> dict[str, Any]: ...


class DisputeApi(Protocol):
    """The TTP for disputes (``TtpClient``)."""

    def open_dispute(
        self, request: Mapping[str, Any], cert: str, spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]: ...

    def dispute_key(self, dispute_id: str) -> dict[str, Any]: ...


class ShopCatalogueClient:
    """The shop's catalogue routes (``GET /v1/products/{id}[/ciphertext]``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
        expect: tuple[str, str] | None = None,
    ) -> None:
        self._http = ServiceClient(base_url, timeout=timeout, tls=tls, expect=expect)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShopCatalogueClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def products(self) -> list[dict[str, Any]]:
        return list(self._http.get_json("/v1/products")["products"])

    def product(self, product_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._http.get_json(f"/v1/products/{product_id}")
        return answer

    def ciphertext(self, product_id: str) -> bytes:
        answer = self._http.get_json(f"/v1/products/{product_id}/ciphertext")
        return b64u_decode(answer["ciphertext"])

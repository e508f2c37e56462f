"""HTTP client of the merchant: the customer's view of a shop.

:class:`MerchantClient` is what a wallet uses (``POST /v1/payment-requests``, ``POST /v1/pay``).
It raises :class:`~ecash_tpm.service.errors.RemoteCallError` carrying the remote code (e.g.
``bank.double_spend`` passed through by the merchant), so callers branch on codes. The
merchant's own link to its bank is :class:`~ecash_tpm.clients.bank.BankClient`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.errors import RemoteError
from ecash_tpm.service.errors import RemoteCallError

__all__ = ["MerchantClient", "fetch_opener_public"]


def _require_dict(value: Any, what: str, url: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RemoteCallError(
            f"{what}: expected a JSON object", code="remote.bad_response", status=200, url=url
        )
    return value


class MerchantClient(ServiceClient):
    """A shop as seen by a customer's wallet."""

    default_timeout = 30.0

    def info(self) -> dict[str, Any]:
        """``GET /v1/merchant`` -> ``{merchant_id, cert, currencies}``."""
        return _require_dict(self.get_json("/v1/merchant"), "merchant info", self.base_url)

    def create_request(
        self,
        amount: int,
        currency: str | None = None,
        *,
        product_id: str | None = None,
        customer_key: bytes | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/payment-requests`` -> ``{request, cert}``."""
        body: dict[str, Any] = {"amount": amount}
        if currency is not None:
            body["currency"] = currency
        if product_id is not None:
            body["product_id"] = product_id
        if customer_key is not None:
            body["customer_key"] = b64u_encode(customer_key)
        answer = self.post_json("/v1/payment-requests", body)
        return _require_dict(answer, "payment request", self.base_url)

    def pay(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """``POST /v1/pay`` -> ``{receipt, cert}`` once the merchant has deposited."""
        answer = self.post_json(
            "/v1/pay", {"request": dict(request), "spends": [dict(s) for s in spends]}
        )
        return _require_dict(answer, "pay", self.base_url)

    def paid_answer(self, preq: bytes) -> dict[str, Any]:
        """``GET /v1/payments/{preq}`` -> ``{receipt, cert, content_key}`` of a paid request
        (the answer of ``pay`` again, for a customer whose answer was lost)."""
        answer = self.get_json(f"/v1/payments/{b64u_encode(preq)}")
        return _require_dict(answer, "paid answer", self.base_url)

    def refund(self, preq: bytes) -> dict[str, Any]:
        """``GET /v1/payments/{preq}/refund`` -> ``{permission, cert}``: the merchant-signed
        refund permission of a paid request (docs/protocol.md "Refunds")."""
        answer = self.get_json(f"/v1/payments/{b64u_encode(preq)}/refund")
        return _require_dict(answer, "refund", self.base_url)

    def create_refund(
        self, preq: bytes, amount: int | None = None, *, admin_token: str
    ) -> dict[str, Any]:
        """Admin: ``POST /v1/refunds`` -> ``{permission, cert}`` (all of the payment
        without ``amount``)."""
        body: dict[str, Any] = {"preq": b64u_encode(preq)}
        if amount is not None:
            body["amount"] = amount
        answer = self.post_json(
            "/v1/refunds", body, headers={"Authorization": f"Bearer {admin_token}"}
        )
        return _require_dict(answer, "refund", self.base_url)


def fetch_opener_public(
    issuer_url: str,
    *,
    transport: httpx.BaseTransport | None = None,
    tls: ssl.SSLContext | None = None,
    expect: tuple[str, str] | None = None,
) -> bytes:
    """Hop (65-byte point) from the issuer's ``GET /v1/issuer/info`` (over ``tls`` to the
    ``expect``-ed issuer for an https URL)."""
    with ServiceClient(issuer_url, transport=transport, tls=tls, expect=expect) as http:
        info = http.get_json("/v1/issuer/info")
    raw = info.get("opener_public") if isinstance(info, dict) else None
    if not isinstance(raw, str):
        raise RemoteError("issuer info has no opener_public", code="remote.bad_response")
    return b64u_decode(raw)

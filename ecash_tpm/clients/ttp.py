"""HTTP clients around the TTP.

* :class:`TtpClient` — the TTP's API as merchants (registration, answers), customers
  (disputes) and operators (strikes, stats) call it.
* :class:`HttpBankQuery` — the TTP's link to the bank's ``POST /v1/ttp/deposit-query``.
* :class:`HttpMerchantLinks` — the TTP's links to merchants (key requests during a dispute),
  one pooled client per merchant URL.

Errors are :class:`~ecash_tpm.service.errors.RemoteCallError` with the remote party's code (e.g.
``ttp.not_paid``), so callers branch on codes as if the TTP had raised locally.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.clients.connect import Link
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.service.errors import RemoteCallError

__all__ = ["HttpBankQuery", "HttpMerchantLink", "HttpMerchantLinks", "TtpClient"]


def _obj(value: Any, what: str, url: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RemoteCallError(
            f"{what}: expected a JSON object", code="remote.bad_response", status=200, url=url
        )
    return value


def _with_cert(signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
    return {**dict(signed), "cert": cert_pem}


class TtpClient(ServiceClient):
    """The TTP's HTTP API (docs/api.md, "TTP")."""

    default_timeout = 30.0

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        return _obj(self.get_json(path, params=query or None), path, self.base_url)

    def _post(self, path: str, body: Any) -> dict[str, Any]:
        return _obj(self.post_json(path, body), path, self.base_url)

    def info(self) -> dict[str, Any]:
        """``GET /v1/ttp`` -> ``{ttp_id, cert, dispute_window_s}``."""
        return self._get("/v1/ttp")

    def stats(self) -> dict[str, Any]:
        """``GET /v1/ttp/stats`` -> ``{counters}``."""
        return self._get("/v1/ttp/stats")

    # --- products ------------------------------------------------------------------------------

    def register_product(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        """``POST /v1/products`` -> ``{descriptor, cert, ciphertext, sealed_key}``."""
        return self._post("/v1/products", _with_cert(signed, cert_pem))

    def products(self, merchant_id: str | None = None) -> dict[str, Any]:
        """``GET /v1/products`` -> ``{products: [descriptor], cert}``."""
        return self._get("/v1/products", merchant_id=merchant_id)

    def product(self, product_id: str) -> dict[str, Any]:
        """``GET /v1/products/{id}`` -> ``{descriptor, cert}``."""
        return self._get(f"/v1/products/{product_id}")

    def ciphertext(self, product_id: str) -> bytes:
        """``GET /v1/products/{id}/ciphertext`` -> the public ciphertext bytes."""
        answer = self._get(f"/v1/products/{product_id}/ciphertext")
        return b64u_decode(answer["ciphertext"])

    # --- disputes ------------------------------------------------------------------------------

    def open_dispute(
        self,
        request: Mapping[str, Any],
        cert: str,
        spends: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """``POST /v1/disputes`` -> the dispute view."""
        return self._post(
            "/v1/disputes",
            {"request": dict(request), "cert": cert, "spends": [dict(s) for s in spends]},
        )

    def dispute(self, dispute_id: str) -> dict[str, Any]:
        """``GET /v1/disputes/{id}`` -> the dispute view."""
        return self._get(f"/v1/disputes/{dispute_id}")

    def dispute_key(self, dispute_id: str) -> dict[str, Any]:
        """``GET /v1/disputes/{id}/key`` -> ``{sealed_key, ...}``; 409 ttp.dispute_pending."""
        return self._get(f"/v1/disputes/{dispute_id}/key")

    def disputes(
        self, *, merchant_id: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        """``GET /v1/disputes`` -> views (a merchant polls its pending ones)."""
        return list(self._get("/v1/disputes", merchant_id=merchant_id, state=state)["disputes"])

    def answer_dispute(
        self, dispute_id: str, answer: Mapping[str, Any], cert: str
    ) -> dict[str, Any]:
        """``POST /v1/disputes/{id}/answer`` (merchant) -> the dispute view."""
        return self._post(
            f"/v1/disputes/{dispute_id}/answer", {"answer": dict(answer), "cert": cert}
        )

    def strikes(self, merchant_id: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/strikes`` -> strikes against merchants."""
        return list(self._get("/v1/strikes", merchant_id=merchant_id)["strikes"])


class HttpBankQuery(ServiceClient):
    """The TTP's :class:`~ecash_tpm.ttp.domain.BankQueryGateway` over HTTP."""

    def ttp_query(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        answer = self.post_json("/v1/ttp/deposit-query", _with_cert(signed, cert_pem))
        return _obj(answer, "deposit query", self.base_url)

    def issuer_epoch(self, epoch: int) -> dict[str, Any]:
        """The central bank's ``issuer-epoch-key`` the bank publishes (docs/protocol.md §3.6):
        the keys the TTP verifies coin credentials with (§7.4)."""
        answer = self.get_json(f"/v1/issuer-epochs/{int(epoch)}")
        cert = _obj(answer, "issuer epoch", self.base_url).get("certificate")
        return _obj(cert, "issuer epoch certificate", self.base_url)


class HttpMerchantLink(ServiceClient):
    """One merchant as the TTP calls it."""

    def key_request(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        """``POST {merchant}/v1/ttp/key-requests`` -> ``{answer, cert}``."""
        answer = self.post_json("/v1/ttp/key-requests", _with_cert(signed, cert_pem))
        return _obj(answer, "key request", self.base_url)


class HttpMerchantLinks:
    """``(url, merchant_id) -> HttpMerchantLink``, pooled (thread-safe); close them at shutdown.

    ``connect(url, merchant_id)`` says how to reach that merchant (TLS expecting that merchant's
    certificate, :func:`~ecash_tpm.clients.connect.party_link`); the merchant id is part of the
    pool key so a URL registered by one shop is never trusted as another's.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        connect: Callable[[str, str], Link] | None = None,
    ) -> None:
        self._timeout = timeout
        self._transport = transport
        self._connect = connect
        self._links: dict[tuple[str, str], HttpMerchantLink] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, merchant_id: str) -> HttpMerchantLink:
        with self._lock:
            link = self._links.get((url, merchant_id))
            if link is None:
                conn = None if self._connect is None else self._connect(url, merchant_id)
                link = HttpMerchantLink(
                    url,
                    timeout=self._timeout,
                    transport=self._transport,
                    tls=None if conn is None else conn.tls,
                    expect=None if conn is None else conn.expect,
                )
                self._links[(url, merchant_id)] = link
            return link

    def close(self) -> None:
        with self._lock:
            links, self._links = list(self._links.values()), {}
        for link in links:
            link.close()

"""HTTP client for calling another party, mapping its error bodies back to typed errors.

A merchant calling the bank must be able to write ``except RemoteCallError as e: if e.code ==
"bank.double_spend": ...`` just as if the bank's code had raised locally, so the remote
``{code, message, detail}`` body is turned back into an exception carrying the same ``code``
and ``detail`` (and the remote ``status``). Transport failures get their own codes because
they mean different things for money: ``remote.unreachable`` from a refused connection means
the request was not processed, while ``remote.timeout`` means the outcome is unknown and the
caller must retry with the same idempotency key (request id) rather than a new one.

Bytes in request bodies (also inside dicts/lists) are sent as base64url; pydantic models are
dumped in JSON mode. The incoming request's id is forwarded as ``X-Request-ID`` so one payment
can be followed through every party's logs. Authentication has one idiom for every party:
the client's ``token`` as ``Authorization: Bearer``, on the routes that need it
(:meth:`ServiceClient.auth_headers`).

TLS: an ``https`` URL needs a context (:func:`ecash_tpm.service.tls.client_context`: the
central bank root as the only anchor, the CRL, optionally our client certificate for mutual
TLS) and the party we expect, ``expect=(role, name)``. Every request asks for the server's
certificate to name :func:`~ecash_tpm.pki.tls_identity` ``(role, name)`` (sent as SNI and checked
as the host name, whatever host the URL names), so a server that is not that party fails the
handshake, and the client raises ``tls.untrusted`` / ``tls.wrong_identity`` / ``tls.expired`` /
``tls.revoked`` / ``tls.handshake_failed`` before any byte of the request is sent. A plain
``http`` URL is only for ``--insecure-http``; giving a TLS context with one is refused
(``tls.client_unconfigured``) rather than silently sending in the clear.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar, overload

import httpx
from pydantic import BaseModel, ValidationError

from ecash_tpm import __version__
from ecash_tpm.pki import tls_identity
from ecash_tpm.protocol.api.base import validation_errors
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.logs import current_request_id, json_default
from ecash_tpm.service.tls import TlsClientUnconfiguredError, handshake_error

M = TypeVar("M", bound=BaseModel)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class ServiceClient:
    """A small synchronous JSON client for one party's base URL (thread-safe, pooled)."""

    #: Seconds per request unless the caller says otherwise; party clients may raise it.
    default_timeout: ClassVar[float] = 10.0

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        expect: tuple[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        secure = self.base_url.lower().startswith("https://")
        if secure and (tls is None or expect is None):
            raise TlsClientUnconfiguredError(
                "an https URL needs the central bank root (TLS context) and the expected party",
                detail={"url": self.base_url, "tls": tls is not None, "expect": expect},
            )
        if not secure and tls is not None:
            raise TlsClientUnconfiguredError(
                "a TLS context was given for a plain http URL: use https (or drop the context "
                "for --insecure-http)",
                detail={"url": self.base_url},
            )
        #: The TLS identity the server must prove (None over plain HTTP).
        self.identity = tls_identity(*expect) if secure and expect is not None else None
        self.expect = expect if secure else None
        all_headers = {"User-Agent": f"ecash-tpm/{__version__}", "Accept": "application/json"}
        all_headers.update(headers or {})
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=self.default_timeout if timeout is None else timeout,
            transport=transport,
            headers=all_headers,
            follow_redirects=False,
            verify=tls if tls is not None else True,
            # Parties talk directly: a proxy from the environment would verify the proxy's
            # host name instead of the party's identity.
            trust_env=not secure,
        )

    def auth_headers(self) -> dict[str, str]:
        """The one way every client authenticates: ``Authorization: Bearer <token>`` (a login
        session, an operator's or a service's token), sent only to the routes that need it."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @overload
    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = ...,
        headers: Mapping[str, str] | None = ...,
        response_model: None = ...,
    ) -> Any: ...
    @overload
    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = ...,
        headers: Mapping[str, str] | None = ...,
        response_model: type[M],
    ) -> M: ...
    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        response_model: type[M] | None = None,
    ) -> Any:
        """GET ``path``; returns the decoded JSON (or ``response_model`` instance)."""
        return self.request_json(
            "GET", path, params=params, headers=headers, response_model=response_model
        )

    @overload
    def post_json(
        self,
        path: str,
        body: Any = ...,
        *,
        headers: Mapping[str, str] | None = ...,
        response_model: None = ...,
    ) -> Any: ...
    @overload
    def post_json(
        self,
        path: str,
        body: Any = ...,
        *,
        headers: Mapping[str, str] | None = ...,
        response_model: type[M],
    ) -> M: ...
    def post_json(
        self,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        response_model: type[M] | None = None,
    ) -> Any:
        """POST ``body`` as JSON to ``path``; returns the decoded JSON (or a model)."""
        return self.request_json(
            "POST", path, body=body, headers=headers, response_model=response_model
        )

    def request_json(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> Any:
        """Send one request; raises :class:`RemoteCallError` for any non-2xx or bad answer."""
        url = self.base_url + path
        send_headers = dict(headers or {})
        request_id = current_request_id()
        if request_id and "x-request-id" not in {k.lower() for k in send_headers}:
            send_headers["X-Request-ID"] = request_id
        content: bytes | None = None
        if body is not None or method.upper() in ("POST", "PUT", "PATCH"):
            content = json.dumps(_jsonable(body), default=json_default).encode("utf-8")
            send_headers["Content-Type"] = "application/json"
        extensions = {} if self.identity is None else {"sni_hostname": self.identity}
        try:
            response = self._client.request(
                method,
                path,
                content=content,
                params=params,
                headers=send_headers,
                extensions=extensions,
            )
        except httpx.TransportError as exc:
            raise self._transport_error(exc, url) from exc
        return self._decode(response, url, response_model)

    def _transport_error(self, exc: httpx.TransportError, url: str) -> RemoteCallError:
        """The typed error for a failed exchange: TLS failures first (their own codes), then
        whether the request may have been processed (unreachable vs. timeout)."""
        refused = handshake_error(exc, url, connecting=isinstance(exc, httpx.ConnectError))
        if refused is not None:
            refused.detail.setdefault("expect", self.identity)
            return refused
        reason = type(exc).__name__
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return RemoteCallError(
                f"cannot reach {self.base_url}",
                code="remote.unreachable",
                status=None,
                url=url,
                detail={"url": url, "reason": reason, "outcome_unknown": False},
            )
        if isinstance(exc, httpx.TimeoutException):
            return RemoteCallError(
                f"no answer from {self.base_url} in time",
                code="remote.timeout",
                status=None,
                url=url,
                detail={"url": url, "reason": reason, "outcome_unknown": True},
                http_status=504,
            )
        return RemoteCallError(
            f"connection to {self.base_url} failed",
            code="remote.unreachable",
            status=None,
            url=url,
            detail={"url": url, "reason": reason, "outcome_unknown": True},
        )

    def _decode(
        self, response: httpx.Response, url: str, response_model: type[BaseModel] | None
    ) -> Any:
        status = response.status_code
        data: Any = None
        parsed = False
        if response.content:
            try:
                data = response.json()
                parsed = True
            except ValueError:
                parsed = False
        if not 200 <= status < 300:
            if (
                parsed
                and isinstance(data, dict)
                and isinstance(data.get("code"), str)
                and isinstance(data.get("message"), str)
            ):
                detail = data.get("detail")
                detail = dict(detail) if isinstance(detail, dict) else {}
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit() and "retry_after" not in detail:
                    detail["retry_after"] = int(retry_after)
                raise RemoteCallError(
                    data["message"], code=data["code"], status=status, url=url, detail=detail
                )
            raise RemoteCallError(
                f"{self.base_url} answered HTTP {status} without an error body",
                code="remote.bad_response",
                status=status,
                url=url,
                detail={"url": url, "status": status},
            )
        if response.content and not parsed:
            raise RemoteCallError(
                f"{self.base_url} answered with invalid JSON",
                code="remote.bad_response",
                status=status,
                url=url,
                detail={"url": url, "status": status},
            )
        if response_model is None:
            return data
        try:
            return response_model.model_validate(data)
        except ValidationError as exc:
            raise RemoteCallError(
                f"{self.base_url} answered with an unexpected body",
                code="remote.bad_response",
                status=status,
                url=url,
                detail={"url": url, "status": status, "errors": validation_errors(exc)},
            ) from None

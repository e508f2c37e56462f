"""The uvicorn protocol that hands a TLS connection's client certificate to the app.

Kept apart from :mod:`ecash_tpm.service.tls` so that clients and settings, which import that
module, do not load the server framework.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from ecash_tpm.service.tls import CRL_KEY, TRUST_ROOT_KEY, CrlFile, PemSource, root_pem

__all__ = ["HEADER_TIMEOUT_S", "TlsH11Protocol", "tls_protocol"]

#: Default longest wait for a complete request head (seconds).
HEADER_TIMEOUT_S = 10.0

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, adding the ASGI TLS extension to every request's scope.

    asyncio calls ``connection_made`` after the handshake, so the verified peer certificate is
    known; the app is wrapped once per connection. ``trust_root`` (PEM) is the root the server
    context verifies against, handed on so :func:`peer_party` can re-check the certificate.
    Use :func:`tls_protocol` to bind a root and CRL file.
    """

    trust_root: ClassVar[str] = ""
    crl_file: ClassVar[CrlFile | None] = None
    #: A connection that has not sent a complete request head this long after connecting (or
    #: after its last response) is closed: h11 alone would hold half-sent headers forever
    #: (issue 10, attack 9). Bodies are timed by the body-limit middleware.
    header_timeout_s: ClassVar[float] = HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(type(self).header_timeout_s, self._no_head)

    def _no_head(self) -> None:
        """No request read since the timer was armed: drop the connection."""
        self._header_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not (
            self.transport.is_closing()
        ):
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_header_timer()
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        chain = [] if not der else [ssl.DER_cert_to_PEM_cert(der)]
        extension: dict[str, Any] = {
            "client_cert_chain": chain,
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": 0x0304,
            "cipher_suite": None,
            TRUST_ROOT_KEY: type(self).trust_root,
            CRL_KEY: type(self).crl_file,
        }
        inner: Asgi = self.app

        async def with_tls(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = extension
            scope["extensions"] = extensions
            await inner(scope, receive, send)

        self.app = with_tls


def tls_protocol(
    root: PemSource, crl: Path | None = None, *, header_timeout_s: float = HEADER_TIMEOUT_S
) -> type[TlsH11Protocol]:
    """A :class:`TlsH11Protocol` bound to ``root``, the CRL file and the request-head timeout
    (for ``uvicorn.Config(http=...)``); one class per server, so servers share no state."""
    attributes = {
        "trust_root": root_pem(root),
        "crl_file": None if crl is None else CrlFile(crl),
        "header_timeout_s": header_timeout_s,
    }
    return type("BoundTlsH11Protocol", (TlsH11Protocol,), attributes)

"""The uvicorn protocol that hands a TLS connection's client certificate to the app.

Kept apart from :mod:`ecash_tpm.service.tls` so that clients and settings, which import that
module, do not load the server framework.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from ecash_tpm.service.tls import CRL_KEY, TRUST_ROOT_KEY, CrlFile, PemSource, root_pem

__all__ = ["TlsH11Protocol", "tls_protocol"]

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

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
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


def tls_protocol(root: PemSource, crl: Path | None = None) -> type[TlsH11Protocol]:
    """A :class:`TlsH11Protocol` bound to ``root`` and the CRL file (for
    ``uvicorn.Config(http=...)``); one class per server, so servers share no state."""
    attributes = {"trust_root": root_pem(root), "crl_file": None if crl is None else CrlFile(crl)}
    return type("BoundTlsH11Protocol", (TlsH11Protocol,), attributes)

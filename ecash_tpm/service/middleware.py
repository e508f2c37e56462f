"""Pure ASGI middleware: request id + access log + last-resort 500, and the body size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so nothing is buffered or re-wrapped unexpectedly and the
request id ContextVar is visible to the endpoint and to its worker thread.

The size limit cannot rely on ``Content-Length`` alone: a chunked request has none. Bodies are
therefore read here, counted, and rejected with 413 ``input.too_large`` as soon as they pass the
limit (memory use is bounded by the limit, a few hundred KiB), then replayed to the app. A
declared ``Content-Length`` above the limit is refused before reading anything.

Two more guards against resource exhaustion (issue 10, attack 9): a larger limit
(``party_max_bytes``, e.g. the TTP's product uploads) applies only to a caller whose TLS client
certificate the handshake verified against the central bank root, so an anonymous client never
gets more than ``max_bytes`` buffered; and every wait for the next body chunk is bounded by
``read_timeout_s``: a half-sent body gets 408 ``input.read_timeout`` and its connection is closed
rather than held.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.service.errors import BodyReadTimeoutError, PayloadTooLargeError
from ecash_tpm.service.logs import _REQUEST_ID, json_default

REQUEST_ID_HEADER = "x-request-id"
#: A whole request body must arrive within this many read timeouts, however it trickles in.
BODY_DEADLINE_FACTOR = 3
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def error_body(exc: EcashError) -> bytes:
    """``{code, message, detail}`` as JSON bytes (bytes in detail become base64url)."""
    return json.dumps(exc.to_dict(), default=json_default, ensure_ascii=False).encode("utf-8")


async def send_error(send: Send, exc: EcashError, headers: dict[str, str] | None = None) -> None:
    """Send a complete error response directly on the ASGI channel."""
    body = error_body(exc)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    raw.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    )
    await send({"type": "http.response.start", "status": exc.http_status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Gives each request an id, logs one access line, turns unhandled exceptions into 500s.

    The 500 body is ``internal.error`` with only the request id in ``detail``: the traceback
    goes to the log, never to the client.
    """

    def __init__(self, app: ASGIApp, *, service: str, logger: logging.Logger) -> None:
        self.app = app
        self.service = service
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = _REQUEST_ID.set(request_id)
        status: list[int] = [0]
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            self.logger.exception(
                "unhandled exception", extra={"service": self.service, "path": scope.get("path")}
            )
            if status[0]:
                raise  # headers already sent: the server can only drop the connection
            await send_error(
                send_with_id,
                EcashError("internal error", detail={"request_id": request_id}),
            )
        finally:
            self.logger.info(
                "request",
                extra={
                    "service": self.service,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status[0],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            _REQUEST_ID.reset(token)


class BodySizeLimitMiddleware:
    """Rejects request bodies larger than the limit with 413 ``input.too_large`` and bodies
    that stall with 408 ``input.read_timeout`` (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        party_max_bytes: int | None = None,
        read_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.party_max_bytes = max(max_bytes, party_max_bytes or max_bytes)
        self.read_timeout_s = read_timeout_s

    def _limit(self, scope: Scope) -> int:
        """The party limit for a caller with a verified TLS client certificate, else the
        anonymous one."""
        tls = (scope.get("extensions") or {}).get("tls") or {}
        return self.party_max_bytes if tls.get("client_cert_chain") else self.max_bytes

    def _too_large(self, limit: int, size: int | None) -> PayloadTooLargeError:
        detail: dict[str, Any] = {"max_bytes": limit}
        if size is not None:
            detail["content_length"] = size
        return PayloadTooLargeError("request body too large", detail=detail)

    async def _next(self, receive: Receive, deadline: float | None) -> Message | None:
        """The next ASGI message, or None when the client stalled past the read timeout or the
        whole body took longer than :data:`BODY_DEADLINE_FACTOR` read timeouts (a byte every
        few seconds must not hold a connection for ever)."""
        if self.read_timeout_s is None or deadline is None:
            return await receive()
        wait = min(self.read_timeout_s, deadline - asyncio.get_running_loop().time())
        if wait <= 0:
            return None
        try:
            return await asyncio.wait_for(receive(), wait)
        except TimeoutError:
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared: int | None = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, InputError("invalid Content-Length header"))
                    return
                break
        if declared is not None and declared > limit:
            await send_error(send, self._too_large(limit, declared), {"Connection": "close"})
            return

        chunks: list[bytes] = []
        total = 0
        pending: list[Message] = []
        deadline = None
        if self.read_timeout_s is not None:
            start = asyncio.get_running_loop().time()
            deadline = start + BODY_DEADLINE_FACTOR * self.read_timeout_s
        while True:
            message = await self._next(receive, deadline)
            if message is None:
                timeout = BodyReadTimeoutError(
                    "the request body was not sent in time",
                    detail={"read_timeout_s": self.read_timeout_s, "received_bytes": total},
                )
                await send_error(send, timeout, {"Connection": "close"})
                return
            if message["type"] != "http.request":
                pending.append(message)  # http.disconnect: let the app see it
                break
            body = message.get("body", b"")
            total += len(body)
            if total > limit:
                await send_error(send, self._too_large(limit, declared), {"Connection": "close"})
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        if not pending:
            pending.append({"type": "http.request", "body": b"".join(chunks), "more_body": False})

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)

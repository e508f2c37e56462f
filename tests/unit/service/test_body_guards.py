"""BodySizeLimitMiddleware against resource exhaustion (issue 10, attack 9): anonymous and
party limits, chunked bodies counted while read, stalled bodies dropped."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ecash_tpm.service.middleware import BODY_DEADLINE_FACTOR, BodySizeLimitMiddleware

LIMIT = 1024
PARTY_LIMIT = 8192


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    """The app behind the guard: answers 200 with the body length it got."""
    message = await receive()
    size = len(message.get("body", b""))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _run(
    chunks: list[bytes],
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    client_cert: bool = False,
    stall: bool = False,
    timeout: float | None = 0.2,
) -> tuple[int, dict[bytes, bytes], bytes, int]:
    """``(status, headers, body, chunks read)`` of one request through the guard."""
    guard = BodySizeLimitMiddleware(
        _echo, max_bytes=LIMIT, party_max_bytes=PARTY_LIMIT, read_timeout_s=timeout
    )
    scope: dict[str, Any] = {"type": "http", "headers": headers or []}
    if client_cert:
        scope["extensions"] = {"tls": {"client_cert_chain": ["-----BEGIN CERTIFICATE-----"]}}
    sent: list[dict[str, Any]] = []
    read = [0]

    async def receive() -> dict[str, Any]:
        if read[0] < len(chunks):
            read[0] += 1
            more = read[0] < len(chunks) or stall
            return {"type": "http.request", "body": chunks[read[0] - 1], "more_body": more}
        await asyncio.sleep(3600)  # a client that stopped sending
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body, read[0]


def test_chunked_body_refused_while_reading() -> None:
    status, headers, body, read = _run([b"x" * 512] * 10)
    assert status == 413 and json.loads(body)["code"] == "input.too_large"
    assert read == 3  # stopped at the first chunk past the limit, the rest never read
    assert headers[b"connection"] == b"close"


def test_declared_length_refused_before_reading() -> None:
    status, _, body, read = _run([b"x"], headers=[(b"content-length", b"8388608")])
    assert status == 413 and json.loads(body)["detail"]["max_bytes"] == LIMIT
    assert read == 0


def test_party_limit_only_with_a_client_certificate() -> None:
    status, _, body, _ = _run([b"x" * 4096], client_cert=True)
    assert status == 200 and body == b"4096"
    status, _, body, _ = _run([b"x" * 4096])
    assert status == 413
    status, _, body, _ = _run([b"x" * 512] * 20, client_cert=True)
    assert status == 413 and json.loads(body)["detail"]["max_bytes"] == PARTY_LIMIT


def test_stalled_body_dropped_after_read_timeout() -> None:
    status, headers, body, _ = _run([b'{"account_id": "al'], stall=True, timeout=0.1)
    answer = json.loads(body)
    assert status == 408 and answer["code"] == "input.read_timeout"
    assert answer["detail"]["received_bytes"] == len(b'{"account_id": "al')
    assert headers[b"connection"] == b"close"


def test_complete_body_passes() -> None:
    status, _, body, _ = _run([b"ab", b"cd"])
    assert status == 200 and body == b"4"


def test_trickled_body_dropped_at_the_overall_deadline() -> None:
    """One byte just inside every read timeout: the whole body still has a deadline
    (BODY_DEADLINE_FACTOR read timeouts), so a trickle cannot hold the connection (review)."""
    guard = BodySizeLimitMiddleware(_echo, max_bytes=LIMIT, read_timeout_s=0.1)
    sent: list[dict[str, Any]] = []
    read = [0]

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.06)  # under the 0.1 s read timeout, every time
        read[0] += 1
        return {"type": "http.request", "body": b"x", "more_body": read[0] < 100}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(guard({"type": "http", "headers": []}, receive, send))
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["code"] == "input.read_timeout"
    assert read[0] <= BODY_DEADLINE_FACTOR * 0.1 / 0.06 + 1  # stopped near 0.3 s, not 6 s

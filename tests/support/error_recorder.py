"""A pytest plugin that records every error body a party app answers, to check it is documented.

Enable with ``pytest -p tests.support.error_recorder`` and ``ECASH_ERROR_RECORD=<file>``: every
FastAPI app built while the tests run is wrapped in a small ASGI layer that notes
``(app title, method, route path, status, code)`` for each JSON error response. At the end of
the session the pairs go to ``<file>`` (JSON lines, appended) together with whether the app's
own OpenAPI document lists that code for that route and status. ``undocumented`` (used by
tests/integration/service/test_openapi.py) then fails on any undocumented pair, so running the
refusal tests of every party with the plugin shows that what the APIs really answer is in
their documents.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ecash_tpm.service.openapi import documented_codes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ENV = "ECASH_ERROR_RECORD"


def _wrap(app: FastAPI, inner: ASGIApp, seen: list[dict[str, Any]]) -> ASGIApp:
    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await inner(scope, receive, send)
            return
        state: dict[str, Any] = {"status": 0, "json": False, "body": b""}

        async def spy(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = int(message["status"])
                headers = dict(message.get("headers") or [])
                state["json"] = headers.get(b"content-type", b"").startswith(b"application/json")
            elif message["type"] == "http.response.body" and state["status"] >= 400:
                state["body"] += message.get("body", b"")
            await send(message)

        await inner(scope, receive, spy)
        route = scope.get("route")
        path = getattr(route, "path", None)
        if state["status"] < 400 or not state["json"] or path is None:
            return
        try:
            code = json.loads(state["body"]).get("code")
        except (ValueError, AttributeError):
            code = None
        method = str(scope.get("method", "GET"))
        schema = app.openapi()
        operation = schema.get("paths", {}).get(path, {}).get(method.lower())
        codes = documented_codes(schema, path, method).get(str(state["status"]), set())
        seen.append(
            {
                "app": app.title,
                "method": method,
                "path": path,
                "status": state["status"],
                "code": code,
                "operation": operation is not None,  # False: 405 on a path of another method
                "documented": code in codes,
            }
        )

    return recorder


def pytest_configure(config: pytest.Config) -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    seen: list[dict[str, Any]] = []
    original = FastAPI.build_middleware_stack

    def build(self: FastAPI) -> Any:
        return _wrap(self, original(self), seen)

    FastAPI.build_middleware_stack = build  # type: ignore[method-assign]
    config.stash[_KEY] = (Path(target), seen)


_KEY = pytest.StashKey[tuple[Path, list[dict[str, Any]]]]()


def pytest_unconfigure(config: pytest.Config) -> None:
    entry = config.stash.get(_KEY, None)
    if entry is None:
        return
    target, seen = entry
    with target.open("a", encoding="utf-8") as out:
        for row in {json.dumps(r, sort_keys=True) for r in seen}:
            out.write(row + "\n")


def undocumented(lines: list[str], *, apps: set[str], allowed: set[str]) -> list[dict[str, Any]]:
    """Recorded rows of ``apps`` whose code their document does not list for that route and
    status (``allowed``: codes known to come from test-only code, e.g. the demo's cheats)."""
    rows = [json.loads(line) for line in lines if line.strip()]
    return [
        r
        for r in rows
        if r["app"] in apps and r["operation"] and not r["documented"] and r["code"] not in allowed
    ]

"""The dashboard's web app: the page, its assets (package data) and the ``/events`` stream.

Routes: ``GET /`` (the page), ``GET /assets/{name}`` (script, style sheet, icon),
``GET /events`` (server-sent events: every event of the bus from the one after
``Last-Event-ID``, then new ones as they come; the stream ends once the bus is closed and
drained), ``GET /api/events`` (the same history as one JSON array, for scripts and tests) and
``GET /healthz``. Every answer carries a Content-Security-Policy that allows nothing from
outside this server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ecash_tpm.dashboard.bus import EventBus

#: name -> media type of the files served from ``ecash_tpm/dashboard/static``.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
POLL_S = 0.1
KEEPALIVE_S = 5.0


def asset(name: str) -> bytes:
    """One file of the page, from the package (never from outside the machine)."""
    return resources.files("ecash_tpm.dashboard").joinpath("static", name).read_bytes()


def create_app(bus: EventBus) -> Starlette:
    """The app over ``bus``; it holds no other state."""

    def _file(name: str) -> Response:
        return Response(asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)

    async def index(request: Request) -> Response:
        return _file("index.html")

    async def assets(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS or name == "index.html":
            return Response("not found", status_code=404, headers=SECURITY_HEADERS)
        return _file(name)

    async def favicon(request: Request) -> Response:
        return _file("favicon.svg")

    async def history(request: Request) -> Response:
        body = "[" + ",".join(e.text for e in bus.since(0)) + "]"
        return Response(body, media_type="application/json", headers=SECURITY_HEADERS)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "events": len(bus)}, headers=SECURITY_HEADERS)

    async def events(request: Request) -> Response:
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() else 0
        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
        return StreamingResponse(
            _stream(bus, start), media_type="text/event-stream", headers=headers
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/assets/{name}", assets),
            Route("/favicon.ico", favicon),
            Route("/events", events),
            Route("/api/events", history),
            Route("/healthz", healthz),
        ]
    )


async def _stream(bus: EventBus, last_id: int) -> AsyncIterator[str]:
    """SSE frames: the history after ``last_id``, then new events; a comment now and then
    keeps proxies from closing an idle stream (and finds a viewer that has gone)."""
    yield "retry: 2000\n\n"
    idle = 0.0
    while True:
        closed = bus.closed  # read first: whatever was published before closing is seen below
        batch = bus.since(last_id)
        for event in batch:
            yield f"id: {event.id}\ndata: {event.text}\n\n"
            last_id = event.id
        if batch:
            idle = 0.0
            continue
        if closed:
            return
        await asyncio.sleep(POLL_S)
        idle += POLL_S
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"

"""Running a party's app with uvicorn: ``serve`` for the CLI, ``running_server`` for tests.

``running_server`` exists so end-to-end tests speak real HTTP over 127.0.0.1 (as the parties do
in production) instead of an in-process transport: it binds a free port itself (no pick-then-
bind race), runs uvicorn in a background thread, waits for ``/healthz`` and on exit asks
uvicorn to stop (``should_exit``), joins its thread and the AnyIO worker threads it started, so
a test leaves no thread or socket behind. If the app's start-up fails, the app's own typed error
(e.g. ``storage.schema_too_new``) is re-raised.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from ecash_tpm.errors import EcashError
from ecash_tpm.service.errors import ServerStartError
from ecash_tpm.service.logs import configure_logging


def serve(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    graceful_timeout_s: int = 10,
) -> None:
    """Run ``app`` until SIGINT/SIGTERM, logging JSON lines to stderr (blocking)."""
    configure_logging(log_level)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep our JSON handler
        log_level=log_level,
        access_log=False,  # RequestContextMiddleware logs requests with their id
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout_s,
    )
    uvicorn.Server(config).run()


def _startup_failure(app: FastAPI, message: str, detail: dict[str, object]) -> EcashError:
    cause = getattr(app.state, "startup_error", None)
    if isinstance(cause, EcashError):
        return cause
    err = ServerStartError(message, detail=detail)
    if cause is not None:
        err.__cause__ = cause
    return err


@contextmanager
def running_server(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    startup_timeout_s: float = 10.0,
    shutdown_timeout_s: float = 10.0,
) -> Iterator[str]:
    """Serve ``app`` on a free port of ``host`` in a thread; yields ``http://host:port``."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    base_url = f"http://{host}:{port}"
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(shutdown_timeout_s)),
    )
    server = uvicorn.Server(config)
    before = set(threading.enumerate())
    crashed: list[BaseException] = []

    def run() -> None:
        # uvicorn calls sys.exit() when the lifespan start-up fails; keep that in this thread.
        try:
            server.run(sockets=[sock])
        except BaseException as exc:
            crashed.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive():
                detail: dict[str, object] = {"port": port}
                if crashed:
                    detail["exit"] = repr(crashed[0])
                raise _startup_failure(app, "the server exited during start-up", detail)
            if time.monotonic() > deadline:
                raise _startup_failure(app, "the server did not start in time", {"port": port})
            time.sleep(0.01)
        with httpx.Client(base_url=base_url, timeout=1.0) as probe:
            while True:
                try:
                    if probe.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        "/healthz did not answer 200 in time", detail={"url": base_url}
                    )
                time.sleep(0.02)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout_s)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5.0)
        sock.close()
        # AnyIO's worker threads (used for sync endpoints) are told to stop when the server's
        # event loop ends; wait for them so callers really get no stray threads.
        end = time.monotonic() + 5.0
        for leftover in set(threading.enumerate()) - before:
            if leftover.name.startswith("AnyIO worker thread"):
                leftover.join(max(0.0, end - time.monotonic()))

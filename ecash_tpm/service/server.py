"""Running a party's app with uvicorn: ``serve`` for the CLI, ``running_server`` for tests.

``serve`` does everything that can fail before it says anything: it binds the listen socket
(``service.port_in_use`` / ``service.bind_failed``), then runs the app's start-up (database
opened and migrated, keys loaded, hooks) in the event loop the server will use, and only then
prints ``<party> on http://host:port`` and hands the bound socket to uvicorn. A failure is one
typed error for the CLI to print (no traceback in a log line), and a SQLite file that this
start created is removed again, with the directories made for it, so a failed start leaves
nothing behind. Shutdown (SIGINT/SIGTERM) runs the app's shutdown inside uvicorn's, as before.

``running_server`` exists so end-to-end tests speak real HTTP over 127.0.0.1 (as the parties do
in production) instead of an in-process transport: it binds a free port itself (no pick-then-
bind race), runs uvicorn in a background thread, waits for ``/healthz`` and on exit asks
uvicorn to stop (``should_exit``), joins its thread and the AnyIO worker threads it started, so
a test leaves no thread or socket behind. If the app's start-up fails, the app's own typed error
(e.g. ``storage.schema_too_new``) is re-raised.

Both take ``tls`` (:class:`~ecash_tpm.service.tls.TlsFiles`) and then serve HTTPS only, the same
way (:func:`tls_config`: our TLS 1.3 context and the protocol that hands client certificates to
:func:`~ecash_tpm.service.tls.peer_party`), and ``healthz_port``, a second, plain listener that
answers only ``GET /healthz`` (container health checks cannot verify the central bank's root).
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from functools import partial
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from ecash_tpm.errors import EcashError
from ecash_tpm.service.errors import BindError, PortInUseError, ServerStartError
from ecash_tpm.service.logs import configure_logging
from ecash_tpm.service.tls import TlsFiles, server_context
from ecash_tpm.service.tls_protocol import tls_protocol
from ecash_tpm.storage import NewSqliteFiles, discard_new_sqlite_on_failure

#: ``serve`` takes the app, or a function that builds it inside a context (the bank opens its
#: database before its app exists; that must happen after the port is bound).
AppSource = FastAPI | Callable[[], AbstractContextManager[FastAPI]]
_BACKLOG = 2048  # uvicorn's default


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or :class:`PortInUseError` / :class:`BindError`.

    Listening at once (not only binding) is what makes a second server on the same port fail
    here, even with ``SO_REUSEADDR``; connections that arrive during start-up wait in the
    backlog and are answered once the server runs.
    """
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(
            f"cannot resolve the listen address {host!r}: {exc.strerror}",
            detail={"host": host, "port": port},
        ) from exc
    family, kind, proto, _, address = infos[0]
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        detail = {"host": host, "port": port, "reason": exc.strerror or str(exc)}
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use (is the service running already?)",
                detail=detail,
            ) from exc
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}", detail=detail) from exc
    sock.set_inheritable(False)
    return sock


def _url(sock: socket.socket, host: str, scheme: str = "http") -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def tls_config(tls: TlsFiles | None) -> dict[str, Any]:
    """uvicorn ``Config`` keywords for ``tls``: our server context (TLS 1.3, the root as the
    only anchor for client certificates) and the protocol that hands client certificates to
    the app (:func:`~ecash_tpm.service.tls.peer_party`). The context is built here, so a bad
    certificate, key or CRL is a typed error before anything is announced."""
    if tls is None:
        return {}
    context = server_context(tls)

    def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    protocol = tls_protocol(tls.root, tls.crl, header_timeout_s=tls.header_timeout_s)
    return {"ssl_context_factory": factory, "http": protocol}


def healthz_only(app: Any) -> Any:
    """``app`` answering only ``GET``/``HEAD /healthz``; 404 for everything else.

    The plain-HTTP health port exists for container health checks, which cannot speak TLS with
    the central bank's root: it must not become a way around TLS for the real routes.
    """

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope.get("type") == "http"
            and scope.get("method") in ("GET", "HEAD")
            and scope.get("path") == "/healthz"
        ):
            await app(scope, receive, send)
            return
        if scope.get("type") != "http":
            return
        body = json.dumps(
            {"code": "not_found", "message": "only /healthz on this port", "detail": {}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return guarded


class _HealthServer(uvicorn.Server):
    """The health listener's server: the main server owns the signals and the shutdown."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _health_server(app: Any, config: dict[str, Any]) -> _HealthServer:
    plain = {k: v for k, v in config.items() if k not in ("ssl_context_factory", "http")}
    return _HealthServer(uvicorn.Config(healthz_only(app), lifespan="off", **plain))


async def _serve_with_health(
    main: uvicorn.Server,
    sock: socket.socket,
    health: uvicorn.Server | None,
    health_sock: socket.socket | None,
) -> None:
    """Run ``main`` and, beside it, the plain health listener, which stops when ``main`` does."""
    if health is None or health_sock is None:
        await main.serve([sock])
        return
    task = asyncio.create_task(health.serve([health_sock]))
    try:
        await main.serve([sock])
    finally:
        health.should_exit = True
        await task


@contextmanager
def _as_context(app: FastAPI) -> Iterator[FastAPI]:
    yield app


async def _serve_async(
    source: Callable[[], AbstractContextManager[FastAPI]],
    sock: socket.socket,
    *,
    host: str,
    label: str | None,
    new_files: NewSqliteFiles,
    config: dict[str, Any],
    scheme: str = "http",
    health_sock: socket.socket | None = None,
) -> None:
    async with AsyncExitStack() as stack:
        app = stack.enter_context(source())
        await stack.enter_async_context(app.router.lifespan_context(app))
        new_files.keep()
        name = label or str(getattr(app.state, "service_name", "ecash-tpm"))
        print(f"{name} on {_url(sock, host, scheme)}", file=sys.stderr, flush=True)
        if health_sock is not None:
            print(f"{name} /healthz on {_url(health_sock, host)}", file=sys.stderr, flush=True)
        # From here on the app's shutdown belongs to uvicorn's (inside its signal handling).
        running = stack.pop_all()

        @asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await running.aclose()

        app.router.lifespan_context = lifespan
        try:
            main = uvicorn.Server(uvicorn.Config(app, lifespan="on", **config))
            health = None if health_sock is None else _health_server(app, config)
            await _serve_with_health(main, sock, health, health_sock)
        finally:
            await running.aclose()  # uvicorn never got to the shutdown (idempotent)


def serve(
    app: AppSource,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    graceful_timeout_s: int = 10,
    label: str | None = None,
    databases: Sequence[str] | None = None,
    tls: TlsFiles | None = None,
    healthz_port: int | None = None,
    workers: int = 1,
) -> None:
    """Run ``app`` until SIGINT/SIGTERM, logging JSON lines to stderr (blocking).

    ``workers`` > 1 forks that many server processes on the one bound socket (see
    :mod:`ecash_tpm.service.workers`); each opens its own database pool and TLS context.

    With ``tls`` it serves HTTPS only (:func:`tls_config`); ``healthz_port`` adds a plain-HTTP
    listener on the same host that answers only ``GET /healthz`` (for container health checks).

    ``label`` names the service in the announcement (default: the app's service name).
    ``databases`` are the URLs whose SQLite files a failed start removes if it created them
    (default: the app's ``settings.database_url``). Raises the typed error of whatever failed
    before the server runs; nothing is printed before that.
    """
    configure_logging(log_level)
    if isinstance(app, FastAPI):
        source: Callable[[], AbstractContextManager[FastAPI]] = partial(_as_context, app)
        if databases is None:
            settings = getattr(app.state, "settings", None)
            databases = [settings.database_url] if settings is not None else []
    else:
        source = app
    config: dict[str, Any] = {
        "log_config": None,  # keep our JSON handler
        "log_level": log_level,
        "access_log": False,  # RequestContextMiddleware logs requests with their id
        "server_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": graceful_timeout_s,
        **tls_config(tls),
    }
    sock = bind_listener(host, port)
    health_sock: socket.socket | None = None
    try:
        if healthz_port is not None:
            health_sock = bind_listener(host, healthz_port)
        if workers > 1:
            _serve_workers(
                workers,
                source,
                sock,
                host=host,
                label=label,
                config=config,
                scheme="http" if tls is None else "https",
                health_sock=health_sock,
                grace_s=graceful_timeout_s + 5.0,
            )
            return
        with discard_new_sqlite_on_failure(databases or []) as new_files:
            asyncio.run(
                _serve_async(
                    source,
                    sock,
                    host=host,
                    label=label,
                    new_files=new_files,
                    config=config,
                    scheme="http" if tls is None else "https",
                    health_sock=health_sock,
                )
            )
    finally:
        sock.close()
        if health_sock is not None:
            health_sock.close()


def _serve_workers(
    count: int,
    source: Callable[[], AbstractContextManager[FastAPI]],
    sock: socket.socket,
    *,
    host: str,
    label: str | None,
    config: dict[str, Any],
    scheme: str,
    health_sock: socket.socket | None,
    grace_s: float,
) -> None:
    """``count`` forked servers on ``sock``. A failed start of one worker must not remove a
    database the others use, so no SQLite file is ever discarded here."""
    from ecash_tpm.service.workers import run_workers

    def run(index: int) -> None:
        asyncio.run(
            _serve_async(
                source,
                sock,
                host=host,
                label=label,
                new_files=NewSqliteFiles([]),
                config=config,
                scheme=scheme,
                health_sock=health_sock,
            )
        )

    run_workers(count, run, grace_s=grace_s)


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
    tls: TlsFiles | None = None,
    healthz_port: int | None = None,
) -> Iterator[str]:
    """Serve ``app`` on a free port of ``host`` in a thread; yields ``http://host:port``
    (``https://`` with ``tls``, served exactly as :func:`serve` does). ``healthz_port`` adds the
    plain ``/healthz`` listener (0: any free port)."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    base_url = f"{'http' if tls is None else 'https'}://{host}:{port}"
    options: dict[str, Any] = {
        "log_config": None,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": max(1, int(shutdown_timeout_s)),
        **tls_config(tls),
    }
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **options))
    health_sock = None if healthz_port is None else bind_listener(host, healthz_port)
    health = None if health_sock is None else _health_server(app, options)
    before = set(threading.enumerate())
    crashed: list[BaseException] = []

    def run() -> None:
        # uvicorn calls sys.exit() when the lifespan start-up fails; keep that in this thread.
        try:
            asyncio.run(_serve_with_health(server, sock, health, health_sock))
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
        # Our own server on loopback: the probe only waits for readiness, so it need not
        # verify the certificate (the rogue servers of the TLS tests must start too).
        probe_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe_tls.check_hostname = False
        probe_tls.verify_mode = ssl.CERT_NONE
        with httpx.Client(base_url=base_url, timeout=1.0, verify=probe_tls) as probe:
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
        if health_sock is not None:
            health_sock.close()
        # AnyIO's worker threads (used for sync endpoints) are told to stop when the server's
        # event loop ends; wait for them so callers really get no stray threads.
        end = time.monotonic() + 5.0
        for leftover in set(threading.enumerate()) - before:
            if leftover.name.startswith("AnyIO worker thread"):
                leftover.join(max(0.0, end - time.monotonic()))

"""The FastAPI app factory every party uses, so all of them behave the same on the wire.

``create_app`` installs what each service would otherwise get subtly different:

- errors: any :class:`~ecash_tpm.errors.EcashError` becomes ``{code, message, detail}`` with
  its ``http_status`` (plus ``Retry-After`` when ``detail["retry_after"]`` is set, e.g. the lock
  period T or a storage conflict); request validation errors become 400 ``input.invalid``
  (``encoding.invalid`` when only base64url fields are bad); unknown routes/methods keep the
  same shape; anything unexpected is a 500 ``internal.error`` without internals;
- a request body size limit (``settings.max_body_bytes``, 413 ``input.too_large``);
- JSON-lines access logs with a request id (``X-Request-ID`` echoed on every response);
- ``GET /healthz`` (checks the database when there is one) and OpenAPI at ``/openapi.json``,
  complete (:mod:`ecash_tpm.service.openapi`): each route's error statuses with their codes and
  an example body each, 422 replaced by the 400 error body it really is, the bearer security
  schemes; Swagger UI at ``/docs`` and ReDoc at ``/redoc`` served from the package (no CDN);
- a lifespan that opens the database from ``settings.database_url`` (created on first start,
  :mod:`ecash_tpm.service.database`), applies the party's migrations, runs start-up hooks, and
  undoes it all on shutdown. A typed start-up error is not logged here: ``serve`` prints it as
  the command's error and ``running_server`` re-raises it.

State lives on ``app.state`` (``settings``, ``service_name``, ``db``), never in module globals,
so several parties can run in one process (tests, demo).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecash_tpm import __version__
from ecash_tpm.errors import EcashError, EncodingError, InputError
from ecash_tpm.protocol.api.base import ENCODING_ERROR_TYPE, ApiModel
from ecash_tpm.service.database import open_party_database
from ecash_tpm.service.errors import PayloadTooLargeError
from ecash_tpm.service.logs import json_default
from ecash_tpm.service.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from ecash_tpm.service.openapi import complete_openapi, errors, install_docs
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.storage import Database, Migration, StorageUnavailableError

Hook = Callable[[FastAPI], Awaitable[None] | None]

_HTTP_CODES = {
    404: ("http.not_found", "no such route"),
    405: ("http.method_not_allowed", "method not allowed"),
    413: (PayloadTooLargeError.code, "request body too large"),
}


class HealthAnswer(ApiModel):
    """``GET /healthz``: the service is up (and its database answers)."""

    status: str
    service: str
    version: str
    #: "ok" when a write transaction can be opened and written now, "none" without a database
    writes: str = "none"


def error_response(exc: EcashError, headers: dict[str, str] | None = None) -> Response:
    """The JSON response for ``exc`` (``Retry-After`` from ``detail["retry_after"]``)."""
    all_headers = dict(headers or {})
    retry_after = exc.detail.get("retry_after")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        all_headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
    body = json.dumps(exc.to_dict(), default=json_default, ensure_ascii=False)
    return Response(
        body, status_code=exc.http_status, headers=all_headers, media_type="application/json"
    )


def get_settings(request: Request) -> ServiceSettings:
    """FastAPI dependency: this app's settings."""
    settings: ServiceSettings = request.app.state.settings
    return settings


def get_db(request: Request) -> Database:
    """FastAPI dependency: this app's database (opened by the lifespan)."""
    db: Database | None = getattr(request.app.state, "db", None)
    if db is None:
        raise StorageUnavailableError(
            "this service has no database (not started, or created without migrations)"
        )
    return db


async def _call(hook: Hook, app: FastAPI) -> None:
    result = hook(app)
    if inspect.isawaitable(result):
        await result


def _install_error_handlers(app: FastAPI, logger: logging.Logger) -> None:
    async def on_ecash_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, EcashError):  # registered for EcashError only
            raise exc
        if exc.http_status >= 500:
            logger.error(
                "request failed: %s", exc, exc_info=exc, extra={"service": app.state.service_name}
            )
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise exc
        errors = [
            {"loc": list(err.get("loc", ())), "type": err.get("type"), "msg": err.get("msg")}
            for err in exc.errors()
        ]
        if errors and all(e["type"] == ENCODING_ERROR_TYPE for e in errors):
            return error_response(EncodingError("invalid base64url", detail={"errors": errors}))
        return error_response(InputError("invalid request", detail={"errors": errors}))

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise exc
        code, default_message = _HTTP_CODES.get(exc.status_code, ("http.error", "HTTP error"))
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else default_message
        err = EcashError(message, code=code)
        err.http_status = exc.status_code
        return error_response(err, headers=dict(exc.headers or {}))

    app.add_exception_handler(EcashError, on_ecash_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)


def _install_openapi(app: FastAPI) -> None:
    """Serve the complete document (built once, on first request) and the local docs pages."""

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = complete_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_docs(app)


def create_app(
    name: str,
    *,
    settings: ServiceSettings,
    routers: Sequence[APIRouter] = (),
    migrations: Sequence[Migration | tuple[int, str, str]] | None = None,
    database: Database | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    version: str = __version__,
    description: str = "",
) -> FastAPI:
    """Build the FastAPI app of party ``name`` (``"bank"``, ``"merchant"``, ...).

    ``migrations``: the party's schema; the lifespan opens ``settings.database_url`` (unless a
    ``database`` is passed in, which the caller keeps owning), migrates it as component
    ``name`` and puts it on ``app.state.db``. ``on_startup`` hooks run after that, in order
    (sync or async, they receive the app and typically put domain objects on ``app.state``);
    ``on_shutdown`` hooks run in reverse. A start-up failure is kept on
    ``app.state.startup_error`` so test helpers can re-raise the typed error.
    """
    logger = logging.getLogger(f"ecash_tpm.service.{name}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned: Database | None = None
        try:
            if database is None and migrations is not None:
                owned = open_party_database(settings, migrations, component=name, mode="create")
                app.state.db = owned
            elif migrations is not None:
                app.state.db.migrate(migrations, component=name)
            for hook in on_startup:
                await _call(hook, app)
        except BaseException as exc:
            app.state.startup_error = exc
            if not isinstance(exc, EcashError):  # typed ones are reported by whoever started us
                logger.error("start-up failed: %s", exc, exc_info=exc, extra={"service": name})
            if owned is not None:
                owned.close()
            raise
        try:
            yield
        finally:
            for hook in reversed(on_shutdown):
                try:
                    await _call(hook, app)
                except Exception:
                    logger.exception("shutdown hook failed", extra={"service": name})
            if owned is not None:
                owned.close()
                app.state.db = None

    app = FastAPI(
        title=f"ecash-tpm {name}",
        version=version,
        description=description,
        lifespan=lifespan,
        docs_url=None,  # install_docs: the package's own assets, not a CDN
        redoc_url=None,
    )
    app.state.service_name = name
    app.state.settings = settings
    app.state.db = database
    app.state.startup_error = None

    _install_error_handlers(app, logger)
    _install_openapi(app)
    # add_middleware prepends: the last one added is the outermost.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        party_max_bytes=settings.max_party_body_bytes,
        read_timeout_s=settings.body_read_timeout_s,
    )
    app.add_middleware(
        RequestContextMiddleware, service=name, logger=logging.getLogger("ecash_tpm.access")
    )

    @app.get(
        "/healthz",
        tags=["health"],
        summary="Liveness and database check",
        responses=errors(storage=migrations is not None or database is not None),
    )
    def healthz(request: Request) -> HealthAnswer:
        db: Database | None = request.app.state.db
        if db is None:
            return HealthAnswer(status="ok", service=name, version=version)
        with db.read() as tx:
            tx.fetchval("SELECT 1 AS ok")
        # honest health: 503 storage.busy / storage.database_read_only while writes would fail
        db.check_writable()
        return HealthAnswer(status="ok", service=name, version=version, writes="ok")

    for router in routers:
        app.include_router(router)
    return app

"""Complete OpenAPI documents: every route's refusals, security schemes, docs served locally.

A route declares the typed errors it can answer with, next to its decorator::

    @router.post("/deposit", responses=errors(DEPOSIT_REFUSALS, DoubleSpendError))

:func:`errors` turns error classes (or :func:`err` entries, for a class raised under another
code) into FastAPI ``responses``: one entry per HTTP status, the ``ErrorBody`` schema, a
description listing the codes and one example ``{code, message, detail}`` body per code. The
classes carry their own ``code`` and ``http_status``, so the document cannot disagree with what
the error handler sends. :func:`complete_openapi` then adds what every route shares and that
the framework, not the route, decides: FastAPI's 422 becomes the 400 ``input.invalid`` /
``encoding.invalid`` it really is, a route with a body can get 413 ``input.too_large``, and
any route 500 ``internal.error``.

Why examples per code rather than one per status: clients branch on ``code`` (never on the
message), so the list of codes is the contract; Swagger UI and ReDoc show each example by name.

Bearer-token routes declare :func:`bearer` as a dependency: it changes nothing at run time
(the route keeps checking its own token, constant-time, with its own error codes) but puts
the HTTP bearer security scheme into the document. :func:`install_docs` serves Swagger UI at
``/docs`` and ReDoc at ``/redoc`` from the assets bundled in the ``fastapi-offline`` wheel, so
the pages work on a machine without internet access.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeAlias

from fastapi import FastAPI, Request, Security
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from ecash_tpm.crypto.bn256 import (
    PointAtInfinityError,
    PointEncodingError,
    PointNotOnCurveError,
    ScalarEncodingError,
    ScalarRangeError,
)
from ecash_tpm.crypto.signing import (
    CanonicalEncodingError,
    PublicKeyError,
    SignatureInvalidError,
    SignedObjectError,
    WrongKindError,
)
from ecash_tpm.errors import EcashError, EncodingError, InputError
from ecash_tpm.pki import (
    CertificateExpiredError,
    CertificateMalformedError,
    CertificateRevokedError,
    CertificateUntrustedError,
    CertificateWrongNameError,
    CertificateWrongRoleError,
    CrlInvalidError,
    CrlStaleError,
    CrlUnavailableError,
)
from ecash_tpm.protocol.api.base import ErrorBody
from ecash_tpm.service.errors import BodyReadTimeoutError, PayloadTooLargeError, RemoteCallError
from ecash_tpm.storage import StorageBusyError, StorageUnavailableError

__all__ = [
    "CERT_ERRORS",
    "POINT_ERRORS",
    "REMOTE_ERRORS",
    "SIGNED_OBJECT_ERRORS",
    "STORAGE_ERRORS",
    "ErrorDoc",
    "ErrorSpec",
    "bearer",
    "complete_openapi",
    "documented_codes",
    "err",
    "error_docs",
    "errors",
    "family",
    "install_docs",
]

JSON = "application/json"
DOCS_ASSETS = "/docs/assets"


@dataclass(frozen=True, slots=True)
class ErrorDoc:
    """One documented refusal: its stable code, HTTP status and an example body."""

    code: str
    status: int
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    retry_after: bool = False

    def example(self) -> dict[str, Any]:
        """The OpenAPI Example Object for this code."""
        return {
            "summary": self.message,
            "value": {"code": self.code, "message": self.message, "detail": dict(self.detail)},
        }


ErrorSpec: TypeAlias = type[EcashError] | ErrorDoc | Iterable["ErrorSpec"]
"""What a route lists: error classes, :func:`err` entries, or groups (tuples) of them."""


def _first_line(cls: type[EcashError]) -> str:
    doc = inspect.getdoc(cls) or ""
    line = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return line.rstrip(".") or cls.__name__


def err(
    cls: type[EcashError],
    code: str | None = None,
    *,
    status: int | None = None,
    message: str | None = None,
    detail: Mapping[str, Any] | None = None,
    retry_after: bool = False,
) -> ErrorDoc:
    """``cls`` as documented when raised as ``cls(..., code=code)`` or recoded to ``code``
    (status from the class unless given); ``message``/``detail`` for the example body."""
    return ErrorDoc(
        code=code or cls.code,
        status=status or cls.http_status,
        message=message or _first_line(cls),
        detail=dict(detail or {}),
        retry_after=retry_after,
    )


def family(base: type[EcashError], *, include_base: bool = False) -> tuple[type[EcashError], ...]:
    """Every subclass of ``base``, private ones aside (for a verifier that raises a whole
    family, e.g. the EK chain checks): a new leaf class is documented without a new line."""
    found: list[type[EcashError]] = [base] if include_base else []
    todo = list(base.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if cls not in found and not cls.__name__.startswith("_"):
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return tuple(sorted(found, key=lambda c: (c.http_status, c.code)))


def error_docs(*specs: ErrorSpec) -> list[ErrorDoc]:
    """The flat list of documented errors (the first entry for a (status, code) wins)."""
    out: dict[tuple[int, str], ErrorDoc] = {}

    def add(spec: ErrorSpec) -> None:
        if isinstance(spec, ErrorDoc):
            out.setdefault((spec.status, spec.code), spec)
        elif isinstance(spec, type):
            if not issubclass(spec, EcashError):
                raise TypeError(f"{spec!r} is not an EcashError class")
            doc = err(spec)
            out.setdefault((doc.status, doc.code), doc)
        else:
            for item in spec:
                add(item)

    for spec in specs:
        add(spec)
    return list(out.values())


def _describe(docs: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(f"- `{d['value']['code']}`: {d['summary']}" for d in docs)


def errors(*specs: ErrorSpec, storage: bool = True) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` documenting ``specs`` (plus :data:`STORAGE_ERRORS` unless the
    route never touches the database), grouped by HTTP status, one example per code."""
    docs = error_docs(*specs, *(STORAGE_ERRORS if storage else ()))
    by_status: dict[int, list[ErrorDoc]] = {}
    for doc in docs:
        by_status.setdefault(doc.status, []).append(doc)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        group = sorted(by_status[status], key=lambda d: d.code)
        examples = {d.code: d.example() for d in group}
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": _describe(examples.values()),
            "content": {JSON: {"examples": examples}},
        }
        if any(d.retry_after for d in group):
            entry["headers"] = {"Retry-After": _RETRY_AFTER}
        responses[status] = entry
    return responses


_RETRY_AFTER = {
    "description": "Seconds to wait before retrying (sent when `detail.retry_after` is set)",
    "schema": {"type": "integer", "minimum": 0},
}

# --- groups every party shares ------------------------------------------------------------------

STORAGE_ERRORS: tuple[ErrorDoc, ...] = (
    err(StorageBusyError, retry_after=True, detail={"retry_after": 1}),
    err(StorageUnavailableError),
)
"""The database is locked/serialisation failed (retry) or cannot be reached."""

CERT_ERRORS: tuple[ErrorSpec, ...] = (
    CertificateMalformedError,
    CertificateUntrustedError,
    CertificateExpiredError,
    err(CertificateExpiredError, "cert.not_yet_valid", message="certificate is not valid yet"),
    CertificateWrongRoleError,
    CertificateWrongNameError,
    CertificateRevokedError,
    CrlInvalidError,
    CrlStaleError,
    CrlUnavailableError,
    PublicKeyError,
)
"""``verify_party_certificate``: a party certificate beside a signed object is not acceptable."""

SIGNED_OBJECT_ERRORS: tuple[ErrorSpec, ...] = (
    SignedObjectError,
    WrongKindError,
    SignatureInvalidError,
    CanonicalEncodingError,
)
"""``verify_object``: the ``{kind, body, signature, signer}`` document does not verify."""

POINT_ERRORS: tuple[ErrorSpec, ...] = (
    PointEncodingError,
    PointNotOnCurveError,
    PointAtInfinityError,
    ScalarEncodingError,
    ScalarRangeError,
)
"""Curve points and scalars in a body that do not decode."""

REMOTE_ERRORS: tuple[ErrorSpec, ...] = (
    err(
        RemoteCallError,
        "remote.unreachable",
        status=502,
        message="cannot reach the other party (a 502 may also carry that party's own code)",
        detail={"url": "http://...", "outcome_unknown": False},
    ),
    err(
        RemoteCallError,
        "remote.timeout",
        status=504,
        message="no answer in time: the outcome is unknown, retry with the same idempotency key",
        detail={"url": "http://...", "outcome_unknown": True},
    ),
    err(
        RemoteCallError,
        "remote.bad_response",
        status=502,
        message="the other party answered with an unexpected body",
    ),
)
"""Another party this route calls could not be reached or answered badly."""

_VALIDATION = (
    err(
        InputError,
        message="invalid request",
        detail={"errors": [{"loc": ["body", "x"], "type": "missing", "msg": "Field required"}]},
    ),
    err(
        EncodingError,
        message="invalid base64url",
        detail={"errors": [{"loc": ["body", "x"], "type": "encoding_invalid", "msg": "..."}]},
    ),
)
_TOO_LARGE = err(PayloadTooLargeError, message="request body too large")
_READ_TIMEOUT = err(BodyReadTimeoutError, message="the request body was not sent in time")
_INTERNAL = err(EcashError, message="internal error")


# --- security --------------------------------------------------------------------------------


def bearer(scheme_name: str, description: str) -> Any:
    """A documentation-only ``Authorization: Bearer`` dependency named ``scheme_name``.

    ``auto_error=False``: it never refuses a request; the route's own check does, with its
    own codes (listed in its ``errors``).
    """
    scheme = HTTPBearer(scheme_name=scheme_name, description=description, auto_error=False)
    return Security(scheme)


# --- the document --------------------------------------------------------------------------


def _merge(responses: dict[str, Any], docs: Iterable[ErrorDoc], schema_ref: str) -> None:
    for doc in docs:
        key = str(doc.status)
        entry = responses.setdefault(key, {"description": ""})
        content = entry.setdefault("content", {}).setdefault(JSON, {})
        content.setdefault("schema", {"$ref": schema_ref})
        content.setdefault("examples", {}).setdefault(doc.code, doc.example())
        if doc.retry_after:
            entry.setdefault("headers", {})["Retry-After"] = dict(_RETRY_AFTER)


def _finish_errors(operation: dict[str, Any], schema_ref: str) -> None:
    """Shared refusals for one operation, then descriptions rebuilt from the examples."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    had_validation = responses.pop("422", None) is not None
    shared: list[ErrorDoc] = []
    if had_validation or "requestBody" in operation:
        shared.extend(_VALIDATION if "requestBody" in operation else _VALIDATION[:1])
    if "requestBody" in operation:
        shared.append(_TOO_LARGE)
        shared.append(_READ_TIMEOUT)
    shared.append(_INTERNAL)
    _merge(responses, shared, schema_ref)
    for status, entry in responses.items():
        if not status.isdigit() or int(status) < 400:
            continue
        examples = entry.get("content", {}).get(JSON, {}).get("examples", {})
        ordered = dict(sorted(examples.items()))
        if ordered:
            entry["content"][JSON]["examples"] = ordered
            entry["description"] = _describe(ordered.values())


def complete_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every error status, code and example filled in."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    schema_ref = "#/components/schemas/ErrorBody"
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in {"get", "put", "post", "delete", "patch"} and isinstance(operation, dict):
                _finish_errors(operation, schema_ref)
    text = json.dumps(schema.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}" not in text:
            schemas.pop(name, None)
    return schema


def documented_codes(schema: Mapping[str, Any], path: str, method: str) -> dict[str, set[str]]:
    """``{status: codes}`` that ``schema`` documents for one operation (tests and clients)."""
    operation = schema.get("paths", {}).get(path, {}).get(method.lower(), {})
    out: dict[str, set[str]] = {}
    for status, entry in operation.get("responses", {}).items():
        examples = entry.get("content", {}).get(JSON, {}).get("examples", {})
        if examples:
            out[status] = set(examples)
    return out


# --- /docs and /redoc from the package --------------------------------------------------------


def _assets_dir() -> str:
    return str(resources.files("fastapi_offline") / "static")


def install_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with assets served by this app.

    The pages reference nothing outside the service (no CDN, no fonts, no validator badge).
    """
    app.mount(DOCS_ASSETS, StaticFiles(directory=_assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

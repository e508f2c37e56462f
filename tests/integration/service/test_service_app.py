"""The app factory over real HTTP (uvicorn on 127.0.0.1 via running_server) and TestClient:
error bodies, Retry-After, validation errors, body size limit, base64url fields, request ids,
health, OpenAPI, lifespan with migrations, and the server helper's clean shutdown."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.testclient import TestClient
from pydantic import Field

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.errors import ConflictError, EncodingError, InputError
from ecash_tpm.protocol.api.base import ApiModel, B64Bytes, validate_model
from ecash_tpm.service.app import create_app, get_db
from ecash_tpm.service.logs import (
    LOGGER_NAMES,
    JsonFormatter,
    configure_logging,
    current_request_id,
)
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.storage import Database, SchemaTooNewError, sqlite_url

MAX_BODY = 1024


class DoubleSpendError(ConflictError):
    code = "bank.double_spend"


class CoinLockedError(ConflictError):
    code = "bank.coin_locked"


class Item(ApiModel):
    name: str = Field(min_length=1)
    blob: B64Bytes
    tag: Annotated[B64Bytes, Field(min_length=4, max_length=4)] | None = None


class NewAccount(ApiModel):
    name: str


def make_router() -> APIRouter:
    router = APIRouter()

    @router.post("/echo")
    def echo(item: Item) -> Item:
        return item

    @router.post("/double-spend")
    def double_spend() -> None:
        raise DoubleSpendError(
            "coin already spent", detail={"transcript_id": 42, "sigma": b"\x00\x01"}
        )

    @router.post("/locked")
    def locked() -> None:
        raise CoinLockedError(
            "coin is being checked by another merchant", detail={"retry_after": 2.5}
        )

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal path /etc/shadow")

    @router.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    @router.get("/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        return {"state": request.state.request_id, "context": current_request_id()}

    @router.post("/accounts")
    def create_account(
        body: NewAccount, db: Annotated[Database, Depends(get_db)]
    ) -> dict[str, int]:
        with db.transaction() as tx:
            account_id = tx.insert_returning_id(
                "INSERT INTO account (name) VALUES (:name)", {"name": body.name}
            )
        return {"id": account_id}

    return router


ACCOUNT_MIGRATIONS = [(1, "accounts", "CREATE TABLE account (id {pk}, name TEXT NOT NULL UNIQUE)")]


def make_app(tmp: Path, **kwargs: Any) -> Any:
    settings = ServiceSettings(data_dir=tmp, max_body_bytes=MAX_BODY)
    return create_app("testsvc", settings=settings, routers=[make_router()], **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = make_app(tmp_path_factory.mktemp("svc"), migrations=ACCOUNT_MIGRATIONS)
    with running_server(app) as base_url:
        yield base_url


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as client:
        yield client


# --- errors -----------------------------------------------------------------------------------


def test_ecash_error_becomes_typed_body(http: httpx.Client) -> None:
    r = http.post("/double-spend")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "code": "bank.double_spend",
        "message": "coin already spent",
        "detail": {"transcript_id": 42, "sigma": "AAE"},  # bytes in detail -> base64url
    }
    assert "retry-after" not in r.headers


def test_retry_after_header_from_detail(http: httpx.Client) -> None:
    r = http.post("/locked")
    assert r.status_code == 409
    assert r.json()["code"] == "bank.coin_locked"
    assert r.headers["retry-after"] == "3"  # ceil(2.5)


def test_validation_error_body_shape(http: httpx.Client) -> None:
    r = http.post("/echo", json={"blob": "AAE", "extra": 1})
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"code", "message", "detail"}
    assert body["code"] == "input.invalid"
    errors = body["detail"]["errors"]
    locs = sorted(tuple(e["loc"]) for e in errors)
    assert locs == [("body", "extra"), ("body", "name")]
    assert all(set(e) == {"loc", "type", "msg"} for e in errors)  # no echo of the input


def test_malformed_json_is_input_invalid(http: httpx.Client) -> None:
    r = http.post("/echo", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["code"] == "input.invalid"


def test_unexpected_exception_is_500_without_internals(http: httpx.Client) -> None:
    r = http.get("/boom")
    assert r.status_code == 500
    body = r.json()
    assert body == {
        "code": "internal.error",
        "message": "internal error",
        "detail": {"request_id": r.headers["x-request-id"]},
    }
    assert "secret" not in r.text and "shadow" not in r.text


def test_unknown_route_and_method_keep_the_shape(http: httpx.Client) -> None:
    r = http.get("/no/such/route")
    assert r.status_code == 404
    assert r.json()["code"] == "http.not_found"
    r = http.get("/echo")
    assert r.status_code == 405
    assert r.json()["code"] == "http.method_not_allowed"
    assert "POST" in r.headers["allow"]


# --- body size limit ----------------------------------------------------------------------------


def test_body_within_limit_passes(http: httpx.Client) -> None:
    assert http.post("/raw", content=b"x" * MAX_BODY).json() == {"n": MAX_BODY}


def test_oversized_body_with_content_length(http: httpx.Client) -> None:
    r = http.post("/raw", content=b"x" * (MAX_BODY + 1))
    assert r.status_code == 413
    assert r.json()["code"] == "input.too_large"
    assert r.json()["detail"]["max_bytes"] == MAX_BODY


def test_oversized_chunked_body_without_content_length(http: httpx.Client) -> None:
    seen: dict[str, Any] = {}

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 512

    def remember(request: httpx.Request) -> None:
        seen["headers"] = dict(request.headers)

    with httpx.Client(
        base_url=str(http.base_url), timeout=10, event_hooks={"request": [remember]}
    ) as client:
        r = client.post("/raw", content=chunks())
        assert "content-length" not in seen["headers"]
        assert seen["headers"]["transfer-encoding"] == "chunked"
        assert r.status_code == 413
        assert r.json()["code"] == "input.too_large"
        small = client.post("/raw", content=iter([b"a" * 300, b"b" * 300]))
        assert small.json() == {"n": 600}


# --- base64url bytes ----------------------------------------------------------------------------


def test_b64bytes_round_trip(http: httpx.Client) -> None:
    payload = bytes(range(256))
    sent = {"name": "x", "blob": b64u_encode(payload), "tag": b64u_encode(b"\xff\xfe\xfd\xfc")}
    r = http.post("/echo", json=sent)
    assert r.status_code == 200
    assert r.json() == sent
    item = Item.model_validate(sent)
    assert item.blob == payload
    assert item.model_dump()["blob"] == payload  # Python mode keeps bytes
    assert item.model_dump(mode="json")["blob"] == sent["blob"]
    assert Item(name="n", blob=b"\x00").model_dump_json() == '{"name":"n","blob":"AA","tag":null}'


@pytest.mark.parametrize(
    "bad",
    [
        "AAE=",  # padding is not canonical
        "+/8",  # standard alphabet
        "AA E",  # whitespace
        "A",  # impossible length
        "AB",  # non-zero trailing bits (non-canonical)
        "éé",  # not ASCII
        17,  # not a string
    ],
)
def test_b64bytes_rejects_non_canonical(http: httpx.Client, bad: Any) -> None:
    r = http.post("/echo", json={"name": "x", "blob": bad})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "encoding.invalid"
    assert body["detail"]["errors"][0]["loc"] == ["body", "blob"]
    with pytest.raises(EncodingError) as info:
        validate_model(Item, {"name": "x", "blob": bad})
    assert info.value.code == "encoding.invalid"


def test_b64bytes_length_limits_apply_to_decoded_bytes(http: httpx.Client) -> None:
    r = http.post("/echo", json={"name": "x", "blob": "", "tag": b64u_encode(b"abc")})
    assert r.status_code == 400
    assert r.json()["code"] == "input.invalid"
    with pytest.raises(InputError) as info:
        validate_model(Item, {"name": "", "blob": "AA"})
    assert info.value.code == "input.invalid"


# --- request ids, health, OpenAPI, database ---------------------------------------------------


def test_request_id_is_echoed_and_visible_to_handlers(http: httpx.Client) -> None:
    r = http.get("/whoami", headers={"X-Request-ID": "abc-123.x_y"})
    assert r.headers["x-request-id"] == "abc-123.x_y"
    assert r.json() == {"state": "abc-123.x_y", "context": "abc-123.x_y"}
    r = http.get("/whoami", headers={"X-Request-ID": "bad id\twith junk"})
    generated = r.headers["x-request-id"]
    assert generated != "bad id\twith junk" and len(generated) == 32
    assert r.json()["context"] == generated


def test_healthz(http: httpx.Client) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["service"] == "testsvc"


def test_openapi_documents_error_body(http: httpx.Client) -> None:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert "ErrorBody" in schema["components"]["schemas"]
    assert '"422"' not in json.dumps(schema)
    echo = schema["paths"]["/echo"]["post"]["responses"]
    assert echo["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    item_schema = schema["components"]["schemas"]["Item"]["properties"]["blob"]
    assert item_schema["contentEncoding"] == "base64url"


def test_database_from_lifespan_and_unique_violation_409(http: httpx.Client) -> None:
    r = http.post("/accounts", json={"name": "alice"})
    assert r.status_code == 200
    assert isinstance(r.json()["id"], int)
    r = http.post("/accounts", json={"name": "alice"})
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "storage.unique_violation"
    assert body["detail"]["table"] == "account"


def test_startup_failure_reraises_typed_error(tmp_path: Path) -> None:
    with Database.open(sqlite_url(tmp_path / "service.db")) as db:  # the default file
        db.migrate(
            [*ACCOUNT_MIGRATIONS, (2, "more", "CREATE TABLE more (id BIGINT)")],
            component="testsvc",
        )
    app = make_app(tmp_path, migrations=ACCOUNT_MIGRATIONS)
    before = set(threading.enumerate())
    with pytest.raises(SchemaTooNewError), running_server(app):
        pass  # pragma: no cover
    assert app.state.startup_error is not None
    time.sleep(0.05)
    assert set(threading.enumerate()) <= before


def test_lifespan_hooks_and_db_closed_after_shutdown(tmp_path: Path) -> None:
    calls: list[str] = []

    async def async_start(app: Any) -> None:
        calls.append("async-start")
        app.state.ledger = "ready"

    app = make_app(
        tmp_path,
        migrations=ACCOUNT_MIGRATIONS,
        on_startup=[lambda app: calls.append("start"), async_start],
        on_shutdown=[lambda app: calls.append("stop-1"), lambda app: calls.append("stop-2")],
    )
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert app.state.ledger == "ready"
        assert app.state.db.backend == "sqlite"
        assert client.post("/accounts", json={"name": "bob"}).status_code == 200
    assert calls == ["start", "async-start", "stop-2", "stop-1"]
    assert app.state.db is None


def test_route_needing_db_without_one_is_a_503(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        r = client.post("/accounts", json={"name": "x"})
    assert r.status_code == 503
    assert r.json()["code"] == "storage.unavailable"


def test_testclient_errors_match_real_http(tmp_path: Path) -> None:
    with TestClient(make_app(tmp_path)) as client:
        assert client.post("/double-spend").json()["code"] == "bank.double_spend"
        assert client.get("/boom").json()["code"] == "internal.error"
        assert client.post("/raw", content=b"z" * (MAX_BODY + 1)).status_code == 413


# --- logging ----------------------------------------------------------------------------------


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    saved = {
        name: (logging.getLogger(name).level, logging.getLogger(name).propagate, None)
        for name in LOGGER_NAMES
    }
    handlers = {name: list(logging.getLogger(name).handlers) for name in LOGGER_NAMES}
    yield
    for name, (level, propagate, _) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers[name]


def test_access_log_is_json_with_request_id(tmp_path: Path, restore_loggers: None) -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    configure_logging("info", stream=stream)  # idempotent: no duplicate lines
    with TestClient(make_app(tmp_path)) as client:
        client.get("/whoami", headers={"X-Request-ID": "req-1"})
        client.get("/boom", headers={"X-Request-ID": "req-2"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [rec for rec in lines if rec["msg"] == "request"]
    assert [(r["request_id"], r["status"], r["path"]) for r in access] == [
        ("req-1", 200, "/whoami"),
        ("req-2", 500, "/boom"),
    ]
    assert all(r["service"] == "testsvc" and r["duration_ms"] >= 0 for r in access)
    crash = [rec for rec in lines if rec["msg"] == "unhandled exception"]
    assert len(crash) == 1 and crash[0]["request_id"] == "req-2"
    assert "RuntimeError" in crash[0]["exc"]


def test_json_formatter_extra_fields() -> None:
    record = logging.LogRecord("ecash_tpm.x", logging.WARNING, __file__, 1, "hi %s", ("you",), None)
    record.amount = 5
    record.sigma = b"\x00\x01"
    out = json.loads(JsonFormatter().format(record))
    assert out["msg"] == "hi you" and out["level"] == "warning"
    assert out["amount"] == 5 and out["sigma"] == "AAE"


# --- the server helper ------------------------------------------------------------------------


def test_running_server_stops_and_leaves_no_thread(tmp_path: Path) -> None:
    # Threads of earlier tests (idle AnyIO workers) may end meanwhile: compare only new ones.
    before = set(threading.enumerate())

    def started_since() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t not in before and t.is_alive()}

    app = make_app(tmp_path, migrations=ACCOUNT_MIGRATIONS)
    with running_server(app) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        port = int(base_url.rsplit(":", 1)[1])
        with httpx.Client(base_url=base_url) as client:  # keep-alive connection stays open
            for _ in range(5):
                assert client.get("/whoami").status_code == 200  # sync route: worker thread
            assert started_since()
    assert started_since() == set()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    assert app.state.db is None  # lifespan shutdown ran

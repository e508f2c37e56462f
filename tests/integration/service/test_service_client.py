"""ServiceClient against a real uvicorn server on 127.0.0.1 and against mock transports:
remote error bodies come back as RemoteCallError with the remote code/status/detail; transport
failures get remote.unreachable / remote.timeout; malformed answers remote.bad_response."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.errors import ConflictError, RemoteError
from ecash_tpm.protocol.api.base import ApiModel, B64Bytes
from ecash_tpm.service.app import create_app
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.logs import current_request_id
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import ServiceSettings


class DoubleSpendError(ConflictError):
    code = "bank.double_spend"


class Coin(ApiModel):
    sigma: B64Bytes
    value: int


class Receipt(ApiModel):
    receipt: B64Bytes
    value: int


def make_app(tmp: Path) -> Any:
    router = APIRouter()

    @router.post("/deposit")
    def deposit(coin: Coin) -> Receipt:
        if coin.value == 0:
            raise DoubleSpendError(
                "coin already deposited",
                detail={"transcript_id": 7, "retry_after": 4},
            )
        return Receipt(receipt=coin.sigma[::-1], value=coin.value)

    @router.get("/coin")
    def coin(sigma: str) -> Coin:
        return Coin(sigma=b"\x01\x02", value=len(sigma))

    @router.get("/slow")
    def slow() -> dict[str, str]:
        time.sleep(1.0)
        return {}

    @router.get("/whoami")
    def whoami() -> dict[str, Any]:
        return {"request_id": current_request_id()}

    @router.get("/relay")
    def relay(request: Request) -> dict[str, Any]:
        with ServiceClient(str(request.base_url), timeout=5) as client:
            return {"mine": current_request_id(), "theirs": client.get_json("/whoami")}

    settings = ServiceSettings(data_dir=tmp)
    return create_app("bank", settings=settings, routers=[router])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(make_app(tmp_path_factory.mktemp("client"))) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[ServiceClient]:
    with ServiceClient(base_url, timeout=5) as c:
        yield c


def test_success_with_bytes_and_models(client: ServiceClient) -> None:
    out = client.post_json("/deposit", {"sigma": b"\xaa\xbb", "value": 5})
    assert out == {"receipt": "u6o", "value": 5}
    receipt = client.post_json("/deposit", Coin(sigma=b"\x00", value=1), response_model=Receipt)
    assert receipt == Receipt(receipt=b"\x00", value=1)
    coin = client.get_json("/coin", params={"sigma": "abc"}, response_model=Coin)
    assert coin == Coin(sigma=b"\x01\x02", value=3)


def test_remote_error_keeps_code_status_detail(client: ServiceClient, base_url: str) -> None:
    with pytest.raises(RemoteCallError) as info:
        client.post_json("/deposit", {"sigma": b"\x01", "value": 0})
    err = info.value
    assert isinstance(err, RemoteError)
    assert err.code == "bank.double_spend"
    assert err.status == 409
    assert err.message == "coin already deposited"
    assert err.detail == {"transcript_id": 7, "retry_after": 4}
    assert err.url == base_url + "/deposit"
    assert err.http_status == 502  # if re-raised by a service, it is an upstream failure


def test_remote_validation_error_and_404(client: ServiceClient) -> None:
    with pytest.raises(RemoteCallError) as info:
        client.post_json("/deposit", {"sigma": "AAE=", "value": 1})
    assert (info.value.code, info.value.status) == ("encoding.invalid", 400)
    with pytest.raises(RemoteCallError) as info:
        client.get_json("/nope")
    assert (info.value.code, info.value.status) == ("http.not_found", 404)


def test_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with (
        ServiceClient(f"http://127.0.0.1:{port}", timeout=2) as c,
        pytest.raises(RemoteCallError) as info,
    ):
        c.get_json("/healthz")
    assert info.value.code == "remote.unreachable"
    assert info.value.status is None
    assert info.value.detail["outcome_unknown"] is False


def test_timeout_is_distinct(base_url: str) -> None:
    with ServiceClient(base_url, timeout=0.2) as c, pytest.raises(RemoteCallError) as info:
        c.get_json("/slow")
    assert info.value.code == "remote.timeout"
    assert info.value.http_status == 504
    assert info.value.detail["outcome_unknown"] is True


def test_request_id_is_forwarded(client: ServiceClient) -> None:
    out = client.get_json("/relay", headers={"X-Request-ID": "pay-42"})
    assert out == {"mine": "pay-42", "theirs": {"request_id": "pay-42"}}


def _mock(handler: Any) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def test_non_conforming_error_body_is_bad_response() -> None:
    transport = _mock(lambda req: httpx.Response(502, text="<html>bad gateway</html>"))
    with (
        ServiceClient("http://bank.test", transport=transport) as c,
        pytest.raises(RemoteCallError) as info,
    ):
        c.get_json("/x")
    assert (info.value.code, info.value.status) == ("remote.bad_response", 502)


def test_invalid_success_bodies_are_bad_responses() -> None:
    transport = _mock(lambda req: httpx.Response(200, text="not json"))
    with (
        ServiceClient("http://bank.test", transport=transport) as c,
        pytest.raises(RemoteCallError) as info,
    ):
        c.get_json("/x")
    assert info.value.code == "remote.bad_response"
    transport = _mock(lambda req: httpx.Response(200, json={"sigma": "AAE=", "value": 1}))
    with (
        ServiceClient("http://bank.test", transport=transport) as c,
        pytest.raises(RemoteCallError) as info,
    ):
        c.get_json("/x", response_model=Coin)
    assert info.value.code == "remote.bad_response"
    assert info.value.detail["errors"][0]["loc"] == ["sigma"]


def test_retry_after_header_lands_in_detail() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        body = {"code": "bank.coin_locked", "message": "locked", "detail": {}}
        return httpx.Response(409, json=body, headers={"Retry-After": "30"})

    with (
        ServiceClient("http://bank.test", transport=_mock(handler)) as c,
        pytest.raises(RemoteCallError) as info,
    ):
        c.post_json("/reserve", {})
    assert info.value.detail == {"retry_after": 30}


def test_request_encoding() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(204)

    with ServiceClient("http://bank.test/", transport=_mock(handler)) as c:
        assert c.post_json("/a", {"k": b"\xff", "nested": [{"b": b"\x00"}]}) is None
        assert c.post_json("/b") is None
    first, second = seen
    assert json.loads(first.content) == {"k": "_w", "nested": [{"b": "AA"}]}
    assert first.headers["content-type"] == "application/json"
    assert "x-request-id" not in first.headers  # no request being served here
    assert str(first.url) == "http://bank.test/a"
    assert second.content == b"null"

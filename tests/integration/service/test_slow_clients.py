"""Half-sent requests over TLS (issue 10, attack 9): a connection that never completes its
request head is closed after the header timeout, a stalled body gets 408, and the server keeps
answering everyone else meanwhile."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Request

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.pki import tls_identity
from ecash_tpm.service.app import create_app
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.service.tls import TlsFiles, client_context

TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("slow")
    with CentralBankCA.create(base / "ca") as ca:
        root = base / "root.pem"
        root.write_bytes(ca.root_pem())
        key = PartyKey.generate()
        cert = ca.certify_tls("bank", "bank-1", key.public_key, hosts=("127.0.0.1",))
        cert_path, key_path = base / "tls-cert.pem", base / "tls-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key.save(key_path, overwrite=True)
        router = APIRouter()

        @router.post("/echo")
        async def echo(request: Request) -> dict[str, int]:
            return {"size": len(await request.body())}

        settings = ServiceSettings(data_dir=base / "data", body_read_timeout_s=TIMEOUT_S)
        app = create_app("bank", settings=settings, routers=[router])
        files = TlsFiles(cert=cert_path, key=key_path, root=root, header_timeout_s=TIMEOUT_S)
        with running_server(app, tls=files) as url:
            yield url, root


def _connect(url: str, root: Path) -> ssl.SSLSocket:
    parts = urlsplit(url)
    raw = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 443), 5)
    return client_context(root).wrap_socket(raw, server_hostname=tls_identity("bank", "bank-1"))


def _read_until_closed(conn: ssl.SSLSocket, timeout: float) -> bytes:
    conn.settimeout(timeout)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except (TimeoutError, ssl.SSLError, ConnectionError):
        return data + b"<timeout>"
    return data


def _healthy(url: str, root: Path) -> Any:
    with _connect(url, root) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_until_closed(conn, 5.0)


def test_half_sent_head_is_dropped(served: tuple[str, Path]) -> None:
    url, root = served
    with _connect(url, root) as slow:
        slow.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le")
        started = time.monotonic()
        assert _healthy(url, root).startswith(b"HTTP/1.1 200")  # others are served meanwhile
        answer = _read_until_closed(slow, 5.0)
        waited = time.monotonic() - started
    assert answer == b""  # closed without an answer (there is no request to answer)
    assert waited < TIMEOUT_S + 3.0


def test_idle_connection_is_dropped(served: tuple[str, Path]) -> None:
    url, root = served
    with _connect(url, root) as idle:
        started = time.monotonic()
        assert _read_until_closed(idle, 5.0) == b""
        assert time.monotonic() - started < TIMEOUT_S + 3.0


def test_stalled_body_gets_408(served: tuple[str, Path]) -> None:
    url, root = served
    with _connect(url, root) as slow:
        slow.sendall(b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"')
        answer = _read_until_closed(slow, 5.0)
    assert answer.startswith(b"HTTP/1.1 408") and b'"input.read_timeout"' in answer


def test_prompt_client_is_unaffected(served: tuple[str, Path]) -> None:
    url, root = served
    with _connect(url, root) as conn:
        body = b'{"x": 1}'
        conn.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
            b"application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        answer = _read_until_closed(conn, 5.0)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"size":8}')

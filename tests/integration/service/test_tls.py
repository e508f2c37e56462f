"""TLS between parties, against real HTTPS servers on 127.0.0.1 (issue 11).

A rogue "bank" that cannot prove it is bank ``bank-1`` of this central bank (self-signed, a
certificate for another role, for another bank, expired, revoked) makes the client raise its
own ``tls.*`` code, and the rogue server records no request: the login never left the client.
Servers refuse TLS 1.2; mutual-TLS routes name their caller (``peer_party``); settings decide
between TLS and ``--insecure-http``; ``/healthz`` answers on a separate plain port.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Request

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.errors import ConfigError
from ecash_tpm.pki import tls_identity
from ecash_tpm.service.app import create_app
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.service.tls import (
    TlsFiles,
    TlsHandshakeError,
    client_context,
    peer_party,
)

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralBankCA]:
    # Backdated, so that an already expired certificate lies within the root's validity.
    with CentralBankCA.create(
        tmp_path_factory.mktemp("tls-cb") / "ca", now=NOW - dt.timedelta(days=30)
    ) as authority:
        yield authority


@pytest.fixture(scope="module")
def root(ca: CentralBankCA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls-root") / "root.pem"
    path.write_bytes(ca.root_pem())
    return path


def _write(directory: Path, cert: x509.Certificate, key: PartyKey) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key.save(key_path, overwrite=True)
    return cert_path, key_path


def _issue(
    ca: CentralBankCA, directory: Path, role: str, name: str, **kwargs: Any
) -> tuple[Path, Path, x509.Certificate]:
    key = PartyKey.generate()
    cert = ca.certify_tls(role, name, key.public_key, hosts=("127.0.0.1",), **kwargs)
    return (*_write(directory, cert, key), cert)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate that names bank-1 exactly right, signed by nobody the client trusts."""
    key = PartyKey.generate()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecash-tpm"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "bank"),
            x509.NameAttribute(NameOID.COMMON_NAME, "bank-1"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(tls_identity("bank", "bank-1"))]),
            critical=False,
        )
        .sign(key.private_key, hashes.SHA256())
    )
    return _write(directory, cert, key)


def _rogue_bank(data_dir: Path, seen: list[str]) -> Any:
    """A 'bank' that records every login attempt reaching it."""
    router = APIRouter()

    @router.post("/login")
    async def login(request: Request) -> dict[str, str]:
        seen.append((await request.body()).decode())
        return {"session": "stolen"}

    @router.get("/merchant-only")
    def merchant_only(request: Request) -> dict[str, str]:
        return {"name": peer_party(request, role="merchant")}

    return create_app("bank", settings=ServiceSettings(data_dir=data_dir), routers=[router])


CREDENTIALS = {"user": "alice", "password": "correct horse", "totp": "123456"}


def _login(url: str, context: ssl.SSLContext) -> Any:
    with ServiceClient(url, tls=context, expect=("bank", "bank-1")) as client:
        return client.post_json("/login", CREDENTIALS)


# --- the wallet refuses rogue banks before it speaks --------------------------------------------


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("self_signed", "tls.untrusted"),
        ("other_role", "tls.wrong_identity"),
        ("other_name", "tls.wrong_identity"),
        ("expired", "tls.expired"),
        ("revoked", "tls.revoked"),
    ],
)
def test_rogue_bank_gets_no_credentials(
    ca: CentralBankCA, root: Path, tmp_path: Path, case: str, code: str
) -> None:
    crl: bytes | None = None
    if case == "self_signed":
        cert, key = _self_signed(tmp_path / "tls")
    elif case == "other_role":
        cert, key, _ = _issue(ca, tmp_path / "tls", "merchant", "bank-1")
    elif case == "other_name":
        cert, key, _ = _issue(ca, tmp_path / "tls", "bank", "bank-2")
    elif case == "expired":
        cert, key, _ = _issue(
            ca,
            tmp_path / "tls",
            "bank",
            "bank-1",
            not_before=NOW - dt.timedelta(days=10),
            valid_days=1,
        )
    else:
        cert, key, issued = _issue(ca, tmp_path / "tls", "bank", "bank-1")
        ca.revoke(issued.serial_number, "keyCompromise")
        crl = ca.crl().public_bytes(serialization.Encoding.PEM)
    seen: list[str] = []
    files = TlsFiles(cert=cert, key=key, root=root)
    with (
        running_server(_rogue_bank(tmp_path / "data", seen), tls=files) as url,
        pytest.raises(TlsHandshakeError) as refused,
    ):
        _login(url, client_context(root, crl=crl))
    assert refused.value.code == code
    assert refused.value.status is None
    assert seen == []  # not one login attempt reached the rogue server


def test_genuine_bank_gets_the_login(ca: CentralBankCA, root: Path, tmp_path: Path) -> None:
    cert, key, issued = _issue(ca, tmp_path / "tls", "bank", "bank-1")
    crl = ca.crl().public_bytes(serialization.Encoding.PEM)
    seen: list[str] = []
    files = TlsFiles(cert=cert, key=key, root=root)
    with running_server(_rogue_bank(tmp_path / "data", seen), tls=files) as url:
        assert url.startswith("https://127.0.0.1:")
        assert _login(url, client_context(root, crl=crl)) == {"session": "stolen"}
    assert len(seen) == 1
    assert issued.serial_number in {c.serial for c in ca.issued()}  # logged like any cert


def test_server_refuses_tls_1_2(ca: CentralBankCA, root: Path, tmp_path: Path) -> None:
    cert, key, _ = _issue(ca, tmp_path / "tls", "bank", "bank-1")
    seen: list[str] = []
    files = TlsFiles(cert=cert, key=key, root=root)
    with running_server(_rogue_bank(tmp_path / "data", seen), tls=files) as url:
        port = int(url.rsplit(":", 1)[1])
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        old.load_verify_locations(cafile=root)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            pytest.raises(ssl.SSLError),
        ):
            old.wrap_socket(raw, server_hostname=tls_identity("bank", "bank-1"))
        # ... and the client side refuses it too, with its own code
        with (
            pytest.raises(TlsHandshakeError) as refused,
            ServiceClient(url, tls=old, expect=("bank", "bank-1")) as client,
        ):
            client.get_json("/healthz")
    assert refused.value.code == "tls.handshake_failed"
    assert seen == []


def test_stale_crl_is_refused(ca: CentralBankCA, root: Path) -> None:
    stale = ca.crl(now=NOW - dt.timedelta(days=20), valid_for=dt.timedelta(days=1))
    with pytest.raises(ConfigError) as refused:
        client_context(root, crl=stale.public_bytes(serialization.Encoding.PEM))
    assert refused.value.code == "tls.crl_stale"


def test_client_needs_tls_for_https_and_https_for_tls(root: Path) -> None:
    with pytest.raises(ConfigError) as no_tls:
        ServiceClient("https://127.0.0.1:1")
    assert no_tls.value.code == "tls.client_unconfigured"
    with pytest.raises(ConfigError) as no_expect:
        ServiceClient("https://127.0.0.1:1", tls=client_context(root))
    assert no_expect.value.code == "tls.client_unconfigured"
    with pytest.raises(ConfigError) as plain:
        ServiceClient("http://127.0.0.1:1", tls=client_context(root), expect=("bank", "b"))
    assert plain.value.code == "tls.client_unconfigured"
    with ServiceClient("http://127.0.0.1:1") as insecure:  # --insecure-http keeps working
        assert insecure.identity is None


# --- mutual TLS: routes that name their caller --------------------------------------------------


@pytest.fixture(scope="module")
def mtls(
    ca: CentralBankCA, root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A bank serving a merchant-only route, with a CRL listing merchant shop-9 (in
    ``<dir>/revoked``); yields (url, dir)."""
    base = tmp_path_factory.mktemp("mtls")
    cert, key, _ = _issue(ca, base / "tls", "bank", "bank-1")
    revoked_cert, _, revoked = _issue(ca, base / "revoked", "merchant", "shop-9")
    ca.revoke(revoked.serial_number)
    crl = base / "crl.pem"
    crl.write_bytes(ca.crl().public_bytes(serialization.Encoding.PEM))
    files = TlsFiles(cert=cert, key=key, root=root, crl=crl)
    with running_server(_rogue_bank(base / "data", []), tls=files) as url:
        yield url, base


def _caller(ca: CentralBankCA, root: Path, directory: Path, role: str, name: str) -> ssl.SSLContext:
    cert, key, _ = _issue(ca, directory, role, name)
    return client_context(root, client=(cert, key))


def test_mtls_route_requires_a_client_certificate(mtls: tuple[str, Path], root: Path) -> None:
    with (
        ServiceClient(mtls[0], tls=client_context(root), expect=("bank", "bank-1")) as c,
        pytest.raises(RemoteCallError) as refused,
    ):
        c.get_json("/merchant-only")
    assert (refused.value.code, refused.value.status) == ("tls.client_certificate_required", 401)


def test_mtls_route_refuses_another_role(
    mtls: tuple[str, Path], ca: CentralBankCA, root: Path, tmp_path: Path
) -> None:
    context = _caller(ca, root, tmp_path, "bank", "bank-2")
    with (
        ServiceClient(mtls[0], tls=context, expect=("bank", "bank-1")) as c,
        pytest.raises(RemoteCallError) as refused,
    ):
        c.get_json("/merchant-only")
    assert (refused.value.code, refused.value.status) == ("tls.client_wrong_role", 403)


def test_mtls_route_names_the_merchant(
    mtls: tuple[str, Path], ca: CentralBankCA, root: Path, tmp_path: Path
) -> None:
    context = _caller(ca, root, tmp_path, "merchant", "shop-1")
    with ServiceClient(mtls[0], tls=context, expect=("bank", "bank-1")) as c:
        assert c.get_json("/merchant-only") == {"name": "shop-1"}
        assert c.get_json("/merchant-only") == {"name": "shop-1"}  # same connection, same peer


def test_mtls_revoked_client_certificate_is_refused(mtls: tuple[str, Path], root: Path) -> None:
    # The server's CRL file (TlsFiles.crl) lists shop-9's TLS certificate.
    revoked = mtls[1] / "revoked"
    context = client_context(root, client=(revoked / "tls-cert.pem", revoked / "tls-key.pem"))
    with (
        ServiceClient(mtls[0], tls=context, expect=("bank", "bank-1")) as c,
        pytest.raises(RemoteCallError) as refused,
    ):
        c.get_json("/merchant-only")
    assert (refused.value.code, refused.value.status) == ("tls.client_revoked", 403)


# --- settings and the plain health port ---------------------------------------------------------


def test_settings_choose_between_tls_and_insecure_http(tmp_path: Path, root: Path) -> None:
    bare = ServiceSettings(data_dir=tmp_path)
    assert bare.tls_cert_file == tmp_path / "tls-cert.pem"
    assert bare.tls_key_file == tmp_path / "tls-key.pem"
    with pytest.raises(ConfigError) as missing:
        bare.tls_files(root)
    assert missing.value.code == "config.tls_missing"
    assert ServiceSettings(data_dir=tmp_path, insecure_http=True).tls_files(root) is None
    elsewhere = ServiceSettings(
        data_dir=tmp_path, insecure_http=True, tls_cert_file=tmp_path / "x" / "cert.pem"
    )
    with pytest.raises(ConfigError) as configured:
        elsewhere.tls_files(root)
    assert configured.value.code == "config.insecure_http_refused"

    (tmp_path / "tls-cert.pem").write_text("cert")
    (tmp_path / "tls-key.pem").write_text("key")
    assert bare.tls_files(root) == TlsFiles(
        cert=tmp_path / "tls-cert.pem", key=tmp_path / "tls-key.pem", root=root
    )
    with pytest.raises(ConfigError) as present:
        ServiceSettings(data_dir=tmp_path, insecure_http=True).tls_files(root)
    assert present.value.code == "config.insecure_http_refused"
    crl = ServiceSettings(data_dir=tmp_path, crl_file=tmp_path / "none.pem")
    with pytest.raises(ConfigError) as no_crl:
        crl.tls_files(root)
    assert no_crl.value.code == "config.tls_missing"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_healthz_on_a_plain_port_and_nothing_else(
    ca: CentralBankCA, root: Path, tmp_path: Path
) -> None:
    cert, key, _ = _issue(ca, tmp_path / "tls", "bank", "bank-1")
    seen: list[str] = []
    health_port = _free_port()
    files = TlsFiles(cert=cert, key=key, root=root)
    app = _rogue_bank(tmp_path / "data", seen)
    with running_server(app, tls=files, healthz_port=health_port) as url:
        plain = f"http://127.0.0.1:{health_port}"
        assert httpx.get(plain + "/healthz").json()["status"] == "ok"
        assert httpx.post(plain + "/login", json=CREDENTIALS).status_code == 404
        with pytest.raises(httpx.TransportError):  # the main port speaks TLS only
            httpx.get(url.replace("https://", "http://") + "/healthz")
    assert seen == []


def test_the_wallet_checks_the_revocation_list_it_holds(
    ca: CentralBankCA, root: Path, tmp_path: Path
) -> None:
    """The wallet's own connection code (not a hand-built context): with the central bank's CRL
    in the wallet directory, a bank whose TLS certificate was revoked gets no login."""
    import argparse

    from ecash_tpm.cli.wallet_cmd import WALLET_CRL_FILE, WALLET_ROOT_FILE, _link

    cert, key, issued = _issue(ca, tmp_path / "tls", "bank", "bank-1")
    ca.revoke(issued.serial_number, "keyCompromise")
    wallet = tmp_path / "wallet"
    wallet.mkdir()
    (wallet / WALLET_ROOT_FILE).write_bytes(root.read_bytes())
    (wallet / WALLET_CRL_FILE).write_bytes(ca.crl().public_bytes(serialization.Encoding.PEM))
    args = argparse.Namespace(data=wallet, insecure_http=False, crl=None)
    seen: list[str] = []
    files = TlsFiles(cert=cert, key=key, root=root)
    with running_server(_rogue_bank(tmp_path / "data", seen), tls=files) as url:
        link = _link(args, url, role="bank", name="bank-1")
        assert link.tls is not None
        with pytest.raises(TlsHandshakeError) as refused:
            _login(url, link.tls)
    assert refused.value.code == "tls.revoked"
    assert seen == []

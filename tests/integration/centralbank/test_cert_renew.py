"""``<party> cert renew``: a new TLS key and certificate from the central bank (issue 11).

The central bank renews its own with its CA (``centralbank cert renew``; ``centralbank init``
issues the first one); every other party asks the running central bank's admin API
(``POST /v1/certify-tls``) over TLS, which checks the central bank's certificate before the
admin token leaves. "Working" is shown the way clients use it: a server on the renewed files
completes a TLS 1.3 handshake with a client that trusts only the root and expects exactly that
role and name.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from support.tls import TlsKit

from ecash_tpm.centralbank.service import create_centralbank_app
from ecash_tpm.centralbank.settings import CentralBankSettings, hash_admin_token
from ecash_tpm.cli import main
from ecash_tpm.pki import ROLES
from ecash_tpm.service.server import running_server
from ecash_tpm.service.tls import TlsFiles, client_context

needs_cb_role = pytest.mark.skipif(
    "centralbank" not in ROLES,
    reason="the central bank's own TLS certificate needs the pki role 'centralbank' (T1)",
)

TOKEN = "admin-token-for-cert-renew-tests-0123456789"


def _works(files: TlsFiles, role: str, name: str) -> None:
    """A server on ``files`` is reachable by a client expecting ``role``/``name`` only."""
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    with running_server(app, tls=files) as url:
        from ecash_tpm.clients.base import ServiceClient

        with ServiceClient(url, tls=client_context(files.root), expect=(role, name)) as client:
            assert client.get_json("/healthz") == {"status": "ok"}
        other = ServiceClient(url, tls=client_context(files.root), expect=(role, "other"))
        with other, pytest.raises(Exception) as err:  # noqa: PT011 - the typed code is checked
            other.get_json("/healthz")
        assert getattr(err.value, "code", None) == "tls.wrong_identity"


@pytest.fixture
def central_bank(tmp_path: Path) -> Iterator[tuple[str, TlsKit]]:
    """A running central bank over TLS with an admin token."""
    kit = TlsKit.create(tmp_path)
    settings = CentralBankSettings(
        data_dir=kit.ca.data_dir, admin_token_sha256=hash_admin_token(TOKEN)
    )
    files = kit.issue("centralbank", "centralbank")
    with running_server(create_centralbank_app(settings), tls=files) as url:
        yield url, kit
    kit.close()


@needs_cb_role
def test_merchant_cert_renew_over_the_admin_api(
    central_bank: tuple[str, TlsKit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, kit = central_bank
    data = tmp_path / "shop"
    data.mkdir()
    (data / "central-bank-root.pem").write_bytes(kit.root.read_bytes())
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    argv = ["merchant", "cert", "renew", "--data", str(data), "--name", "shop-a"]
    argv += ["--central-bank", url, "--admin-token-file", str(token_file), "--hosts", "127.0.0.1"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["identity"] == "shop-a.merchant.parties.ecash-tpm.internal"
    assert stat.S_IMODE((data / "tls-key.pem").stat().st_mode) == 0o600
    first = (data / "tls-cert.pem").read_bytes()
    files = TlsFiles(data / "tls-cert.pem", data / "tls-key.pem", data / "central-bank-root.pem")
    _works(files, "merchant", "shop-a")
    # renewing again gives a new key and certificate
    key_before = (data / "tls-key.pem").read_bytes()
    assert main([*argv, "--json"]) == 0
    capsys.readouterr()
    assert (data / "tls-cert.pem").read_bytes() != first
    assert (data / "tls-key.pem").read_bytes() != key_before
    # a wrong admin token is refused, and nothing is replaced
    token_file.write_text("not-the-token-" * 3)
    assert main([*argv, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "auth.admin_token_invalid"


def test_cert_renew_refuses_plain_http_to_the_central_bank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The admin token never goes over plain HTTP."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    code = main(
        ["ttp", "cert", "renew", "--data", str(tmp_path / "ttp"), "--central-bank",
         "http://127.0.0.1:9", "--admin-token-file", str(token_file), "--json"]
    )  # fmt: skip
    assert code == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "config.insecure_url"


@needs_cb_role
def test_centralbank_init_and_renew_issue_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "cb"
    assert main(["centralbank", "init", "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tls"]["identity"] == "centralbank.centralbank.parties.ecash-tpm.internal"
    files = TlsFiles(data / "tls-cert.pem", data / "tls-key.pem", data / "root-cert.pem")
    _works(files, "centralbank", "centralbank")
    before = files.cert.read_bytes()
    assert main(["centralbank", "cert", "renew", "--data", str(data), "--json"]) == 0
    capsys.readouterr()
    assert files.cert.read_bytes() != before
    _works(files, "centralbank", "centralbank")
    # a plain HTTP central bank is refused while it has a certificate
    assert (
        main(["centralbank", "serve", "--config", _config(tmp_path, data), "--insecure-http"]) == 1
    )
    assert "config.insecure_http_refused" in capsys.readouterr().err


def _config(tmp_path: Path, data: Path) -> str:
    path = tmp_path / "cb.toml"
    path.write_text(f'[centralbank]\ndata_dir = "{data}"\nport = 0\n', encoding="utf-8")
    return str(path)


def test_an_https_url_without_tls_is_refused(tmp_path: Path) -> None:
    """No client falls back to plain HTTP (or the system CA store) for an https URL."""
    from ecash_tpm.clients.centralbank import CentralBankClient

    with pytest.raises(Exception) as err:  # noqa: PT011 - the typed code is checked
        CentralBankClient("https://127.0.0.1:9")
    assert getattr(err.value, "code", None) == "tls.client_unconfigured"

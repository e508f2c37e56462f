"""``merchant serve`` is TLS by default and plain HTTP only on request (issue 11).

Both refusals happen before the port is bound or the database is made, so they run in-process:
without TLS files ``serve`` is ``config.tls_missing`` (naming ``cert renew`` and
``--insecure-http``); ``--insecure-http`` while a TLS certificate is present is
``config.insecure_http_refused`` (a forgotten flag must not serve a certified shop in the clear).
The same code path (``cli.tls_certs.serve_options``) runs for every party's ``serve``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecash_tpm.cli import main

PARTIES = ["centralbank", "issuer", "bank", "merchant", "supervision", "ttp"]


def _serve(capsys: pytest.CaptureFixture[str], party: str, data: Path, *extra: str) -> str:
    """Run ``<party> serve`` on ``data`` (through a config file); the refusal's code."""
    config = data.parent / f"{party}.toml"
    config.write_text(f'[{party}]\ndata_dir = "{data}"\nport = 0\n', encoding="utf-8")
    code = main([party, "serve", "--config", str(config), *extra])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("ecash-tpm: error ["), err
    assert "Traceback" not in err
    return err.split("[", 1)[1].split("]", 1)[0] + " " + err


@pytest.mark.parametrize("party", PARTIES)
def test_serve_without_tls_files_is_refused(
    party: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / party
    data.mkdir()
    got = _serve(capsys, party, data)
    assert got.startswith("config.tls_missing ")
    assert "cert renew" in got and "--insecure-http" in got
    assert not (data / f"{party}.db").exists()  # refused before anything was made


@pytest.mark.parametrize("party", PARTIES)
def test_insecure_http_is_refused_while_a_certificate_is_present(
    party: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / party
    data.mkdir()
    (data / "tls-cert.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    got = _serve(capsys, party, data, "--insecure-http")
    assert got.startswith("config.insecure_http_refused ")


def test_merchant_cli_json_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With ``--json`` the refusal is one JSON object carrying the code."""
    data = tmp_path / "shop"
    code = main(["merchant", "serve", "--data", str(data), "--port", "0", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["error"]["code"] == "config.tls_missing"

"""``ecash-tpm ttp init`` makes a certified TTP whose files ``serve`` loads, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.cli import build_parser, main
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import load_settings
from ecash_tpm.ttp.routes import create_ttp_app
from ecash_tpm.ttp.settings import TtpSettings


def test_init_then_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = CentralBankCA.create(tmp_path / "ca")
    ca.close()
    data = tmp_path / "ttp"
    assert (
        main(["ttp", "init", "--data", str(data), "--ca-dir", str(tmp_path / "ca"), "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["certified"] is True and out["name"] == "ttp"
    assert (data / "ttp-key.pem").stat().st_mode & 0o077 == 0
    # idempotent: the same key is kept
    assert main(["ttp", "init", "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["key_id"] == out["key_id"]

    settings = load_settings(TtpSettings, overrides={"data_dir": data, "port": 0})
    with running_server(create_ttp_app(settings)) as url:
        info = httpx.get(url + "/v1/ttp").json()
        assert info["ttp_id"] == "ttp" and "BEGIN CERTIFICATE" in info["cert"]
        bad = httpx.get(url + "/v1/disputes/d-nope")
        assert bad.status_code == 404 and bad.json()["code"] == "ttp.unknown_dispute"
        assert httpx.get(url + "/v1/products").json()["products"] == []
    assert main(["ttp", "stats", "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counters"] == {}
    build_parser().parse_args(["ttp", "serve", "--bank", "http://127.0.0.1:1"])


def test_serve_without_init_names_the_fix(tmp_path: Path) -> None:
    settings = load_settings(TtpSettings, overrides={"data_dir": tmp_path / "empty", "port": 0})
    with pytest.raises(Exception) as exc, running_server(create_ttp_app(settings)):
        pass
    assert getattr(exc.value, "code", "") == "ttp.not_initialized"

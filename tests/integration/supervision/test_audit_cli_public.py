"""``ecash-tpm supervision audit`` without issuer secrets (docs/protocol.md 7.4): the CLI fetches
the coins' certified epoch keys from the bank (``--bank``, ``GET /v1/issuer-epochs/{epoch}``,
here a stand-in serving the central bank's root-signed documents over real HTTP), checks the
credentials with pairings and says which epochs it checked so; an epoch it cannot get is named
as not checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from support.bankworld import make_world
from support.coinmint import KeyPool, Pki

from ecash_tpm.centralbank.certify import certify_issuer_epoch
from ecash_tpm.cli import main as cli_main
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.service.server import running_server
from ecash_tpm.storage import sqlite_url


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    yield p
    p.close()


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> dict[str, Any]:
    """A bank database with paid coins of epoch 1, closed; its epoch documents."""
    data = tmp_path_factory.mktemp("bank")
    w = make_world(db_url=sqlite_url(data / "bank.db"), data_dir=data, pki=pki, keys=KeyPool(2))
    w.pay(w.customer("alice", 100), "shop-a", 7)  # 5 + 2
    w.bank.ledger_check()
    docs = {
        e: certify_issuer_epoch(pki._ca, "issuer", e, s.public) for e, s in w.issuer.secrets.items()
    }
    (data / "bank.crt").write_text(pki.bank.cert_pem)
    (data / "central-bank-root.pem").write_text(pki.root_pem)
    out = {"data": data, "docs": docs, "hop": b64u_encode(w.issuer.hop.encode())}
    w.db.close()
    return out


def _epoch_app(docs: dict[int, dict[str, Any]]) -> FastAPI:
    """The bank's ``GET /v1/issuer-epochs/{epoch}`` (docs/api.md) and nothing else."""
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/issuer-epochs/{epoch}")
    def epoch_key(epoch: int) -> Any:
        if epoch not in docs:  # the bank's error body (docs/api.md)
            body = {"code": "bank.issuer_epoch_unknown", "message": "no such epoch", "detail": {}}
            return JSONResponse(body, status_code=404)
        return {"certificate": docs[epoch]}

    return app


def _audit(
    bank: dict[str, Any], url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *more: str
) -> tuple[int, str]:
    data = bank["data"]
    argv = [
        "supervision", "audit", "--bank-db", sqlite_url(data / "bank.db"),
        "--bank-data", str(data), "--opener-public", bank["hop"],
        "--data", str(tmp_path / "supervision"), "--bank", url, "--insecure-http", *more,
    ]  # fmt: skip
    code = cli_main(argv)
    return code, capsys.readouterr().out


def test_the_cli_checks_credentials_with_the_banks_certified_epoch_keys(
    bank: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_server(_epoch_app(bank["docs"])) as url:
        code, out = _audit(bank, url, tmp_path, capsys, "--json")
        result = json.loads(out)
        assert code == 0 and result["ok"] is True, result
        assert result["skipped"] == []
        assert result["counts"]["credentials_checked_public"] == 2
        assert result["credential_check"] == {"epochs_public": [1], "epochs_not_public": {}}
        code, out = _audit(bank, url, tmp_path, capsys)
        assert code == 0 and "credentials checked with pairings (7.4) for epochs: 1" in out


def test_an_epoch_without_a_certified_key_is_flagged(
    bank: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """§7.4, fail closed: a booked coin whose epoch the key source does not know (404) is a
    finding (``coin.unknown_epoch``), not a silently skipped check."""
    with running_server(_epoch_app({})) as url:
        code, out = _audit(bank, url, tmp_path, capsys, "--json")
    result = json.loads(out)
    assert code == 2 and result["ok"] is False, result
    assert {v["kind"] for v in result["violations"]} == {"coin.unknown_epoch"}
    assert result["credential_check"]["epochs_public"] == []
    assert result["credential_check"]["epochs_not_public"] == {"1": "bank.issuer_epoch_unknown"}
    with running_server(_epoch_app({})) as url:
        code, out = _audit(bank, url, tmp_path, capsys)
    assert code == 2 and "no certified G2 keys for epochs: 1 (bank.issuer_epoch_unknown)" in out

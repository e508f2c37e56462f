"""The merchant as a running service settles deposits whose bank answer was lost, by itself.

Real HTTP on 127.0.0.1 (uvicorn via ``running_server``): the bank (``bankworld``, SQLite) and
the merchant app; software DAA coins (``coinmint``). The merchant's link to the bank goes
through a transport that can fail deposits, as a bank outage would. Nobody calls
``retry_pending_deposits``: the app's background loop (at start-up, then every
``deposit_retry_s``) or ``ecash-tpm merchant deposits retry`` settles them. Also: the removed
``cheat`` setting is refused like any unknown setting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.bankworld import BankWorld, make_world
from support.coinmint import KeyPool, Member, Pki

from ecash_tpm.bank.routes import create_bank_app
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.centralbank.certify import certify_issuer_epoch
from ecash_tpm.clients.merchant import MerchantClient
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.deploy.bootstrap import write_config
from ecash_tpm.errors import ConfigError
from ecash_tpm.merchant.app import create_merchant_app
from ecash_tpm.merchant.settings import MerchantSettings
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import load_settings
from ecash_tpm.storage import sqlite_url

SHOP = "shop-a"


class BankOutage(httpx.BaseTransport):
    """The merchant's link to the bank: deposits fail while ``down`` (connection refused)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.down = False
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and request.url.path == "/v1/deposit":
            self.refused += 1
            raise httpx.ConnectError("bank down (test)", request=request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=(SHOP,))
    yield p
    p.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[BankWorld]:
    data = tmp_path_factory.mktemp("bank")
    w = make_world(db_url=sqlite_url(data / "bank.db"), data_dir=data, pki=pki, keys=KeyPool(4))
    # the bank publishes its issuer's certified epoch key (docs/protocol.md §7.4): without it
    # the merchant refuses every coin (coin.unknown_epoch)
    secret = w.issuer.secret_for_epoch(1)
    w.issuer.certificates[1] = certify_issuer_epoch(pki._ca, "issuer", 1, secret.public)
    yield w
    assert w.bank.ledger_check()["ok"]
    w.db.close()


@pytest.fixture(scope="module")
def bank_url(world: BankWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # plain HTTP on request: these tests stage a lost deposit answer with an httpx transport
    settings = BankSettings(data_dir=tmp_path_factory.mktemp("bank-settings"), insecure_http=True)
    with running_server(create_bank_app(world.bank, settings)) as url:
        yield url


@pytest.fixture(scope="module")
def alice(world: BankWorld) -> Member:
    return world.customer("alice", balance=100)


@pytest.fixture
def outage() -> Iterator[BankOutage]:
    transport = BankOutage()
    yield transport
    transport.close()


def merchant_config(tmp_path: Path, pki: Pki, world: BankWorld, bank_url: str, **kw: Any) -> Path:
    """Key, certificate and root in a data directory, and a ``[merchant]`` TOML file."""
    party, data = pki.merchants[SHOP], tmp_path / SHOP
    data.mkdir()
    (data / "merchant-key.pem").write_bytes(party.key.private_pem())
    (data / "merchant-key.pem").chmod(0o600)
    (data / "merchant-cert.pem").write_text(party.cert_pem)
    (data / "central-bank-root.pem").write_text(pki.root_pem)
    values = {
        "data_dir": data,
        "name": SHOP,
        "bank_url": bank_url,
        "bank_name": "bank",
        "opener_public": b64u_encode(world.issuer.hop.encode()),
        "deposit_retry_after_s": 0,  # these tests settle a staged lost answer at once
        "insecure_http": True,
        **kw,
    }
    return write_config(tmp_path / "merchant.toml", {"merchant": values})


def settings_from(path: Path, **overrides: Any) -> MerchantSettings:
    return load_settings(MerchantSettings, path=path, environ={}, overrides=overrides)


def pay_while_bank_down(
    url: str, world: BankWorld, alice: Member, outage: BankOutage
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pay 3 over HTTP while the bank refuses connections: 503, outcome unknown."""
    with MerchantClient(url) as shop:
        offer = shop.create_request(3)
        coins = world.withdraw(alice, 3)
        spends = [s.to_dict() for s in world.spends(alice, coins, offer["request"])]
        outage.down = True
        with pytest.raises(RemoteCallError) as exc:
            shop.pay(offer["request"], spends)
    assert exc.value.code == "merchant.bank_unavailable" and exc.value.status == 503
    assert exc.value.detail["outcome_unknown"] is True
    return offer["request"], spends


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not settled in time")
        time.sleep(0.05)


def state_of(app: Any, request: dict[str, Any]) -> str:
    row = app.state.merchant.store.get(canonical_digest(request["body"]))
    return str(row.state)


def test_running_merchant_settles_a_lost_deposit_by_itself(
    tmp_path: Path,
    pki: Pki,
    world: BankWorld,
    bank_url: str,
    alice: Member,
    outage: BankOutage,
) -> None:
    settings = settings_from(merchant_config(tmp_path, pki, world, bank_url), deposit_retry_s=0.2)
    app = create_merchant_app(settings, clock=world.clock, transport=outage)
    with running_server(app) as url:
        request, spends = pay_while_bank_down(url, world, alice, outage)
        assert state_of(app, request) == "paying"
        time.sleep(0.5)  # retries while the bank is down fail quietly; the server keeps serving
        assert state_of(app, request) == "paying" and outage.refused >= 2
        with MerchantClient(url) as shop:
            assert shop.info()["merchant_id"] == SHOP
        paid0 = app.state.merchant.stats().totals.get("EUR", {}).get("paid_count", 0)
        outage.down = False  # the bank is back: nobody calls retry, the loop settles it
        wait_for(lambda: state_of(app, request) == "paid")
        assert app.state.merchant.stats().totals["EUR"]["paid_count"] == paid0 + 1
        with MerchantClient(url) as shop:  # the customer's retry gets the stored receipt
            answer = shop.pay(request, spends)
        row = app.state.merchant.store.get(canonical_digest(request["body"]))
    assert answer["receipt"]["body"]["deposit_id"] == row.deposit_id
    assert answer["receipt"]["body"]["amount"] == 3


def test_merchant_retries_pending_deposits_at_start_up(
    tmp_path: Path,
    pki: Pki,
    world: BankWorld,
    bank_url: str,
    alice: Member,
    outage: BankOutage,
) -> None:
    config = merchant_config(tmp_path, pki, world, bank_url)
    quiet = settings_from(config, deposit_retry_s=3600)  # one pass at start-up only
    first = create_merchant_app(quiet, clock=world.clock, transport=outage)
    with running_server(first) as url:
        request, spends = pay_while_bank_down(url, world, alice, outage)
        assert state_of(first, request) == "paying"
    outage.down = False
    again = create_merchant_app(quiet, clock=world.clock, transport=outage)
    with running_server(again) as url:
        wait_for(lambda: state_of(again, request) == "paid")
        with MerchantClient(url) as shop:  # the customer's retry gets the stored receipt
            answer = shop.pay(request, spends)
        assert again.state.merchant.stats().totals["EUR"]["paid_count"] == 1
    assert answer["receipt"]["body"]["amount"] == 3


def test_cli_retries_pending_deposits(
    tmp_path: Path,
    pki: Pki,
    world: BankWorld,
    bank_url: str,
    alice: Member,
    outage: BankOutage,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ecash_tpm.cli import main

    config = merchant_config(tmp_path, pki, world, bank_url)
    app = create_merchant_app(
        settings_from(config, deposit_retry_s=3600), clock=world.clock, transport=outage
    )
    with running_server(app) as url:
        request, _ = pay_while_bank_down(url, world, alice, outage)
        (row,) = app.state.merchant.store.paying(since_before=world.clock())
        assert state_of(app, request) == "paying"
    outage.down = False  # the CLI's own bank client: a fresh connection to the bank
    assert main(["merchant", "deposits", "retry", "--config", str(config), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and (out["settled"], out["pending"]) == (1, 0)
    assert out["retried"] == [
        {
            "deposit_id": row.deposit_id,
            "preq": b64u_encode(canonical_digest(request["body"])),
            "amount": 3,
            "currency": "EUR",
            "outcome": "paid",
        }
    ]
    assert main(["merchant", "deposits", "retry", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "no pending deposits"


def test_cheat_is_not_a_setting(tmp_path: Path) -> None:
    """Nothing in the merchant's configuration can make it cheat (demo/cheating.py can)."""
    path = write_config(
        tmp_path / "m.toml", {"merchant": {"data_dir": tmp_path, "cheat": "no_key"}}
    )
    for source in ({"path": path}, {"environ": {"ECASH_TPM_MERCHANT_CHEAT": "no_key"}}):
        with pytest.raises(ConfigError) as exc:
            load_settings(MerchantSettings, **source)  # type: ignore[arg-type]
        assert exc.value.code == "config.invalid"
        assert [u["key"] for u in exc.value.detail["unknown"]] == ["cheat"]


def test_customer_fetches_the_answer_of_a_lost_payment_over_http(
    tmp_path: Path,
    pki: Pki,
    world: BankWorld,
    bank_url: str,
    alice: Member,
    outage: BankOutage,
) -> None:
    """GET /v1/payments/{preq} (issue 10, attack 8; docs/protocol.md §8.1)."""
    quiet = settings_from(merchant_config(tmp_path, pki, world, bank_url), deposit_retry_s=3600)
    app = create_merchant_app(quiet, clock=world.clock, transport=outage)
    with running_server(app) as url, MerchantClient(url) as shop:
        request, _ = pay_while_bank_down(url, world, alice, outage)
        preq = canonical_digest(request["body"])
        with pytest.raises(RemoteCallError) as down:  # still no bank: outcome unknown
            shop.paid_answer(preq)
        assert (down.value.code, down.value.status) == ("merchant.bank_unavailable", 503)
        outage.down = False
        answer = shop.paid_answer(preq)  # the "paying" deposit is settled on the spot
        assert answer["receipt"]["body"]["amount"] == 3 and answer["content_key"] is None
        assert state_of(app, request) == "paid"
        assert shop.paid_answer(preq)["receipt"] == answer["receipt"]
        for bad, status, code in (
            ("not-base64!", 400, "input.invalid"),
            (b64u_encode(b"x" * 31), 400, "input.invalid"),
            (b64u_encode(b"x" * 32), 404, "payment.unknown_request"),
        ):
            raw = httpx.get(f"{url}/v1/payments/{bad}")
            assert (raw.status_code, raw.json()["code"]) == (status, code)

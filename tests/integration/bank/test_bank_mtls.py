"""Deposits over mutual TLS: the bank takes a deposit only over a connection whose client
certificate is the depositing merchant's (issue 11).

The bank runs as ``bank serve`` runs it (uvicorn with TLS 1.3, the central bank root the only
anchor); merchants connect with their central-bank TLS certificates. A shop without one is
``tls.client_certificate_required`` (401), a shop presenting its own certificate with another
shop's signed deposit is ``tls.client_wrong_party`` (403), another role is
``tls.client_wrong_role`` (403), and the honest shop's deposit is booked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bankworld import BankWorld, make_world
from support.coinmint import KeyPool, Pki
from support.tls import TlsKit

from ecash_tpm.bank.routes import create_bank_app
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.clients.bank import BankClient
from ecash_tpm.protocol.coins import sign_reserve
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.server import running_server
from ecash_tpm.storage import sqlite_url

BANK = ("bank", "bank")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


@pytest.fixture(scope="module")
def kit(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> TlsKit:
    return TlsKit(pki._ca, tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[BankWorld]:
    data = tmp_path_factory.mktemp("bank")
    w = make_world(db_url=sqlite_url(data / "bank.db"), data_dir=data, pki=pki, keys=KeyPool(2))
    yield w
    assert w.bank.ledger_check()["ok"]
    w.db.close()


@pytest.fixture(scope="module")
def bank_url(
    world: BankWorld, kit: TlsKit, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = BankSettings(data_dir=tmp_path_factory.mktemp("settings"))
    with running_server(create_bank_app(world.bank, settings), tls=kit.issue(*BANK)) as url:
        assert url.startswith("https://")
        yield url


def _deposit(world: BankWorld, shop: str, amount: int) -> tuple[dict[str, object], str]:
    member = world.customer(f"payer-{shop}-{amount}", amount)
    coin = world.withdraw(member, amount)
    req = world.request(shop, amount)
    signed = world.signed_deposit(shop, req, world.spends(member, coin, req))
    return signed, world.pki.merchants[shop].cert_pem


def test_deposit_without_a_client_certificate_is_refused(
    world: BankWorld, kit: TlsKit, bank_url: str
) -> None:
    signed, cert = _deposit(world, "shop-a", 2)
    with (
        BankClient(bank_url, tls=kit.client(), expect=BANK) as client,
        pytest.raises(RemoteCallError) as err,
    ):
        client.deposit(signed, cert)
    assert err.value.code == "tls.client_certificate_required" and err.value.status == 401


def test_another_merchants_certificate_cannot_deposit_for_it(
    world: BankWorld, kit: TlsKit, bank_url: str
) -> None:
    signed, cert = _deposit(world, "shop-a", 5)
    as_b = kit.client(as_party=("merchant", "shop-b"))
    with BankClient(bank_url, tls=as_b, expect=BANK) as client:
        with pytest.raises(RemoteCallError) as err:
            client.deposit(signed, cert)
        assert err.value.code == "tls.client_wrong_party" and err.value.status == 403
        assert err.value.detail == {"client": "shop-b", "merchant_id": "shop-a"}
        req = world.request("shop-a", 5)
        reserve = sign_reserve(
            world.pki.merchants["shop-a"].key, merchant_id="shop-a", request=req, spends=[]
        )
        with pytest.raises(RemoteCallError) as err:
            client.reserve(reserve, cert)
        assert err.value.code == "tls.client_wrong_party"
    as_ttp = kit.client(as_party=("ttp", "ttp"))
    with (
        BankClient(bank_url, tls=as_ttp, expect=BANK) as client,
        pytest.raises(RemoteCallError) as err,
    ):
        client.deposit(signed, cert)
    assert err.value.code == "tls.client_wrong_role" and err.value.status == 403
    # the coins were never booked: shop-a itself can still deposit them
    as_a = kit.client(as_party=("merchant", "shop-a"))
    with BankClient(bank_url, tls=as_a, expect=BANK) as client:
        answer = client.deposit(signed, cert)
    assert answer["receipt"]["body"]["merchant_id"] == "shop-a"


def test_customer_routes_need_no_client_certificate(kit: TlsKit, bank_url: str, pki: Pki) -> None:
    """Wallets have no certificate: the public routes answer them over server-only TLS."""
    with BankClient(bank_url, tls=kit.client(), expect=BANK) as client:
        info = client.keysets(central_bank_root=pki.root_pem)
    assert info.keysets


def test_insecure_http_keeps_signature_only_deposits(tmp_path: Path, world: BankWorld) -> None:
    """``--insecure-http`` (local experiments): no TLS, so no client certificate to compare;
    the merchant's signature and registered key authenticate the deposit as before."""
    settings = BankSettings(data_dir=tmp_path, insecure_http=True)
    signed, cert = _deposit(world, "shop-b", 1)
    with running_server(create_bank_app(world.bank, settings)) as url, BankClient(url) as client:
        assert client.deposit(signed, cert)["receipt"]["body"]["merchant_id"] == "shop-b"

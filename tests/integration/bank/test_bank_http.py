"""The bank over real HTTP (uvicorn on 127.0.0.1 via running_server, SQLite file): the wire
contract of docs/api.md, a withdrawal whose answer is lost, 20 concurrent deposits of one coin
through two merchants, Retry-After on a locked coin, the login blacklist."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from support.bankworld import PASSWORD, TOTP_SECRET, BankWorld, make_world
from support.coinmint import KeyPool, Pki, prepare_coin

from ecash_tpm.bank.routes import create_bank_app
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.clients.bank import BankClient
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.protocol.coins import sign_reserve
from ecash_tpm.protocol.payments import ReceiptBody
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.server import running_server
from ecash_tpm.storage import sqlite_url


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[BankWorld]:
    data = tmp_path_factory.mktemp("bank")
    w = make_world(db_url=sqlite_url(data / "bank.db"), data_dir=data, pki=pki, keys=KeyPool(4))
    yield w
    report = w.bank.ledger_check()  # after every HTTP test of the module
    assert report["ok"]
    assert w.bank.merchant_blacklist.audit() == []
    w.db.close()


@pytest.fixture(scope="module")
def base_url(world: BankWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = BankSettings(data_dir=tmp_path_factory.mktemp("settings"), insecure_http=True)
    with running_server(create_bank_app(world.bank, settings)) as url:
        yield url


def _totp(now: int) -> str:
    return TOTP(TOTP_SECRET, 6, hashes.SHA1(), 30).generate(now).decode()  # noqa: S303


class DropResponseOnce(httpx.BaseTransport):
    """Lets the request reach the bank, then loses the answer once (a dropped connection)."""

    def __init__(self, path: str) -> None:
        self._inner = httpx.HTTPTransport()
        self._path = path
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if request.url.path == self._path and not self.dropped:
            response.read()
            response.close()
            self.dropped += 1
            raise httpx.ReadTimeout("answer lost on the way back", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


def test_keysets_and_openapi(base_url: str, pki: Pki) -> None:
    with BankClient(base_url) as client:
        info = client.keysets(central_bank_root=pki.root_pem)
    assert sorted(k.value for k in info.keysets) == [1, 2, 5, 10]
    paths = httpx.get(base_url + "/openapi.json").json()["paths"]
    for path in (
        "/v1/login",
        "/v1/account",
        "/v1/keysets",
        "/v1/withdraw",
        "/v1/reserve",
        "/v1/deposit",
        "/v1/coins/{sigma}",
    ):
        assert path in paths


def test_withdraw_answer_lost_then_retried(world: BankWorld, base_url: str) -> None:
    member = world.customer("carol", 50)
    world.clock.advance(30)
    transport = DropResponseOnce("/v1/withdraw")
    with BankClient(base_url, transport=transport) as client:
        with pytest.raises(RemoteCallError) as err:
            client.account()
        assert err.value.code == "auth.invalid_token" and err.value.status == 401
        client.login("carol", PASSWORD, _totp(world.clock()))
        pending = [prepare_coin(member, world.keyset(v)) for v in (10, 10, 5)]
        items = [p.item for p in pending]
        with pytest.raises(RemoteCallError) as err:
            client.withdraw("wd-lost-000001", items)
        assert err.value.code == "remote.timeout"
        assert err.value.detail["outcome_unknown"] is True
        sigs = client.withdraw("wd-lost-000001", items)  # same request id: same answer
        assert client.withdraw("wd-lost-000001", items) == sigs
        coins = [p.finalize(s) for p, s in zip(pending, sigs, strict=True)]
        assert client.account()["balance"] == 25  # debited once
        with pytest.raises(RemoteCallError) as err:
            client.withdraw("wd-lost-000001", items[:1])
        assert err.value.code == "bank.withdraw_conflict" and err.value.status == 409
        with pytest.raises(RemoteCallError) as err:
            client.withdraw("wd-too-much-01", [prepare_coin(member, world.keyset(10)).item] * 3)
        assert err.value.code == "bank.insufficient_funds"
        assert client.coin_status(coins[0].sigma)["state"] == "unspent"
    assert transport.dropped == 1


def test_twenty_concurrent_deposits_of_one_coin(world: BankWorld, base_url: str) -> None:
    """20 deposits of one coin at once, 10 through each of two merchants: exactly one credit;
    the others are refused with 409; supervision gets two transcripts naming the same member."""
    member = world.customer("dave", 100)
    coin = world.withdraw(member, 10)
    requests = {m: world.request(m, 10) for m in ("shop-a", "shop-b")}
    spends = {m: world.spends(member, coin, requests[m]) for m in requests}
    jobs = []
    for i in range(20):
        m = ("shop-a", "shop-b")[i % 2]
        signed = world.signed_deposit(m, requests[m], spends[m], f"conc-{i:02d}")
        jobs.append((m, signed))
    before_a = world.bank.account("shop-a").balance
    before_b = world.bank.account("shop-b").balance
    reports_before = len(world.reporter.reports)
    barrier = threading.Barrier(len(jobs))
    outcomes: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def run(merchant: str, signed: dict[str, Any]) -> None:
        with BankClient(base_url) as client:
            barrier.wait()
            try:
                answer: Any = client.deposit(signed, world.pki.merchants[merchant].cert_pem)
                result = ("ok", answer)
            except RemoteCallError as exc:
                result = (exc.code, (exc.status, exc.detail))
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = [c for c, _ in outcomes]
    assert len(codes) == 20
    assert codes.count("ok") == 1, codes
    assert set(codes) <= {"ok", "bank.double_spend", "bank.coin_locked"}
    for _code, (status, detail) in (o for o in outcomes if o[0] == "bank.double_spend"):
        assert status == 409
        assert detail["serial"] == b64u_encode(coin[0].sigma)
        assert isinstance(detail["transcript_id"], int)
    (receipt,) = [a for c, a in outcomes if c == "ok"]
    body = ReceiptBody.from_signed(receipt["receipt"], receipt["cert"], world.pki.root_pem)
    credited = world.bank.account(body.merchant_id).balance
    before = before_a if body.merchant_id == "shop-a" else before_b
    assert credited - before == 10
    other = "shop-b" if body.merchant_id == "shop-a" else "shop-a"
    assert world.bank.account(other).balance == (before_b if other == "shop-b" else before_a)

    new_reports = world.reporter.reports[reports_before:]
    assert len(new_reports) == 1  # one report per serial and second request
    first, second = new_reports[0]
    assert first["body"]["sigma"] == second["body"]["sigma"] == b64u_encode(coin[0].sigma)
    assert first["body"]["preq"] != second["body"]["preq"]
    t0s = [world.issuer.open_t0(t["body"]["spend"]["proof"]) for t in (first, second)]
    assert t0s[0] == t0s[1] == member.t0


def test_locked_coin_answers_409_with_retry_after(world: BankWorld, base_url: str) -> None:
    member = world.customer("erin", 100)
    coin = world.withdraw(member, 2)
    req_a, req_b = world.request("shop-a", 2), world.request("shop-b", 2)
    spends_a, spends_b = world.spends(member, coin, req_a), world.spends(member, coin, req_b)
    shop_a, shop_b = world.pki.merchants["shop-a"], world.pki.merchants["shop-b"]
    with BankClient(base_url) as client:
        held = client.reserve(
            sign_reserve(shop_a.key, merchant_id="shop-a", request=req_a, spends=spends_a),
            shop_a.cert_pem,
        )
        assert held["locked_until"] == world.clock() + world.bank.policy.lock_period_s
        assert client.coin_status(coin[0].sigma)["state"] == "locked"
    signed = world.signed_deposit("shop-b", req_b, spends_b)
    raw = httpx.post(base_url + "/v1/deposit", json={**signed, "cert": shop_b.cert_pem})
    assert raw.status_code == 409
    assert raw.json()["code"] == "bank.coin_locked"
    assert raw.headers["Retry-After"] == str(world.bank.policy.lock_period_s)
    world.clock.advance(world.bank.policy.lock_period_s)
    with BankClient(base_url) as client:
        answer = client.deposit(signed, shop_b.cert_pem)
        assert answer["receipt"]["body"]["merchant_id"] == "shop-b"
        assert client.coin_status(coin[0].sigma)["state"] == "spent"


def test_login_lockout_over_http(world: BankWorld, base_url: str) -> None:
    world.customer("frank", 10)
    with BankClient(base_url) as client:
        for guess in ("guess-1", "guess-2", "guess-3"):
            with pytest.raises(RemoteCallError) as err:
                client.login("frank", guess, _totp(world.clock()))
            assert err.value.code == "auth.invalid_credentials" and err.value.status == 401
        with pytest.raises(RemoteCallError) as err:
            client.login("frank", PASSWORD, _totp(world.clock()))
        assert err.value.code == "auth.locked" and err.value.status == 429


def test_bad_input_is_a_typed_400(base_url: str, pki: Pki) -> None:
    answer = httpx.get(base_url + "/v1/coins/not-base64!")
    assert answer.status_code == 400 and answer.json()["code"] == "input.invalid"
    answer = httpx.post(base_url + "/v1/deposit", json={"kind": "deposit"})
    assert answer.status_code == 400
    signed = {
        "kind": "deposit",
        "body": {"merchant_id": "shop-a"},
        "signature": "AA",
        "signer": "x",
    }
    answer = httpx.post(
        base_url + "/v1/deposit", json={**signed, "cert": pki.merchants["shop-a"].cert_pem}
    )
    assert answer.status_code in (400, 401)
    sigma = b64u_encode(secrets.token_bytes(32))
    assert httpx.get(f"{base_url}/v1/coins/{sigma}").json()["state"] == "unspent"


def test_cli_bank_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("ECASH_TPM_BANK_DENOMINATIONS", "[1, 5]")  # two keys to generate

    from ecash_tpm.cli import main

    ca_dir = tmp_path / "cb"
    from ecash_tpm.centralbank.ca import CentralBankCA

    ca = CentralBankCA.create(ca_dir)
    close = getattr(ca, "close", None)
    if close is not None:
        close()
    data = ["--data-dir", str(tmp_path / "bank"), "--json"]
    assert main(["bank", "init", "--central-bank-dir", str(ca_dir), *data]) == 0
    init = json.loads(capsys.readouterr().out)
    assert len(init["keysets_created"]) == 2
    pw = tmp_path / "pw"
    pw.write_text("a long password\n")
    assert (
        main(
            [
                "bank",
                "account",
                "create",
                "gina",
                "--balance",
                "70",
                "--password-file",
                str(pw),
                *data,
            ]
        )
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert created["balance"] == 70 and created["otpauth_uri"].startswith("otpauth://totp/")
    assert main(["bank", "account", "fund", "gina", "5", *data]) == 0
    assert json.loads(capsys.readouterr().out)["balance"] == 75
    assert main(["bank", "keyset", "list", *data]) == 0
    assert len(json.loads(capsys.readouterr().out)["keysets"]) == 2
    assert main(["bank", "ledger", *data]) == 0
    assert json.loads(capsys.readouterr().out)["ledger"]["customers_total"] == 75
    assert main(["bank", "account", "show", "nobody", *data]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "bank.unknown_account"


def test_real_merchant_pays_through_the_real_bank(
    world: BankWorld, base_url: str, tmp_path: Path
) -> None:
    """The merchant package's own code (BankClient as its gateway, reserve + deposit)."""
    merchant_domain = pytest.importorskip("ecash_tpm.merchant.domain")
    from ecash_tpm.centralbank.certify import certify_issuer_epoch
    from ecash_tpm.crypto.signing import canonical_digest
    from ecash_tpm.merchant.store import MIGRATIONS as MERCHANT_MIGRATIONS
    from ecash_tpm.merchant.store import MerchantStore
    from ecash_tpm.pki import load_certificate
    from ecash_tpm.storage import Database

    # the bank publishes its issuer's certified epoch key: without it the merchant refuses
    # every coin (coin.unknown_epoch, docs/protocol.md §7.4)
    secret = world.issuer.secret_for_epoch(1)
    world.issuer.certificates[1] = certify_issuer_epoch(world.pki._ca, "issuer", 1, secret.public)
    party = world.pki.merchants["shop-a"]
    db = Database.open(sqlite_url(tmp_path / "merchant.db"))
    db.migrate(MERCHANT_MIGRATIONS, component="merchant")
    gateway = BankClient(base_url)
    try:
        for reserve in (False, True):
            config = merchant_domain.MerchantConfig(
                name="shop-a",
                key=party.key,
                cert_pem=party.cert_pem,
                root=load_certificate(world.pki.root_pem),
                reserve=reserve,
                keyset_refresh_s=0,
            )
            shop = merchant_domain.Merchant(
                config, MerchantStore(db, world.clock), gateway, world.issuer.hop, clock=world.clock
            )
            member = world.customer(f"henry-{int(reserve)}", 20)
            coins = world.withdraw(member, 7)
            doc = shop.create_request(7)
            spends = world.spends(member, coins, doc.request)
            answer = shop.pay(doc.request, [s.to_dict() for s in spends])
            body = ReceiptBody.from_signed(answer.receipt, answer.cert, world.pki.root_pem)
            assert body.preq == canonical_digest(doc.request["body"])
            assert world.bank.coin_status(coins[0].sigma).state == "spent"
    finally:
        gateway.close()
        db.close()


def test_bank_publishes_certified_issuer_epochs_and_merchants_verify_with_them(
    world: BankWorld, base_url: str, tmp_path: Path
) -> None:
    """docs/protocol.md 3.6, 7.4: GET /v1/issuer-epochs/{epoch} serves the central bank's
    certificate; a merchant with the real BankClient checks every credential with its G2 keys."""
    from ecash_tpm.centralbank.certify import certify_issuer_epoch
    from ecash_tpm.merchant.domain import Merchant, MerchantConfig
    from ecash_tpm.merchant.store import MIGRATIONS as MERCHANT_MIGRATIONS
    from ecash_tpm.merchant.store import MerchantStore
    from ecash_tpm.pki import load_certificate
    from ecash_tpm.protocol.certified import IssuerEpochCertificate
    from ecash_tpm.storage import Database

    secret = world.issuer.secret_for_epoch(1)
    world.issuer.certificates[1] = certify_issuer_epoch(world.pki._ca, "issuer", 1, secret.public)
    db = Database.open(sqlite_url(tmp_path / "merchant.db"))
    db.migrate(MERCHANT_MIGRATIONS, component="merchant")
    try:
        with BankClient(base_url) as gateway:
            cert = IssuerEpochCertificate.from_signed(gateway.issuer_epoch(1), world.pki.root_pem)
            assert cert.epoch == 1 and cert.public == secret.public
            with pytest.raises(RemoteCallError) as missing:
                gateway.issuer_epoch(99)
            assert (missing.value.status, missing.value.code) == (404, "bank.issuer_epoch_unknown")
            party = world.pki.merchants["shop-a"]
            config = MerchantConfig(
                name="shop-a",
                key=party.key,
                cert_pem=party.cert_pem,
                root=load_certificate(world.pki.root_pem),
            )
            shop = Merchant(
                config, MerchantStore(db, world.clock), gateway, world.issuer.hop, clock=world.clock
            )
            member = world.customer("ida", 20)
            coins = world.withdraw(member, 7)
            doc = shop.create_request(7)
            spends = world.spends(member, coins, doc.request)
            shop.pay(doc.request, [s.to_dict() for s in spends])
            assert "credential_check" not in shop.stats().counters  # all checked publicly
            assert shop.epoch_keys.bank_only == {}
    finally:
        world.issuer.certificates.clear()
        db.close()


def test_bank_without_the_issuer_token_refuses_to_start(tmp_path: Path) -> None:
    """Asking the issuer over HTTP needs its members_token; better to fail at start-up than
    on every withdrawal."""
    from ecash_tpm.apps.bank_wiring import load_dependencies
    from ecash_tpm.errors import ConfigError
    from ecash_tpm.issuer.keys import IssuerKeyStore

    IssuerKeyStore.create(tmp_path / "issuer-keys")
    settings = BankSettings(
        data_dir=tmp_path / "bank",
        issuer_secrets_dir=tmp_path / "issuer-keys",
        issuer_url="http://127.0.0.1:9",
        insecure_http=True,  # over TLS the bank's client certificate replaces the token
    )
    with pytest.raises(ConfigError) as err:
        load_dependencies(settings, "")
    assert err.value.detail == {"setting": "issuer_token"}
    token = settings.model_copy(update={"issuer_token": "t" * 20})
    deps = load_dependencies(token, "")
    assert type(deps.membership).__name__ == "IssuerMembership"
    deps.membership.close()  # type: ignore[attr-defined]


def test_coin_status_is_bank_signed_single_and_batch(
    world: BankWorld, base_url: str, pki: Pki
) -> None:
    """Issue 10 (docs/protocol.md 10.1): GET /v1/coins/{sigma} and POST /v1/coins/status carry
    the bank-signed coin-status with the bank's time; a bad serial is a 400."""
    from ecash_tpm.protocol.status import CoinStatusStatement

    sigmas = [bytes([i]) * 32 for i in (7, 8, 9)]
    with BankClient(base_url) as client:
        one = client.coin_status(sigmas[0])
        many = client.coin_statuses(sigmas)
        with pytest.raises(RemoteCallError) as err:
            client.post_json("/v1/coins/status", {"serials": ["AAAA"]})
    assert err.value.status == 400 and err.value.code == "input.invalid"
    single = CoinStatusStatement.from_signed(
        one["status"], one["cert"], pki.root_pem, serials=sigmas[:1], bank_name="bank"
    )
    batch = CoinStatusStatement.from_signed(
        many["status"], many["cert"], pki.root_pem, serials=sigmas, bank_name="bank"
    )
    assert single.bank_time == batch.bank_time == world.clock()
    assert {c.state for c in batch.coins} == {"unspent"} and one["state"] == "unspent"

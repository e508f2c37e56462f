"""Issue 10, abnormal situations around an honest merchant, end to end over real HTTP with swtpm.

* attack 4 — a customer pays an honest merchant with coins whose credential is made up (a real
  blind signature from the bank, a forged ``(R, S, T, W)``). The merchant verifies every
  credential itself with pairings under the certified G2 keys of the epoch (docs/protocol.md
  §7.4) and refuses the coin before it reserves, deposits or delivers anything; where it cannot
  (no certified G2 keys) the bank's verdict decides, and that failure is not counted against it.
* attack 8 — the bank books a deposit but its answer to the merchant is lost. The merchant's
  retry settles the ``paying`` record; the customer fetches the receipt (and, for a digital good,
  the sealed key) from the merchant (``GET /v1/payments/{preq}``); and when the merchant answers
  nobody, the TTP resolves the dispute from the bank-signed deposit record.

The attackers (a forging customer, a lossy bank link, a shop that answers nobody) live here, in
the test; the production code has no switch for any of them. One system serves the module.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.system import MERCHANTS, System, WalletHandle, start_system

from ecash_tpm.clients.epochs import CertifiedEpochKeys
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import G, random_scalar
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.crypto.groupsig import RandomizedCredential, coin_message, make_spend_proof
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.demo.cheating import strategy
from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.merchant.catalogue import HonestKeyRelease
from ecash_tpm.merchant.domain import BankGateway
from ecash_tpm.protocol.certified import ISSUER_EPOCH_KIND
from ecash_tpm.protocol.coins import Coin, Spend
from ecash_tpm.protocol.errors import DisputePendingError
from ecash_tpm.protocol.payments import RESERVE_CHECKS
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.receipt_fetch import (
    ReceiptFetch,
    fetch_purchase,
    fetch_purchases,
    fetch_receipts,
)

pytestmark = pytest.mark.swtpm

WINDOW = 120  # the TTP's dispute window (s)
CONTENT = b"a song the customer paid for " * 40


# --- attackers and lossy links (test-only) ----------------------------------------------------


class RecordingBank:
    """The merchant's own bank link, with every call recorded (``kind`` names)."""

    def __init__(self, inner: BankGateway) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.reserved: list[dict[str, Any]] = []  # the bank's reserve answers

    def keysets(self, *, central_bank_root: Any = None) -> Any:
        return self.inner.keysets(central_bank_root=central_bank_root)

    def reserve(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        self.calls.append("reserve")
        answer = self.inner.reserve(signed, cert_pem)
        self.reserved.append(answer)
        return answer

    def deposit(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        self.calls.append("deposit")
        return self.inner.deposit(signed, cert_pem)

    def issuer_epoch(self, epoch: int) -> dict[str, Any]:
        return self.inner.issuer_epoch(epoch)


class LoseDepositAnswers(RecordingBank):
    """Delivers the next ``n`` deposits to the bank, then drops the bank's answer."""

    def __init__(self, inner: BankGateway, n: int = 1) -> None:
        super().__init__(inner)
        self.lose = n

    def deposit(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        answer = super().deposit(signed, cert_pem)  # the bank books it ...
        if self.lose > 0:
            self.lose -= 1
            raise RemoteCallError(  # ... and its answer never reaches the merchant
                "answer lost (test)", code="remote.timeout", status=None, url="bank", detail={}
            )
        return answer


class RefusePath(httpx.BaseTransport):
    """A customer's link on which every request to a path starting with ``prefix`` fails as
    if the shop did not answer (``remote.unreachable``)."""

    def __init__(self, prefix: str, verify: Any) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)
        self.prefix = prefix

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(self.prefix):
            raise httpx.ConnectError("the shop does not answer (test)", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@dataclasses.dataclass
class Forger:
    """A customer with a made-up credential for a software key: coins it withdraws carry a
    real blind signature (the bank signs blindly), so they pass every check but the bank's."""

    signer: SoftwareDaaSigner
    credential: RandomizedCredential

    @classmethod
    def create(cls) -> Forger:
        sk = random_scalar()
        s_pt = random_scalar() * G
        cred = RandomizedCredential(random_scalar() * G, s_pt, random_scalar() * G, sk * s_pt)
        return cls(SoftwareDaaSigner(sk), cred)

    def coin(self, system: System, wallet: WalletHandle) -> Coin:
        bank = wallet.bank()
        now = system.clock()
        ks = next(k for k in bank.keysets().keysets if k.value == 1 and k.can_withdraw(now))
        epoch = wallet.membership.epoch
        sigma = secrets.token_bytes(32)
        prepared = blindrsa.prepare(coin_message(ks.keyset_id, epoch, sigma, self.credential))
        blinded, inv = blindrsa.blind(ks.public_key, prepared)
        (blind_sig,) = bank.withdraw("forge-" + secrets.token_hex(8), [(ks.keyset_id, blinded)])
        sig = blindrsa.finalize(ks.public_key, prepared, blind_sig, inv)
        return Coin(ks.keyset_id, epoch, sigma, self.credential, prepared[:32], sig)

    def spend(self, wallet: WalletHandle, coin: Coin, offer: dict[str, Any]) -> dict[str, Any]:
        proof = make_spend_proof(
            self.signer,
            hop=wallet.membership.opener_public,
            preq=canonical_digest(offer["request"]["body"]),
            keyset_id=coin.keyset_id,
            epoch=coin.epoch,
            sigma=coin.sigma,
            coin=coin.credential,
            self_check=False,
        )
        return Spend(coin, proof).to_dict()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture(scope="module")
def system(
    swtpm: Any, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """The bank's blacklist rule as deployed (5 failures within 600 s), a TTP for disputes."""
    with start_system(
        tmp_path_factory.mktemp("attacks-merchant"),
        swtpm=swtpm,
        tpm=device,
        ttp=True,
        dispute_window_s=WINDOW,
    ) as s:
        yield s
        assert s.bank.ledger_check()["ok"] is True
        assert s.bank.merchant_blacklist.audit() == []


@pytest.fixture(scope="module")
def wallet(
    system: System, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> WalletHandle:
    w = system.open_wallet(device, tmp_path_factory.mktemp("attacks-wallet"))
    for _ in range(5):  # 5 coins each of 1, 2, 4, 8: change for every amount below
        w.withdraw(15)
    return w


@pytest.fixture
def shop_bank(system: System) -> Iterator[Any]:
    """Puts a test wrapper around shop-1's link to its bank; restores the real one after."""
    shop = system.merchants[MERCHANTS[0]]
    real, config = shop.bank, shop.config
    installed: list[Any] = []

    def install(wrapper: type[RecordingBank], **kw: Any) -> Any:
        shop.bank = wrapper(real, **kw)
        installed.append(shop.bank)
        return shop.bank

    yield install
    shop.bank, shop.config = real, config
    catalogue = shop.catalogue
    if catalogue is not None:
        catalogue.key_release = HonestKeyRelease()


def _bank_failures(system: System, merchant: str) -> list[str]:
    return [f.code for f in system.bank.merchant_blacklist.failures("merchant:" + merchant)]


# --- attack 4 ---------------------------------------------------------------------------------


def test_attack_4_customer_blacklists_merchant(
    system: System, wallet: WalletHandle, shop_bank: Any
) -> None:
    """Forged 1-unit payments (one more than the blacklist threshold) are refused by the
    merchant itself (pairing check, §7.4) before any reservation, deposit or delivery; an
    epoch the merchant has no G2 keys for falls back to the bank's verdict, which is not
    counted against it either. The merchant is listed nowhere and its honest business goes on."""
    name = MERCHANTS[0]
    shop = system.merchants[name]
    threshold = system.bank.merchant_blacklist.threshold
    bank = shop_bank(RecordingBank)
    shop.config = dataclasses.replace(shop.config, reserve=True)
    forger = Forger.create()
    shop0, customer0 = system.merchant_balance(name), system.customer_balance()
    before = shop.stats().counters
    forged_sigmas = []

    def pay_forged() -> RemoteCallError:
        coin = forger.coin(system, wallet)
        forged_sigmas.append(coin.sigma)
        offer = wallet.request(1, name)
        with pytest.raises(RemoteCallError) as exc:
            system.merchant_client(name).pay(offer["request"], [forger.spend(wallet, coin, offer)])
        row = shop.store.get(canonical_digest(offer["request"]["body"]))
        assert row is not None and row.state == "open" and row.receipt is None
        return exc.value

    for reserve in [True] * threshold + [False]:
        shop.config = dataclasses.replace(shop.config, reserve=reserve)
        refused = pay_forged()
        # the merchant's own verdict: the credential fails e(R, Y2) == e(S, P2)
        assert (refused.code, refused.status) == ("daa.credential_invalid", 400)
        assert refused.detail["check"] == "S" and refused.detail["index"] == 0
    assert bank.calls == []  # never reserved, never deposited
    counters = shop.stats().counters
    assert counters["verify_failure"]["daa.credential_invalid"] == (
        before.get("verify_failure", {}).get("daa.credential_invalid", 0) + threshold + 1
    )
    assert "credential_check" not in counters  # every coin was checked publicly

    # an epoch the bank has no certificate for is refused by the merchant itself (the wallet
    # names the epoch: it must not be able to switch the public check off, §7.4)
    real_keys = shop.epoch_keys

    def no_keys(epoch: int) -> dict[str, Any]:
        raise RemoteCallError(
            "no key (test)", code="bank.issuer_epoch_unknown", status=404, url="bank", detail={}
        )

    def legacy_keys(epoch: int) -> dict[str, Any]:
        body = bank.inner.issuer_epoch(epoch)["body"]
        old = {k: v for k, v in body.items() if k not in ("X2", "Y2")}
        return system.ca.sign_object(ISSUER_EPOCH_KIND, old)

    shop.epoch_keys = CertifiedEpochKeys(no_keys, shop.config.root, issuer="issuer")
    try:
        shop.config = dataclasses.replace(shop.config, reserve=True)
        refused = pay_forged()
        assert (refused.code, refused.status) == ("coin.unknown_epoch", 400)
        assert bank.calls == []
        # only a verified certificate made before issue 14 (no X2, Y2) leaves it to the bank:
        # with ``reserve`` its verdict comes before any deposit, and it is not counted either
        shop.epoch_keys = CertifiedEpochKeys(legacy_keys, shop.config.root, issuer="issuer")
        refused = pay_forged()
        assert (refused.code, refused.status) == ("bank.bad_credential", 400)
        assert bank.calls == ["reserve"]
        assert shop.stats().counters["credential_check"]["bank_only"] == 1
        assert shop.epoch_keys.bank_only == {wallet.membership.epoch: "issuer_epoch.no_g2"}
    finally:
        shop.epoch_keys = real_keys

    # the merchant is not blacklisted: no failure was even counted against it
    assert _bank_failures(system, name) == []
    assert system.bank.blacklist_entries() == []
    # its honest business goes on, checked publicly, reserved with the bank's verdict, deposited
    bank.calls.clear()
    paid = wallet.pay(3, name)
    assert paid.amount == 3 and bank.calls == ["reserve", "deposit"]
    assert system.merchant_balance(name) == shop0 + 3
    assert shop.stats().counters["credential_check"]["bank_only"] == 1  # unchanged
    # the forger gained nothing and blocks no one: its coins are neither spent nor locked,
    # and it paid the bank for every one of them
    status = system.bank_client()
    assert {status.coin_status(s)["state"] for s in forged_sigmas} == {"unspent"}
    assert system.customer_balance() == customer0 - len(forged_sigmas)
    # the reservation answer was the bank's full verdict on those coins (docs/protocol.md §10)
    (verdict,) = bank.reserved[-1:]
    assert verdict["verdict"] == "valid" and tuple(verdict["checks"]) == RESERVE_CHECKS
    paid_serials = wallet.store.payment(paid.payment_id).serials
    assert sorted(b64u_decode(x) for x in verdict["serials"]) == sorted(paid_serials)


# --- attack 8 ---------------------------------------------------------------------------------


def test_attack_8_lost_bank_answer(system: System, wallet: WalletHandle, shop_bank: Any) -> None:
    name = MERCHANTS[0]
    shop = system.merchants[name]
    lossy = shop_bank(LoseDepositAnswers, n=1)

    # (a) the merchant's retry settles the record; the customer then fetches the receipt
    shop0, coins0 = system.merchant_balance(name), wallet.balance()
    with pytest.raises(EcashError) as exc:
        wallet.pay(5, name)
    assert exc.value.code == "wallet.payment_unknown"  # 503 merchant.bank_unavailable
    (open_payment,) = wallet.store.payments(open_only=True)
    row = shop.store.get(open_payment.preq)
    assert row is not None and row.state == "paying"
    assert system.merchant_balance(name) == shop0 + 5  # the bank booked it
    system.clock.advance(shop.config.deposit_retry_after_s)
    (retried,) = shop.retry_deposits()  # what the running merchant's DepositRetrier calls
    assert retried.settled and retried.preq == open_payment.preq
    row = shop.store.get(open_payment.preq)
    assert row is not None and row.state == "paid"
    (fetched,) = _fetch_receipts(system, wallet)
    assert fetched.paid and fetched.payment_id == open_payment.payment_id
    done = wallet.store.payment(open_payment.payment_id)
    assert done.state == "paid" and done.receipt == row.receipt
    assert wallet.balance() == coins0 - 5 and wallet.store.balance()["EUR"]["pending"] == 0
    assert {system.bank_client().coin_status(s)["state"] for s in done.serials} == {"spent"}
    assert system.merchant_balance(name) == shop0 + 5  # booked once
    assert lossy.calls == ["deposit", "deposit"]  # the original and the retry, one deposit_id

    # (b) the customer asks first: the merchant settles its "paying" record on the spot
    lossy.lose = 1
    with pytest.raises(EcashError) as exc:
        wallet.pay(4, name)
    assert exc.value.code == "wallet.payment_unknown"
    (fetched,) = _fetch_receipts(system, wallet)
    assert fetched.paid
    assert wallet.store.payments(open_only=True) == []
    assert system.merchant_balance(name) == shop0 + 9
    # a request nobody paid has nothing to hand out
    unpaid = wallet.request(1, name)
    with pytest.raises(RemoteCallError) as nothing:
        system.merchant_client(name).paid_answer(canonical_digest(unpaid["request"]["body"]))
    assert (nothing.value.code, nothing.value.status) == ("payment.not_paid", 404)

    # (c) a digital good: the receipt and the sealed key from the merchant
    product = system.register_product(name, title="song", price=6, content=CONTENT)
    lossy.lose = 1
    with pytest.raises(EcashError) as exc:
        wallet.buy(product.product_id, name)
    assert exc.value.code == "wallet.payment_unknown"
    (purchase,) = [p for p in wallet.buyer().purchases.purchases() if p.state == "sent"]
    by_url = {url: n for n, url in system.merchant_urls.items()}
    outcomes = fetch_purchases(  # what `wallet recover` runs first
        wallet.store,
        wallet.buyer().purchases,
        lambda url: system.merchant_client(by_url[url]),
        root=system.root_pem,
        clock=system.clock,
    )
    assert outcomes == [{"purchase_id": purchase.purchase_id, "outcome": "complete"}]
    got = wallet.buyer().purchases.get(purchase.purchase_id)
    assert got.state == "complete" and got.delivered_by == "merchant"
    assert got.content_file is not None and Path(got.content_file).read_bytes() == CONTENT
    assert wallet.store.payments(open_only=True) == []  # its payment: paid with the receipt
    assert system.merchant_balance(name) == shop0 + 15

    # (d) an honest shop asked by the TTP before its retry ran: it settles and answers, no strike
    lossy.lose = 1
    with pytest.raises(EcashError):
        wallet.buy(product.product_id, name)
    (purchase,) = [p for p in wallet.buyer().purchases.purchases() if p.state == "sent"]
    resolved = wallet.dispute(purchase.purchase_id)
    assert resolved.content == CONTENT and resolved.purchase.delivered_by == "ttp"
    view = system.ttp_client().dispute(resolved.purchase.dispute_id)
    assert view["resolution"] == "merchant_key" and view["strike"] is False
    (fetched,) = _fetch_receipts(system, wallet)  # the wallet's payment record: paid
    assert fetched.paid

    # (e) the shop answers nobody: neither the customer's fetch nor the TTP's key request.
    # The TTP works from the bank-signed deposit record and releases its escrowed key.
    shop.catalogue.key_release = strategy("no_key")  # type: ignore[union-attr]
    lossy.lose = 1
    with pytest.raises(EcashError):
        wallet.buy(product.product_id, name)
    (purchase,) = [p for p in wallet.buyer().purchases.purchases() if p.state == "sent"]
    silent = system.merchant_client(
        name, transport=RefusePath("/v1/payments/", verify=system.client_tls())
    )
    with pytest.raises(RemoteCallError) as down:
        fetch_purchase(
            wallet.store,
            wallet.buyer().purchases,
            purchase.purchase_id,
            silent,
            root=system.root_pem,
            clock=system.clock,
        )
    assert down.value.code == "remote.unreachable"
    with pytest.raises(DisputePendingError) as pending:
        wallet.dispute(purchase.purchase_id)
    dispute_id = pending.value.detail["dispute_id"]
    stored = system.ttp.store.dispute(dispute_id)
    answer = stored.bank_answer["answer"]
    assert answer["kind"] == "ttp-deposit-answer" and answer["signer"]  # the bank's record
    coins = answer["body"]["coins"]
    assert coins and all(c["deposited"] and c["merchant_id"] == name for c in coins)
    system.clock.advance(WINDOW + 1)
    escrowed = wallet.dispute(purchase.purchase_id)
    assert escrowed.content == CONTENT and escrowed.purchase.delivered_by == "ttp"
    strikes = system.ttp_client().strikes(name)
    assert [(s["reason"], s["dispute_id"]) for s in strikes] == [("no_key", dispute_id)]
    assert system.merchant_balance(name) == shop0 + 27  # every payment booked exactly once
    (recovered,) = wallet.recover()  # the coins: spent, by the bank's word
    assert recovered.outcome == "spent"
    assert wallet.balance() == coins0 - 27 and wallet.store.balance()["EUR"]["pending"] == 0


def _fetch_receipts(system: System, wallet: WalletHandle) -> list[ReceiptFetch]:
    """What ``wallet recover`` does first: ask each open payment's merchant (by its URL)."""
    by_url = {url: name for name, url in system.merchant_urls.items()}

    def merchant_for(record: Any) -> Any:
        name = by_url.get(record.merchant_url or "")
        return None if name is None else system.merchant_client(name)

    return fetch_receipts(wallet.store, merchant_for, root=system.root_pem, clock=system.clock)


def test_attack_8_wallet_recover_fetches_the_receipt(
    system: System, wallet: WalletHandle, shop_bank: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ecash-tpm wallet recover`` asks the merchant first: the lost answer's receipt."""
    from ecash_tpm.cli import main

    name = MERCHANTS[0]
    shop_bank(LoseDepositAnswers, n=1)
    shop0 = system.merchant_balance(name)
    with pytest.raises(EcashError) as exc:
        wallet.pay(2, name)
    assert exc.value.code == "wallet.payment_unknown"
    (open_payment,) = wallet.store.payments(open_only=True)
    code = main(["wallet", "recover", "--data", str(wallet.data_dir), "--bank", system.bank_url,
                 "--bank-name", "bank", "--root", str(system.root_path), "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["ok"] is True, out
    (receipt,) = out["receipts"]
    assert (receipt["payment_id"], receipt["outcome"]) == (open_payment.payment_id, "paid")
    assert out["payments"] == [] and out["purchases"] == []
    done = wallet.store.payment(open_payment.payment_id)
    assert done.state == "paid" and receipt["deposit_id"] == done.receipt["body"]["deposit_id"]
    assert system.merchant_balance(name) == shop0 + 2


class FalseRefusal(httpx.BaseTransport):
    """A shop that takes the payment (the real shop books it at the bank and seals the key)
    but tells the customer an unsigned 409 ``bank.double_spend``."""

    def __init__(self, verify: Any) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path != "/v1/pay":
            return response
        response.read()
        response.close()
        serial = json.loads(request.content)["spends"][0]["coin"]["sigma"]
        return httpx.Response(
            409,
            json={
                "code": "bank.double_spend",
                "message": "coin already spent",
                "detail": {"serial": serial, "transcript_id": 1},
            },
        )

    def close(self) -> None:
        self.inner.close()


def test_unsigned_refusal_after_paying_keeps_the_purchase_deliverable(
    system: System, wallet: WalletHandle
) -> None:
    """Attacks 1 and 8 on a digital good: after the spends left, an unsigned refusal fails
    nothing. The purchase stays "sent" with its key, and `wallet recover` gets the receipt and
    the sealed key from the merchant (review finding: it used to turn "failed", key wiped)."""
    name = MERCHANTS[1]
    shop0 = system.merchant_balance(name)
    product = system.register_product(name, title="liar", price=3, content=CONTENT)
    liar = FalseRefusal(system.client_tls())
    shop = system.merchant_client(name, transport=liar)
    with pytest.raises(EcashError) as exc:
        wallet.buyer().buy(
            product.product_id,
            source=system.shop_catalogue(name),
            shop=shop,
            merchant_url=shop.base_url,
        )
    assert exc.value.code == "bank.double_spend"
    (purchase,) = [p for p in wallet.buyer().purchases.purchases() if p.state == "sent"]
    assert purchase.customer_secret is not None
    assert system.merchant_balance(name) == shop0 + 3  # the shop was paid
    by_url = {url: n for n, url in system.merchant_urls.items()}
    outcomes = fetch_purchases(
        wallet.store,
        wallet.buyer().purchases,
        lambda url: system.merchant_client(by_url[url]),
        root=system.root_pem,
        clock=system.clock,
    )
    assert outcomes == [{"purchase_id": purchase.purchase_id, "outcome": "complete"}]
    got = wallet.buyer().purchases.get(purchase.purchase_id)
    assert got.state == "complete" and Path(str(got.content_file)).read_bytes() == CONTENT
    assert wallet.store.payments(open_only=True) == []
    liar.close()

"""Fair exchange of digital goods with an offline TTP (DESIGN §6), end to end over real HTTP on
127.0.0.1 with swtpm: central bank, supervision, issuer, bank, two merchants and the TTP.

``shop-1`` is honest; ``shop-2`` gets a cheating key release injected per test
(:mod:`ecash_tpm.demo.cheating`: ``no_key``: case 1, ``wrong_key``: case 2, ``lost_key``: the
delivery is lost but the shop answers the TTP). The dispute deadline is passed by moving the
shared clock. Tests run in file order on one system.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.system import System, WalletHandle, start_system

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import make_spend_proof
from ecash_tpm.crypto.sealing import (
    PURPOSE_CONTENT_KEY,
    EphemeralKey,
    SealError,
    content_key_context,
    decrypt_content,
)
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object
from ecash_tpm.demo.cheating import strategy
from ecash_tpm.device import TpmDevice
from ecash_tpm.protocol.coins import Spend
from ecash_tpm.protocol.errors import DisputePendingError
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.purchases import (
    CiphertextTamperedError,
    ContentKeyInvalidError,
    ContentKeyMissingError,
    DescriptorInvalidError,
    PurchaseStateError,
)

pytestmark = pytest.mark.swtpm

WINDOW = 120  # the TTP's dispute window (s)
ADMIN_TOKEN = "admin-" + secrets.token_hex(12)
CONTENT = {
    "shop-1": b"an honest song " * 64,
    "shop-2": b"a disputed e-book " * 100,
}
SAVED: dict[str, Any] = {}  # state handed from one test to a later one


@pytest.fixture(scope="module")
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture(scope="module")
def system(
    swtpm: Any, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with start_system(
        tmp_path_factory.mktemp("fx"),
        swtpm=swtpm,
        tpm=device,
        bank_policy={"blacklist_threshold": 1000},
        ttp=True,
        dispute_window_s=WINDOW,
        merchant_admin_token=ADMIN_TOKEN,
    ) as s:
        yield s


@pytest.fixture(scope="module")
def wallet(
    system: System, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> WalletHandle:
    w = system.open_wallet(device, tmp_path_factory.mktemp("fx-wallet"))
    for _ in range(8):  # 8 coins each of 1, 2, 4, 8: change for every price below
        w.withdraw(15)
    return w


@pytest.fixture(scope="module")
def products(system: System, wallet: WalletHandle) -> dict[str, str]:
    one = system.register_product("shop-1", title="Song", price=5, content=CONTENT["shop-1"])
    two = system.register_product("shop-2", title="E-book", price=6, content=CONTENT["shop-2"])
    return {"shop-1": one.product_id, "shop-2": two.product_id}


def counters(system: System) -> dict[str, int]:
    return dict(system.ttp.stats().counters)


def cheat(system: System, merchant: str, mode: str) -> None:
    """Inject a key release of :mod:`ecash_tpm.demo.cheating` (``"none"``: the honest one)."""
    catalogue = system.merchants[merchant].catalogue
    assert catalogue is not None
    catalogue.key_release = strategy(mode)


def customer_key(wallet: WalletHandle, purchase_id: str) -> bytes:
    rec = wallet.buyer().purchases.get(purchase_id)
    return bytes(b64u_decode(rec.request["body"]["customer_key"]))


# --- honest purchase --------------------------------------------------------------------------


def test_registration_escrows_the_key_and_signs_a_descriptor(
    system: System, products: dict[str, str]
) -> None:
    assert counters(system) == {"registrations": 2}
    row = system.ttp.store.product(products["shop-1"])
    listing = system.shop_catalogue("shop-1").product(products["shop-1"])
    assert (
        listing["descriptor"] == row.descriptor
        and listing["ttp_cert"] == system.ttp.config.cert_pem
    )
    body = row.descriptor["body"]
    assert (body["merchant_id"], body["price"], body["currency"]) == ("shop-1", 5, "EUR")
    # the TTP's escrowed key opens the public ciphertext; the merchant got the same key
    shop_key = system.merchants["shop-1"].catalogue.get(products["shop-1"]).content_key
    assert shop_key == row.content_key
    plain = decrypt_content(
        row.content_key, row.ciphertext, product_id=row.product_id, merchant_id="shop-1"
    )
    assert plain == CONTENT["shop-1"]
    assert system.ttp_client().ciphertext(products["shop-1"]) == row.ciphertext


def test_honest_purchase_never_reaches_the_ttp(
    system: System, wallet: WalletHandle, products: dict[str, str]
) -> None:
    before, shop0 = counters(system), system.merchant_balance("shop-1")
    first = wallet.buy(products["shop-1"], "shop-1")
    second = wallet.buy(products["shop-1"], "shop-1")
    for result in (first, second):
        assert result.content == CONTENT["shop-1"]
        assert result.purchase.state == "complete" and result.purchase.delivered_by == "merchant"
        assert result.purchase.customer_secret is None  # erased once the content is out
    assert counters(system) == before  # no dispute, no bank query, no relay: TTP offline
    assert system.merchant_balance("shop-1") == shop0 + 10
    # a fresh X25519 key per purchase: nothing links the two for the merchant
    k1 = customer_key(wallet, first.purchase.purchase_id)
    k2 = customer_key(wallet, second.purchase.purchase_id)
    assert k1 != k2 and len(k1) == 32
    req = wallet.buyer().purchases.get(first.purchase.purchase_id).request["body"]
    row = system.ttp.store.product(products["shop-1"])
    assert req["product_id"] == products["shop-1"]
    assert b64u_decode(req["contract_hash"]) == row.ciphertext_sha256
    SAVED["honest"] = first.purchase.purchase_id


# --- cheating merchants -----------------------------------------------------------------------


def test_case1_no_key_escrow_released_after_deadline(
    system: System, wallet: WalletHandle, products: dict[str, str]
) -> None:
    cheat(system, "shop-2", "no_key")
    shop0 = system.merchant_balance("shop-2")
    with pytest.raises(ContentKeyMissingError) as exc:
        wallet.buy(products["shop-2"], "shop-2")
    pid = exc.value.detail["purchase_id"]
    assert system.merchant_balance("shop-2") == shop0 + 6  # paid
    rec = wallet.buyer().purchases.get(pid)
    assert rec.state == "key_missing"
    SAVED["case1"] = (pid, rec.customer_secret)

    with pytest.raises(DisputePendingError) as pending:
        wallet.dispute(pid)
    assert pending.value.code == "ttp.dispute_pending"
    dispute_id = pending.value.detail["dispute_id"]
    view = system.ttp_client().dispute(dispute_id)
    assert view["state"] == "pending" and view["merchant_answer"] == "merchant.key_withheld"
    assert system.ttp_client().strikes("shop-2") == []
    # still pending before the deadline (409 + Retry-After from the TTP)
    system.clock.advance(WINDOW // 2)
    with pytest.raises(DisputePendingError) as again:
        wallet.dispute(pid)
    assert 0 < again.value.detail["retry_after"] <= WINDOW // 2 + 1

    system.clock.advance(WINDOW)
    result = wallet.dispute(pid)
    assert result.content == CONTENT["shop-2"]
    assert result.purchase.state == "complete" and result.purchase.delivered_by == "ttp"
    strikes = system.ttp_client().strikes("shop-2")
    assert [(s["reason"], s["dispute_id"]) for s in strikes] == [("no_key", dispute_id)]
    view = system.ttp_client().dispute(dispute_id)
    assert view["resolution"] == "escrow" and view["strike"] is True
    c = counters(system)
    assert c["disputes_opened"] == 1 and c["bank_queries"] == 1 and c["strikes"] == 1


def test_case2_wrong_key_escrow_released_after_deadline(
    system: System, wallet: WalletHandle, products: dict[str, str]
) -> None:
    cheat(system, "shop-2", "wrong_key")
    with pytest.raises(ContentKeyInvalidError) as exc:
        wallet.buy(products["shop-2"], "shop-2")
    assert exc.value.code == "wallet.content_key_invalid"
    pid = exc.value.detail["purchase_id"]
    assert wallet.buyer().purchases.get(pid).state == "key_invalid"
    with pytest.raises(DisputePendingError) as pending:
        wallet.dispute(pid)
    dispute_id = pending.value.detail["dispute_id"]
    assert system.ttp_client().dispute(dispute_id)["merchant_answer"] == "wrong_key"
    system.clock.advance(WINDOW + 1)
    result = wallet.dispute(pid)
    assert result.content == CONTENT["shop-2"] and result.purchase.delivered_by == "ttp"
    reasons = [s["reason"] for s in system.ttp_client().strikes("shop-2")]
    assert reasons == ["no_key", "wrong_key"]


def test_lost_delivery_resolved_by_the_merchant_without_strike(
    system: System, wallet: WalletHandle, products: dict[str, str]
) -> None:
    cheat(system, "shop-2", "lost_key")
    with pytest.raises(ContentKeyMissingError) as exc:
        wallet.buy(products["shop-2"], "shop-2")
    result = wallet.dispute(exc.value.detail["purchase_id"])  # resolved at once
    assert result.content == CONTENT["shop-2"]
    view = system.ttp_client().dispute(result.purchase.dispute_id)
    assert view["resolution"] == "merchant_key" and view["strike"] is False
    assert len(system.ttp_client().strikes("shop-2")) == 2
    with pytest.raises(PurchaseStateError):
        wallet.dispute(result.purchase.purchase_id)  # complete: nothing to dispute
    cheat(system, "shop-2", "none")


# --- who may use the TTP ----------------------------------------------------------------------


def _unsent_spends(wallet: WalletHandle, request: dict[str, Any], value: int) -> list[Any]:
    """Valid TPM spend proofs over ``request`` with coins that stay unspent."""
    preq = canonical_digest(request["body"])
    coins = [hc for hc in wallet.store.coins("unspent") if hc.value == value][:1]
    assert coins, value
    out = []
    for hc in coins:
        proof = make_spend_proof(
            wallet.signer,
            hop=wallet.membership.opener_public,
            preq=preq,
            keyset_id=hc.coin.keyset_id,
            epoch=hc.coin.epoch,
            sigma=hc.coin.sigma,
            coin=hc.coin.credential,
        )
        out.append(Spend(hc.coin, proof).to_dict())
    return out


def test_customer_who_did_not_pay_is_refused(
    system: System, wallet: WalletHandle, products: dict[str, str]
) -> None:
    ttp = system.ttp_client()
    before = counters(system)
    key = EphemeralKey()
    offer = system.merchant_client("shop-2").create_request(
        6, product_id=products["shop-2"], customer_key=key.public_bytes
    )
    # 1. valid spend proofs for this very request, never handed to the merchant
    spends = _unsent_spends(wallet, offer["request"], 4) + _unsent_spends(
        wallet, offer["request"], 2
    )
    with pytest.raises(RemoteCallError) as exc:
        ttp.open_dispute(offer["request"], offer["cert"], spends)
    assert exc.value.code == "ttp.not_paid" and exc.value.status == 403
    assert {c["reason"] for c in exc.value.detail["coins"]} == {"not_deposited"}
    # 2. coins really paid, but for another request (someone's earlier purchase)
    honest = wallet.buyer().purchases.get(SAVED["honest"])
    offer1 = system.merchant_client("shop-1").create_request(
        5, product_id=products["shop-1"], customer_key=key.public_bytes
    )
    with pytest.raises(RemoteCallError) as exc:
        ttp.open_dispute(offer1["request"], offer1["cert"], honest.spends)
    assert exc.value.code == "ttp.not_paid"
    assert {c["reason"] for c in exc.value.detail["coins"]} == {"other_request"}
    after = counters(system)
    assert after["disputes_refused"] == before.get("disputes_refused", 0) + 2
    assert after.get("disputes_opened") == before.get("disputes_opened")
    # 3. a request not signed by the product's merchant
    forged = sign_object(PartyKey.generate(), "payment-request", offer1["request"]["body"])
    with pytest.raises(RemoteCallError) as exc:
        ttp.open_dispute(forged, offer1["cert"], honest.spends)
    assert exc.value.code == "ttp.wrong_merchant"


def test_replayed_request_only_yields_a_key_sealed_to_the_buyer(
    system: System, wallet: WalletHandle, products: dict[str, str]
) -> None:
    """Eve replays Alice's signed request and spends: the TTP answers with the dispute it
    already has, whose key is sealed to Alice's ephemeral key — useless to Eve."""
    ttp = system.ttp_client()
    pid, alice_secret = SAVED["case1"]
    alice = wallet.buyer().purchases.get(pid)
    view = ttp.open_dispute(alice.request, alice.merchant_cert, alice.spends)
    assert view["dispute_id"] == alice.dispute_id and view["state"] == "resolved"
    box, ctx = view["sealed_key"], content_key_context(alice.preq, alice.product_id)
    eve = EphemeralKey()
    with pytest.raises(SealError):
        eve.open(box, purpose=PURPOSE_CONTENT_KEY, context=ctx)
    k = EphemeralKey.from_secret(alice_secret).open(box, purpose=PURPOSE_CONTENT_KEY, context=ctx)
    assert (
        decrypt_content(k, alice.ciphertext, product_id=alice.product_id, merchant_id="shop-2")
        == CONTENT["shop-2"]
    )
    # Eve cannot swap in her own key: that breaks the merchant's signature on the request
    body = {**alice.request["body"], "customer_key": b64u_encode(eve.public_bytes)}
    with pytest.raises(RemoteCallError) as exc:
        ttp.open_dispute({**alice.request, "body": body}, alice.merchant_cert, alice.spends)
    assert exc.value.code == "ttp.wrong_merchant"
    # Replaying an honest purchase opens a dispute, the honest shop answers at once (no
    # strike), and the answer is again sealed to the buyer only.
    honest = wallet.buyer().purchases.get(SAVED["honest"])
    view = ttp.open_dispute(honest.request, honest.merchant_cert, honest.spends)
    assert view["state"] == "resolved" and view["resolution"] == "merchant_key"
    with pytest.raises(SealError):
        eve.open(
            view["sealed_key"],
            purpose=PURPOSE_CONTENT_KEY,
            context=content_key_context(honest.preq, honest.product_id),
        )
    assert ttp.strikes("shop-1") == []


# --- what the wallet checks before paying -----------------------------------------------------


class Tampering:
    """A product source (mirror) that alters what it serves."""

    def __init__(self, inner: Any, *, ciphertext: bool = False, descriptor: str = "") -> None:
        self.inner = inner
        self.flip_ciphertext = ciphertext
        self.descriptor = descriptor

    def product(self, product_id: str) -> dict[str, Any]:
        answer = dict(self.inner.product(product_id))
        doc = dict(answer["descriptor"])
        if self.descriptor == "price":
            doc["body"] = {**doc["body"], "price": 1}
        elif self.descriptor == "signer":  # re-signed by someone without a TTP certificate
            doc = sign_object(PartyKey.generate(), "product-descriptor", doc["body"])
        answer["descriptor"] = doc
        return answer

    def ciphertext(self, product_id: str) -> bytes:
        blob = bytearray(self.inner.ciphertext(product_id))
        if self.flip_ciphertext:
            blob[-1] ^= 1
        return bytes(blob)


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        ({"ciphertext": True}, CiphertextTamperedError),
        ({"descriptor": "price"}, DescriptorInvalidError),
        ({"descriptor": "signer"}, DescriptorInvalidError),
    ],
)
def test_tampered_offer_is_detected_before_paying(
    system: System,
    wallet: WalletHandle,
    products: dict[str, str],
    tamper: dict[str, Any],
    error: type[Exception],
) -> None:
    coins0 = wallet.balance()
    source = Tampering(system.shop_catalogue("shop-1"), **tamper)
    with pytest.raises(error) as exc:
        wallet.buyer().buy(products["shop-1"], source=source, shop=system.merchant_client("shop-1"))
    assert exc.value.code in ("wallet.ciphertext_tampered", "wallet.descriptor_invalid")
    assert wallet.balance() == coins0


def test_unknown_product_and_bad_price(
    system: System, wallet: WalletHandle, products: dict[str, str]
) -> None:
    shop = system.merchant_client("shop-1")
    key = secrets.token_bytes(32)
    with pytest.raises(RemoteCallError) as exc:
        shop.create_request(5, product_id="p-" + "0" * 32, customer_key=key)
    assert exc.value.code == "merchant.unknown_product" and exc.value.status == 404
    with pytest.raises(RemoteCallError) as exc:
        shop.create_request(4, product_id=products["shop-1"], customer_key=key)
    assert exc.value.code == "payment.price_mismatch"
    with pytest.raises(RemoteCallError) as exc:
        shop.create_request(5, product_id=products["shop-1"])
    assert exc.value.code == "payment.customer_key_required"
    with pytest.raises(RemoteCallError) as exc:
        system.ttp_client().product("p-" + "1" * 32)
    assert exc.value.code == "ttp.unknown_product" and exc.value.status == 404


# --- the online-TTP baseline ------------------------------------------------------------------


def test_relay_mode_goes_through_the_ttp(
    system: System, wallet: WalletHandle, products: dict[str, str], tmp_path: Path
) -> None:
    """The benchmarks' online-TTP relay (benchmarks/online_ttp.py) over the running TTP's
    escrow: the wallet pays through it and gets the TTP's key (kept working here)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from online_ttp import MerchantPool, OnlineTtpRelay, RelayClient, RelayShop, create_relay_app

    from ecash_tpm.service.server import running_server

    shops = {url: name for name, url in system.merchant_urls.items()}
    pool = MerchantPool(lambda url: system.link("merchant", shops[url]))
    relay = OnlineTtpRelay(system.ttp, pool)
    before = relay.relays
    ttp_before = counters(system)
    try:
        with running_server(create_relay_app(relay, tmp_path)) as url, RelayClient(url) as http:
            shop = RelayShop(system.merchant_client("shop-1"), http)
            result = wallet.buy(products["shop-1"], "shop-1", shop=shop)
            # a request the relay cannot vouch for is refused with the TTP's code
            with pytest.raises(RemoteCallError) as exc:
                http.relay_pay({"kind": "x", "body": {}}, system.ttp.config.cert_pem, [{}])
            assert exc.value.code == "ttp.unknown_product" and exc.value.status == 404
    finally:
        pool.close()
    # the key came with the pay answer (relayed by the TTP): to the wallet it is the shop's
    assert result.content == CONTENT["shop-1"] and result.purchase.delivered_by == "merchant"
    assert relay.relays == before + 2
    assert counters(system) == ttp_before  # the TTP's own counters: no dispute, no bank query


# --- demo story, admin route, operator CLI ---------------------------------------------------


def test_demo_story_runs_against_the_system(
    system: System, wallet: WalletHandle, products: dict[str, str]
) -> None:
    from ecash_tpm.demo.fair_exchange import run_fair_exchange_story

    cheat(system, "shop-2", "wrong_key")
    try:
        detail = run_fair_exchange_story(
            buyer=wallet.buyer(),
            ttp_url=str(system.ttp_url),
            honest_url=system.merchant_urls["shop-1"],
            cheating_url=system.merchant_urls["shop-2"],
            honest_product=products["shop-1"],
            cheating_product=products["shop-2"],
            advance=system.clock.advance,
            links={
                str(system.ttp_url): system.link("ttp"),
                system.merchant_urls["shop-1"]: system.link("merchant", "shop-1"),
                system.merchant_urls["shop-2"]: system.link("merchant", "shop-2"),
            },
        )
    finally:
        cheat(system, "shop-2", "none")
    assert detail["honest"]["ttp_contacted"] is False
    assert detail["honest"]["bytes"] == len(CONTENT["shop-1"])
    cheating = detail["cheating"]
    assert cheating["failure"] == "wallet.content_key_invalid"
    assert (cheating["resolution"], cheating["strike"]) == ("escrow", "wrong_key")
    assert cheating["delivered_by"] == "ttp" and cheating["bytes"] == len(CONTENT["shop-2"])


def test_admin_route_registers_over_http(system: System) -> None:
    from ecash_tpm.clients.base import ServiceClient
    from ecash_tpm.demo.fair_exchange import register_over_http

    url = system.merchant_urls["shop-1"]
    link = system.link("merchant", "shop-1")
    with ServiceClient(url, **link) as http, pytest.raises(RemoteCallError) as exc:
        http.post_json(
            "/v1/products",
            {"title": "x", "price": 1, "content": b"x"},
            headers={"Authorization": "Bearer wrong-token-000000"},
        )
    assert exc.value.code == "merchant.admin_auth" and exc.value.status == 401
    pid = register_over_http(url, ADMIN_TOKEN, title="Extra", price=2, content=b"extra", link=link)
    listing = system.shop_catalogue("shop-1").product(pid)
    assert listing["ttp_url"] == system.ttp_url
    assert system.ttp.store.product(pid).merchant_url == url  # where the TTP will ask


def test_operator_cli(
    system: System, wallet: WalletHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ecash_tpm.cli import main

    data = str(system.base_dir / "ttp")
    assert main(["ttp", "strikes", "--data", data, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["per_merchant"] == {"shop-2": 3} and out["ok"] is True
    assert main(["ttp", "products", "--data", data, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["products"]) == 3
    assert main(["ttp", "disputes", "--data", data, "--sweep", "--json"]) == 0
    views = json.loads(capsys.readouterr().out)["disputes"]
    assert views and all(v["state"] == "resolved" and "sealed_key" not in v for v in views)
    assert main(["ttp", "stats", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counters"]["strikes"] == 3
    assert main(["wallet", "purchases", "--data", str(wallet.data_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["purchases"]
    assert {r["state"] for r in rows} >= {"complete"}

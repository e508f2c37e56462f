"""Issue 10, attacks 1, 2 and 5: the wallet acts only on bank-signed verdicts, by the bank's clock.

One running system (tests/support/system.py: every party a real HTTPS server on 127.0.0.1, one
settable clock) and one wallet with coins bound to the swtpm. The attackers play over HTTP:

* a merchant that keeps the customer's spend proofs, answers ``/v1/pay`` with a bare
  ``409 bank.double_spend`` (or one "signed" with its own key) and deposits the coins itself;
* a man in the middle (or a lying bank) answering the wallet's coin-status request with an
  unsigned statement or one signed by a non-bank certificate;
* a wallet whose clock runs two minutes fast;
* a merchant whose request has a 10-year deadline.

Every test checks the honest customer's coins and money afterwards, that nothing was reported,
opened or revoked, and that the attacker gained no more than it was paid.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support.system import System, WalletHandle, start_system

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import make_spend_proof
from ecash_tpm.crypto.signing import canonical_digest, sign_object
from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import Spend, sign_deposit, sign_reserve
from ecash_tpm.protocol.status import COIN_STATUS_KIND, DEPOSIT_REFUSAL_KIND
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.context import MAX_REQUEST_DEADLINE_S
from ecash_tpm.wallet.pay import RECOVERY_GRACE_S, pay, recover_payments

pytestmark = pytest.mark.swtpm

SHOP = "shop-1"


# --- the attackers -------------------------------------------------------------------------------


class FramingMerchant(httpx.BaseTransport):
    """``SHOP`` turned bad at ``/v1/pay``: keeps the spends it is sent and answers 409
    ``bank.double_spend`` naming the first serial, with no bank signature — or, with
    ``forge``, a "refusal" signed with the merchant's own certified key. Everything else
    reaches the real shop."""

    def __init__(self, system: System, *, forge: bool = False) -> None:
        self.inner = httpx.HTTPTransport(verify=system.client_tls())
        self.system = system
        self.forge = forge
        self.taken: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/pay":
            return self.inner.handle_request(request)
        body = json.loads(request.content)
        self.taken.append(body)
        serials = [sp["coin"]["sigma"] for sp in body["spends"]]
        detail: dict[str, Any] = {"serial": serials[0], "transcript_id": 1}
        if self.forge:
            m = self.system.merchants[SHOP]
            detail["refusal"] = sign_object(
                m.config.key,
                DEPOSIT_REFUSAL_KIND,
                {
                    "code": "bank.double_spend",
                    "bank": "bank",
                    "bank_time": self.system.clock(),
                    "merchant_id": SHOP,
                    "preq": _preq(body["request"]),
                    "serials": serials,
                    "detail": {"serial": serials[0], "transcript_id": 1},
                },
            )
            detail["cert"] = m.config.cert_pem
        return httpx.Response(
            409,
            json={"code": "bank.double_spend", "message": "coin already spent", "detail": detail},
        )

    def deposit_taken(self) -> list[dict[str, Any]]:
        """Deposit every payment it kept at the real bank, as the real merchant."""
        return [deposit_as(self.system, SHOP, t["request"], t["spends"]) for t in self.taken]

    def close(self) -> None:
        self.inner.close()


class HoldingMerchant(httpx.BaseTransport):
    """A merchant that keeps the spends and answers 503 (the outcome looks unknown)."""

    def __init__(self, system: System) -> None:
        self.inner = httpx.HTTPTransport(verify=system.client_tls())
        self.taken: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/pay":
            return self.inner.handle_request(request)
        self.taken.append(json.loads(request.content))
        return httpx.Response(
            503, json={"code": "merchant.bank_unavailable", "message": "try later", "detail": {}}
        )

    def close(self) -> None:
        self.inner.close()


class LyingStatus(httpx.BaseTransport):
    """A man in the middle on the wallet's bank link: answers the coin-status request with
    ``make(serials)``; everything else passes."""

    def __init__(self, system: System, make: Callable[[list[str]], dict[str, Any]]) -> None:
        self.inner = httpx.HTTPTransport(verify=system.client_tls())
        self.make = make
        self.asked = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/coins/status":
            return self.inner.handle_request(request)
        self.asked += 1
        return httpx.Response(200, json=self.make(json.loads(request.content)["serials"]))

    def close(self) -> None:
        self.inner.close()


class LoseAnswer(httpx.BaseTransport):
    """The first ``/v1/pay`` never reaches the merchant (connection refused)."""

    def __init__(self, system: System) -> None:
        self.inner = httpx.HTTPTransport(verify=system.client_tls())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/pay":
            raise httpx.ConnectError("connection refused (test)", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


# --- helpers -------------------------------------------------------------------------------------


def _preq(request_doc: dict[str, Any]) -> str:
    return b64u_encode(canonical_digest(request_doc["body"]))


def deposit_as(
    system: System, merchant: str, request_doc: dict[str, Any], spends: list[Any]
) -> dict[str, Any]:
    """A deposit straight at the real bank with ``merchant``'s key and TLS certificate."""
    m = system.merchants[merchant]
    signed = sign_deposit(
        m.config.key,
        deposit_id="dep-" + secrets.token_hex(16),
        merchant_id=merchant,
        request=request_doc,
        spends=spends,
    )
    return system.bank_client_as(merchant).deposit(signed, m.config.cert_pem)


def pending(wallet: WalletHandle) -> int:
    return int(wallet.store.balance().get("EUR", {}).get("pending", 0))


def assert_customer_untouched(system: System, wallet: WalletHandle) -> None:
    """Nothing reported, opened or revoked: the customer is still an active member."""
    assert system.bank.reports.all() == []
    assert system.issuer.get_member(wallet.membership.member_id).status == "active"


def recover_via(system: System, wallet: WalletHandle, transport: httpx.BaseTransport) -> Any:
    return recover_payments(
        wallet.store,
        system.bank_client(transport=transport),
        clock=system.clock,
        root=system.root_pem,
        bank_name="bank",
    )


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture(scope="module")
def system(
    swtpm: Any, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with start_system(tmp_path_factory.mktemp("sys"), swtpm=swtpm, tpm=device) as s:
        yield s


@pytest.fixture(scope="module")
def wallet(
    system: System, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> WalletHandle:
    w = system.open_wallet(device, tmp_path_factory.mktemp("wallet"))
    w.withdraw(200)
    return w


# --- attack 1 --------------------------------------------------------------------------------


@pytest.mark.parametrize("forge", [False, True], ids=["unsigned", "merchant_signed"])
def test_attack_1_merchant_frames_customer(
    system: System, wallet: WalletHandle, forge: bool
) -> None:
    """The merchant claims "double spend" (bare, or signed with its own key), keeps the proofs
    and deposits them: the wallet released nothing, so the customer's next payments are
    honest, nothing is reported or opened, and the merchant got exactly what it was paid."""
    coins0, shop0 = wallet.balance(), system.merchant_balance(SHOP)
    framer = FramingMerchant(system, forge=forge)
    with pytest.raises(EcashError) as exc:
        wallet.pay(3, SHOP, transport=framer)  # 2 + 1: two coins, two proofs leave the device
    assert exc.value.code == "bank.double_spend"
    (open_payment,) = wallet.store.payments(open_only=True)
    assert len(open_payment.serials) == 2
    assert wallet.balance() == coins0 - 3 and pending(wallet) == 3  # nothing released

    # the merchant deposits every proof it kept, at the real bank: it is paid once, no more
    (receipt,) = framer.deposit_taken()
    assert sorted(receipt["receipt"]["body"]["serials"]) == sorted(
        sp["coin"]["sigma"] for sp in framer.taken[0]["spends"]
    )
    assert system.merchant_balance(SHOP) == shop0 + 3

    # recovery asks the bank (signed): spent, nothing freed
    (result,) = wallet.recover()
    assert result.outcome == "spent" and set(result.coin_states.values()) == {"spent"}
    assert wallet.balance() == coins0 - 3 and pending(wallet) == 0

    # the customer's next honest payments (all its coins) go through
    rest = wallet.balance()
    paid = wallet.pay(rest, "shop-2")
    assert paid.amount == rest and wallet.balance() == 0
    wallet.withdraw(100)  # still a member in good standing
    assert_customer_untouched(system, wallet)
    framer.close()


# --- attack 2 --------------------------------------------------------------------------------


def _unsigned(system: System) -> Callable[[list[str]], dict[str, Any]]:
    def make(serials: list[str]) -> dict[str, Any]:
        body = {
            "bank": "bank",
            "bank_time": system.clock() + 10**6,
            "coins": [{"sigma": s, "state": "unspent"} for s in serials],
        }
        return {
            "status": {"kind": COIN_STATUS_KIND, "body": body, "signature": "AAAA", "signer": "x"},
            "cert": system.bank.bank_cert_pem(),
        }

    return make


def _merchant_signed(system: System) -> Callable[[list[str]], dict[str, Any]]:
    m = system.merchants[SHOP]

    def make(serials: list[str]) -> dict[str, Any]:
        body = {
            "bank": "bank",
            "bank_time": system.clock() + 10**6,
            "coins": [{"sigma": s, "state": "unspent"} for s in serials],
        }
        return {
            "status": sign_object(m.config.key, COIN_STATUS_KIND, body),
            "cert": m.config.cert_pem,
        }

    return make


@pytest.mark.parametrize("liar", [_unsigned, _merchant_signed], ids=["unsigned", "non_bank"])
def test_attack_2_lying_coin_status(
    system: System, wallet: WalletHandle, liar: Callable[[System], Any]
) -> None:
    """A man in the middle says "unspent, long after the deadline" while the merchant still
    holds the spends: the wallet keeps the coins pending; the merchant's late-but-valid deposit
    is then no double spend, and the customer is never reported or revoked."""
    coins0, shop0 = wallet.balance(), system.merchant_balance(SHOP)
    holder = HoldingMerchant(system)
    with pytest.raises(EcashError) as exc:
        wallet.pay(5, SHOP, transport=holder)
    assert exc.value.code == "wallet.payment_unknown"
    mitm = LyingStatus(system, liar(system))
    (result,) = recover_via(system, wallet, mitm)
    assert mitm.asked == 1
    assert result.outcome == "waiting" and result.error == "coin_status.invalid"
    assert wallet.balance() == coins0 - 5 and pending(wallet) == 5

    # the merchant deposits what it held (before the deadline, by the bank's clock)
    system.clock.advance(200)
    (taken,) = holder.taken
    deposit_as(system, SHOP, taken["request"], taken["spends"])
    assert system.merchant_balance(SHOP) == shop0 + 5
    (settled,) = wallet.recover()
    assert settled.outcome == "spent"
    paid = wallet.pay(wallet.balance(), "shop-2")  # every remaining coin: no double spend
    assert paid.amount > 0
    assert_customer_untouched(system, wallet)
    wallet.withdraw(100)
    holder.close()
    mitm.close()


def test_attack_2_wallet_clock_fast(system: System, wallet: WalletHandle) -> None:
    """The wallet's clock runs 2 minutes (+10 s) fast: by its own clock the deadline plus the
    grace period has passed, by the bank's it has not and the merchant may still deposit. The
    signed status carries the bank's time, so nothing is released early."""
    fast = lambda: system.clock() + RECOVERY_GRACE_S + 10  # noqa: E731
    coins0, shop0 = wallet.balance(), system.merchant_balance(SHOP)
    holder = HoldingMerchant(system)
    request = wallet.request(4, SHOP)
    deadline = request["request"]["body"]["deadline"]
    ctx = dataclasses.replace(wallet.spending(), clock=fast)
    with pytest.raises(EcashError) as exc:
        pay(
            ctx,
            request["request"],
            request["cert"],
            merchant=system.merchant_client(SHOP, transport=holder),
        )
    assert exc.value.code == "wallet.payment_unknown"
    system.clock.advance(deadline - system.clock() - 5)  # bank: 5 s before the deadline
    assert fast() > deadline + RECOVERY_GRACE_S  # the wallet: well past deadline + grace
    (result,) = recover_payments(
        wallet.store, system.bank_client(), clock=fast, root=system.root_pem, bank_name="bank"
    )
    assert result.outcome == "waiting" and result.bank_time == deadline - 5
    assert pending(wallet) == 4 and wallet.balance() == coins0 - 4

    (taken,) = holder.taken  # the merchant deposits in time, by the bank's clock
    deposit_as(system, SHOP, taken["request"], taken["spends"])
    assert system.merchant_balance(SHOP) == shop0 + 4
    (settled,) = recover_payments(
        wallet.store, system.bank_client(), clock=fast, root=system.root_pem, bank_name="bank"
    )
    assert settled.outcome == "spent" and pending(wallet) == 0
    paid = wallet.pay(wallet.balance(), "shop-2")
    assert paid.amount == coins0 - 4
    assert_customer_untouched(system, wallet)
    wallet.withdraw(100)
    holder.close()


# --- attack 5 --------------------------------------------------------------------------------


def test_attack_5_coins_held_hostage(system: System, wallet: WalletHandle) -> None:
    """A 10-year deadline is refused by the wallet before any proof leaves the device and by
    the bank for reservations and deposits; a lost answer for a normal request is settled by
    the bank-signed status once the bank's clock is past deadline + grace."""
    coins0, shop0 = wallet.balance(), system.merchant_balance(SHOP)
    shop = system.merchants[SHOP]
    hostage = shop.create_request(7, ttl_s=10 * 365 * 86400)
    payments0 = len(wallet.store.payments())
    with pytest.raises(EcashError) as exc:
        wallet.pay(request={"request": hostage.request, "cert": hostage.cert})
    assert exc.value.code == "wallet.deadline_too_far"
    assert exc.value.detail["max_deadline_s"] == MAX_REQUEST_DEADLINE_S
    assert len(wallet.store.payments()) == payments0 and wallet.balance() == coins0
    assert pending(wallet) == 0  # no payment recorded, so no spend proof was made or sent

    # the bank refuses to reserve or book spends for such a request (made by hand here)
    coin = next(hc.coin for hc in wallet.store.coins("unspent") if hc.value == 1)
    preq = canonical_digest(hostage.request["body"])
    proof = make_spend_proof(
        wallet.signer,
        hop=wallet.membership.opener_public,
        preq=preq,
        keyset_id=coin.keyset_id,
        epoch=coin.epoch,
        sigma=coin.sigma,
        coin=coin.credential,
    )
    spends = [Spend(coin, proof).to_dict()]
    bank = system.bank_client_as(SHOP)
    reserve = sign_reserve(
        shop.config.key, merchant_id=SHOP, request=hostage.request, spends=spends
    )
    for call in (
        lambda: bank.reserve(reserve, shop.config.cert_pem),
        lambda: deposit_as(system, SHOP, hostage.request, spends),
    ):
        with pytest.raises(RemoteCallError) as refused:
            call()
        assert refused.value.status == 400 and refused.value.code == "bank.deadline_too_far"
    assert system.bank.coin_status(coin.sigma).state == "unspent"

    # a normal request whose answer is lost: pending until the bank's signed time says so
    with pytest.raises(EcashError) as lost:
        wallet.pay(6, SHOP, transport=LoseAnswer(system))
    assert lost.value.code == "wallet.payment_unknown"
    (open_payment,) = wallet.store.payments(open_only=True)
    (waiting,) = wallet.recover()
    assert waiting.outcome == "waiting" and pending(wallet) == 6
    system.clock.advance(open_payment.deadline + RECOVERY_GRACE_S + 1 - system.clock())
    (released,) = wallet.recover()
    assert released.outcome == "released" and released.bank_time > open_payment.deadline
    assert wallet.balance() == coins0 and pending(wallet) == 0
    assert system.merchant_balance(SHOP) == shop0
    paid = wallet.pay(6, SHOP)  # the released coins spend normally
    assert paid.amount == 6 and b64u_decode(paid.receipt["body"]["serials"][0])
    assert_customer_untouched(system, wallet)


# --- the honest path: a real double spend, the bank's signed refusal relayed (runs last) --------


def test_bank_signed_double_spend_refusal_reaches_the_wallet(
    system: System, wallet: WalletHandle
) -> None:
    """A wallet restored from a backup spends a coin again: the honest merchant relays the
    bank's signed refusal, the wallet marks exactly that coin spent and keeps the other pending
    until the bank's signed status frees it. Runs last: the double spend revokes the member."""
    if wallet.balance():
        wallet.pay(wallet.balance(), "shop-2")
    wallet.withdraw(3)  # coins 1 + 2
    first = wallet.pay(1, SHOP)
    (spent_sigma,) = wallet.store.payment(first.payment_id).serials
    with wallet.store._db.transaction() as tx:  # the backup still has the coin as unspent
        tx.execute(
            "UPDATE wallet_coin SET state = 'unspent', payment_id = NULL WHERE sigma = :s",
            {"s": spent_sigma},
        )
    with pytest.raises(EcashError) as exc:
        wallet.pay(3, "shop-2")
    assert exc.value.code == "bank.double_spend" and exc.value.detail["refusal"]["kind"] == (
        "deposit-refusal"
    )
    (open_payment,) = wallet.store.payments(open_only=True)
    assert open_payment.state == "sent" and spent_sigma in open_payment.serials
    (other,) = [s for s in open_payment.serials if s != spent_sigma]
    assert spent_sigma in {hc.sigma for hc in wallet.store.coins("spent")}
    assert other in {hc.sigma for hc in wallet.store.coins("pending")}
    assert system.supervision.case(spent_sigma) is not None  # the real double spend is opened
    system.clock.advance(open_payment.deadline + RECOVERY_GRACE_S + 1 - system.clock())
    (released,) = wallet.recover()
    assert released.outcome == "partly_spent" and wallet.balance() == 2

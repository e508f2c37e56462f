"""End to end over real HTTP on 127.0.0.1 with swtpm: join, withdraw, pay, deposit, attacks.

One system (tests/support/system.py: central bank, supervision, issuer, bank, two merchants) and one
joined wallet serve the module; tests run in file order and check balance *deltas*. The
double-spend test runs last because it gets the member revoked.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.system import System, WalletHandle, start_system

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import G, Point, random_scalar
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import RandomizedCredential, coin_message, make_spend_proof
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import Coin, Spend, sign_deposit
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.coins import HeldCoin
from ecash_tpm.wallet.pay import RECOVERY_GRACE_S

pytestmark = pytest.mark.swtpm


# --- transports that lose answers ------------------------------------------------------------


class LoseAnswer(httpx.BaseTransport):
    """Delivers the first request to ``path`` (or not, ``deliver=False``) and then fails as if
    the connection dropped before the answer arrived; later requests pass through."""

    def __init__(self, path: str, *, deliver: bool = True, verify: Any = True) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)  # the system's TLS context
        self.path = path
        self.deliver = deliver
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.dropped == 0:
            self.dropped += 1
            if not self.deliver:
                raise httpx.ConnectError("connection refused (test)", request=request)
            response = self.inner.handle_request(request)
            response.read()
            response.close()
            raise httpx.ReadTimeout("answer lost (test)", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture(scope="module")
def system(
    swtpm: Any, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with start_system(
        tmp_path_factory.mktemp("sys"),
        swtpm=swtpm,
        tpm=device,
        bank_policy={"blacklist_threshold": 1000},
    ) as s:
        yield s


@pytest.fixture(scope="module")
def wallet(
    system: System, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> WalletHandle:
    return system.open_wallet(device, tmp_path_factory.mktemp("wallet"))


# --- helpers -------------------------------------------------------------------------------------


def coin_of(wallet: WalletHandle, value: int) -> HeldCoin:
    """An unspent coin of ``value`` from the wallet (left unspent in its store)."""
    for hc in wallet.store.coins("unspent"):
        if hc.value == value:
            return hc
    raise LookupError(value)


def tpm_spend(
    wallet: WalletHandle, coin: Coin, request: dict[str, Any], signer: Any = None
) -> dict[str, Any]:
    preq = canonical_digest(request["request"]["body"])
    proof = make_spend_proof(
        signer or wallet.signer,
        hop=wallet.membership.opener_public,
        preq=preq,
        keyset_id=coin.keyset_id,
        epoch=coin.epoch,
        sigma=coin.sigma,
        coin=coin.credential,
        self_check=signer is None,
    )
    return Spend(coin, proof).to_dict()


def merchant_refusal(
    system: System, merchant: str, request: dict[str, Any], spends: list[Any]
) -> RemoteCallError:
    with pytest.raises(RemoteCallError) as exc:
        system.merchant_client(merchant).pay(request["request"], spends)
    return exc.value


def bank_refusal(
    system: System, merchant: str, request: dict[str, Any], spends: list[Any]
) -> RemoteCallError:
    """Deposit straight at the bank with the merchant's key, skipping its local checks."""
    m = system.merchants[merchant]
    signed = sign_deposit(
        m.config.key,
        deposit_id="dep-" + secrets.token_hex(8),
        merchant_id=merchant,
        request=request["request"],
        spends=spends,
    )
    with pytest.raises(RemoteCallError) as exc:
        system.bank_client_as(merchant).deposit(signed, m.config.cert_pem)
    return exc.value


# --- the main flow -------------------------------------------------------------------------------


def test_join_withdraw_100_pay_37_deposit(system: System, wallet: WalletHandle) -> None:
    customer0 = system.customer_balance()
    res = wallet.withdraw(100)
    assert res.amount == 100 and sum(c.value for c in res.coins) == 100
    assert system.customer_balance() == customer0 - 100
    assert wallet.balance() == 100 and system.outstanding() == 100

    paid = wallet.pay(37, "shop-1")
    assert paid.amount == 37 and sum(paid.coins) == 37 and paid.merchant_id == "shop-1"
    assert paid.receipt["body"]["merchant_id"] == "shop-1"
    assert wallet.balance() == 63  # in coins
    assert system.merchant_balance("shop-1") == 37
    assert system.outstanding() == 63  # bank: coins still out
    assert system.customer_balance() == customer0 - 100
    assert system.bank.ledger_check()["ok"] is True
    history = wallet.store.payments()
    assert [(p.state, p.amount, p.merchant_id) for p in history] == [("paid", 37, "shop-1")]
    assert system.merchants["shop-1"].stats().totals == {
        "EUR": {"paid_count": 1, "paid_amount": 37}
    }
    # every paid coin is spent at the bank
    bank = system.bank_client()
    for sigma in history[0].serials:
        assert bank.coin_status(sigma)["state"] == "spent"


def test_spend_replayed_to_another_merchant_or_request_is_refused(
    system: System, wallet: WalletHandle
) -> None:
    hc = coin_of(wallet, 1)
    req_a = wallet.request(1, "shop-1")
    spend = tpm_spend(wallet, hc.coin, req_a)
    req_b = wallet.request(1, "shop-2")
    assert merchant_refusal(system, "shop-2", req_b, [spend]).code == "daa.spend_proof_invalid"
    assert bank_refusal(system, "shop-2", req_b, [spend]).code == "bank.bad_proof"
    req_c = wallet.request(1, "shop-1")
    assert merchant_refusal(system, "shop-1", req_c, [spend]).code == "daa.spend_proof_invalid"
    assert bank_refusal(system, "shop-1", req_c, [spend]).code == "bank.bad_proof"
    # shop-1's request presented to shop-2 (with the proof made for it)
    err = merchant_refusal(system, "shop-2", req_a, [spend])
    assert err.code == "payment.not_our_request" and err.status == 400
    assert system.bank_client().coin_status(hc.sigma)["state"] == "unspent"


def test_software_key_proof_is_refused(system: System, wallet: WalletHandle) -> None:
    """A copy of the wallet file without the TPM: the coin is there, sk is not."""
    hc = coin_of(wallet, 2)
    req = wallet.request(2, "shop-1")
    spend = tpm_spend(wallet, hc.coin, req, signer=SoftwareDaaSigner())
    assert merchant_refusal(system, "shop-1", req, [spend]).code == "daa.spend_proof_invalid"
    assert bank_refusal(system, "shop-1", req, [spend]).code == "bank.bad_proof"


@pytest.mark.parametrize("part", ["signature", "serial", "credential", "proof"])
def test_tampered_coin_is_refused(system: System, wallet: WalletHandle, part: str) -> None:
    hc = coin_of(wallet, 4)
    req = wallet.request(4, "shop-1")
    spend = tpm_spend(wallet, hc.coin, req)
    coin, proof = dict(spend["coin"]), dict(spend["proof"])
    if part == "signature":
        sig = bytearray(b64u_decode(coin["signature"]))
        sig[10] ^= 0x40
        coin["signature"] = b64u_encode(bytes(sig))
    elif part == "serial":
        coin["sigma"] = b64u_encode(secrets.token_bytes(32))
    elif part == "credential":
        other = wallet.membership.credential.randomize()
        coin["credential"] = {**coin["credential"], "T": other.to_dict()["T"]}
    else:
        c1 = Point.decode(b64u_decode(proof["c1"]))
        proof["c1"] = b64u_encode((c1 + G).encode())
    bad = [{"coin": coin, "proof": proof}]
    merchant_code = "daa.spend_proof_invalid" if part == "proof" else "coin.bad_signature"
    bank_code = "bank.bad_proof" if part == "proof" else "bank.bad_coin_signature"
    assert merchant_refusal(system, "shop-1", req, bad).code == merchant_code
    assert bank_refusal(system, "shop-1", req, bad).code == bank_code


def test_forged_credential_is_refused_by_the_merchant(system: System, wallet: WalletHandle) -> None:
    """(R, S, T, W) not issued by the issuer but blind-signed (the bank signs blindly) and
    spent with a matching software key: the merchant's own pairing check under the epoch's
    certified G2 keys refuses it before anything reaches the bank (docs/protocol.md §7.4)."""
    sk = random_scalar()
    thief = SoftwareDaaSigner(sk)
    s_pt = random_scalar() * G
    forged = RandomizedCredential(random_scalar() * G, s_pt, random_scalar() * G, sk * s_pt)
    bank = wallet.bank()
    keysets = bank.keysets()
    ks = next(k for k in keysets.keysets if k.value == 1 and k.can_withdraw(system.clock()))
    sigma = secrets.token_bytes(32)
    prepared = blindrsa.prepare(coin_message(ks.keyset_id, wallet.membership.epoch, sigma, forged))
    blinded, inv = blindrsa.blind(ks.public_key, prepared)
    (blind_sig,) = bank.withdraw("forge-" + secrets.token_hex(8), [(ks.keyset_id, blinded)])
    sig = blindrsa.finalize(ks.public_key, prepared, blind_sig, inv)
    coin = Coin(ks.keyset_id, wallet.membership.epoch, sigma, forged, prepared[:32], sig)
    req = wallet.request(1, "shop-1")
    spend = tpm_spend(wallet, coin, req, signer=thief)
    shop = system.merchants["shop-1"]
    before, customer0, coins0 = (
        system.merchant_balance("shop-1"),
        system.customer_balance(),
        wallet.balance(),
    )
    failures0 = shop.stats().counters.get("verify_failure", {}).get("daa.credential_invalid", 0)
    bank_errors0 = dict(shop.stats().counters.get("bank_error", {}))
    err = merchant_refusal(system, "shop-1", req, [spend])
    assert (err.code, err.status) == ("daa.credential_invalid", 400)
    assert err.detail["check"] == "S" and err.detail["index"] == 0
    # the merchant refused it itself: nothing deposited, nothing delivered, nothing booked
    row = shop.store.get(canonical_digest(req["request"]["body"]))
    assert row is not None and row.state == "open" and row.receipt is None
    counters = shop.stats().counters
    assert counters["verify_failure"]["daa.credential_invalid"] == failures0 + 1
    assert counters.get("bank_error", {}) == bank_errors0
    assert "credential_check" not in counters  # the epoch's G2 keys were certified
    assert system.merchant_balance("shop-1") == before
    assert system.customer_balance() == customer0
    assert system.bank_client().coin_status(sigma)["state"] == "unspent"
    assert wallet.balance() == coins0  # the customer's own coins are untouched
    # and an honest payment right after is checked the same way and goes through
    if wallet.balance() < 2:
        wallet.withdraw(2)
    assert wallet.pay(2, "shop-1").amount == 2
    assert system.merchant_balance("shop-1") == before + 2


def test_withdrawal_retried_after_lost_answer_debits_once(
    system: System, wallet: WalletHandle
) -> None:
    customer0, coins0 = system.customer_balance(), wallet.balance()
    lossy = system.login(transport=LoseAnswer("/v1/withdraw", verify=system.client_tls()))
    with pytest.raises(EcashError) as exc:
        wallet.withdraw(10, bank=lossy)
    assert exc.value.code == "wallet.withdrawal_pending"
    assert system.customer_balance() == customer0 - 10  # the bank did it; the answer was lost
    (pending,) = wallet.store.pending_withdrawals()
    assert wallet.balance() == coins0
    (done,) = wallet.resume_withdrawals(bank=lossy)
    assert done.request_id == pending.request_id
    assert sorted(c.sigma for c in done.coins) == sorted(i.sigma for i in pending.items)
    assert wallet.balance() == coins0 + 10
    assert system.customer_balance() == customer0 - 10  # debited once
    assert wallet.resume_withdrawals(bank=lossy) == []
    with system.bank.db.read() as tx:
        n = tx.fetchval(
            "SELECT COUNT(*) AS n FROM withdrawal WHERE request_id = :r", {"r": pending.request_id}
        )
    assert n == 1


def test_sent_payment_without_answer_recovers_as_spent(
    system: System, wallet: WalletHandle
) -> None:
    coins0, shop0 = wallet.balance(), system.merchant_balance("shop-2")
    with pytest.raises(EcashError) as exc:
        wallet.pay(5, "shop-2", transport=LoseAnswer("/v1/pay", verify=system.client_tls()))
    assert exc.value.code == "wallet.payment_unknown"
    (open_payment,) = wallet.store.payments(open_only=True)
    assert wallet.balance() == coins0 - 5  # pending, not spendable
    assert system.merchant_balance("shop-2") == shop0 + 5  # the merchant did deposit
    (result,) = wallet.recover()
    assert result.outcome == "spent" and set(result.coin_states.values()) == {"spent"}
    assert wallet.store.payment(open_payment.payment_id).state == "spent"
    assert wallet.balance() == coins0 - 5
    assert wallet.store.balance()["EUR"]["pending"] == 0


def test_sent_payment_never_delivered_recovers_as_unspent(
    system: System, wallet: WalletHandle
) -> None:
    coins0 = wallet.balance()
    with pytest.raises(EcashError) as exc:
        wallet.pay(
            3, "shop-1", transport=LoseAnswer("/v1/pay", deliver=False, verify=system.client_tls())
        )
    assert exc.value.code == "wallet.payment_unknown"
    assert wallet.balance() == coins0 - 3
    (waiting,) = wallet.recover()  # before the deadline the merchant could still deposit
    assert waiting.outcome == "waiting"
    assert wallet.balance() == coins0 - 3
    system.clock.advance(301)  # deadline passed, but the bank's clock may differ from ours
    (margin,) = wallet.recover()
    assert margin.outcome == "waiting"
    system.clock.advance(RECOVERY_GRACE_S)  # well past it: the bank refuses the deposit now
    (released,) = wallet.recover()
    assert released.outcome == "released" and set(released.coin_states.values()) == {"unspent"}
    assert wallet.balance() == coins0
    assert wallet.store.payment(released.payment_id).state == "failed"


def test_merchant_may_reserve_coins_before_depositing(system: System, wallet: WalletHandle) -> None:
    shop = system.merchants["shop-2"]
    shop.config = dataclasses.replace(shop.config, reserve=True)
    try:
        before = system.merchant_balance("shop-2")
        paid = wallet.pay(6, "shop-2")
        assert paid.amount == 6 and system.merchant_balance("shop-2") == before + 6
        with system.bank.db.read() as tx:  # the deposit released the lock
            assert tx.fetchval("SELECT COUNT(*) AS n FROM coin_lock") == 0
    finally:
        shop.config = dataclasses.replace(shop.config, reserve=False)


def test_double_spend_reaches_the_customer_as_409_with_its_code(
    system: System, wallet: WalletHandle
) -> None:
    """Runs last: the double spend is reported, opened, and the member revoked."""
    paid = wallet.pay(2, "shop-1")
    (sigma,) = wallet.store.payment(paid.payment_id).serials
    coin = next(hc.coin for hc in wallet.store.coins("spent") if hc.sigma == sigma)
    req = wallet.request(2, "shop-2")
    err = merchant_refusal(system, "shop-2", req, [tpm_spend(wallet, coin, req)])
    assert err.status == 409 and err.code == "bank.double_spend"
    assert err.detail["serial"] == b64u_encode(sigma) and isinstance(
        err.detail["transcript_id"], int
    )
    assert system.merchants["shop-2"].stats().counters["bank_error"]["bank.double_spend"] == 1
    case = system.supervision.case(sigma)
    assert case is not None and case.member_id == wallet.membership.member_id
    with pytest.raises(EcashError) as exc:
        wallet.withdraw(1)
    assert exc.value.code == "bank.member_not_active"

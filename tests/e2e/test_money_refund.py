"""Refunds end to end over real HTTP with swtpm (issue 12, item 3; docs/protocol.md "Refunds").

The merchant signs a refund permission for a paid request (admin route), the customer's wallet
fetches it by preq and claims it anonymously at the bank with TPM ownership proofs of the
refunded coins, and gets fresh coins; the bank debits the merchant. Tests run in file order on
one system and check balance deltas; the deadline test runs last because it moves the clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.refunds import ADMIN_TOKEN, claim, grant, preq_of, thief_claim
from support.system import System, WalletHandle, start_system

from ecash_tpm.crypto.bn256 import random_scalar
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.refund import resume_refund_claims

pytestmark = pytest.mark.swtpm


class LoseAnswer(httpx.BaseTransport):
    """Delivers the first request to ``path``, then fails as if the answer was lost."""

    def __init__(self, path: str, *, verify: Any) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)
        self.path = path
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.dropped == 0:
            self.dropped += 1
            response = self.inner.handle_request(request)
            response.read()
            response.close()
            raise httpx.ReadTimeout("answer lost (test)", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


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
        merchant_admin_token=ADMIN_TOKEN,
    ) as s:
        yield s


@pytest.fixture(scope="module")
def wallet(
    system: System, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> WalletHandle:
    w = system.open_wallet(device, tmp_path_factory.mktemp("wallet"))
    w.withdraw(200)
    return w


def unspent(wallet: WalletHandle) -> int:
    return sum(c.value for c in wallet.store.coins("unspent"))


def refusal(fn: Any) -> EcashError:
    with pytest.raises(EcashError) as exc:
        fn()
    return exc.value


def test_full_refund_claimed_by_the_wallet(system: System, wallet: WalletHandle) -> None:
    paid = wallet.pay(12, "shop-1")
    preq = preq_of(paid)
    shop, coins, outstanding = (
        system.merchant_balance("shop-1"),
        unspent(wallet),
        system.outstanding(),
    )
    granted = grant(system, preq)
    assert granted["refunds"][0]["body"]["amount"] == 12
    assert system.merchant_balance("shop-1") == shop  # debited only when claimed
    result = claim(wallet, preq)
    assert result.amount == 12 and sum(c.value for c in result.coins) == 12
    assert system.merchant_balance("shop-1") == shop - 12
    assert unspent(wallet) == coins + 12
    assert system.outstanding() == outstanding + 12
    system.bank.ledger_check()
    # the fresh coins are money: they pay
    again = wallet.pay(12, "shop-2")
    assert again.amount == 12


def test_partial_refund(system: System, wallet: WalletHandle) -> None:
    paid = wallet.pay(10, "shop-1")
    preq = preq_of(paid)
    shop, coins = system.merchant_balance("shop-1"), unspent(wallet)
    grant(system, preq, 4)
    assert claim(wallet, preq).amount == 4
    assert system.merchant_balance("shop-1") == shop - 4
    grant(system, preq, 6)  # the rest, later
    assert claim(wallet, preq).amount == 6  # the first refund is not claimed again
    assert system.merchant_balance("shop-1") == shop - 10
    assert unspent(wallet) == coins + 10
    err = refusal(lambda: grant(system, preq, 1))  # nothing is left of the payment
    assert err.code == "refund.bad_amount"
    system.bank.ledger_check()


def test_refund_claimed_twice_is_refused(system: System, wallet: WalletHandle) -> None:
    paid = wallet.pay(8, "shop-1")
    preq = preq_of(paid)
    spent = {c.sigma: c.coin for c in wallet.store.coins()}
    granted = grant(system, preq)
    shop = system.merchant_balance("shop-1")
    assert claim(wallet, preq).amount == 8
    # the same permission again, even with valid TPM proofs and other outputs: refused
    err = refusal(lambda: thief_claim(wallet, granted, wallet.signer, spent))
    assert err.code == "refund.already_claimed"
    assert isinstance(err, RemoteCallError) and err.status == 409
    assert claim(wallet, preq).amount == 0  # the wallet knows it claimed it
    assert system.merchant_balance("shop-1") == shop - 8


def test_lost_claim_answer_is_retried_once(system: System, wallet: WalletHandle) -> None:
    paid = wallet.pay(6, "shop-1")
    preq = preq_of(paid)
    grant(system, preq)
    shop, coins = system.merchant_balance("shop-1"), unspent(wallet)
    lossy = system.bank_client(
        transport=LoseAnswer("/v1/refunds/claim", verify=system.client_tls())
    )
    err = refusal(lambda: claim(wallet, preq, bank=lossy))
    assert err.code == "wallet.refund_pending"
    assert system.merchant_balance("shop-1") == shop - 6  # booked, answer lost
    assert claim(wallet, preq).amount == 6  # same claim id and outputs: stored signatures
    assert system.merchant_balance("shop-1") == shop - 6
    assert unspent(wallet) == coins + 6
    system.bank.ledger_check()


def test_lost_claim_answer_is_resumed_without_the_merchant(
    system: System, wallet: WalletHandle
) -> None:
    paid = wallet.pay(4, "shop-1")
    preq = preq_of(paid)
    grant(system, preq)
    shop, coins = system.merchant_balance("shop-1"), unspent(wallet)
    lossy = system.bank_client(
        transport=LoseAnswer("/v1/refunds/claim", verify=system.client_tls())
    )
    assert refusal(lambda: claim(wallet, preq, bank=lossy)).code == "wallet.refund_pending"
    resumed = resume_refund_claims(wallet.spending(), system.bank_client())  # no shop asked
    assert resumed.amount == 4 and len(resumed.refund_ids) == 1
    assert system.merchant_balance("shop-1") == shop - 4
    assert unspent(wallet) == coins + 4
    assert resume_refund_claims(wallet.spending(), system.bank_client()).amount == 0


def test_someone_else_cannot_claim_the_refund(system: System, wallet: WalletHandle) -> None:
    paid = wallet.pay(8, "shop-1")
    preq = preq_of(paid)
    spent = {c.sigma: c.coin for c in wallet.store.coins()}
    granted = grant(system, preq)
    shop = system.merchant_balance("shop-1")
    thief = SoftwareDaaSigner(random_scalar())  # another DAA key: not the coins' TPM
    err = refusal(lambda: thief_claim(wallet, granted, thief, spent))
    assert err.code == "refund.bad_proof"
    assert system.merchant_balance("shop-1") == shop
    assert claim(wallet, preq).amount == 8  # the owner still can
    assert system.merchant_balance("shop-1") == shop - 8


def test_merchant_refuses_what_it_cannot_refund(system: System, wallet: WalletHandle) -> None:
    shop = system.merchant_client("shop-1")
    unpaid = canonical_digest(wallet.request(3, "shop-1")["request"]["body"])
    assert refusal(lambda: grant(system, unpaid)).code == "payment.not_paid"
    assert refusal(lambda: grant(system, b"\x00" * 32)).code == "payment.unknown_request"
    assert refusal(lambda: shop.refund(unpaid)).code == "refund.not_found"
    paid = wallet.pay(2, "shop-1")
    wrong = refusal(lambda: shop.create_refund(preq_of(paid), admin_token="x" * 24))
    assert wrong.code == "merchant.admin_auth"
    assert refusal(lambda: grant(system, preq_of(paid), 3)).code == "refund.bad_amount"


def test_refund_after_deadline_is_refused(system: System, wallet: WalletHandle) -> None:
    paid = wallet.pay(4, "shop-1")
    preq = preq_of(paid)
    grant(system, preq)
    shop = system.merchant_balance("shop-1")
    system.clock.advance(2 * 86400)  # past deadline + refund_period_s (one day)
    err = refusal(lambda: claim(wallet, preq))
    assert err.code == "refund.deadline_passed"
    assert system.merchant_balance("shop-1") == shop
    late = wallet.pay(2, "shop-1")
    err = refusal(lambda: (system.clock.advance(2 * 86400), grant(system, preq_of(late))))
    assert err.code == "refund.deadline_passed"
    system.bank.ledger_check()

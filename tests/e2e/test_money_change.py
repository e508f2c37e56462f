"""Issue 12 end to end: anonymous change and refresh by swap (docs/protocol.md 9.3).

Every party is a real HTTPS server; the coins are bound to the swtpm. The bank runs its default
denominations (1, 2, 5, 10, 20, 50, ...)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.money import change_for, hand_swap, pay_with_change
from support.system import System, WalletHandle, start_system
from test_e2e_payment import LoseAnswer, bank_refusal, coin_of, tpm_spend

from ecash_tpm.bank.settings import DEFAULT_DENOMINATIONS
from ecash_tpm.device import TpmDevice
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.pay import RECOVERY_GRACE_S
from ecash_tpm.wallet.swap import SwapFailedError, resume_swaps

pytestmark = pytest.mark.swtpm


@pytest.fixture
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture
def system(swtpm: Any, device: TpmDevice, tmp_path: Path) -> Iterator[System]:
    with start_system(
        tmp_path / "sys",
        swtpm=swtpm,
        tpm=device,
        denominations=DEFAULT_DENOMINATIONS,
        initial_balance=1000,
        withdraw_period_s=4 * 3600,
        deposit_period_s=4 * 3600,
    ) as s:
        yield s


@pytest.fixture
def wallet(system: System, device: TpmDevice, tmp_path: Path) -> WalletHandle:
    return system.open_wallet(device, tmp_path / "w")


def test_every_amount_to_zero_with_at_most_one_swap(system: System, wallet: WalletHandle) -> None:
    """After ``withdraw 1000``, a random walk of payments spends the balance to zero; every
    payment succeeds with at most one swap, and the ledger ends where it should."""
    wallet.withdraw(1000)
    change = change_for(wallet, refresh_margin_s=3600)
    rng = random.Random(12)
    paid, payments, swaps = 0, 0, 0
    while wallet.balance() > 0 and payments < 45:
        left = wallet.balance()
        amount = left if payments == 44 or left <= 3 else rng.randint(1, max(1, left // 3))
        before = len(change.swaps)
        result = pay_with_change(wallet, amount, change=change)
        used = len(change.swaps) - before
        assert used <= 1, (amount, change.swaps[before:])
        assert (result.swap is not None) == (used == 1)
        swaps += used
        paid += amount
        payments += 1
        assert wallet.balance() == 1000 - paid
    assert wallet.balance() == 0 and paid == 1000
    assert swaps > 0  # the walk did need change
    assert system.merchant_balance("shop-1") == 1000
    assert system.outstanding() == 0


def test_swapped_coin_cannot_be_deposited_again(system: System, wallet: WalletHandle) -> None:
    """A swapped coin is spent: depositing it later is a double spend, and swapping a
    deposited coin is one too (409 ``bank.double_spend``); both are reported to the
    supervision department, which opens them to the member (docs/protocol.md 9.3)."""
    wallet.withdraw(10, strategy="fewest")
    wallet.withdraw(10, strategy="fewest")  # both now: the first double spend revokes the member
    hc, hc2 = [c for c in wallet.store.coins("unspent") if c.value == 10][:2]
    body, spends = hand_swap(wallet, [hc.coin], [5, 5])
    assert len(system.bank_client().swap(body, spends)) == 2
    assert len(system.bank_client().swap(body, spends)) == 2  # idempotent by request id
    assert system.bank.swap_reports.all() == []  # a retry is no second spend
    req = wallet.request(10, "shop-1")
    refused = bank_refusal(system, "shop-1", req, [tpm_spend(wallet, hc.coin, req)])
    assert refused.code == "bank.double_spend"
    assert "refusal" in refused.detail  # the bank signs it (docs/protocol.md 10.1)
    assert [r.status for r in system.bank.swap_reports.all()] == ["sent"]
    case = system.supervision.case(hc.sigma)
    assert case is not None and case.member_id == wallet.membership.member_id
    # the other way round: a deposited coin cannot be swapped
    req2 = wallet.request(10, "shop-1")
    system.merchant_client("shop-1").pay(req2["request"], [tpm_spend(wallet, hc2.coin, req2)])
    body2, spends2 = hand_swap(wallet, [hc2.coin], [10])
    with pytest.raises(RemoteCallError) as exc:
        system.bank_client().swap(body2, spends2)
    assert exc.value.code == "bank.double_spend"
    case2 = system.supervision.case(hc2.sigma)  # reported through the deposit's queue
    assert case2 is not None and case2.member_id == wallet.membership.member_id
    assert system.outstanding() == 10  # the swap's outputs (5 + 5) were never collected
    assert system.merchant_balance("shop-1") == 10


def test_swap_refusals(system: System, wallet: WalletHandle) -> None:
    """Outputs must add up to the inputs; a request id is one swap; deadlines hold."""
    wallet.withdraw(10, strategy="fewest")
    hc = coin_of(wallet, 10)
    client = system.bank_client()
    body, spends = hand_swap(wallet, [hc.coin], [5, 2])
    with pytest.raises(RemoteCallError) as exc:
        client.swap(body, spends)
    assert exc.value.code == "bank.request_mismatch"
    body, spends = hand_swap(wallet, [hc.coin], [5, 5], deadline_s=-1)
    with pytest.raises(RemoteCallError) as exc:
        client.swap(body, spends)
    assert exc.value.code == "bank.swap_expired"
    body, spends = hand_swap(wallet, [hc.coin], [5, 5])
    other = dict(body, outputs=body["outputs"][::-1])
    with pytest.raises(RemoteCallError) as exc:  # the proofs sign the outputs
        client.swap(other, spends)
    assert exc.value.code == "bank.bad_proof"
    client.swap(body, spends)
    body2, spends2 = hand_swap(wallet, [hc.coin], [10])
    body2["request_id"] = body["request_id"]
    with pytest.raises(RemoteCallError) as exc:
        client.swap(body2, spends2)
    assert exc.value.code == "bank.swap_conflict"


def test_coin_near_expiry_is_refreshed(system: System, wallet: WalletHandle) -> None:
    """A coin one hour from its keyset's deposit deadline is swapped into a current keyset on
    the next operation and is still spendable after the deadline."""
    wallet.withdraw(20, strategy="fewest")
    old = coin_of(wallet, 20)
    system.clock.advance(7 * 3600)  # one hour before deposit_until = start + 8 h
    system.publish_crl()
    system.bank.rotate_keysets()  # the bank's current keysets (its operator rotates them)
    change = change_for(wallet, refresh_margin_s=2 * 3600)
    assert [c.sigma for c in change.expiring()] == [old.sigma]
    result = pay_with_change(wallet, 1, change=change)
    assert [s.reason for s in change.swaps] == ["refresh"]
    assert result.amount == 1
    system.clock.advance(2 * 3600)  # past the old keyset's deposit deadline
    system.publish_crl()
    assert wallet.balance() == 19
    assert wallet.store.balance()["EUR"].get("expired", 0) == 0
    pay_with_change(wallet, 19, change=change)
    assert wallet.balance() == 0
    assert system.merchant_balance("shop-1") == 20


def _lossy_change(system: System, wallet: WalletHandle, *, deliver: bool) -> Any:
    transport = LoseAnswer("/v1/swap", deliver=deliver, verify=system.client_tls())
    change = change_for(wallet)
    change.bank = system.bank_client(transport=transport)
    return change


def test_swap_answer_lost_is_completed_by_resending(system: System, wallet: WalletHandle) -> None:
    """The bank booked the swap but its answer was lost: the inputs stay pending (never offered
    again), and sending the identical swap again brings the outputs; nothing is lost."""
    wallet.withdraw(10, strategy="fewest")
    change = _lossy_change(system, wallet, deliver=True)
    with pytest.raises(SwapFailedError) as exc:
        pay_with_change(wallet, 3, change=change)
    assert exc.value.code == "wallet.swap_failed"
    assert wallet.balance() == 0  # the 10 is pending, not spendable
    (record,) = [p for p in wallet.store.payments(open_only=True)]
    assert record.state == "sent" and record.merchant_id == "bank:swap"
    (waiting,) = wallet.recover()  # the bank says spent: recovery waits for the swap's answer
    assert waiting.outcome == "waiting"
    assert len(resume_swaps(wallet.spending(), system.bank_client())) == 1
    assert wallet.balance() == 10
    wallet.pay(3, "shop-1")  # exact now
    assert wallet.balance() == 7 and system.outstanding() == 7


def test_swap_never_delivered_is_released_after_its_deadline(
    system: System, wallet: WalletHandle
) -> None:
    """The swap never reached the bank: the coins are released only on the bank's signed
    status after the swap's deadline (+ grace), as for a payment (docs/protocol.md 10.1)."""
    wallet.withdraw(10, strategy="fewest")
    change = _lossy_change(system, wallet, deliver=False)
    with pytest.raises(SwapFailedError):
        pay_with_change(wallet, 3, change=change)
    assert wallet.balance() == 0
    (early,) = wallet.recover()
    assert early.outcome == "waiting"
    system.clock.advance(300 + RECOVERY_GRACE_S + 1)
    (late,) = wallet.recover()
    assert late.outcome == "released"
    assert wallet.balance() == 10
    pay_with_change(wallet, 3, change=change_for(wallet))  # and the change works now
    assert wallet.balance() == 7

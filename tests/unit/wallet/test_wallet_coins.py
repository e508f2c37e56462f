"""Wallet coin logic without a bank: denomination splits, exact-change selection, the store."""

from __future__ import annotations

import itertools
import secrets
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto.groupsig import IssuerSecret, issue_credential
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.wallet.coins import HeldCoin, select_coins, split_amount
from ecash_tpm.wallet.records import PendingCoin
from ecash_tpm.wallet.store import WalletStore

BINARY = (1, 2, 4, 8, 16, 32, 64)
DECIMAL = (1, 2, 5, 10, 20, 50, 100)
_CRED = issue_credential(IssuerSecret.generate(), SoftwareDaaSigner().public_point)[0]
_RC = _CRED.randomize()


def held(value: int, deposit_until: int = 10**10) -> HeldCoin:
    coin = Coin(secrets.token_bytes(16), 1, secrets.token_bytes(32), _RC, bytes(32), b"s" * 256)
    return HeldCoin(coin, value, "EUR", deposit_until)


# --- splitting -------------------------------------------------------------------------------


def test_payable_split_lets_every_smaller_amount_be_paid_exactly() -> None:
    assert split_amount(100, BINARY) == [32, 32, 16, 8, 4, 4, 2, 1, 1]
    assert split_amount(100, BINARY, "fewest") == [64, 32, 4]
    coins = [held(v) for v in split_amount(100, BINARY)]
    for amount in range(1, 101):
        assert sum(c.value for c in select_coins(coins, amount)) == amount


@given(st.integers(1, 2000), st.sampled_from([BINARY, DECIMAL]))
@settings(max_examples=60, deadline=None)
def test_split_sums_to_amount(amount: int, denoms: tuple[int, ...]) -> None:
    for strategy in ("payable", "fewest"):
        values = split_amount(amount, denoms, strategy)  # type: ignore[arg-type]
        assert sum(values) == amount and set(values) <= set(denoms)


def test_split_refuses_what_the_denominations_cannot_make() -> None:
    with pytest.raises(EcashError) as exc:
        split_amount(3, (2, 4))
    assert exc.value.code == "wallet.amount_not_representable"
    with pytest.raises(EcashError) as exc:
        split_amount(0, BINARY)
    assert exc.value.code == "input.invalid"


# --- selection -------------------------------------------------------------------------------


def test_selection_takes_the_fewest_coins_summing_exactly() -> None:
    coins = [held(v) for v in (64, 32, 4, 2, 1, 1)]
    picked = select_coins(coins, 37)
    assert sorted(c.value for c in picked) == [1, 4, 32]
    # greedy would take 5 + 1 + 1 + 1 for 8; the optimum is 4 + 4
    coins = [held(v) for v in (5, 4, 4, 1, 1, 1)]
    assert sorted(c.value for c in select_coins(coins, 8)) == [4, 4]


def test_selection_prefers_coins_that_expire_first() -> None:
    late, early = held(4, deposit_until=2000), held(4, deposit_until=1000)
    assert select_coins([late, early], 4) == [early]


@given(st.lists(st.sampled_from(BINARY + (5, 10)), min_size=1, max_size=9), st.integers(1, 120))
@settings(max_examples=80, deadline=None)
def test_selection_is_exact_and_minimal(values: list[int], amount: int) -> None:
    coins = [held(v) for v in values]
    best = None
    for r in range(1, len(values) + 1):
        if any(sum(c) == amount for c in itertools.combinations(values, r)):
            best = r
            break
    try:
        picked = select_coins(coins, amount)
    except EcashError as exc:
        assert best is None
        assert exc.code in ("wallet.no_exact_change", "wallet.insufficient_funds")
        return
    assert sum(c.value for c in picked) == amount and len(picked) == best
    assert len({c.sigma for c in picked}) == len(picked)


def test_selection_errors_are_typed() -> None:
    coins = [held(v) for v in (64, 32, 4)]
    with pytest.raises(EcashError) as exc:
        select_coins(coins, 37)
    assert exc.value.code == "wallet.no_exact_change"
    assert exc.value.detail["balance"] == 100
    with pytest.raises(EcashError) as exc:
        select_coins(coins, 101)
    assert exc.value.code == "wallet.insufficient_funds"


# --- the store -------------------------------------------------------------------------------


class Clock:
    t = 1_000

    def __call__(self) -> int:
        return self.t


def _pending(value: int) -> PendingCoin:
    return PendingCoin(
        keyset_id=secrets.token_bytes(16),
        value=value,
        currency="EUR",
        deposit_until=5_000,
        epoch=1,
        sigma=secrets.token_bytes(32),
        credential=_RC.to_dict(),
        msg_prefix=secrets.token_bytes(32),
        blinded_msg=secrets.token_bytes(256),
        inv=secrets.token_bytes(256),
    )


def test_store_withdrawal_and_payment_lifecycle(tmp_path: Path) -> None:
    clock = Clock()
    with WalletStore.open(tmp_path / "w", clock) as store:
        assert stat.S_IMODE((tmp_path / "w" / "coins.db").stat().st_mode) == 0o600
        items = [_pending(v) for v in (32, 4, 1)]
        store.add_pending_withdrawal("req-00000001", "EUR", items)
        again = store.pending_withdrawals()
        assert len(again) == 1 and again[0].items == items and again[0].amount == 37
        coins = [
            HeldCoin(
                Coin(i.keyset_id, 1, i.sigma, _RC, i.msg_prefix, b"s" * 256), i.value, "EUR", 5_000
            )
            for i in items
        ]
        store.complete_withdrawal("req-00000001", coins)
        store.complete_withdrawal("req-00000001", coins)  # idempotent
        assert store.pending_withdrawals() == []
        assert store.balance() == {"EUR": {"unspent": 37, "pending": 0, "expired": 0}}

        def start(pid: str, preq: bytes, amount: int) -> list[HeldCoin]:
            return store.start_payment(
                payment_id=pid,
                merchant_id="shop-1",
                merchant_url=None,
                preq=preq,
                amount=amount,
                currency="EUR",
                deadline=2_000,
                request={"body": {}},
                spendable_after=clock(),
                choose=lambda cs: select_coins(cs, amount),
            )

        chosen = start("p1", b"A" * 32, 5)
        assert sorted(c.value for c in chosen) == [1, 4]
        assert store.balance()["EUR"] == {"unspent": 32, "pending": 5, "expired": 0}
        with pytest.raises(EcashError) as exc:  # the same request cannot be paid twice
            start("p2", b"A" * 32, 5)
        assert exc.value.code == "wallet.coin_state"
        with pytest.raises(EcashError) as exc:  # pending coins are not offered again
            start("p3", b"B" * 32, 5)
        assert exc.value.code == "wallet.no_exact_change"
        store.mark_sent("p1", [])
        store.finish_payment(
            "p1", state="paid", receipt={"body": {}}, spent=[c.sigma for c in chosen]
        )
        assert store.balance()["EUR"] == {"unspent": 32, "pending": 0, "expired": 0}
        hist = store.payments()
        assert [(p.payment_id, p.state) for p in hist] == [("p1", "paid")]
        assert store.payments(open_only=True) == []

        chosen = start("p4", b"C" * 32, 32)
        store.finish_payment("p4", state="failed", released=[c.sigma for c in chosen])
        assert store.balance()["EUR"]["unspent"] == 32
        clock.t = 5_000  # the keyset's deposit window is over
        assert store.balance()["EUR"] == {"unspent": 0, "pending": 0, "expired": 32}


# --- redeem limits (docs/protocol.md 9.4) ----------------------------------------------------


def test_redeem_all_takes_the_largest_coins_the_bank_accepts_in_one_redeem() -> None:
    from ecash_tpm.wallet.redeem import MAX_REDEEM_COINS, redeem_all_amount

    coins = [held(1) for _ in range(100)] + [held(5) for _ in range(10)] + [held(50, 100)]
    # the 50 expires at 100: not depositable; 10 fives and 54 ones fill the 64 slots
    assert redeem_all_amount(coins, "EUR", 200) == 10 * 5 + (MAX_REDEEM_COINS - 10)
    assert redeem_all_amount(coins, "USD", 200) == 0


def test_a_redeem_of_too_many_coins_is_refused_before_any_proof() -> None:
    from ecash_tpm.wallet.redeem import MAX_REDEEM_COINS, _at_most

    ok = [held(1) for _ in range(MAX_REDEEM_COINS)]
    assert _at_most(ok) == ok
    with pytest.raises(EcashError) as err:
        _at_most([*ok, held(1)])
    assert err.value.code == "wallet.too_many_coins"

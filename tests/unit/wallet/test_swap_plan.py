"""Issue 12: the wallet's change planning (pure): with the bank's default denominations every
amount is payable after at most one swap, and random walks of payments reach zero."""

from __future__ import annotations

import random
import secrets
from types import SimpleNamespace
from typing import Any

import pytest

from ecash_tpm.bank.settings import DEFAULT_DENOMINATIONS
from ecash_tpm.protocol.swap import MAX_SWAP_ITEMS
from ecash_tpm.wallet.coins import HeldCoin, NotEnoughCoinsError, select_coins, split_amount
from ecash_tpm.wallet.swap import FeesNotCoveredError, payable_mix, plan_change

DENOMS = list(DEFAULT_DENOMINATIONS)


def held(values: list[int]) -> list[HeldCoin]:
    coin: Any
    out = []
    for v in values:
        coin = SimpleNamespace(sigma=secrets.token_bytes(32))
        out.append(HeldCoin(coin, v, "EUR", 10**9))
    return out


def after(coins: list[HeldCoin], amount: int) -> tuple[list[HeldCoin], int]:
    """The coins after paying ``amount`` (with at most one swap) and how many swaps it took."""
    plan = plan_change(coins, amount, DENOMS)
    swaps = 0
    if plan is not None:
        inputs, values = plan
        assert len(inputs) <= MAX_SWAP_ITEMS and len(values) <= MAX_SWAP_ITEMS
        assert sum(values) == sum(c.value for c in inputs)  # the fee is 0
        gone = {c.sigma for c in inputs}
        coins = [c for c in coins if c.sigma not in gone] + held(values)
        swaps = 1
    paid = {c.sigma for c in select_coins(coins, amount)}  # exact after the swap
    return [c for c in coins if c.sigma not in paid], swaps


def test_payable_mix_keeps_every_smaller_amount_payable() -> None:
    for total in (1, 7, 38, 110, 999, 1000):
        coins = held(payable_mix(total, DENOMS))
        assert sum(c.value for c in coins) == total
        for amount in range(1, total + 1):
            select_coins(coins, amount)


def test_every_amount_of_a_fresh_1000_is_payable_with_at_most_one_swap() -> None:
    coins = held(split_amount(1000, DENOMS))  # `wallet withdraw 1000` with default settings
    for amount in range(1, 1001):
        after(coins, amount)


@pytest.mark.parametrize("seed", range(20))
def test_random_walk_to_zero(seed: int) -> None:
    rng = random.Random(seed)
    coins = held(split_amount(1000, DENOMS))
    left = 1000
    for _ in range(200):
        if left == 0:
            break
        amount = rng.randint(1, left)
        coins, swaps = after(coins, amount)
        assert swaps <= 1
        left -= amount
        assert sum(c.value for c in coins) == left
    assert left == 0


# --- refresh fees (docs/protocol.md 4.2) ----------------------------------------------------------


def one_per_big_coin(coin: HeldCoin) -> int:
    """A refresh fee of 1 on every coin of 5 and more."""
    return 1 if coin.value >= 5 else 0


def test_change_with_refresh_fees_covers_amount_and_fee() -> None:
    coins = held(split_amount(1000, DENOMS))
    for amount in range(1, 990):
        plan = plan_change(coins, amount, DENOMS, one_per_big_coin)
        if plan is None:
            continue
        inputs, values = plan
        fee = sum(one_per_big_coin(c) for c in inputs)
        assert sum(values) == sum(c.value for c in inputs) - fee  # what the bank requires
        select_coins(held(values), amount)  # the swap's outputs pay the amount exactly


def test_coins_that_cover_the_amount_but_not_the_fee_are_refused() -> None:
    coins = held([10, 5])  # 14 needs a swap of both, which costs 2
    with pytest.raises(FeesNotCoveredError) as exc:
        plan_change(coins, 14, DENOMS, one_per_big_coin)
    assert exc.value.code == "wallet.fees_not_covered"
    assert exc.value.detail == {"amount": 14, "coins": 15, "fee": 2}
    with pytest.raises(NotEnoughCoinsError) as short:  # not even the amount: the old refusal
        plan_change(coins, 16, DENOMS, one_per_big_coin)
    assert short.value.code == "wallet.insufficient_funds"
    assert plan_change(coins, 13, DENOMS, one_per_big_coin) is not None  # 15 - 2 = 13: fine

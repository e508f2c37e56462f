"""Wallet-side coin logic without I/O: denomination splits, exact-change selection, coin records.

Payments are change-free (DESIGN §5 has no refresh/change protocol), so the wallet must hold
coins that can make up any amount it may want to pay, and pay with an exact subset:

* :func:`split_amount` chooses the denominations of a withdrawal. The default ``"payable"``
  strategy first takes one coin of each small denomination while that keeps every amount up
  to the running total payable (1, 2, 4, ... for binary denominations), then splits the rest
  greedily, largest first. Pure greedy (``"fewest"``) gives the fewest coins but leaves a wallet
  that holds 64+32+4 unable to pay 37.
* :func:`select_coins` finds the fewest held coins that sum exactly to an amount (a bounded
  min-coin subset sum), preferring coins whose keyset expires first, and raises
  :class:`NoExactChangeError` (``wallet.no_exact_change``) when no subset fits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ecash_tpm.errors import InputError, ProtocolError
from ecash_tpm.protocol.coins import Coin

__all__ = [
    "MAX_SELECT_AMOUNT",
    "AmountNotRepresentableError",
    "HeldCoin",
    "NoExactChangeError",
    "NotEnoughCoinsError",
    "select_coins",
    "split_amount",
]

#: Upper bound on amounts :func:`select_coins` will search (its cost is O(amount x log n)).
MAX_SELECT_AMOUNT = 1_000_000

SplitStrategy = Literal["payable", "fewest"]


class NotEnoughCoinsError(ProtocolError):
    """The wallet's coins add up to less than the amount (not the bank's account balance)."""

    code = "wallet.insufficient_funds"


class NoExactChangeError(ProtocolError):
    """Enough value is held, but no subset of the coins adds up to exactly the amount."""

    code = "wallet.no_exact_change"


class AmountNotRepresentableError(InputError):
    """The bank's denominations cannot make up the amount exactly (e.g. no 1-unit coin)."""

    code = "wallet.amount_not_representable"


@dataclass(frozen=True)
class HeldCoin:
    """A coin in the wallet with what selection and spending need to know about it."""

    coin: Coin
    value: int
    currency: str
    deposit_until: int

    @property
    def sigma(self) -> bytes:
        return self.coin.sigma


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InputError("amount must be a positive integer (minor units)")


def split_amount(
    amount: int, denominations: Iterable[int], strategy: SplitStrategy = "payable"
) -> list[int]:
    """Coin values for withdrawing ``amount``, largest first (see the module docstring)."""
    _check_amount(amount)
    denoms = sorted({int(d) for d in denominations if int(d) > 0})
    if not denoms:
        raise AmountNotRepresentableError("the bank offers no denominations for this currency")
    if strategy not in ("payable", "fewest"):
        raise InputError("split strategy must be 'payable' or 'fewest'")
    values: list[int] = []
    covered = 0
    if strategy == "payable":
        for d in denoms:
            # Adding d keeps 0..covered+d all payable only if d <= covered + 1.
            if d <= covered + 1 and covered + d <= amount:
                values.append(d)
                covered += d
    rest = amount - covered
    for d in reversed(denoms):
        n, rest = divmod(rest, d)
        values.extend([d] * n)
    if rest:
        raise AmountNotRepresentableError(
            "amount cannot be made from the bank's denominations",
            detail={"amount": amount, "denominations": denoms, "remainder": rest},
        )
    return sorted(values, reverse=True)


def select_coins(coins: Sequence[HeldCoin], amount: int) -> list[HeldCoin]:
    """The fewest coins from ``coins`` whose values sum to exactly ``amount``.

    Coins of equal value are interchangeable for the sum, so the search runs over values with
    multiplicities (binary-split bounded knapsack, minimising the coin count); within a value
    the coins whose keyset expires soonest are used first.
    """
    _check_amount(amount)
    total = sum(c.value for c in coins)
    if total < amount:
        raise NotEnoughCoinsError(
            "not enough coins for this amount", detail={"amount": amount, "balance": total}
        )
    if amount > MAX_SELECT_AMOUNT:
        raise InputError("amount too large for exact coin selection", detail={"amount": amount})

    by_value: dict[int, list[HeldCoin]] = defaultdict(list)
    for c in coins:
        by_value[c.value].append(c)
    for group in by_value.values():
        group.sort(key=lambda c: (c.deposit_until, c.sigma))

    # Items: (value of the bundle, coin count, denomination) from binary splitting of counts.
    items: list[tuple[int, int, int]] = []
    for value, group in by_value.items():
        if value > amount:
            continue
        remaining, k = min(len(group), amount // value), 1
        while remaining > 0:
            take = min(k, remaining)
            items.append((value * take, take, value))
            remaining -= take
            k *= 2

    inf = len(coins) + 1
    best = [inf] * (amount + 1)
    best[0] = 0
    choice: list[bytearray] = []  # choice[i][s] = 1: item i is used in the best way to reach s
    for bundle, count, _ in items:
        taken = bytearray(amount + 1)
        for s in range(amount, bundle - 1, -1):
            cand = best[s - bundle] + count
            if cand < best[s]:
                best[s] = cand
                taken[s] = 1
        choice.append(taken)
    if best[amount] >= inf:
        raise NoExactChangeError(
            "no combination of the coins held adds up to exactly this amount",
            detail={"amount": amount, "balance": total, "values": sorted(by_value)},
        )

    need: dict[int, int] = defaultdict(int)
    s = amount
    for i in range(len(items) - 1, -1, -1):
        if choice[i][s]:
            bundle, count, value = items[i]
            need[value] += count
            s -= bundle
    if s != 0:  # pragma: no cover - the DP guarantees a full reconstruction
        raise NoExactChangeError("coin selection failed to reconstruct", detail={"left": s})
    picked: list[HeldCoin] = []
    for value, n in sorted(need.items(), reverse=True):
        picked.extend(by_value[value][:n])
    return picked

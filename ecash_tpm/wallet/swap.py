"""Swap, device side: anonymous change and refresh (docs/protocol.md 9.3, issue 12).

Payments are exact (no change from merchants), so a wallet that holds no exact combination for
an amount gives some coins back to its bank and gets new ones of the same total (minus the
refresh fee, 0 today), with no account involved: :meth:`Change.make_exact` is called by
:func:`ecash_tpm.wallet.pay.pay` before it picks coins, and guarantees an exact combination
after at most one swap (the outputs hold the amount itself). The change part is split by
:func:`payable_mix`, which keeps every smaller amount payable with few coins.

Refresh (:meth:`Change.refresh`): coins whose keyset's deposit window ends within
``margin_s`` are swapped into coins of a current keyset, on the next wallet operation that has
a :class:`Change` (and by ``ecash-tpm wallet refresh``).

Safety is that of a payment (docs/protocol.md 10.1): the input coins are marked pending in a
payment record (``merchant_id = "bank:swap"``) together with the whole swap (the request body
and every output's secrets) *before* any proof leaves the device. A lost answer is completed
by sending the identical swap again (:func:`resume_swaps`; the bank answers a known
``request_id`` with its stored signatures); a swap the bank never booked is settled by the
bank-signed coin status after the swap's deadline (``wallet recover``), never earlier.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ecash_tpm.crypto.groupsig import Credential
from ecash_tpm.errors import EcashError, RemoteError
from ecash_tpm.protocol.keysets import Keyset
from ecash_tpm.protocol.payments import KeysetBook
from ecash_tpm.protocol.swap import MAX_SWAP_ITEMS, SwapRequest, swap_fee
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.coins import (
    AmountNotRepresentableError,
    HeldCoin,
    NoExactChangeError,
    NotEnoughCoinsError,
    select_coins,
    split_amount,
)
from ecash_tpm.wallet.context import SpendingContext, WalletContext, spend_coin
from ecash_tpm.wallet.records import SWAP_MERCHANT, PaymentRecord, PendingCoin, PendingWithdrawal
from ecash_tpm.wallet.store import CoinStateError
from ecash_tpm.wallet.withdraw import (
    WalletBank,
    blind_coins,
    fetch_keysets,
    finalize_coins,
    new_request_id,
)

__all__ = [
    "REFRESH_MARGIN_S",
    "SWAP_DEADLINE_S",
    "Change",
    "SwapBank",
    "SwapFailedError",
    "FeesNotCoveredError",
    "SwapResult",
    "payable_mix",
    "plan_change",
    "resume_swaps",
    "swap_coins",
]

#: A swap request's deadline lies this far ahead (the bank refuses more than its
#: ``max_deadline_s``, 600 s): inputs of a lost swap are settled at most this long after.
SWAP_DEADLINE_S = 300
#: Coins whose keyset accepts deposits for less than this are refreshed (one day).
REFRESH_MARGIN_S = 86_400
#: Inputs must stay depositable at least this long after the swap starts (as for payments).
_SPENDABLE_MARGIN_S = 60


class SwapFailedError(RemoteError):
    """The swap was sent and refused, or its answer was lost. The inputs stay pending until
    the swap is answered on a retry or the bank's signed coin status settles them."""

    code = "wallet.swap_failed"
    http_status = 502


class SwapBank(WalletBank, Protocol):
    """What a swap needs from the bank (:class:`~ecash_tpm.clients.bank.BankClient`; the swap
    itself needs no login)."""

    def swap(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> list[bytes]: ...


@dataclass(frozen=True)
class SwapResult:
    """A finished swap: the values given and received."""

    request_id: str
    inputs: list[int]
    outputs: list[int]
    fee: int = 0
    reason: str = "change"
    currency: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "reason": self.reason,
            "inputs": sorted(self.inputs, reverse=True),
            "outputs": sorted(self.outputs, reverse=True),
            "fee": self.fee,
            "currency": self.currency,
        }


# --- planning (pure) ----------------------------------------------------------------------------


def payable_mix(amount: int, denominations: Sequence[int]) -> list[int]:
    """Coin values summing to ``amount`` such that every amount up to it is payable exactly:
    each next coin is the largest denomination ``d <= covered + 1`` that still fits (1, 2, 2,
    5, 10, 20, 20, 50, ... for the 1-2-5 series), the rest largest first."""
    denoms = sorted({d for d in denominations if d > 0})
    values: list[int] = []
    covered = 0
    while covered < amount and len(values) < MAX_SWAP_ITEMS:
        fits = [d for d in denoms if d <= covered + 1 and covered + d <= amount]
        if not fits:
            break
        values.append(fits[-1])
        covered += fits[-1]
    if covered < amount:
        values += split_amount(amount - covered, denoms, "fewest")
    return sorted(values, reverse=True)


class FeesNotCoveredError(NotEnoughCoinsError):
    """The coins would cover the amount, but not the amount plus the fees it takes to pay it
    (docs/protocol.md 4.2: a swap's refresh fee)."""

    code = "wallet.fees_not_covered"


def plan_change(
    coins: Sequence[HeldCoin],
    amount: int,
    denominations: Sequence[int],
    refresh_fee_of: Callable[[HeldCoin], int] | None = None,
) -> tuple[list[HeldCoin], list[int]] | None:
    """``(inputs, output values)`` of the one swap after which ``amount`` is payable exactly,
    or None when it already is. Inputs: the smallest coin worth at least ``amount`` after its
    refresh fee (``refresh_fee_of``, docs/protocol.md 4.2; default none), else the largest coins
    until they cover it and their fees. Outputs: ``amount`` in the fewest coins plus the rest as
    a :func:`payable_mix`, so later payments need swaps rarely."""
    try:
        select_coins(coins, amount)
        return None
    except NoExactChangeError:
        pass
    fee_of = refresh_fee_of or (lambda c: 0)
    ordered = sorted(coins, key=lambda c: (c.value - fee_of(c), c.deposit_until, c.sigma))
    big = [c for c in ordered if c.value - fee_of(c) >= amount]
    if big:
        inputs = [big[0]]
    else:
        inputs, net = [], 0
        for c in reversed(ordered):
            inputs.append(c)
            net += c.value - fee_of(c)
            if net >= amount:
                break
    total = sum(c.value for c in inputs)
    fee = sum(fee_of(c) for c in inputs)
    rest = total - fee - amount
    if rest < 0:
        if sum(c.value for c in coins) >= amount:
            raise FeesNotCoveredError(
                "the coins cover the amount but not the swap's refresh fee",
                detail={"amount": amount, "coins": sum(c.value for c in coins), "fee": fee},
            )
        raise NotEnoughCoinsError(
            "not enough coins for this amount and the swap fee", detail={"amount": amount}
        )
    values = split_amount(amount, denominations, "fewest")
    if rest:
        mix = payable_mix(rest, denominations)
        if len(values) + len(mix) > MAX_SWAP_ITEMS:
            mix = split_amount(rest, denominations, "fewest")
        values += mix
    return inputs, values


# --- the swap -----------------------------------------------------------------------------------


def _refresh_fee(book: KeysetBook, inputs: Sequence[HeldCoin]) -> int:
    """The refresh fee the bank keeps from a swap of ``inputs`` (docs/protocol.md 4.2, 9.3)."""
    return swap_fee([book.get(c.coin.keyset_id) for c in inputs])


def _current_keysets(book: KeysetBook, currency: str, now: int) -> dict[int, Keyset]:
    """Per value, the longest-lived keyset open for withdrawal now (the outputs' keysets)."""
    by_value: dict[int, Keyset] = {}
    for ks in book.withdrawable(currency, now):
        by_value.setdefault(ks.value, ks)
    return by_value


def swap_coins(
    ctx: SpendingContext,
    bank: SwapBank,
    *,
    credential: Credential,
    epoch: int,
    inputs: Sequence[HeldCoin],
    values: Sequence[int],
    book: KeysetBook | None = None,
    reason: str = "change",
) -> SwapResult:
    """Swap ``inputs`` for new coins of ``values`` (see the module docstring)."""
    store, now = ctx.store, ctx.clock()
    if book is None:
        book = fetch_keysets(bank, ctx.root, now=now, bank_name=ctx.bank_name, store=store)
    currency = inputs[0].currency
    by_value = _current_keysets(book, currency, now)
    missing = sorted({v for v in values if v not in by_value})
    if missing:
        raise AmountNotRepresentableError(
            "no keyset open for withdrawal for these values", detail={"values": missing}
        )
    items = blind_coins(by_value, credential, epoch, values)
    req = SwapRequest.build(
        bank=ctx.bank_name or book.bank_name,
        request_id=new_request_id(),
        inputs=[c.sigma for c in inputs],
        outputs=[(i.keyset_id, i.blinded_msg) for i in items],
        deadline=now + SWAP_DEADLINE_S,
    )
    wanted = {c.sigma for c in inputs}

    def choose(offered: list[HeldCoin]) -> list[HeldCoin]:
        by_sigma = {c.sigma: c for c in offered}
        if not wanted <= by_sigma.keys():
            raise CoinStateError("a coin chosen for the swap is no longer unspent")
        return [by_sigma[c.sigma] for c in inputs]

    # 9.3: the inputs pending and the whole swap saved before any proof leaves the device
    payment_id = "swap-" + secrets.token_hex(12)
    store.start_payment(
        payment_id=payment_id,
        merchant_id=SWAP_MERCHANT,
        merchant_url=None,
        preq=req.preq,
        amount=sum(c.value for c in inputs),
        currency=currency,
        deadline=req.deadline,
        request={"swap": req.to_body(), "outputs": [i.to_json() for i in items]},
        spendable_after=now + _SPENDABLE_MARGIN_S,
        choose=choose,
    )
    try:
        wire = [spend_coin(ctx, c, req.preq).to_dict() for c in inputs]
    except BaseException as exc:  # nothing left the device: the coins are still ours
        code = exc.code if isinstance(exc, EcashError) else "wallet.interrupted"
        store.finish_payment(
            payment_id, state="failed", released=[c.sigma for c in inputs], error_code=code
        )
        raise
    store.mark_sent(payment_id, wire)
    _send(ctx, bank, payment_id, req, items, wire, book)
    return SwapResult(
        req.request_id,
        [c.value for c in inputs],
        list(values),
        fee=_refresh_fee(book, inputs),
        reason=reason,
        currency=currency,
    )


def _send(
    ctx: WalletContext,
    bank: SwapBank,
    payment_id: str,
    req: SwapRequest,
    items: Sequence[PendingCoin],
    wire: Sequence[Mapping[str, Any]],
    book: KeysetBook,
) -> None:
    """Send (or re-send) a saved swap; finalize and store the outputs, inputs spent."""
    try:
        sigs = bank.swap(req.to_body(), wire)
    except RemoteCallError as exc:  # the inputs stay pending (10.1): retry or signed status
        ctx.store.note_error(payment_id, exc.code)
        raise SwapFailedError(
            "the swap was refused or its answer was lost; the coins stay pending until "
            "`ecash-tpm wallet recover` settles them",
            detail={"payment_id": payment_id, "cause": exc.code, "status": exc.status},
        ) from exc
    amount = sum(i.value for i in items)
    pending = PendingWithdrawal(
        req.request_id, "pending", amount, items[0].currency, list(items), None
    )
    coins = finalize_coins(pending, sigs, book)
    ctx.store.complete_swap(payment_id, req.request_id, items, coins)


def resume_swaps(ctx: WalletContext, bank: SwapBank) -> list[str]:
    """Re-send every sent swap whose answer is missing (same request, same proofs: no TPM
    needed); the ids of the swaps completed. Refusals leave the record to the signed coin
    status (``recover_payments``)."""
    open_swaps = [
        r
        for r in ctx.store.payments(open_only=True)
        if r.merchant_id == SWAP_MERCHANT and r.state == "sent" and r.spends
    ]
    if not open_swaps:
        return []
    book = fetch_keysets(bank, ctx.root, now=ctx.clock(), bank_name=ctx.bank_name, store=ctx.store)
    done = []
    for record in open_swaps:
        req, items = _saved(record)
        try:
            _send(ctx, bank, record.payment_id, req, items, record.spends or [], book)
        except (SwapFailedError, EcashError):
            continue
        done.append(req.request_id)
    return done


def _saved(record: PaymentRecord) -> tuple[SwapRequest, list[PendingCoin]]:
    saved = record.request
    return SwapRequest.from_body(saved["swap"]), [
        PendingCoin.from_json(d) for d in saved["outputs"]
    ]


# --- the wallet's policy ------------------------------------------------------------------------


@dataclass
class Change:
    """Swaps on behalf of payments and refresh (what ``pay(change=...)`` calls)."""

    ctx: SpendingContext
    bank: SwapBank
    credential: Credential
    epoch: int
    refresh_margin_s: int = REFRESH_MARGIN_S
    #: every swap made through this object, in order (shown by ``wallet pay``)
    swaps: list[SwapResult] = field(default_factory=list)
    on_swap: Callable[[SwapResult], None] | None = None

    def _book(self) -> KeysetBook:
        ctx = self.ctx
        return fetch_keysets(
            self.bank, ctx.root, now=ctx.clock(), bank_name=ctx.bank_name, store=ctx.store
        )

    def _done(self, result: SwapResult) -> SwapResult:
        self.swaps.append(result)
        if self.on_swap is not None:
            self.on_swap(result)
        return result

    def expiring(self, currency: str | None = None) -> list[HeldCoin]:
        """Unspent coins whose keyset's deposit window ends within the margin (still open)."""
        now = self.ctx.clock()
        return [
            c
            for c in self.ctx.store.coins("unspent")
            if now + _SPENDABLE_MARGIN_S < c.deposit_until <= now + self.refresh_margin_s
            and (currency is None or c.currency == currency)
        ]

    def refresh(self) -> list[SwapResult]:
        """Swap expiring coins into current keysets (one swap per currency, same values)."""
        coins = self.expiring()
        if not coins:
            return []
        book = self._book()
        out = []
        for currency in sorted({c.currency for c in coins}):
            mine = [c for c in coins if c.currency == currency][:MAX_SWAP_ITEMS]
            total = sum(c.value for c in mine)
            rest = total - _refresh_fee(book, mine)
            if rest <= 0:
                continue
            now = self.ctx.clock()
            lasting = [  # a refresh into keysets that expire as soon would gain nothing
                v
                for v, ks in _current_keysets(book, currency, now).items()
                if ks.deposit_until > now + self.refresh_margin_s
            ]
            if not lasting:
                continue
            values = payable_mix(rest, lasting)
            result = swap_coins(
                self.ctx,
                self.bank,
                credential=self.credential,
                epoch=self.epoch,
                inputs=mine,
                values=values,
                book=book,
                reason="refresh",
            )
            out.append(self._done(result))
        return out

    def make_exact(self, amount: int, currency: str) -> SwapResult | None:
        """Refresh what expires, then one swap if no exact combination for ``amount`` is held."""
        self.refresh()
        now = self.ctx.clock()
        coins = [
            c
            for c in self.ctx.store.coins("unspent")
            if c.currency == currency and c.deposit_until > now + _SPENDABLE_MARGIN_S
        ]
        try:
            select_coins(coins, amount)
            return None
        except NoExactChangeError:
            pass
        book = self._book()
        denoms = list(_current_keysets(book, currency, now))
        plan = plan_change(coins, amount, denoms, lambda c: book.get(c.coin.keyset_id).fee_refresh)
        if plan is None:  # pragma: no cover - select_coins failed just above
            return None
        inputs, values = plan
        result = swap_coins(
            self.ctx,
            self.bank,
            credential=self.credential,
            epoch=self.epoch,
            inputs=inputs,
            values=values,
            book=book,
        )
        return self._done(result)

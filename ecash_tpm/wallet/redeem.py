"""Redeem to an account, device side (docs/protocol.md §9.4): coins back into the account
holder's own bank account, with the same proofs and bookkeeping as a payment.

Steps of :func:`redeem`:

1. at most one swap makes the amount payable exactly (§9.3, as a payment does);
2. the bank-signed redeem request for this account (with the wallet's session): bank
   certificate from the root, signature, this account, amount and currency, a deadline at most
   ``max_deadline_s`` ahead (``wallet.deadline_too_far``);
3. the fewest coins adding up to exactly the amount turn ``pending`` in the same transaction
   that records the redeem (a payment record whose ``merchant_id`` is ``bank:redeem``);
4. one TPM spend proof per coin over the request's ``preq`` (§7); if the TPM fails nothing has
   left the device and the coins go back to ``unspent``;
5. the record turns ``sent`` before the bank is called; with the bank's answer the signed
   receipt is checked (this request, account, amount, these serials; ``credited`` is the amount
   less the coins' deposit fees ``fee``, §4.2) and the coins turn ``spent``.

A lost answer or a refusal leaves the coins pending exactly like a payment's. ``wallet recover``
first sends the recorded request and spends again with the session (:func:`fetch_redeem_receipts`):
the bank answers a repeated redeem of the same request and coins with the stored receipt (or
books it, while the request is live), and a receipt that verifies ends the record redeemed
(``paid``, with the receipt). What stays open is settled from the bank-signed coin status
(spent -> spent; unspent once the bank's time is past the deadline + grace -> released), and
only a bank-signed refusal marks a named coin spent (§10.1).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from ecash_tpm.errors import EcashError, InputError, ProtocolError
from ecash_tpm.pki import CrlInput
from ecash_tpm.progress import ProgressCallback, silent
from ecash_tpm.protocol.coins import Spend
from ecash_tpm.protocol.redeem import (
    RedeemReceipt,
    RedeemRequest,
    RedeemRequestInvalidError,
    verify_redeem_receipt,
)
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.coins import HeldCoin, select_coins
from ecash_tpm.wallet.context import RootCertificate, SpendingContext, spend_coin
from ecash_tpm.wallet.pay import SPENDABLE_MARGIN_S, ChangeMaker, DeadlineTooFarError
from ecash_tpm.wallet.pay import _send_failure as send_failure
from ecash_tpm.wallet.records import REDEEM_MERCHANT
from ecash_tpm.wallet.store import WalletStore

__all__ = [
    "RedeemBank",
    "RedeemFees",
    "RedeemFetch",
    "RedeemResult",
    "fetch_redeem_receipts",
    "redeem",
]

T = TypeVar("T")


class RedeemBank(Protocol):
    """The bank as the redeeming wallet sees it (over HTTP: ``BankClient``)."""

    def redeem_request(self, amount: int) -> dict[str, Any]: ...

    def redeem(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RedeemFees:
    """What a redeem costs in fees (docs/protocol.md 4.2, 9.4), raw minor units: a redeem is a
    deposit into the account, so the account is credited the amount less the coins' deposit
    fees; a swap made for exact change costs its refresh fee on top."""

    amount: int
    deposit: int
    refresh: int

    @property
    def credited(self) -> int:
        return self.amount - self.deposit

    def to_dict(self) -> dict[str, Any]:
        return {
            "deposit": self.deposit,
            "refresh": self.refresh,
            "credited": self.credited,
            "customer_total": self.amount + self.refresh,
        }


@dataclass(frozen=True)
class RedeemResult:
    """A booked redeem: the verified receipt's facts."""

    payment_id: str
    request_id: str
    account_id: str
    amount: int
    currency: str
    coins: list[int]
    redeemed_at: int
    swap: dict[str, Any] | None = None
    #: the bank-signed deposit fee (4.2) and what the account was credited (the receipt's)
    fee: int = 0
    credited: int = 0
    #: the fees as the wallet computed them before the coins left it
    fees: RedeemFees | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.swap is None else {"swap": self.swap}
        fees = self.fees or RedeemFees(self.amount, self.fee, 0)
        return extra | {
            "payment_id": self.payment_id,
            "request_id": self.request_id,
            "account_id": self.account_id,
            "amount": self.amount,
            "fee": self.fee,
            "credited": self.credited,
            "currency": self.currency,
            "coins": self.coins,
            "fees": fees.to_dict(),
            "redeemed_at": self.redeemed_at,
        }


def _direct(work: Callable[[], T]) -> T:
    return work()


def _request(
    ctx: SpendingContext, answer: Any, *, account_id: str, amount: int, currency: str
) -> tuple[RedeemRequest, dict[str, Any]]:
    """Step 2: the bank's own signature on a request for this account, amount, currency."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("cert"), str):
        raise RedeemRequestInvalidError("the bank's answer is not {request, cert}")
    doc = answer.get("request")
    now = ctx.clock()
    req = RedeemRequest.from_signed(
        doc, answer["cert"], ctx.root, bank_name=ctx.bank_name, now=now, crl=ctx.crl
    )
    wrong = [
        name
        for name, ok in (
            ("account_id", req.account_id == account_id),
            ("amount", req.amount == amount),
            ("currency", req.currency == currency),
        )
        if not ok
    ]
    if wrong:
        raise RedeemRequestInvalidError(
            "the redeem request is not the one asked for", detail={"fields": wrong}
        )
    if now > req.deadline:
        raise RedeemRequestInvalidError("the redeem request has expired already")
    if req.deadline > now + ctx.max_deadline_s:  # the coins would be held until then
        raise DeadlineTooFarError(
            "the redeem request's deadline is too far ahead",
            detail={"deadline": req.deadline, "now": now, "max_deadline_s": ctx.max_deadline_s},
        )
    return req, dict(doc) if isinstance(doc, Mapping) else {}


#: coins per redeem: the bank's default ``max_spends`` (a larger redeem would be refused after
#: the TPM made every proof, leaving the coins pending until recovery)
MAX_REDEEM_COINS = 64


class RedeemTooManyCoinsError(InputError):
    code = "wallet.too_many_coins"


class RedeemFeeMismatchError(ProtocolError):
    """§4.2: the bank's signed receipt charges another deposit fee than its own signed keyset
    descriptors state. The redeem is booked all the same (the coins are spent, the receipt is
    kept in the wallet's history as the evidence), so this is said after recording it."""

    code = "wallet.fee_mismatch"
    http_status = 502


def _expected_fee(store: WalletStore, keyset_ids: Sequence[bytes]) -> int | None:
    """The coins' deposit fees by the signed descriptors the wallet holds (§4.2); ``None``
    when one keyset's descriptor is not held (nothing to compare with)."""
    known = store.keyset_fees()
    if any(k not in known for k in keyset_ids):
        return None
    return sum(known[k].deposit for k in keyset_ids)


def _fee_mismatch(payment_id: str, receipt: RedeemReceipt, expected: int) -> RedeemFeeMismatchError:
    return RedeemFeeMismatchError(
        f"the bank charged a deposit fee of {receipt.fee} where its signed keysets say "
        f"{expected}; the redeem is booked and its signed receipt kept as evidence",
        detail={
            "payment_id": payment_id,
            "request_id": receipt.request_id,
            "fee": receipt.fee,
            "expected_fee": expected,
            "credited": receipt.credited,
        },
    )


class RedeemDeadlinePassedError(InputError):
    code = "wallet.redeem_expired"


def _at_most(chosen: list[HeldCoin]) -> list[HeldCoin]:
    """Refused inside the selection transaction, so no coin is marked pending."""
    if len(chosen) > MAX_REDEEM_COINS:
        raise RedeemTooManyCoinsError(
            f"the amount needs {len(chosen)} coins; at most {MAX_REDEEM_COINS} per redeem",
            detail={"coins": len(chosen), "max": MAX_REDEEM_COINS},
        )
    return chosen


def redeem_all_amount(coins: Sequence[HeldCoin], currency: str, spendable_after: int) -> int:
    """``wallet redeem --all``: the value of the (at most :data:`MAX_REDEEM_COINS`) largest
    coins still depositable after ``spendable_after``; run again for the rest."""
    live = [c.value for c in coins if c.currency == currency and c.deposit_until > spendable_after]
    return sum(sorted(live, reverse=True)[:MAX_REDEEM_COINS])


def redeem(
    ctx: SpendingContext,
    bank: RedeemBank,
    *,
    account_id: str,
    amount: int,
    currency: str,
    run: Callable[[Callable[[], Any]], Any] = _direct,
    change: ChangeMaker | None = None,
    progress: ProgressCallback | None = None,
    self_check: bool = True,
    on_fees: Callable[[RedeemFees], None] | None = None,
) -> RedeemResult:
    """Redeem ``amount`` into ``account_id`` (see the module docstring); ``run`` wraps each
    bank call that needs the session (``SessionKeeper.run``: a fresh login when it expired);
    ``on_fees`` hears the redeem's fees (4.2) once its coins are chosen, before any spend
    proof is made."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InputError("the amount must be a positive integer (minor units)")
    say = progress or silent
    store = ctx.store
    # step 1 (9.3): at most one swap makes the amount payable exactly
    swapped = None if change is None else change.make_exact(amount, currency)
    # step 2: the bank-signed request for this account
    req, doc = _request(
        ctx,
        run(lambda: bank.redeem_request(amount)),
        account_id=account_id,
        amount=amount,
        currency=currency,
    )
    # step 3: exact coins, pending with the record in one transaction
    payment_id = "redeem-" + secrets.token_hex(12)
    chosen = store.start_payment(
        payment_id=payment_id,
        merchant_id=REDEEM_MERCHANT,
        merchant_url=None,
        preq=req.preq,
        amount=req.amount,
        currency=req.currency,
        deadline=req.deadline,
        request=doc,
        spendable_after=ctx.clock() + SPENDABLE_MARGIN_S,
        choose=lambda coins: _at_most(select_coins(coins, req.amount)),
    )
    # 4.2: the fees, known once the coins are chosen, shown before anything leaves the device
    known = store.keyset_fees()
    fees = RedeemFees(
        amount=req.amount,
        deposit=sum(known[c.coin.keyset_id].deposit for c in chosen if c.coin.keyset_id in known),
        refresh=0 if swapped is None else swapped.fee,
    )
    # step 4 (7): one TPM2_Commit and one TPM2_Sign per coin
    spends: list[Spend] = []
    try:
        if on_fees is not None:
            on_fees(fees)
        say("spend proofs with the TPM", 0, len(chosen))
        for hc in chosen:
            spends.append(spend_coin(ctx, hc, req.preq, self_check=self_check))
            say("spend proofs with the TPM", len(spends), len(chosen))
    except BaseException as exc:  # nothing left the device: the coins are still ours
        code = exc.code if isinstance(exc, EcashError) else "wallet.interrupted"
        store.finish_payment(
            payment_id, state="failed", released=[c.sigma for c in chosen], error_code=code
        )
        raise
    if ctx.clock() >= req.deadline:  # a slow TPM: the bank would refuse, so nothing is sent
        store.finish_payment(
            payment_id,
            state="failed",
            released=[c.sigma for c in chosen],
            error_code=RedeemDeadlinePassedError.code,
        )
        raise RedeemDeadlinePassedError(
            "the redeem request expired while the TPM made the proofs; the coins are kept",
            detail={"deadline": req.deadline, "now": ctx.clock()},
        )
    wire = [sp.to_dict() for sp in spends]
    store.mark_sent(payment_id, wire)  # step 5: recorded as sent before the bank is called
    try:
        answer = run(lambda: bank.redeem(doc, wire))
    except RemoteCallError as exc:
        raise send_failure(ctx, req.preq, payment_id, chosen, exc) from exc
    serials = [hc.sigma for hc in chosen]
    try:
        if not isinstance(answer, Mapping):
            raise InputError("the bank's answer is not {receipt, cert}")
        receipt = verify_redeem_receipt(
            answer.get("receipt"),
            str(answer.get("cert", "")),
            ctx.root,
            request=req,
            serials=serials,
            bank_name=ctx.bank_name,
            now=ctx.clock(),
            crl=ctx.crl,
        )
    except EcashError as exc:
        store.note_error(payment_id, exc.code)  # coins stay pending: recovery asks the bank
        raise
    store.finish_payment(payment_id, state="paid", receipt=dict(answer["receipt"]), spent=serials)
    expected = _expected_fee(store, [hc.coin.keyset_id for hc in chosen])
    if expected is not None and receipt.fee != expected:  # 4.2: the bank said another fee
        raise _fee_mismatch(payment_id, receipt, expected)
    return RedeemResult(
        payment_id=payment_id,
        request_id=req.request_id,
        account_id=receipt.account_id,
        amount=receipt.amount,
        currency=receipt.currency,
        coins=sorted((c.value for c in chosen), reverse=True),
        redeemed_at=receipt.redeemed_at,
        swap=None if swapped is None else swapped.to_dict(),
        fee=receipt.fee,
        credited=receipt.credited,
        fees=fees,
    )


@dataclass(frozen=True)
class RedeemFetch:
    """What sending an open redeem again gave: ``outcome`` ``"redeemed"`` (the receipt
    verified) or the error code (the record stays open for the coin-status recovery)."""

    payment_id: str
    outcome: str
    request_id: str | None = None
    credited: int | None = None
    fee: int | None = None
    #: set when the receipt's fee is not the one the signed keysets state (§4.2)
    fee_mismatch: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "credited": self.credited,
            "fee": self.fee,
            "fee_mismatch": self.fee_mismatch,
        }


def fetch_redeem_receipts(
    store: WalletStore,
    bank: RedeemBank,
    *,
    root: RootCertificate,
    bank_name: str | None,
    clock: Callable[[], int],
    crl: CrlInput | None = None,
    run: Callable[[Callable[[], Any]], Any] = _direct,
) -> list[RedeemFetch]:
    """§9.4: for every redeem sent without a (valid) answer, the same request and spends
    again (``run`` wraps the call with the session); the bank answers an identical retry with
    its stored receipt. A receipt for this request, account, amount and exactly these serials
    marks the record ``paid`` and its coins spent; anything else (expired and never booked, a
    refusal, no session) leaves it to :func:`~ecash_tpm.wallet.pay.recover_payments`. Never
    raises for one record."""
    results = []
    for record in store.payments(open_only=True):
        if record.merchant_id != REDEEM_MERCHANT or record.state != "sent" or not record.spends:
            continue
        try:
            body = record.request.get("body") if isinstance(record.request, Mapping) else None
            req = RedeemRequest.from_body(body)
            answer = run(partial(bank.redeem, dict(record.request), list(record.spends)))
            if not isinstance(answer, Mapping):
                raise InputError("the bank's answer is not {receipt, cert}")
            receipt = verify_redeem_receipt(
                answer.get("receipt"),
                str(answer.get("cert", "")),
                root,
                request=req,
                serials=record.serials,
                bank_name=bank_name,
                now=clock(),
                crl=crl,
            )
        except EcashError as exc:
            results.append(RedeemFetch(record.payment_id, exc.code))
            continue
        held = {c.sigma: c.coin.keyset_id for c in store.coins()}
        expected = None  # a coin the wallet no longer holds: nothing to compare with
        if all(s in held for s in record.serials):
            expected = _expected_fee(store, [held[s] for s in record.serials])
        store.finish_payment(
            record.payment_id,
            state="paid",
            receipt=dict(answer["receipt"]),
            spent=list(record.serials),
        )
        results.append(
            RedeemFetch(
                record.payment_id,
                "redeemed",
                request_id=receipt.request_id,
                credited=receipt.credited,
                fee=receipt.fee,
                fee_mismatch=None
                if expected is None or receipt.fee == expected
                else _fee_mismatch(record.payment_id, receipt, expected).to_dict(),
            )
        )
    return results

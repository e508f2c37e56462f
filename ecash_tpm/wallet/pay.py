"""Payment, device side: check the merchant's request, pick coins, prove with the TPM, send.

Steps of :func:`pay`:

1. the signed request is checked against the merchant certificate, which must chain to the
   central-bank root with role ``merchant`` and CN = ``merchant_id``; not past its deadline,
   and that deadline at most ``max_deadline_s`` ahead (``wallet.deadline_too_far``: a far
   deadline would hold the coins hostage, issue 10 attack 5); for our bank;
2. the fewest coins adding up to exactly the amount are chosen and marked ``pending`` in the
   same transaction that records the payment (``preparing``);
3. one spend proof per coin with the TPM (``make_spend_proof``: one TPM2_Commit and one
   TPM2_Sign with the DAA key; Hop from the membership; the commit's K must equal the
   member's registered T0). If the TPM fails, nothing has left the device and the coins go
   back to ``unspent``;
4. the payment turns ``sent`` with its spends *before* the merchant is called;
5. with the merchant's answer, the bank's receipt is verified (bank certificate from the root,
   signature, this request, these serials, amount) and the coins become ``spent``.

A coin whose spend proof has left the device is offered again only on the bank's signed word
(docs/protocol.md 10.1, issue 10 attacks 1 and 2). When no answer arrives, or any refusal,
the payment stays ``sent`` and :func:`recover_payments` settles it from one bank-signed
``coin-status`` of all open serials (``POST /v1/coins/status``), judged by the *bank's* time
in it, never the wallet's clock: spent -> ``spent``; unspent once ``bank_time`` is past the
request's deadline + grace (after which the bank refuses its deposit) -> back to
``unspent``; locked or not yet past -> wait. Releasing coins earlier would let a merchant that
claimed not to have received them deposit them after the wallet spent them again — and a
double spend opens the customer's identity. An unsigned or badly signed status (a lying bank
or man in the middle) settles nothing.

A refusal 409 ``bank.double_spend`` counts only with the bank-signed ``deposit-refusal`` for
this request and these serials that the merchant relays (``detail.refusal``, ``detail.cert``):
then the named coin is ``spent``; the others stay pending until the signed status frees them.
A merchant's bare claim changes nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.errors import EcashError, InputError, RemoteError
from ecash_tpm.pki import CrlInput
from ecash_tpm.progress import ProgressCallback, silent
from ecash_tpm.protocol.coins import Spend, verify_payment_request
from ecash_tpm.protocol.payments import verify_receipt
from ecash_tpm.protocol.status import MAX_STATUS_SERIALS, CoinStatusStatement, DepositRefusal
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.coins import HeldCoin, select_coins
from ecash_tpm.wallet.context import RootCertificate, SpendingContext, spend_coin
from ecash_tpm.wallet.records import SWAP_MERCHANT, PaymentRecord
from ecash_tpm.wallet.store import WalletStore

__all__ = [
    "PaymentFees",
    "CoinStatusSource",
    "DeadlineTooFarError",
    "MerchantApi",
    "PaymentOutcomeUnknownError",
    "PaymentRefusedError",
    "PayResult",
    "RecoveryResult",
    "WrongBankError",
    "pay",
    "recover_payments",
]

#: Coins must stay depositable at least this long after the payment starts.
SPENDABLE_MARGIN_S = 60


class WrongBankError(InputError):
    """The merchant's request names a bank other than the wallet's."""

    code = "wallet.wrong_bank"


class DeadlineTooFarError(InputError):
    """The request's deadline lies further ahead than the wallet's ``max_deadline_s``: its
    coins would stay pending (hostage) until then if the answer were lost."""

    code = "wallet.deadline_too_far"


class PaymentOutcomeUnknownError(RemoteError):
    """The spends were sent but no answer came back; ``wallet recover`` will settle it."""

    code = "wallet.payment_unknown"
    http_status = 504


class PaymentRefusedError(RemoteError):
    """The merchant (or its bank) refused the payment; keeps the remote code and status."""

    code = "wallet.payment_refused"

    def __init__(self, exc: RemoteCallError, payment_id: str) -> None:
        super().__init__(
            exc.message, code=exc.code, detail={**exc.detail, "payment_id": payment_id}
        )
        if exc.status is not None:
            self.http_status = exc.status
        self.status = exc.status


class CoinStatusSource(Protocol):
    """Where recovery gets the bank-signed coin status (``BankClient.coin_statuses``):
    ``{status: <signed coin-status>, cert: <bank certificate PEM>}``."""

    def coin_statuses(self, serials: Sequence[bytes]) -> dict[str, Any]: ...


class ChangeMaker(Protocol):
    """Makes an amount payable exactly before coins are picked (``wallet.swap.Change``: one
    swap at most, docs/protocol.md 9.3); returns what it swapped, or None."""

    def make_exact(self, amount: int, currency: str) -> Any: ...


class MerchantApi(Protocol):
    """The merchant as the wallet sees it (over HTTP: ``MerchantClient``)."""

    def pay(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class PaymentFees:
    """What a payment costs in fees (docs/protocol.md 4.2), raw minor units. The merchant bears
    the coins' deposit fees (its credit is the amount less them); the customer bears the refresh
    fee of a swap made for exact change, so the coins it gives up are ``customer_total``."""

    deposit: int
    refresh: int
    customer_total: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "deposit": self.deposit,
            "deposit_paid_by": "merchant",
            "refresh": self.refresh,
            "customer_total": self.customer_total,
        }


@dataclass(frozen=True)
class PayResult:
    """A paid request: the verified receipt and where the time went."""

    payment_id: str
    merchant_id: str
    amount: int
    currency: str
    coins: list[int]
    receipt: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    #: the swap made for this payment (``SwapResult.to_dict()``), if one was needed
    swap: dict[str, Any] | None = None
    #: the payment's fees (docs/protocol.md 4.2), shown before the coins left the wallet
    fees: PaymentFees | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.swap is None else {"swap": self.swap}
        return extra | {
            "payment_id": self.payment_id,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
            "currency": self.currency,
            "coins": self.coins,
            "fees": (self.fees or PaymentFees(0, 0, self.amount)).to_dict(),
            "deposit_id": self.receipt.get("body", {}).get("deposit_id"),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class RecoveryResult:
    """What recovery decided for one open payment."""

    payment_id: str
    outcome: str  # spent | released | partly_spent | waiting | interrupted
    coin_states: dict[str, str] = field(default_factory=dict)
    #: why recovery could not decide (e.g. ``coin_status.invalid``), else None
    error: str | None = None
    #: the bank's time in the signed status recovery decided on
    bank_time: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "payment_id": self.payment_id,
            "outcome": self.outcome,
            "coin_states": self.coin_states,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.bank_time is not None:
            out["bank_time"] = self.bank_time
        return out


def pay(
    ctx: SpendingContext,
    request_doc: Mapping[str, Any],
    cert: x509.Certificate | bytes | str,
    *,
    merchant: MerchantApi,
    merchant_url: str | None = None,
    self_check: bool = True,
    progress: ProgressCallback | None = None,
    change: ChangeMaker | None = None,
    on_fees: Callable[[PaymentFees], None] | None = None,
) -> PayResult:
    """Pay a merchant's signed request with the wallet of ``ctx`` (see the module docstring);
    ``progress`` hears of every spend proof made with the TPM; ``change`` swaps first when no
    exact combination of coins is held (docs/protocol.md 9.3); ``on_fees`` hears the payment's
    fees (4.2) once its coins are chosen, before any spend proof is made."""
    say = progress or silent
    store, signer = ctx.store, ctx.signer
    now = ctx.clock()
    # step 1 (docs/protocol.md 6): certificate, signature, deadline, and our own bank
    req = verify_payment_request(request_doc, cert, ctx.root, now=now, crl=ctx.crl)
    if ctx.bank_name is not None and req.bank != ctx.bank_name:
        raise WrongBankError(
            "the merchant wants payment through another bank",
            detail={"bank": req.bank, "wallet_bank": ctx.bank_name},
        )
    if req.deadline > now + ctx.max_deadline_s:  # issue 10 attack 5: no hostage deadlines
        raise DeadlineTooFarError(
            "the request's deadline is too far ahead: its coins could be held until then",
            detail={"deadline": req.deadline, "now": now, "max_deadline_s": ctx.max_deadline_s},
        )
    # step 2 (7, 9.3): at most one swap makes the amount payable exactly; then exact coins,
    # marked pending with the payment in one transaction
    swapped = None if change is None else change.make_exact(req.amount, req.currency)
    payment_id = "pay-" + secrets.token_hex(12)
    chosen = store.start_payment(
        payment_id=payment_id,
        merchant_id=req.merchant_id,
        merchant_url=merchant_url,
        preq=req.preq,
        amount=req.amount,
        currency=req.currency,
        deadline=req.deadline,
        request=dict(request_doc),
        spendable_after=now + SPENDABLE_MARGIN_S,
        choose=lambda coins: select_coins(coins, req.amount),
    )
    # 4.2: the fees, known once the coins are chosen, shown before anything leaves the device
    known = store.keyset_fees()
    refresh = 0 if swapped is None else swapped.fee
    fees = PaymentFees(
        deposit=sum(known[c.coin.keyset_id].deposit for c in chosen if c.coin.keyset_id in known),
        refresh=refresh,
        customer_total=req.amount + refresh,
    )
    if on_fees is not None:
        on_fees(fees)
    # step 3 (7): one TPM2_Commit and one TPM2_Sign per coin
    timings: dict[str, float] = {}
    start = time.perf_counter()
    spends: list[Spend] = []
    try:
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
    timings["proofs_s"] = time.perf_counter() - start
    stats = getattr(signer, "stats", None)
    if stats is not None and hasattr(stats, "tpm_seconds"):
        timings["tpm_s"] = float(stats.tpm_seconds)
    wire = [sp.to_dict() for sp in spends]
    store.mark_sent(payment_id, wire)  # step 4: recorded as sent before the merchant is called

    start = time.perf_counter()
    try:
        answer = merchant.pay(request_doc, wire)
    except RemoteCallError as exc:
        raise _send_failure(ctx, req.preq, payment_id, chosen, exc) from exc
    timings["merchant_s"] = time.perf_counter() - start
    # step 5 (docs/protocol.md 8, 9): the bank's receipt for this request, serials, amount
    serials = [hc.sigma for hc in chosen]
    receipt = answer.get("receipt")
    try:
        verify_receipt(
            receipt,
            answer.get("cert"),  # type: ignore[arg-type]
            ctx.root,
            preq=req.preq,
            merchant_id=req.merchant_id,
            amount=req.amount,
            currency=req.currency,
            serials=serials,
            now=ctx.clock(),
            crl=ctx.crl,
        )
    except EcashError as exc:
        store.note_error(payment_id, exc.code)  # coins stay pending: recovery asks the bank
        raise
    if not isinstance(receipt, Mapping):  # pragma: no cover - verify_receipt checked it
        raise InputError("receipt missing")
    store.finish_payment(payment_id, state="paid", receipt=dict(receipt), spent=serials)
    return PayResult(
        payment_id=payment_id,
        merchant_id=req.merchant_id,
        amount=req.amount,
        currency=req.currency,
        coins=sorted((c.value for c in chosen), reverse=True),
        receipt=dict(receipt),
        timings=timings,
        swap=None if swapped is None else swapped.to_dict(),
        fees=fees,
    )


def _send_failure(
    ctx: SpendingContext,
    preq: bytes,
    payment_id: str,
    chosen: Sequence[HeldCoin],
    exc: RemoteCallError,
) -> EcashError:
    """Record a failed send and return the error to raise. The proofs have left the device:
    every coin stays pending unless the bank itself signed what happened (10.1)."""
    store = ctx.store
    definite = exc.status is not None and 400 <= exc.status < 500 and exc.status != 408
    if not definite:
        store.note_error(payment_id, exc.code)
        return PaymentOutcomeUnknownError(
            "the payment was sent but no answer came back; run `ecash-tpm wallet recover`",
            detail={"payment_id": payment_id, "cause": exc.code},
        )
    spent = _signed_double_spend(ctx, preq, chosen, exc)
    if spent is not None:
        # the bank signed that this serial is spent; the others wait for its signed status
        store.finish_payment(payment_id, state="sent", spent=[spent], error_code=exc.code)
    else:
        store.note_error(payment_id, exc.code)  # coins stay pending until recovery settles them
    return PaymentRefusedError(exc, payment_id)


def _signed_double_spend(
    ctx: SpendingContext, preq: bytes, chosen: Sequence[HeldCoin], exc: RemoteCallError
) -> bytes | None:
    """The serial a bank-signed ``deposit-refusal`` for this request and exactly these coins
    names as already spent; None for an unsigned or foreign claim (attack 1: a merchant's
    bare "409 bank.double_spend" must not free coins whose spend proofs it holds)."""
    if exc.code != "bank.double_spend":
        return None
    doc, cert = exc.detail.get("refusal"), exc.detail.get("cert")
    if doc is None or not isinstance(cert, str):
        return None
    serials = [hc.sigma for hc in chosen]
    try:
        refusal = DepositRefusal.from_signed(
            doc,
            cert,
            ctx.root,
            preq=preq,
            serials=serials,
            bank_name=ctx.bank_name,
            now=ctx.clock(),
            crl=ctx.crl,
        )
        spent = b64u_decode(str(refusal.detail.get("serial", "")))
    except EcashError:
        return None
    if refusal.code != "bank.double_spend" or spent not in serials:
        return None
    return spent


def _recover_one(
    store: WalletStore,
    record: PaymentRecord,
    status: CoinStatusStatement,
    grace_s: int,
) -> RecoveryResult:
    """Decide one sent payment from the bank-signed status, by the bank's time only."""
    coins = status.by_serial()
    states = {sigma: coins[sigma].state for sigma in record.serials}
    shown: dict[str, str] = {b64u_encode(s): st for s, st in states.items()}
    spent = [s for s, st in states.items() if st == "spent"]
    unspent = [s for s, st in states.items() if st == "unspent"]
    locked = [s for s, st in states.items() if st == "locked"]
    t = status.bank_time
    if spent and record.merchant_id == SWAP_MERCHANT:  # 9.3: outputs come from the swap's
        return RecoveryResult(record.payment_id, "waiting", shown, bank_time=t)  # retry
    if spent and len(spent) == len(states):
        store.finish_payment(record.payment_id, state="spent", spent=spent)
        return RecoveryResult(record.payment_id, "spent", shown, bank_time=t)
    # 10.1: "unspent" is final only once the BANK's clock is past the deadline (+ grace for a
    # deposit verified before it and booked just after); the wallet's clock plays no part
    expired = t > record.deadline + grace_s
    if locked or not expired:
        if spent:  # settle what is known; keep the payment open for the rest
            store.finish_payment(
                record.payment_id, state="sent", spent=spent, error_code=record.error_code
            )
        return RecoveryResult(record.payment_id, "waiting", shown, bank_time=t)
    store.finish_payment(
        record.payment_id,
        state="failed",
        spent=spent,
        released=unspent,
        error_code=record.error_code or "wallet.not_deposited",
    )
    outcome = "partly_spent" if spent else "released"
    return RecoveryResult(record.payment_id, outcome, shown, bank_time=t)


#: How long after a request's deadline (by the bank's clock, in its signed status) recovery
#: still waits before releasing unanswered coins: a deposit the bank verified just before the
#: deadline may be booked just after it.
RECOVERY_GRACE_S = 120


def fetch_status(
    bank: CoinStatusSource,
    serials: Sequence[bytes],
    *,
    root: RootCertificate,
    bank_name: str | None,
    now: int,
    crl: CrlInput | None = None,
) -> CoinStatusStatement:
    """The bank-signed status of ``serials`` (batches of at most MAX_STATUS_SERIALS), verified:
    bank certificate from ``root``, signature, exactly these serials (10.1). Several batches
    are merged under the *earliest* bank time, so a decision is never later than the bank."""
    parts: list[CoinStatusStatement] = []
    for i in range(0, len(serials), MAX_STATUS_SERIALS):
        chunk = list(serials[i : i + MAX_STATUS_SERIALS])
        answer = bank.coin_statuses(chunk)
        doc = answer.get("status") if isinstance(answer, Mapping) else None
        cert = answer.get("cert") if isinstance(answer, Mapping) else None
        parts.append(
            CoinStatusStatement.from_signed(
                doc,
                cert if isinstance(cert, str) else b"",
                root,
                serials=chunk,
                bank_name=bank_name,
                now=now,
                crl=crl,
            )
        )
    return CoinStatusStatement(
        bank=parts[0].bank,
        bank_time=min(p.bank_time for p in parts),
        coins=tuple(c for p in parts for c in p.coins),
    )


def recover_payments(
    store: WalletStore,
    bank: CoinStatusSource,
    *,
    clock: Callable[[], int],
    root: RootCertificate,
    bank_name: str | None = None,
    grace_s: int = RECOVERY_GRACE_S,
    crl: CrlInput | None = None,
) -> list[RecoveryResult]:
    """Settle every open payment from ONE bank-signed status of all their serials (see the
    module docstring); ``clock`` only checks the bank certificate's validity. A status that
    cannot be had or verified leaves every payment waiting, with the error's code."""
    results = []
    sent = []
    for record in store.payments(open_only=True):
        if record.state == "preparing":  # crashed before sending: nothing left the device
            store.finish_payment(
                record.payment_id,
                state="failed",
                released=list(record.serials),
                error_code="wallet.interrupted",
            )
            results.append(RecoveryResult(record.payment_id, "interrupted"))
        elif record.serials:
            sent.append(record)
    if not sent:
        return results
    serials = [s for record in sent for s in record.serials]
    try:
        status = fetch_status(bank, serials, root=root, bank_name=bank_name, now=clock(), crl=crl)
    except EcashError as exc:  # a lying bank or man in the middle: nothing is released
        for record in sent:
            store.note_error(record.payment_id, exc.code)
        return results + [RecoveryResult(r.payment_id, "waiting", error=exc.code) for r in sent]
    for record in sent:
        results.append(_recover_one(store, record, status, grace_s))
    return results

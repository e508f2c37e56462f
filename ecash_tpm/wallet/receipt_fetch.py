"""Ask the merchant again for the answer of a payment whose answer was lost (protocol.md §8.1).

A payment stays ``sent`` when the merchant's answer never arrived — e.g. the bank booked the
deposit but its answer to the merchant was lost, and the merchant answered 503 (issue 10,
attack 8). The coins are gone, so the customer is owed the bank's receipt (and, for a digital
good, the content key). :func:`fetch_receipts` asks each such payment's merchant
(``GET /v1/payments/{preq}``: the merchant settles a ``paying`` deposit first) and accepts the
answer only after :func:`~ecash_tpm.protocol.payments.verify_receipt` — bank certificate under
the root, bank signature, this request, these serials, the amount — then marks the payment
``paid`` and its coins ``spent``. Anything else leaves the payment to
:func:`~ecash_tpm.wallet.pay.recover_payments` (the bank's coin states) and, for a purchase,
to the TTP dispute (:func:`~ecash_tpm.wallet.purchases.dispute`), which works from the
bank-signed deposit record without the merchant.

:func:`fetch_purchase` does the same for a purchase left ``sent`` and then opens the sealed
key exactly as :func:`~ecash_tpm.wallet.purchases.buy` would have; :func:`fetch_purchases` for
every such purchase (``wallet recover`` runs it before :func:`fetch_receipts`, so a purchase's
payment is settled together with its key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ecash_tpm.errors import ConflictError, EcashError
from ecash_tpm.pki import CrlInput
from ecash_tpm.protocol.payments import verify_receipt
from ecash_tpm.wallet.context import RootCertificate
from ecash_tpm.wallet.purchases.buy import deliver
from ecash_tpm.wallet.purchases.errors import ContentKeyMissingError, PurchaseStateError
from ecash_tpm.wallet.purchases.records import PurchaseResult
from ecash_tpm.wallet.purchases.store import PurchaseStore
from ecash_tpm.wallet.records import PaymentRecord
from ecash_tpm.wallet.store import WalletStore

__all__ = [
    "PaymentNotOpenError",
    "ReceiptFetch",
    "ReceiptSource",
    "fetch_purchase",
    "fetch_purchases",
    "fetch_receipt",
    "fetch_receipts",
]


class PaymentNotOpenError(ConflictError):
    """Only a payment sent without an answer (state ``sent``) has a receipt to fetch."""

    code = "wallet.payment_not_open"


class ReceiptSource(Protocol):
    """The merchant as a receipt source (over HTTP: ``MerchantClient.paid_answer``)."""

    def paid_answer(self, preq: bytes) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ReceiptFetch:
    """What asking the merchant gave for one open payment: ``outcome`` is ``"paid"`` or the
    error code (the payment then stays open for recovery)."""

    payment_id: str
    outcome: str
    receipt: dict[str, Any] | None = field(default=None, hash=False)
    content_key: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def paid(self) -> bool:
        return self.outcome == "paid"

    def to_dict(self) -> dict[str, Any]:
        deposit_id = (self.receipt or {}).get("body", {}).get("deposit_id")
        return {"payment_id": self.payment_id, "outcome": self.outcome, "deposit_id": deposit_id}


def fetch_receipt(
    store: WalletStore,
    record: PaymentRecord,
    merchant: ReceiptSource,
    *,
    root: RootCertificate,
    clock: Callable[[], int],
    crl: CrlInput | None = None,
) -> ReceiptFetch:
    """Ask ``merchant`` for the answer of the open payment ``record``; on a receipt that
    verifies, the payment turns ``paid`` and its coins ``spent`` (one transaction)."""
    if record.state != "sent":
        raise PaymentNotOpenError(
            "the payment is not waiting for an answer",
            detail={"payment_id": record.payment_id, "state": record.state},
        )
    answer = merchant.paid_answer(record.preq)
    receipt = answer.get("receipt") if isinstance(answer, Mapping) else None
    cert = answer.get("cert") if isinstance(answer, Mapping) else None
    # §8, §9: the bank's receipt for this request, merchant, amount and exactly these serials
    verify_receipt(
        receipt,
        cert,  # type: ignore[arg-type]
        root,
        preq=record.preq,
        merchant_id=record.merchant_id,
        amount=record.amount,
        currency=record.currency,
        serials=record.serials,
        now=clock(),
        crl=crl,  # 13.2: a revoked bank certificate makes no receipt
    )
    paid = dict(receipt)  # type: ignore[arg-type]
    store.finish_payment(record.payment_id, state="paid", receipt=paid, spent=record.serials)
    sealed = answer.get("content_key")
    return ReceiptFetch(
        record.payment_id, "paid", paid, dict(sealed) if isinstance(sealed, Mapping) else None
    )


def fetch_receipts(
    store: WalletStore,
    merchant_for: Callable[[PaymentRecord], ReceiptSource | None],
    *,
    root: RootCertificate,
    clock: Callable[[], int],
    crl: CrlInput | None = None,
) -> list[ReceiptFetch]:
    """:func:`fetch_receipt` for every payment sent without an answer whose merchant
    ``merchant_for`` can reach (``None``: skipped); never raises for one payment."""
    results = []
    for record in store.payments(open_only=True):
        if record.state != "sent":
            continue
        try:
            merchant = merchant_for(record)
            if merchant is None:
                continue
            results.append(fetch_receipt(store, record, merchant, root=root, clock=clock, crl=crl))
        except EcashError as exc:  # not paid, unreachable, a bad receipt: recovery decides
            results.append(ReceiptFetch(record.payment_id, exc.code))
    return results


def _open_payment(store: WalletStore, preq: bytes) -> PaymentRecord | None:
    for record in store.payments(open_only=True):
        if record.preq == preq and record.state == "sent":
            return record
    return None


def fetch_purchase(
    store: WalletStore,
    purchases: PurchaseStore,
    purchase_id: str,
    merchant: ReceiptSource,
    *,
    root: RootCertificate,
    clock: Callable[[], int],
    crl: CrlInput | None = None,
) -> PurchaseResult:
    """A purchase left ``sent``: the receipt and k sealed to the purchase key from the
    merchant, then the content (docs/protocol.md §8.1, §16.4 step 4). No key in the answer ->
    ``wallet.content_key_missing`` (dispute it with the TTP)."""
    p = purchases.get(purchase_id)
    if p.state != "sent" or p.preq is None:
        raise PurchaseStateError(
            "only a purchase sent without an answer can be fetched from the merchant",
            detail={"purchase_id": purchase_id, "state": p.state},
        )
    record = _open_payment(store, p.preq)
    if record is None:
        raise PaymentNotOpenError(
            "no open payment for this purchase", detail={"purchase_id": purchase_id}
        )
    fetched = fetch_receipt(store, record, merchant, root=root, clock=clock, crl=crl)
    purchases.update(
        purchase_id, payment_id=record.payment_id, receipt=fetched.receipt, state="paid"
    )
    if fetched.content_key is None:
        purchases.update(purchase_id, state="key_missing", error_code=ContentKeyMissingError.code)
        raise ContentKeyMissingError(
            "paid, but the merchant sent no key: run `wallet dispute`",
            detail={"purchase_id": purchase_id, "payment_id": record.payment_id},
        )
    return deliver(purchases, purchase_id, fetched.content_key)


def fetch_purchases(
    store: WalletStore,
    purchases: PurchaseStore,
    merchant_for: Callable[[str], ReceiptSource | None],
    *,
    root: RootCertificate,
    clock: Callable[[], int],
    crl: CrlInput | None = None,
) -> list[dict[str, Any]]:
    """:func:`fetch_purchase` for every purchase sent without an answer whose merchant URL
    ``merchant_for`` can reach; ``[{purchase_id, outcome}]`` with ``"complete"`` or the error
    code (``wallet.content_key_missing``: paid, dispute it with the TTP)."""
    results: list[dict[str, Any]] = []
    for p in purchases.purchases():
        if p.state != "sent" or p.preq is None or not p.merchant_url:
            continue
        try:
            merchant = merchant_for(p.merchant_url)
            if merchant is None:
                continue
            fetch_purchase(
                store, purchases, p.purchase_id, merchant, root=root, clock=clock, crl=crl
            )
            outcome = "complete"
        except EcashError as exc:
            outcome = exc.code
        results.append({"purchase_id": p.purchase_id, "outcome": outcome})
    return results

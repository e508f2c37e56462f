"""Buying digital goods with a fair exchange (docs/protocol.md 16.4, 16.5), device side.

:func:`buy`:

1. the product's descriptor and ciphertext are fetched from the shop (or any mirror, e.g. the
   TTP): the descriptor must be signed by a TTP certified by the central bank
   (``wallet.descriptor_invalid``) and the ciphertext must have the certified size and SHA-256
   (``wallet.ciphertext_tampered``) — so the wallet knows *what* it pays for before paying;
2. a fresh X25519 key pair is drawn for this purchase only (the merchant sees one unrelated
   public key per purchase, nothing that links two purchases) and the purchase is recorded with
   its private half;
3. the shop's payment request must name the product, the ciphertext hash as contract, the
   price, and our key (``wallet.request_mismatch``); it is paid with the ordinary TPM flow
   (:func:`ecash_tpm.wallet.pay.pay`), the spends being recorded before they leave;
4. the pay answer carries k sealed to our key, bound to the request digest and the product; it
   must open and decrypt the ciphertext. No key -> ``wallet.content_key_missing``, a key that
   does not open it -> ``wallet.content_key_invalid``; both leave the purchase ready for
   :func:`dispute`.

:func:`dispute` sends the TTP the signed request, the merchant certificate and the spends; the
TTP checks the payment with the bank and gets k from the merchant or, after the merchant's
deadline, from its escrow. While the merchant may still answer the TTP says
``ttp.dispute_pending`` (``detail.retry_after``); call :func:`dispute` again later. The answer
is sealed to this purchase's key: only this wallet can open it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecash_tpm.crypto.sealing import (
    PURPOSE_CONTENT_KEY,
    ContentDecryptError,
    EphemeralKey,
    SealError,
    content_key_context,
    decrypt_content,
)
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.protocol.coins import parse_request_body
from ecash_tpm.protocol.errors import DisputePendingError
from ecash_tpm.protocol.exchange import ciphertext_matches, verify_descriptor
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.context import RootCertificate, SpendingContext
from ecash_tpm.wallet.pay import MerchantApi, PaymentOutcomeUnknownError, pay
from ecash_tpm.wallet.purchases.api import DisputeApi, ProductSource, ShopApi
from ecash_tpm.wallet.purchases.errors import (
    CiphertextTamperedError,
    ContentKeyInvalidError,
    ContentKeyMissingError,
    DescriptorInvalidError,
    OfferMismatchError,
    PurchaseStateError,
)
from ecash_tpm.wallet.purchases.records import Offer, PurchaseRecord, PurchaseResult
from ecash_tpm.wallet.purchases.store import DISPUTABLE, PurchaseStore

__all__ = ["buy", "deliver", "dispute", "fetch_offer"]


class _Capture:
    """Records the spends before they leave and keeps the merchant's whole answer."""

    def __init__(self, inner: MerchantApi, on_send: Callable[[list[dict[str, Any]]], None]):
        self._inner = inner
        self._on_send = on_send
        self.answer: dict[str, Any] | None = None

    def pay(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        self._on_send([dict(s) for s in spends])
        answer = self._inner.pay(request, spends)
        self.answer = dict(answer)
        return answer


def fetch_offer(
    source: ProductSource,
    product_id: str,
    *,
    root: RootCertificate,
    now: int,
    ttp_name: str | None = None,
) -> Offer:
    """Descriptor (TTP signature under the root) and ciphertext (certified size and hash)."""
    # 16.4 step 1: the descriptor, signed by a TTP the central bank certified, for this product
    answer = source.product(product_id)
    if not isinstance(answer, Mapping):
        raise DescriptorInvalidError("the product answer is not an object")
    cert = answer.get("ttp_cert") or answer.get("cert")  # shop listing / TTP answer
    try:
        if not isinstance(cert, str):
            raise InputError("no TTP certificate beside the descriptor")
        desc = verify_descriptor(answer.get("descriptor"), cert, root, now=now, ttp_name=ttp_name)
    except EcashError as exc:
        raise DescriptorInvalidError(
            f"product descriptor rejected: {exc.message}", detail={"cause": exc.code}
        ) from exc
    if desc.product_id != product_id:
        raise DescriptorInvalidError("the descriptor is for another product")
    # 16.4 step 1: the ciphertext has the certified size and SHA-256
    blob = source.ciphertext(product_id)
    if not ciphertext_matches(desc, blob):
        raise CiphertextTamperedError(
            "the ciphertext is not the one the TTP certified",
            detail={"product_id": product_id, "size": len(blob)},
        )
    return Offer(
        descriptor=desc,
        descriptor_doc=dict(answer["descriptor"]),
        ttp_cert=cert,
        ttp_url=answer.get("ttp_url") if isinstance(answer.get("ttp_url"), str) else None,
        ciphertext=blob,
    )


def _check_request(doc: Mapping[str, Any], offer: Offer, customer_key: bytes) -> bytes:
    """16.4 step 2: the request is for this product, contract (ciphertext hash), price and key;
    its signature and deadline are checked by :func:`pay` (section 6)."""
    req = parse_request_body(doc.get("body"))
    d = offer.descriptor
    wrong = [
        name
        for name, ok in (
            ("merchant_id", req.merchant_id == d.merchant_id),
            ("product_id", req.product_id == d.product_id),
            ("contract_hash", hmac.compare_digest(req.contract_hash, d.ciphertext_sha256)),
            ("amount", req.amount == d.price),
            ("currency", req.currency == d.currency),
            ("customer_key", req.customer_key == customer_key),
        )
        if not ok
    ]
    if wrong:
        raise OfferMismatchError(
            "the shop's payment request is not for this product", detail={"fields": wrong}
        )
    return req.preq


def _unlock(
    purchases: PurchaseStore, p: PurchaseRecord, sealed: Any, *, via: str
) -> PurchaseResult:
    """Open the sealed key, decrypt, store the content, erase the ephemeral key (16.4 step 4)."""
    if p.customer_secret is None or p.preq is None:
        raise PurchaseStateError("this purchase has no key to open anything with")
    try:
        key = EphemeralKey.from_secret(p.customer_secret).open(
            sealed, purpose=PURPOSE_CONTENT_KEY, context=content_key_context(p.preq, p.product_id)
        )
        content = decrypt_content(
            key, p.ciphertext, product_id=p.product_id, merchant_id=p.merchant_id
        )
    except (SealError, ContentDecryptError) as exc:
        state = "key_invalid" if via == "merchant" else p.state
        purchases.update(p.purchase_id, state=state, error_code=ContentKeyInvalidError.code)
        raise ContentKeyInvalidError(
            "the key does not open the product: "
            + ("run `wallet dispute`" if via == "merchant" else "the TTP's answer is bad"),
            detail={"purchase_id": p.purchase_id, "cause": exc.code, "via": via},
        ) from exc
    path = purchases.save_content(p.purchase_id, content)
    purchases.update(
        p.purchase_id,
        state="complete",
        delivered_by=via,
        content_file=str(path),
        customer_secret=None,
        error_code=None,
    )
    return PurchaseResult(purchases.get(p.purchase_id), content)


def deliver(purchases: PurchaseStore, purchase_id: str, sealed: Any) -> PurchaseResult:
    """16.4 step 4 for a pay answer fetched again from the merchant (docs/protocol.md §8.1,
    :mod:`ecash_tpm.wallet.receipt_fetch`): open k, decrypt, store the content."""
    return _unlock(purchases, purchases.get(purchase_id), sealed, via="merchant")


def buy(
    ctx: SpendingContext,
    purchases: PurchaseStore,
    product_id: str,
    *,
    source: ProductSource,
    shop: ShopApi,
    merchant_url: str | None = None,
    ttp_name: str | None = None,
) -> PurchaseResult:
    """Buy ``product_id`` with the wallet of ``ctx`` (see the module docstring); ``shop`` takes
    both the request and the payment, so a caller may route the payment elsewhere."""
    offer = fetch_offer(source, product_id, root=ctx.root, now=ctx.clock(), ttp_name=ttp_name)
    # 16.4 step 2: a fresh key for this purchase only, recorded before anything is asked
    d = offer.descriptor
    key = EphemeralKey()
    purchase_id = "buy-" + secrets.token_hex(12)
    purchases.add(purchase_id, offer, key, merchant_url)
    try:
        doc = shop.create_request(
            d.price, d.currency, product_id=d.product_id, customer_key=key.public_bytes
        )
        request, cert = doc.get("request"), doc.get("cert")
        if not isinstance(request, Mapping) or not isinstance(cert, str):
            raise OfferMismatchError("the shop answered without {request, cert}")
        preq = _check_request(request, offer, key.public_bytes)
    except EcashError as exc:
        purchases.update(purchase_id, state="failed", error_code=exc.code, customer_secret=None)
        raise
    purchases.update(
        purchase_id, request=dict(request), merchant_cert=cert, preq=preq, state="requested"
    )
    # 16.4 step 3: the ordinary TPM payment, the spends recorded before they leave
    capture = _Capture(
        shop, lambda spends: purchases.update(purchase_id, spends=spends, state="sent")
    )
    try:
        paid = pay(ctx, request, cert, merchant=capture, merchant_url=merchant_url)
    except PaymentOutcomeUnknownError as exc:
        purchases.update(purchase_id, error_code=exc.code)  # stays "sent": recover, dispute
        raise
    except EcashError as exc:
        # Once the spends have left, no answer of the merchant's (an unsigned refusal, a bad
        # receipt) proves the coins unpaid: the purchase stays "sent" with its key, so that
        # `wallet recover` and a TTP dispute can still deliver (issue 10, attacks 1 and 8).
        if purchases.get(purchase_id).state == "sent":
            purchases.update(purchase_id, error_code=exc.code)
        else:
            purchases.update(purchase_id, state="failed", error_code=exc.code, customer_secret=None)
        raise
    purchases.update(
        purchase_id,
        payment_id=paid.payment_id,
        receipt=paid.receipt,
        state="paid",
    )
    # 16.4 step 4: k sealed to our key must open the ciphertext
    answer = capture.answer or {}
    sealed = answer.get("content_key")
    record = purchases.get(purchase_id)
    if sealed is None:
        purchases.update(purchase_id, state="key_missing", error_code=ContentKeyMissingError.code)
        raise ContentKeyMissingError(
            "paid, but the merchant sent no key: run `wallet dispute`",
            detail={"purchase_id": purchase_id, "payment_id": paid.payment_id},
        )
    result = _unlock(purchases, record, sealed, via="merchant")
    return PurchaseResult(result.purchase, result.content, paid, dict(paid.timings))


def dispute(
    purchases: PurchaseStore, purchase_id: str, *, ttp: DisputeApi, clock: Callable[[], int]
) -> PurchaseResult:
    """Get the key through the TTP (docs/protocol.md 16.5); raises DisputePendingError
    (``ttp.dispute_pending``) while the merchant still has time to answer."""
    p = purchases.get(purchase_id)
    if p.state not in DISPUTABLE:
        raise PurchaseStateError(
            f"a purchase in state {p.state!r} cannot be disputed",
            detail={"purchase_id": purchase_id, "state": p.state},
        )
    if p.request is None or p.merchant_cert is None or not p.spends:
        raise PurchaseStateError(
            "nothing was sent for this purchase: there is no payment to dispute",
            detail={"purchase_id": purchase_id},
        )
    try:
        if p.dispute_id is None:
            view = ttp.open_dispute(p.request, p.merchant_cert, p.spends)
            purchases.update(purchase_id, dispute_id=view["dispute_id"], state="disputing")
            if view.get("state") != "resolved" or view.get("sealed_key") is None:
                raise DisputePendingError(
                    "the TTP asked the merchant; ask again after the deadline",
                    detail={
                        "purchase_id": purchase_id,
                        "dispute_id": view["dispute_id"],
                        "deadline": view.get("deadline"),
                        "retry_after": max(1, int(view.get("deadline", 0)) - clock() + 1),
                    },
                )
            sealed = view["sealed_key"]
        else:
            sealed = ttp.dispute_key(p.dispute_id)["sealed_key"]
    except RemoteCallError as exc:
        if exc.code == DisputePendingError.code:
            raise DisputePendingError(
                exc.message, detail={**exc.detail, "purchase_id": purchase_id}
            ) from exc
        purchases.update(purchase_id, error_code=exc.code)
        raise
    return _unlock(purchases, purchases.get(purchase_id), sealed, via="ttp")

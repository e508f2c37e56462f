"""What the wallet knows about a purchase: the checked offer, the stored record, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ecash_tpm.protocol.exchange import ProductDescriptor
from ecash_tpm.wallet.pay import PayResult

__all__ = ["Offer", "PurchaseRecord", "PurchaseResult"]


@dataclass(frozen=True)
class Offer:
    """A verified product offer: descriptor, its TTP certificate, the checked ciphertext."""

    descriptor: ProductDescriptor
    descriptor_doc: dict[str, Any]
    ttp_cert: str
    ttp_url: str | None
    ciphertext: bytes


@dataclass(frozen=True)
class PurchaseRecord:
    """One purchase as the wallet recorded it."""

    purchase_id: str
    product_id: str
    merchant_id: str
    title: str
    price: int
    currency: str
    ttp_url: str | None
    merchant_url: str | None
    ciphertext: bytes
    customer_secret: bytes | None
    customer_key: bytes
    request: dict[str, Any] | None
    merchant_cert: str | None
    preq: bytes | None
    payment_id: str | None
    spends: list[dict[str, Any]] | None
    dispute_id: str | None
    delivered_by: str | None
    state: str
    error_code: str | None
    content_file: str | None
    created_at: int
    updated_at: int

    def to_dict(self) -> dict[str, Any]:
        """Summary without secrets or ciphertext."""
        return {
            "purchase_id": self.purchase_id,
            "product_id": self.product_id,
            "merchant_id": self.merchant_id,
            "title": self.title,
            "price": self.price,
            "currency": self.currency,
            "state": self.state,
            "payment_id": self.payment_id,
            "dispute_id": self.dispute_id,
            "delivered_by": self.delivered_by,
            "error_code": self.error_code,
            "content_file": self.content_file,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class PurchaseResult:
    """A completed purchase: the decrypted content and who delivered the key."""

    purchase: PurchaseRecord
    content: bytes
    payment: PayResult | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.purchase.to_dict(),
            "size": len(self.content),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

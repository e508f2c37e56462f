"""The merchant's typed values: HTTP bodies (docs/api.md, merchant section) and domain records.

HTTP bodies are pydantic models (unknown fields refused); the records the domain returns are
frozen dataclasses whose :meth:`to_dict` is the JSON the API serves and the CLI prints, so a
caller reads ``answer.receipt`` instead of guessing at dictionary keys. Signed wire documents
(``{kind, body, signature, signer}``: requests, receipts, key answers) stay mappings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.protocol.api.base import ApiModel, B64Bytes, SealedDoc, SignedDoc

__all__ = [
    "MAX_SPENDS",
    "CiphertextOut",
    "DepositRetry",
    "KeyAnswerOut",
    "KeyAnswerReply",
    "MerchantInfo",
    "MerchantInfoOut",
    "MerchantStats",
    "PayBody",
    "PayOut",
    "PaymentAnswer",
    "PaymentRequestCreate",
    "ProductCreate",
    "ProductListOut",
    "ProductOut",
    "SignedRequest",
    "SignedRequestOut",
    "SignedWithCert",
]

#: Most coins one payment may carry.
MAX_SPENDS = 64

# --- HTTP bodies -------------------------------------------------------------------------------


class PaymentRequestCreate(ApiModel):
    """What the shop front end asks for: an amount, optionally a product and customer key."""

    amount: int = Field(gt=0, le=2**53 - 1)
    currency: str | None = Field(default=None, min_length=3, max_length=12)
    product_id: str | None = Field(default=None, min_length=1, max_length=128)
    customer_key: Annotated[B64Bytes, Field(min_length=32, max_length=32)] | None = None


class SignedRequestOut(ApiModel):
    request: SignedDoc = Field(description="merchant-signed payment-request")
    cert: str = Field(description="the merchant certificate, PEM")


class PayBody(ApiModel):
    """The customer's payment: the merchant's signed request and one spend per coin."""

    request: SignedDoc = Field(description="the payment request as the merchant signed it")
    spends: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_SPENDS, description="{coin, proof} per coin (docs/api.md)"
    )


class PayOut(ApiModel):
    receipt: SignedDoc = Field(description="bank-signed deposit-receipt")
    cert: str = Field(description="the bank certificate, PEM")
    content_key: SealedDoc | None = Field(
        default=None, description="product requests: k sealed to the customer, else null"
    )


class MerchantInfoOut(ApiModel):
    merchant_id: str
    cert: str
    currencies: list[str]


class ProductCreate(ApiModel):
    """Admin: register a product with the TTP and list it."""

    title: str = Field(min_length=1, max_length=200)
    price: int = Field(gt=0, le=2**53 - 1)
    currency: str | None = Field(default=None, min_length=3, max_length=12)
    content: B64Bytes = Field(min_length=1)


class ProductOut(ApiModel):
    """A catalogue entry (``CatalogueProduct.listing()``, field for field)."""

    descriptor: SignedDoc = Field(description="TTP-signed product descriptor")
    ttp_cert: str = Field(description="the TTP certificate, PEM")
    ttp_url: str | None = Field(description="where the TTP answers disputes")


class ProductListOut(ApiModel):
    products: list[ProductOut]


class CiphertextOut(ApiModel):
    product_id: str
    ciphertext: str = Field(description="the product's public ciphertext, base64url")


class KeyAnswerOut(ApiModel):
    """What the TTP's key request gets (:meth:`KeyAnswerReply.to_dict`, field for field)."""

    answer: SignedDoc = Field(description="merchant-signed ttp-key-answer")
    cert: str = Field(description="the merchant certificate, PEM")


class SignedWithCert(ApiModel):
    """A signed object with the signer's certificate (PEM) beside its fields."""

    kind: str = Field(max_length=64)
    body: dict[str, Any]
    signature: str = Field(max_length=200)
    signer: str = Field(max_length=200)
    cert: str = Field(max_length=16384)


# --- records the domain returns ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A signed payment request with the merchant certificate that verifies it."""

    request: dict[str, Any] = field(hash=False)
    cert: str

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "cert": self.cert}


@dataclass(frozen=True, slots=True)
class PaymentAnswer:
    """The bank's receipt and certificate; for a product request also ``content_key`` (k sealed
    to the customer, ``None`` when the shop sends none)."""

    receipt: dict[str, Any] = field(hash=False)
    cert: str
    content_key: dict[str, Any] | None = field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"receipt": self.receipt, "cert": self.cert, "content_key": self.content_key}


@dataclass(frozen=True, slots=True)
class KeyAnswerReply:
    """The signed ``ttp-key-answer`` for a dispute and the merchant certificate beside it."""

    answer: dict[str, Any] = field(hash=False)
    cert: str

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "cert": self.cert}


@dataclass(frozen=True, slots=True)
class MerchantInfo:
    """Public facts about a merchant: its id, certificate and currencies."""

    merchant_id: str
    cert: str
    currencies: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "cert": self.cert,
            "currencies": list(self.currencies),
        }


@dataclass(frozen=True, slots=True)
class MerchantStats:
    """Counters ``{kind: {code: n}}`` and paid totals ``{currency: {paid_count, paid_amount}}``."""

    counters: dict[str, dict[str, int]] = field(hash=False)
    totals: dict[str, dict[str, int]] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"counters": self.counters, "totals": self.totals}


@dataclass(frozen=True, slots=True)
class DepositRetry:
    """One re-sent deposit and how it ended: ``outcome`` is ``"paid"`` or the error code."""

    deposit_id: str
    preq: bytes
    amount: int
    currency: str
    outcome: str

    @property
    def settled(self) -> bool:
        return self.outcome == "paid"

    def to_dict(self) -> dict[str, Any]:
        return {
            "deposit_id": self.deposit_id,
            "preq": b64u_encode(self.preq),
            "amount": self.amount,
            "currency": self.currency,
            "outcome": self.outcome,
        }

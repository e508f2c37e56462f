"""The TTP's typed values: HTTP bodies (docs/api.md, TTP section) and the domain's records.

HTTP bodies are pydantic models (unknown fields refused); the records the domain returns are
frozen dataclasses whose :meth:`to_dict` is the JSON the API serves and the CLI prints, so a
caller reads ``view.state`` instead of guessing at dictionary keys. Signed wire documents
(``{kind, body, signature, signer}``: descriptors, requests, answers) and sealed boxes stay
mappings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.protocol.api.base import ApiModel, SealedDoc, SignedDoc

__all__ = [
    "AnswerBody",
    "CiphertextOut",
    "DisputeBody",
    "DisputeKey",
    "DisputeKeyOut",
    "DisputeListOut",
    "DisputeView",
    "DisputeViewOut",
    "ProductAnswer",
    "ProductList",
    "ProductListOut",
    "ProductOut",
    "RegistrationAnswer",
    "RegistrationOut",
    "SignedWithCert",
    "Strike",
    "StrikeListOut",
    "StrikeOut",
    "TtpInfo",
    "TtpInfoOut",
    "TtpStats",
    "TtpStatsOut",
]

_CERT_MAX = 16384

# --- HTTP bodies -------------------------------------------------------------------------------


class SignedWithCert(ApiModel):
    """A signed object with the signer's certificate (PEM) beside its fields."""

    kind: str = Field(max_length=64)
    body: dict[str, Any]
    signature: str = Field(max_length=200)
    signer: str = Field(max_length=200)
    cert: str = Field(max_length=_CERT_MAX)


class DisputeBody(ApiModel):
    """The customer's dispute: the merchant-signed request, its certificate, the spends."""

    request: SignedDoc = Field(description="the merchant-signed payment request (a product's)")
    cert: str = Field(max_length=_CERT_MAX, description="the merchant certificate, PEM")
    spends: list[dict[str, Any]] = Field(
        min_length=1, max_length=64, description="{coin, proof} per coin, as paid"
    )


class AnswerBody(ApiModel):
    """The merchant's key answer (signed ``ttp-key-answer``) and its certificate."""

    answer: SignedDoc = Field(description="merchant-signed ttp-key-answer")
    cert: str = Field(max_length=_CERT_MAX, description="the merchant certificate, PEM")


# --- HTTP answers: the records' to_dict(), field for field (tests compare them) -------------


class TtpInfoOut(ApiModel):
    ttp_id: str
    cert: str = Field(description="the TTP certificate, PEM")
    dispute_window_s: int


class TtpStatsOut(ApiModel):
    counters: dict[str, int]


class RegistrationOut(ApiModel):
    descriptor: SignedDoc = Field(description="TTP-signed product descriptor")
    cert: str = Field(description="the TTP certificate, PEM")
    ciphertext: str = Field(description="the product's ciphertext, base64url")
    sealed_key: SealedDoc = Field(description="k sealed to the merchant's one-time reply key")


class ProductOut(ApiModel):
    descriptor: SignedDoc = Field(description="TTP-signed product descriptor")
    cert: str = Field(description="the TTP certificate, PEM")


class ProductListOut(ApiModel):
    products: list[SignedDoc] = Field(description="TTP-signed descriptors, oldest first")
    cert: str = Field(description="the TTP certificate, PEM")


class CiphertextOut(ApiModel):
    product_id: str
    ciphertext: str = Field(description="base64url")


class DisputeViewOut(ApiModel):
    dispute_id: str
    preq: str = Field(description="the payment request digest, base64url")
    product_id: str
    merchant_id: str
    state: str = Field(description="pending or resolved")
    deadline: int
    created_at: int
    resolved_at: int | None
    resolution: str | None = Field(description="merchant_key, escrow, or null while pending")
    strike: bool
    merchant_answer: str | None = Field(description="what the merchant last answered (a code)")
    reply_key: str = Field(description="the TTP's one-time X25519 reply key, base64url")
    sealed_key: SealedDoc | None


class DisputeListOut(ApiModel):
    disputes: list[DisputeViewOut]


class DisputeKeyOut(ApiModel):
    dispute_id: str
    preq: str
    product_id: str
    resolution: str | None
    sealed_key: SealedDoc = Field(description="k sealed to the customer's key")


class StrikeOut(ApiModel):
    strike_id: int
    merchant_id: str
    dispute_id: str
    reason: str = Field(description="no_key or wrong_key")
    created_at: int


class StrikeListOut(ApiModel):
    strikes: list[StrikeOut]


# --- records the domain returns ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TtpInfo:
    """Public facts: the TTP's id, certificate and dispute window (seconds)."""

    ttp_id: str
    cert: str
    dispute_window_s: int

    def to_dict(self) -> dict[str, Any]:
        return {"ttp_id": self.ttp_id, "cert": self.cert, "dispute_window_s": self.dispute_window_s}


@dataclass(frozen=True, slots=True)
class TtpStats:
    """Counters by name (registrations, disputes_opened, bank_queries, ...)."""

    counters: dict[str, int] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"counters": self.counters}


@dataclass(frozen=True, slots=True)
class RegistrationAnswer:
    """What a registering merchant gets: the signed descriptor, the TTP certificate, the
    ciphertext and k sealed to the merchant's one-time reply key."""

    descriptor: dict[str, Any] = field(hash=False)
    cert: str
    ciphertext: bytes
    sealed_key: dict[str, str] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "descriptor": self.descriptor,
            "cert": self.cert,
            "ciphertext": b64u_encode(self.ciphertext),
            "sealed_key": self.sealed_key,
        }


@dataclass(frozen=True, slots=True)
class ProductAnswer:
    """One product's signed descriptor and the TTP certificate that verifies it."""

    descriptor: dict[str, Any] = field(hash=False)
    cert: str

    def to_dict(self) -> dict[str, Any]:
        return {"descriptor": self.descriptor, "cert": self.cert}


@dataclass(frozen=True, slots=True)
class ProductList:
    """Signed descriptors (oldest first) and the TTP certificate that verifies them."""

    products: list[dict[str, Any]] = field(hash=False)
    cert: str

    def to_dict(self) -> dict[str, Any]:
        return {"products": self.products, "cert": self.cert}


@dataclass(frozen=True, slots=True)
class DisputeView:
    """The public view of a dispute (what customers, merchants and operators see)."""

    dispute_id: str
    preq: bytes
    product_id: str
    merchant_id: str
    state: str
    deadline: int
    created_at: int
    resolved_at: int | None
    resolution: str | None
    merchant_answer: str | None
    reply_key: bytes
    sealed_key: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def strike(self) -> bool:
        """An escrow resolution is a strike against the merchant."""
        return self.resolution == "escrow"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dispute_id": self.dispute_id,
            "preq": b64u_encode(self.preq),
            "product_id": self.product_id,
            "merchant_id": self.merchant_id,
            "state": self.state,
            "deadline": self.deadline,
            "created_at": self.created_at,
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
            "strike": self.strike,
            "merchant_answer": self.merchant_answer,
            "reply_key": b64u_encode(self.reply_key),
            "sealed_key": self.sealed_key,
        }


@dataclass(frozen=True, slots=True)
class DisputeKey:
    """The sealed key of a resolved dispute and how it was resolved."""

    dispute_id: str
    preq: bytes
    product_id: str
    resolution: str | None
    sealed_key: dict[str, Any] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dispute_id": self.dispute_id,
            "preq": b64u_encode(self.preq),
            "product_id": self.product_id,
            "resolution": self.resolution,
            "sealed_key": self.sealed_key,
        }


@dataclass(frozen=True, slots=True)
class Strike:
    """A strike against a merchant: the dispute it lost and why (``no_key``/``wrong_key``)."""

    strike_id: int
    merchant_id: str
    dispute_id: str
    reason: str
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "strike_id": self.strike_id,
            "merchant_id": self.merchant_id,
            "dispute_id": self.dispute_id,
            "reason": self.reason,
            "created_at": self.created_at,
        }

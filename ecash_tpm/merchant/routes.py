"""The merchant's HTTP API (docs/api.md, "Merchant"): a thin shell over :class:`Merchant`.

Handlers are plain ``def`` (FastAPI runs them in worker threads) because the domain blocks on
the database and on the bank.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field

from ecash_tpm.merchant.domain import MAX_SPENDS, Merchant
from ecash_tpm.service import ApiModel, B64Bytes

__all__ = ["PayBody", "PaymentRequestCreate", "router"]

router = APIRouter(prefix="/v1", tags=["merchant"])


class PaymentRequestCreate(ApiModel):
    """What the shop front end asks for: an amount, optionally a product and customer key."""

    amount: int = Field(gt=0, le=2**53 - 1)
    currency: str | None = Field(default=None, min_length=3, max_length=12)
    product_id: str | None = Field(default=None, min_length=1, max_length=128)
    customer_key: Annotated[B64Bytes, Field(min_length=32, max_length=32)] | None = None


class SignedRequestOut(ApiModel):
    request: dict[str, Any]
    cert: str


class PayBody(ApiModel):
    """The customer's payment: the merchant's signed request and one spend per coin."""

    request: dict[str, Any]
    spends: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_SPENDS)


class PayOut(ApiModel):
    receipt: dict[str, Any]
    cert: str


class MerchantInfoOut(ApiModel):
    merchant_id: str
    cert: str
    currencies: list[str]


def _merchant(request: Request) -> Merchant:
    merchant: Merchant = request.app.state.merchant
    return merchant


@router.get("/merchant", response_model=MerchantInfoOut, summary="Merchant id and certificate")
def merchant_info(request: Request) -> dict[str, Any]:
    return _merchant(request).info()


@router.post(
    "/payment-requests", response_model=SignedRequestOut, summary="Create a signed payment request"
)
def create_payment_request(body: PaymentRequestCreate, request: Request) -> dict[str, Any]:
    return _merchant(request).create_request(
        body.amount,
        body.currency,
        product_id=body.product_id,
        customer_key=body.customer_key,
    )


@router.post("/pay", response_model=PayOut, summary="Pay a request: verify, deposit, receipt")
def pay(body: PayBody, request: Request) -> dict[str, Any]:
    return _merchant(request).pay(body.request, body.spends)

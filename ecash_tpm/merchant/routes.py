"""The merchant's HTTP API (docs/api.md, "Merchant"): a thin shell over :class:`Merchant`.

Handlers are plain ``def`` (FastAPI runs them in worker threads) because the domain blocks on
the database and on the bank.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.merchant.catalogue import Catalogue, TtpNotConfiguredError, check_admin
from ecash_tpm.merchant.domain import Merchant
from ecash_tpm.merchant.models import (
    MerchantInfoOut,
    PayBody,
    PaymentRequestCreate,
    PayOut,
    ProductCreate,
    SignedRequestOut,
    SignedWithCert,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["merchant"])


def _merchant(request: Request) -> Merchant:
    merchant: Merchant = request.app.state.merchant
    return merchant


@router.get("/merchant", response_model=MerchantInfoOut, summary="Merchant id and certificate")
def merchant_info(request: Request) -> dict[str, Any]:
    return _merchant(request).info().to_dict()


@router.post(
    "/payment-requests", response_model=SignedRequestOut, summary="Create a signed payment request"
)
def create_payment_request(body: PaymentRequestCreate, request: Request) -> dict[str, Any]:
    return (
        _merchant(request)
        .create_request(
            body.amount,
            body.currency,
            product_id=body.product_id,
            customer_key=body.customer_key,
        )
        .to_dict()
    )


@router.post("/pay", response_model=PayOut, summary="Pay a request: verify, deposit, receipt")
def pay(body: PayBody, request: Request) -> dict[str, Any]:
    return _merchant(request).pay(body.request, body.spends).to_dict()


# --- fair exchange (issue 6, DESIGN §6): catalogue and the TTP's key requests -----------------


def _catalogue(request: Request) -> Catalogue:
    catalogue = _merchant(request).catalogue
    if catalogue is None:
        raise TtpNotConfiguredError("this merchant has no catalogue")
    return catalogue


@router.get("/products", summary="Products: TTP-signed descriptors")
def list_products(request: Request) -> dict[str, Any]:
    return {"products": [p.listing() for p in _catalogue(request).products()]}


@router.get("/products/{product_id}", summary="One product: descriptor, TTP certificate")
def get_product(product_id: str, request: Request) -> dict[str, Any]:
    return _catalogue(request).get(product_id).listing()


@router.get("/products/{product_id}/ciphertext", summary="The product's public ciphertext")
def get_ciphertext(product_id: str, request: Request) -> dict[str, Any]:
    product = _catalogue(request).get(product_id)
    return {"product_id": product.product_id, "ciphertext": b64u_encode(product.ciphertext)}


@router.post("/products", summary="Admin: register a product with the TTP (bearer token)")
def add_product(
    body: ProductCreate,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    settings = request.app.state.settings
    check_admin(settings.admin_token, authorization)
    url = settings.public_url or str(request.base_url).rstrip("/")
    product = _catalogue(request).register(
        title=body.title,
        price=body.price,
        content=body.content,
        currency=body.currency,
        merchant_url=url,
    )
    return product.listing()


@router.post("/ttp/key-requests", summary="The TTP asks for a product key (dispute)")
def key_request(body: SignedWithCert, request: Request) -> dict[str, Any]:
    signed = body.model_dump(exclude={"cert"})
    return _catalogue(request).answer_key_request(signed, body.cert).to_dict()

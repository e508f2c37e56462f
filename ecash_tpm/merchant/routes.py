"""The merchant's HTTP API (docs/api.md, "Merchant"): a thin shell over :class:`Merchant`.

Handlers are plain ``def`` (FastAPI runs them in worker threads) because the domain blocks on
the database and on the bank. Each route's ``responses`` lists what the domain raises; ``/pay``
also passes the bank's refusals through with the bank's code and status (the merchant may not
import the bank, so those codes are written down here, see :data:`BANK_REFUSALS`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig.errors import CredentialError, SpendProofError
from ecash_tpm.crypto.sealing import SealError
from ecash_tpm.errors import AuthenticationError, EcashError, ForbiddenError, InputError
from ecash_tpm.merchant.catalogue import (
    Catalogue,
    CustomerKeyRequiredError,
    KeyRequestRefusedError,
    ProductPriceError,
    RegistrationAnswerError,
    TtpNotConfiguredError,
    TtpUntrustedError,
    UnknownProductError,
    check_admin,
)
from ecash_tpm.merchant.domain import (
    BankUnavailableError,
    Merchant,
    NotOurRequestError,
    PaymentInProgressError,
    PaymentNotPaidError,
    RequestAlreadyPaidError,
    ReserveUnconfirmedError,
    UnknownRequestError,
    UnsupportedCurrencyError,
)
from ecash_tpm.merchant.models import (
    CiphertextOut,
    KeyAnswerOut,
    MerchantInfoOut,
    PayBody,
    PaymentRequestCreate,
    PayOut,
    ProductCreate,
    ProductListOut,
    ProductOut,
    SignedRequestOut,
    SignedWithCert,
)
from ecash_tpm.protocol.errors import (
    AmountMismatchError,
    CoinSignatureError,
    EpochKeyUnavailableError,
    KeysetDescriptorError,
    KeysetExpiredError,
    MalformedCoinError,
    ReceiptInvalidError,
    RequestExpiredError,
    RequestFormatError,
    RequestMismatchError,
    TooManyEpochsError,
    UnknownEpochError,
    UnknownKeysetError,
    WrongCurrencyError,
)
from ecash_tpm.service.openapi import (
    CERT_ERRORS,
    REMOTE_ERRORS,
    SIGNED_OBJECT_ERRORS,
    ErrorDoc,
    bearer,
    err,
    errors,
)

__all__ = ["BANK_REFUSALS", "router"]

router = APIRouter(prefix="/v1", tags=["merchant"])


def _bank(code: str, status: int, message: str, **detail: object) -> ErrorDoc:
    return ErrorDoc(
        code=code,
        status=status,
        message=f"bank: {message}",
        detail=detail,
        retry_after="retry_after" in detail,
    )


#: The bank's 4xx refusals of a reserve or deposit, passed through by ``/pay`` with the bank's
#: code, status and detail (docs/api.md, "Bank"); a 5xx or lost answer is 503
#: ``merchant.bank_unavailable``. tests/integration/service/test_openapi.py checks this list
#: against the bank's own document.
BANK_REFUSALS: tuple[ErrorDoc, ...] = (
    _bank("bank.double_spend", 409, "coin already spent", serial="3q2-7w", transcript_id=17),
    _bank("bank.coin_locked", 409, "another merchant holds the coin", retry_after=42),
    _bank("bank.deposit_conflict", 409, "deposit_id reused with other content"),
    _bank("bank.unknown_keyset", 404, "no keyset with this id"),
    _bank("bank.keyset_expired", 400, "the coin's keyset is closed for deposit", index=0),
    _bank("bank.bad_coin_signature", 400, "the coin's RSA signature does not verify", index=0),
    _bank("bank.bad_credential", 400, "coin credential is not valid for its epoch", index=0),
    _bank("bank.bad_proof", 400, "the spend proof does not verify", index=0),
    _bank("bank.request_expired", 400, "payment request was past its deadline"),
    _bank("bank.malformed_coin", 400, "a coin or proof is not well formed"),
    _bank("bank.request_mismatch", 400, "the coins do not match the request"),
    _bank("bank.wrong_key", 403, "the request is not signed by this merchant's key"),
    _bank("bank.merchant_blacklisted", 403, "this merchant is blacklisted"),
    _bank("bank.unknown_merchant", 403, "this merchant is not registered"),
    _bank("bank.merchant_key_mismatch", 403, "not the merchant's registered key"),
    _bank("bank.bad_merchant_signature", 401, "the merchant's signature does not verify"),
    _bank("payment.wrong_currency", 400, "coin, keyset and request currencies differ"),
)

_ADMIN_TOKEN = bearer("adminToken", "The merchant's admin_token (catalogue administration)")
_ADMIN_ERRORS = (
    err(ForbiddenError, "merchant.admin_disabled", message="no admin_token is configured"),
    err(AuthenticationError, "merchant.admin_auth", message="admin token required"),
)
_PAY_ERRORS = (
    NotOurRequestError,
    UnknownRequestError,
    RequestFormatError,
    RequestExpiredError,
    MalformedCoinError,
    RequestMismatchError,
    UnknownKeysetError,
    KeysetExpiredError,
    CoinSignatureError,
    CredentialError,  # docs/protocol.md 7.4: the merchant's public credential check
    UnknownEpochError,  # 7.4: fail closed on an uncertified epoch ...
    EpochKeyUnavailableError,  # ... and on a key that cannot be had now (503)
    TooManyEpochsError,  # 7.4: at most two epochs per payment
    SpendProofError,
    WrongCurrencyError,
    AmountMismatchError,
    RequestAlreadyPaidError,
    PaymentInProgressError,
    BANK_REFUSALS,
    BankUnavailableError,
    ReserveUnconfirmedError,  # the bank's reservation lacks the full verdict (§10)
    ReceiptInvalidError,  # the bank's receipt does not check out
    KeysetDescriptorError,  # the bank's keysets, fetched and verified on first use
    CERT_ERRORS,
    SIGNED_OBJECT_ERRORS,
    REMOTE_ERRORS,
    UnknownProductError,
    SealError,
)


def _merchant(request: Request) -> Merchant:
    merchant: Merchant = request.app.state.merchant
    return merchant


@router.get(
    "/merchant",
    response_model=MerchantInfoOut,
    summary="Merchant id and certificate",
    responses=errors(storage=False),
)
def merchant_info(request: Request) -> dict[str, Any]:
    return _merchant(request).info().to_dict()


@router.post(
    "/payment-requests",
    response_model=SignedRequestOut,
    summary="Create a signed payment request",
    responses=errors(
        UnsupportedCurrencyError,
        InputError,
        UnknownProductError,
        ProductPriceError,
        CustomerKeyRequiredError,
        RequestFormatError,
    ),
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


@router.post(
    "/pay",
    response_model=PayOut,
    summary="Pay a request: verify, deposit, receipt",
    responses=errors(_PAY_ERRORS),
)
def pay(body: PayBody, request: Request) -> dict[str, Any]:
    return _merchant(request).pay(body.request, body.spends).to_dict()


# --- a lost pay answer (issue 10, attack 8; docs/protocol.md §8.1) ----------------------------


def _preq(text: str) -> bytes:
    """Path parameter -> the 32-byte request digest (400 on anything else)."""
    try:
        preq = b64u_decode(text)
    except EcashError as exc:
        raise InputError("preq must be base64url") from exc
    if len(preq) != 32:
        raise InputError("preq must be 32 bytes")
    return preq


@router.get(
    "/payments/{preq}",
    response_model=PayOut,
    summary="The answer of a paid request again: receipt, bank cert, sealed key",
    responses=errors(
        InputError,
        UnknownRequestError,
        PaymentNotPaidError,
        PaymentInProgressError,
        BANK_REFUSALS,
        BankUnavailableError,
        ReceiptInvalidError,
        KeysetDescriptorError,
        REMOTE_ERRORS,
        SealError,
    ),
)
def paid_answer(preq: str, request: Request) -> dict[str, Any]:
    return _merchant(request).paid_answer(_preq(preq)).to_dict()


# --- fair exchange (issue 6, DESIGN §6): catalogue and the TTP's key requests -----------------


def _catalogue(request: Request) -> Catalogue:
    catalogue = _merchant(request).catalogue
    if catalogue is None:
        raise TtpNotConfiguredError("this merchant has no catalogue")
    return catalogue


@router.get(
    "/products",
    summary="Products: TTP-signed descriptors",
    response_model=ProductListOut,
    responses=errors(TtpNotConfiguredError),
)
def list_products(request: Request) -> dict[str, Any]:
    return {"products": [p.listing() for p in _catalogue(request).products()]}


@router.get(
    "/products/{product_id}",
    summary="One product: descriptor, TTP certificate",
    response_model=ProductOut,
    responses=errors(TtpNotConfiguredError, UnknownProductError),
)
def get_product(product_id: str, request: Request) -> dict[str, Any]:
    return _catalogue(request).get(product_id).listing()


@router.get(
    "/products/{product_id}/ciphertext",
    summary="The product's public ciphertext",
    response_model=CiphertextOut,
    responses=errors(TtpNotConfiguredError, UnknownProductError),
)
def get_ciphertext(product_id: str, request: Request) -> dict[str, Any]:
    product = _catalogue(request).get(product_id)
    return {"product_id": product.product_id, "ciphertext": b64u_encode(product.ciphertext)}


@router.post(
    "/products",
    summary="Admin: register a product with the TTP (bearer token)",
    response_model=ProductOut,
    dependencies=[_ADMIN_TOKEN],
    responses=errors(
        _ADMIN_ERRORS,
        TtpNotConfiguredError,
        InputError,
        RegistrationAnswerError,
        REMOTE_ERRORS,  # the TTP's refusal keeps its code
    ),
)
def add_product(
    body: ProductCreate,
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
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


@router.post(
    "/ttp/key-requests",
    summary="The TTP asks for a product key (dispute)",
    response_model=KeyAnswerOut,
    responses=errors(
        TtpNotConfiguredError,
        CERT_ERRORS,
        SIGNED_OBJECT_ERRORS,
        InputError,
        UnknownProductError,
        TtpUntrustedError,
        KeyRequestRefusedError,
        SealError,
    ),
)
def key_request(body: SignedWithCert, request: Request) -> dict[str, Any]:
    signed = body.model_dump(exclude={"cert"})
    return _catalogue(request).answer_key_request(signed, body.cert).to_dict()

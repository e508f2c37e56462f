"""The bank's redeem routes (issue 12, item 5; docs/protocol.md §9.4).

Both need the account holder's session (``Authorization: Bearer`` from ``POST /v1/login``):
``POST /v1/redeem/request`` gives a bank-signed, single-use redeem request for the session's
account; ``POST /v1/redeem`` books the coins whose spend proofs sign that request's digest.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import Field

from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.bank.errors import (
    BAD_COIN_SIGNATURE,
    BAD_PROOF,
    KEYSET_EXPIRED,
    UNKNOWN_KEYSET,
    BadCredentialError,
    CoinLockedError,
    DoubleSpendError,
    InvalidTokenError,
    KeysetOverdrawnError,
    LedgerInvariantError,
    UnknownAccountError,
)
from ecash_tpm.crypto.groupsig.errors import SpendProofError
from ecash_tpm.errors import ConfigError, InputError
from ecash_tpm.protocol.api.base import ApiModel, SignedObject
from ecash_tpm.protocol.errors import (
    CoinSignatureError,
    KeysetExpiredError,
    MalformedCoinError,
    RequestMismatchError,
    UnknownKeysetError,
)
from ecash_tpm.protocol.redeem import (
    RedeemConflictError,
    RedeemExpiredError,
    RedeemRequestInvalidError,
    RedeemTooManyError,
    RedeemUnknownRequestError,
    RedeemUsedError,
    RedeemWrongAccountError,
)
from ecash_tpm.service.openapi import bearer, err, errors

__all__ = [
    "RedeemAnswer",
    "RedeemBody",
    "RedeemRequestAnswer",
    "RedeemRequestBody",
    "build_redeem_router",
]

_LOGIN_TOKEN = bearer("loginToken", "A customer's token from POST /v1/login")


class RedeemRequestBody(ApiModel):
    amount: int = Field(gt=0, description="minor units of the bank's currency")


class RedeemRequestAnswer(ApiModel):
    request: SignedObject = Field(description="the bank-signed redeem-request")
    cert: str = Field(description="the bank's certificate (PEM)")


class RedeemBody(ApiModel):
    request: SignedObject = Field(description="the bank-signed redeem-request")
    spends: list[dict[str, Any]] = Field(min_length=1, max_length=64)


class RedeemAnswer(ApiModel):
    receipt: SignedObject = Field(description="the bank-signed redeem-receipt")
    cert: str = Field(description="the bank's certificate (PEM)")


def _bank(request: Request) -> BankDomain:
    bank: BankDomain = request.app.state.bank
    return bank


Bank = Annotated[BankDomain, Depends(_bank)]


def _account(bank: BankDomain, authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("Authorization: Bearer <token> is required")
    return bank.authenticate(token.strip())


def build_redeem_router() -> APIRouter:
    """The redeem routes (no state: the domain comes from ``app.state.bank``)."""
    router = APIRouter(prefix="/v1", tags=["bank"])

    @router.post(
        "/redeem/request",
        summary="A bank-signed, single-use redeem request for the session's account",
        dependencies=[_LOGIN_TOKEN],
        responses=errors(
            InvalidTokenError,
            InputError,
            UnknownAccountError,
            err(RedeemTooManyError, retry_after=True, detail={"max_open": 16, "retry_after": 300}),
        ),
    )
    def redeem_request(
        body: RedeemRequestBody,
        bank: Bank,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> RedeemRequestAnswer:
        answer = bank.redeem_request(_account(bank, authorization), body.amount)
        return RedeemRequestAnswer.model_validate(answer)

    @router.post(
        "/redeem",
        summary="Coins into the session's account (idempotent by redeem request)",
        dependencies=[_LOGIN_TOKEN],
        responses=errors(
            InvalidTokenError,
            InputError,
            RedeemRequestInvalidError,
            RedeemUnknownRequestError,
            RedeemWrongAccountError,
            RedeemUsedError,
            RedeemExpiredError,
            RedeemConflictError,
            RequestMismatchError,
            MalformedCoinError,
            err(UnknownKeysetError, UNKNOWN_KEYSET, status=404),
            err(KeysetExpiredError, KEYSET_EXPIRED, detail={"index": 0}),
            err(CoinSignatureError, BAD_COIN_SIGNATURE, detail={"index": 0, "serial": "..."}),
            err(SpendProofError, BAD_PROOF, detail={"index": 0, "serial": "..."}),
            BadCredentialError,
            err(DoubleSpendError, message="coin already spent", detail={"serial": "3q2-7w"}),
            err(CoinLockedError, retry_after=True, detail={"retry_after": 42}),
            KeysetOverdrawnError,
            err(ConfigError, message="opener_public (Hop) is not configured"),
            LedgerInvariantError,
        ),
    )
    def redeem(
        body: RedeemBody,
        bank: Bank,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> RedeemAnswer:
        answer = bank.redeem(_account(bank, authorization), body.model_dump())
        return RedeemAnswer.model_validate(answer)

    return router

"""HTTP routes of the merchant's refunds (docs/api.md "Merchant"; docs/protocol.md "Refunds")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import Field

from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.errors import AuthenticationError, EcashError, ForbiddenError, InputError
from ecash_tpm.merchant.catalogue import check_admin
from ecash_tpm.merchant.domain import PaymentNotPaidError, UnknownRequestError
from ecash_tpm.merchant.refunds.desk import RefundDesk
from ecash_tpm.protocol.api.base import ApiModel
from ecash_tpm.protocol.refunds import (
    RefundAmountError,
    RefundDeadlinePassedError,
    RefundNotAllowedError,
    RefundNotFoundError,
)
from ecash_tpm.service.openapi import bearer, err, errors

__all__ = ["RefundCreate", "RefundOut", "refund_router"]

refund_router = APIRouter(prefix="/v1", tags=["merchant"])

_ADMIN_TOKEN = bearer("adminToken", "The merchant's admin_token (catalogue administration)")


class RefundCreate(ApiModel):
    preq: str = Field(max_length=64, description="the paid request's digest, base64url")
    amount: int | None = Field(default=None, ge=1, description="default: all that is left")


class RefundOut(ApiModel):
    refunds: list[dict[str, Any]] = Field(description="merchant-signed refund-permission objects")
    cert: str = Field(description="the merchant certificate (PEM)")


def _desk(request: Request) -> RefundDesk:
    desk: RefundDesk = request.app.state.refunds
    return desk


def _preq(text: str) -> bytes:
    try:
        preq = b64u_decode(text)
    except EcashError as exc:
        raise InputError("preq must be base64url") from exc
    if len(preq) != 32:
        raise InputError("preq must be 32 bytes")
    return preq


@refund_router.post(
    "/refunds",
    summary="Admin: sign a refund permission for a paid request (bearer token)",
    response_model=RefundOut,
    dependencies=[_ADMIN_TOKEN],
    responses=errors(
        err(ForbiddenError, "merchant.admin_disabled", message="no admin_token is configured"),
        err(AuthenticationError, "merchant.admin_auth", message="admin token required"),
        InputError,
        UnknownRequestError,
        PaymentNotPaidError,
        RefundNotAllowedError,
        RefundDeadlinePassedError,
        RefundAmountError,
    ),
)
def create_refund(
    body: RefundCreate,
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> dict[str, Any]:
    check_admin(request.app.state.settings.admin_token, authorization)
    return _desk(request).create(_preq(body.preq), body.amount).to_dict()


@refund_router.get(
    "/payments/{preq}/refund",
    summary="The refund permissions of a paid request (for the customer's wallet)",
    response_model=RefundOut,
    responses=errors(InputError, RefundNotFoundError),
)
def get_refund(preq: str, request: Request) -> dict[str, Any]:
    return _desk(request).permissions(_preq(preq)).to_dict()

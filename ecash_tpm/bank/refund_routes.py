"""The bank's refund route (issue 12, item 3; docs/protocol.md "Refunds", docs/api.md).

``POST /v1/refunds/claim`` is anonymous: no login, no account. What authorises it is the
merchant-signed permission and the TPM ownership proofs of the refunded coins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.bank.errors import MerchantKeyMismatchError, UnknownMerchantError
from ecash_tpm.crypto.blindrsa import BlindRsaInputError, SigningFailureError
from ecash_tpm.errors import ConfigError, InputError
from ecash_tpm.protocol.api.base import ApiModel, B64Bytes, SignedObject
from ecash_tpm.protocol.errors import KeysetExpiredError, UnknownKeysetError
from ecash_tpm.protocol.refunds import (
    RefundAlreadyClaimedError,
    RefundAmountError,
    RefundDeadlinePassedError,
    RefundMerchantFundsError,
    RefundNotAllowedError,
    RefundPermissionError,
    RefundProofError,
    RefundUnknownDepositError,
)
from ecash_tpm.service.openapi import CERT_ERRORS, err, errors

__all__ = ["RefundClaimAnswer", "RefundClaimBody", "build_refund_router"]


class RefundOutput(ApiModel):
    keyset_id: Annotated[B64Bytes, Field(min_length=16, max_length=16)]
    blinded_msg: Annotated[B64Bytes, Field(min_length=1, max_length=512)]


class OwnershipProof(ApiModel):
    sigma: str = Field(max_length=64, description="serial of a refunded coin, base64url")
    proof: dict[str, str] = Field(description="spend proof over the claim digest (section 7)")


class RefundClaimBody(ApiModel):
    claim_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    permission: SignedObject = Field(description="the merchant-signed refund-permission")
    merchant_cert: str = Field(max_length=16384, description="the merchant's certificate (PEM)")
    outputs: list[RefundOutput] = Field(min_length=1, max_length=64)
    proofs: list[OwnershipProof] = Field(min_length=1, max_length=64)


class RefundClaimAnswer(ApiModel):
    refund_id: str
    claim_id: str
    blind_signatures: list[str]
    amount: int


def _bank(request: Request) -> BankDomain:
    bank: BankDomain = request.app.state.bank
    return bank


Bank = Annotated[BankDomain, Depends(_bank)]


def build_refund_router() -> APIRouter:
    """The refund claim route (no state: the domain comes from ``app.state.bank``)."""
    router = APIRouter(prefix="/v1", tags=["bank"])

    @router.post(
        "/refunds/claim",
        summary="Claim a merchant's refund with TPM ownership proofs (anonymous)",
        responses=errors(
            InputError,
            RefundPermissionError,
            UnknownMerchantError,
            MerchantKeyMismatchError,
            *CERT_ERRORS,
            RefundUnknownDepositError,
            RefundNotAllowedError,
            RefundDeadlinePassedError,
            RefundAmountError,
            err(UnknownKeysetError, "bank.unknown_keyset", status=404),
            err(KeysetExpiredError, "bank.keyset_expired", detail={"index": 0}),
            RefundProofError,
            RefundAlreadyClaimedError,
            RefundMerchantFundsError,
            BlindRsaInputError,
            SigningFailureError,
            err(ConfigError, message="opener_public (Hop) is not configured"),
        ),
    )
    def claim_refund(body: RefundClaimBody, bank: Bank) -> RefundClaimAnswer:
        result = bank.claim_refund(
            claim_id=body.claim_id,
            permission=body.permission.model_dump(),
            merchant_cert=body.merchant_cert,
            outputs=[(o.keyset_id, o.blinded_msg) for o in body.outputs],
            proofs=[p.model_dump() for p in body.proofs],
        )
        return RefundClaimAnswer.model_validate(result.to_dict())

    return router

"""Request and response bodies of the supervision department's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ecash_tpm.protocol.api.base import ApiModel, B64Bytes, SignedDoc

PointBytes = Annotated[B64Bytes, Field(min_length=65, max_length=65)]


class OpenerInfo(ApiModel):
    """Hop, the key every spend encrypts T0 under."""

    opener_public: B64Bytes


class RegistrationRequest(ApiModel):
    """Issuer-signed ``member-registration`` object and the issuer's certificate (PEM)."""

    registration: SignedDoc = Field(description="issuer-signed member-registration")
    cert: str | None = Field(default=None, max_length=16384)


class RegistrationResponse(ApiModel):
    member_id: str


class OpenRequest(ApiModel):
    """A spend's tracing ciphertext and why it is opened (logged)."""

    c1: PointBytes
    c2: PointBytes
    reason: str = Field(min_length=1, max_length=500)


class OpenResponse(ApiModel):
    """The member, T0 and a Chaum-Pedersen proof anyone can check with Hop."""

    opening_id: int
    member_id: str
    account_id: str
    epoch: int
    t0: str
    proof: dict[str, str]


class DoubleSpendRequest(ApiModel):
    """Two bank-signed ``deposit-transcript`` objects of one serial and the bank certificate."""

    transcripts: list[SignedDoc] = Field(
        min_length=2, max_length=2, description="bank-signed deposit-transcript objects"
    )
    cert: str | None = Field(default=None, max_length=16384)


class RevocationState(ApiModel):
    status: str
    detail: dict[str, Any] | None = None


class DoubleSpendResponse(ApiModel):
    """The case: signed evidence bundle and the state of the revocation request."""

    case_id: int
    member_id: str
    sigma: str
    evidence: SignedDoc = Field(description="supervision-signed double-spend-evidence")
    revocation: RevocationState

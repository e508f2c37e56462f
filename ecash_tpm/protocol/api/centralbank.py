"""Request and response bodies of the central bank's HTTP API (docs/api.md, "Central bank")."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ecash_tpm.pki import ROLES
from ecash_tpm.protocol.api.base import ApiModel, B64Bytes, SignedDoc

MAX_CERT_PEM = 8192


class CertifyRequest(ApiModel):
    role: Annotated[str, Field(description=f"one of {sorted(ROLES)}")]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    public_key: Annotated[B64Bytes, Field(min_length=1, max_length=512)] = Field(
        description="SubjectPublicKeyInfo DER of a P-256 key"
    )
    valid_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class CertifyResponse(ApiModel):
    cert: str = Field(description="the party certificate, PEM")
    serial: str = Field(description="certificate serial, lower-case hex")
    fingerprint: str = Field(description="hex SHA-256 of the DER certificate")
    not_before: int
    not_after: int


class RevokeRequest(ApiModel):
    serial: Annotated[str, Field(min_length=1, max_length=42, description="hex serial")]
    reason: Annotated[str, Field(max_length=64)] = "unspecified"


class RevokeResponse(ApiModel):
    serial: str
    reason: str
    revoked_at: int


class SupplyReportSubmission(ApiModel):
    report: SignedDoc = Field(description="signed object of kind supply-report")
    cert: Annotated[str, Field(max_length=MAX_CERT_PEM)] = Field(
        description="the bank's certificate, PEM"
    )


class SupplyReportReceipt(ApiModel):
    report_id: int
    bank_id: str
    as_of: int
    received_at: int
    digest: B64Bytes = Field(description="canonical_digest of the report body")
    created: bool = Field(description="false when an identical report was already stored")


class StoredSupplyReport(ApiModel):
    report_id: int
    bank_id: str
    as_of: int
    received_at: int
    report: SignedDoc = Field(description="the bank-signed supply-report as submitted")
    cert: str


# --- certified issuer epochs and keyset lists (docs/protocol.md 3.6, 4.1) ----------------------


class IssuerEpochRequest(ApiModel):
    """Admin: certify the issuer's (X, Y, X2, Y2) for ``epoch`` (one key per epoch, ever)."""

    issuer: Annotated[str, Field(min_length=1, max_length=64)]
    epoch: Annotated[int, Field(ge=0, le=2**32 - 1)]
    X: Annotated[str, Field(min_length=1, max_length=128, description="b64u 65-byte point")]
    Y: Annotated[str, Field(min_length=1, max_length=128, description="b64u 65-byte point")]
    X2: Annotated[str, Field(min_length=1, max_length=256, description="b64u 129-byte G2 point")]
    Y2: Annotated[str, Field(min_length=1, max_length=256, description="b64u 129-byte G2 point")]


class IssuerEpochAnswer(ApiModel):
    certificate: SignedDoc = Field(description="root-signed issuer-epoch-key")


class KeysetListSubmission(ApiModel):
    """The bank's signed keyset descriptors and its certificate (self-authenticating)."""

    cert: Annotated[str, Field(max_length=MAX_CERT_PEM)] = Field(
        description="the bank's certificate, PEM"
    )
    keysets: list[SignedDoc] = Field(max_length=1024, description="bank-keyset descriptors")


class KeysetListAnswer(ApiModel):
    keyset_list: SignedDoc = Field(description="root-signed bank-keyset-list")

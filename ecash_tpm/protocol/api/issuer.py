"""Request and response bodies of the issuer's HTTP API (docs/api.md, "Group manager").

Shared by the routes, the client, the wallet's join and the domain layer, so the shapes exist
once. Bytes are base64url in JSON (:data:`~ecash_tpm.service.B64Bytes`); TPM structures travel
in their marshalled wire forms (TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ecash_tpm.attest.eventlog import MAX_EVENT_LOG_SIZE
from ecash_tpm.protocol.api.base import ApiModel, B64Bytes, SignedDoc

AccountId = Annotated[str, Field(min_length=1, max_length=128)]
TpmBlob = Annotated[B64Bytes, Field(min_length=1, max_length=2048)]
CertBlob = Annotated[B64Bytes, Field(min_length=1, max_length=8192)]
Nonce32 = Annotated[B64Bytes, Field(min_length=32, max_length=32)]
PcrValue = Annotated[B64Bytes, Field(min_length=32, max_length=32)]
EventLogBlob = Annotated[B64Bytes, Field(min_length=1, max_length=MAX_EVENT_LOG_SIZE)]


class PcrSelectionModel(ApiModel):
    """PCRs the device must quote (SHA-256 bank only)."""

    bank: Literal["sha256"] = "sha256"
    pcrs: list[int] = Field(min_length=1, max_length=24)


class EkPresentation(ApiModel):
    """A further EK of the joining TPM: its certificate and public (docs/protocol.md 3.1)."""

    ek_cert: CertBlob
    ek_public: TpmBlob


class CredentialChallenge(ApiModel):
    """MakeCredential(EK, Name(AK), secret) for one further EK."""

    credential_blob: TpmBlob
    encrypted_secret: TpmBlob


class JoinStartRequest(ApiModel):
    """Device -> issuer: EK certificate and public, AK public, DAA public (TPM2B_PUBLIC); the
    bank's join authorisation for the account and its certificate; every further EK the TPM
    holds (``other_eks``, each activated too)."""

    account_id: AccountId
    ek_cert: CertBlob
    ek_public: TpmBlob
    ak_public: TpmBlob
    daa_public: TpmBlob
    authorisation: SignedDoc | None = Field(
        default=None, description="bank-signed join-authorisation (docs/protocol.md)"
    )
    authorisation_cert: str | None = Field(default=None, max_length=16384)
    other_eks: list[EkPresentation] = Field(default_factory=list, max_length=3)


class JoinStartResponse(ApiModel):
    """MakeCredential challenge bound to Name(AK) and the EK, plus the join nonce."""

    join_id: str
    nonce: Nonce32
    credential_blob: TpmBlob
    encrypted_secret: TpmBlob
    pcr_selection: PcrSelectionModel
    expires_at: int
    other_challenges: list[CredentialChallenge] = Field(default_factory=list)


class JoinFinishRequest(ApiModel):
    """Device -> issuer: quote, PCR values, certify of the DAA key, DAA join proof, and
    optionally the TCG event log of the boot (``binary_bios_measurements``, docs/protocol.md
    3.4)."""

    join_id: str = Field(min_length=1, max_length=64)
    quote_attest: TpmBlob
    quote_signature: TpmBlob
    pcr_values: dict[str, PcrValue] = Field(min_length=1, max_length=24)
    certify_attest: TpmBlob
    certify_signature: TpmBlob
    join_proof: dict[str, str]
    event_log: EventLogBlob | None = None


class MeasuredBootVerdict(ApiModel):
    """What the issuer read from a join's event log after its replay matched the quote.

    ``policy`` says what decided the join: ``pcr-values`` (golden values; the log was only
    checked and read) or ``measured-boot`` (the policy's rules on the log's events passed).
    ``secure_boot`` is None when the log does not measure it; ``db_entries``/``dbx_entries``
    likewise; ``boot_applications`` are the SHA-256 digests of PCR 4's boot applications.
    """

    bank: str
    events: int
    replayed_pcrs: list[int]
    secure_boot: bool | None
    db_entries: int | None
    dbx_entries: int | None
    boot_applications: list[str]
    policy: Literal["pcr-values", "measured-boot"]


class JoinFinishResponse(ApiModel):
    """The membership credential for ``epoch`` and the proof the member checks; with an
    event log, the issuer's verdict on it."""

    member_id: str
    epoch: int
    credential: dict[str, str]
    credential_proof: dict[str, str]
    measured_boot: MeasuredBootVerdict | None = None
    #: docs/protocol.md 3.6: the proof that the credential is under the certified (X, Y) and
    #: the central bank's certificate of that key; the wallet refuses a credential without them.
    credential_key_proof: dict[str, str] | None = None
    epoch_certificate: SignedDoc | None = None


class IssuerPublicModel(ApiModel):
    X: str
    Y: str
    #: docs/protocol.md 3.6: the G2 keys (absent for epochs certified before issue 14)
    X2: str | None = None
    Y2: str | None = None


class IssuerInfo(ApiModel):
    """What wallets, merchants and the bank need to know about the group."""

    epoch: int
    issuer_public: IssuerPublicModel
    pcr_selection: PcrSelectionModel
    opener_public: B64Bytes
    #: the central bank's ``issuer-epoch-key`` of ``epoch`` (docs/protocol.md 3.6)
    epoch_certificate: SignedDoc | None = None


class MemberRecord(ApiModel):
    """A member as the issuer records it (no secrets, no T0)."""

    member_id: str
    account_id: str
    status: Literal["active", "revoked"]
    epoch: int
    ek_fingerprint: str
    ak_name: B64Bytes
    daa_public_point: B64Bytes
    pcr_values: dict[str, B64Bytes]
    joined_at: int
    updated_at: int
    revoked_at: int | None = None
    revocation_reason: str | None = None
    revocation_lifted_at: int | None = None


class MemberList(ApiModel):
    members: list[MemberRecord]


class RevokeRequest(ApiModel):
    """Supervision's signed double-spend evidence bundle and the signer's certificate (PEM)."""

    evidence: SignedDoc = Field(description="supervision-signed double-spend-evidence")
    cert: str | None = Field(default=None, max_length=16384)


class LiftRequest(ApiModel):
    """The supervision department's signed ``revocation-lift`` and its certificate (PEM)."""

    lift: SignedDoc = Field(description="supervision-signed revocation-lift")
    cert: str = Field(max_length=16384)

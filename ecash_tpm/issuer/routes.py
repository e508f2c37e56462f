"""HTTP routes of the group manager and the app factory (docs/api.md, "Group manager").

Routes are plain ``def`` (they block on the database and on big-number arithmetic, so FastAPI
runs them in worker threads) and only translate between bodies and :class:`IssuerService`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, FastAPI, Query, Request

from ecash_tpm.attest.errors import (
    CredentialInputError,
    EkTrustStoreError,
    WireSizeError,
    WireTrailingDataError,
    WireTruncatedError,
    WireUnsupportedError,
    WireValueError,
)
from ecash_tpm.clients.revocation import crl_source_for
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.groupsig.errors import GroupsigEncodingError, JoinProofError, SpendProofError
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.errors import (
    AttestationError,
    ConfigError,
    EkCertificateError,
    KeyAttributesError,
    WireFormatError,
)
from ecash_tpm.issuer.domain import IssuerService, parse_opener_public
from ecash_tpm.issuer.errors import (
    AccountAlreadyMemberError,
    AccountRevokedError,
    CentralBankRootMissingError,
    EkAlreadyMemberError,
    EkDuplicateError,
    EkKindMissingError,
    EkRevokedError,
    InvalidAccountError,
    IssuerKeyError,
    JoinAuthorisationReplayedError,
    JoinExpiredError,
    JoinReplayedError,
    JoinUnknownError,
    MemberNotFoundError,
    MemberNotRevokedError,
    MembersListingDisabledError,
    MembersUnauthorizedError,
    OpenerKeyConfigError,
    RevocationEvidenceError,
    T0RegisteredError,
)
from ecash_tpm.issuer.keys import IssuerKeyStore
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.issuer.store import MIGRATIONS
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol.api.issuer import (
    IssuerInfo,
    JoinFinishRequest,
    JoinFinishResponse,
    JoinStartRequest,
    JoinStartResponse,
    LiftRequest,
    MemberList,
    MemberRecord,
    RevokeRequest,
)
from ecash_tpm.protocol.errors import (
    EvidenceInvalidError,
    NotDoubleSpendError,
    OpeningsDisagreeError,
    RegistryConflictError,
    TranscriptMalformedError,
)
from ecash_tpm.protocol.join_auth import (
    JoinAuthorisationExpiredError,
    JoinAuthorisationInvalidError,
    JoinAuthorisationMismatchError,
    JoinAuthorisationMissingError,
    RevocationLiftInvalidError,
)
from ecash_tpm.protocol.registry import MemberRegistry
from ecash_tpm.service.app import create_app
from ecash_tpm.service.auth import require_bearer
from ecash_tpm.service.openapi import (
    CERT_ERRORS,
    POINT_ERRORS,
    REMOTE_ERRORS,
    SIGNED_OBJECT_ERRORS,
    bearer,
    err,
    errors,
    family,
)
from ecash_tpm.service.tls import ClientCertificateRequiredError, ClientWrongRoleError, peer_party
from ecash_tpm.storage import Database

router = APIRouter(tags=["issuer"])

# --- what the routes can answer (read from IssuerService.start_join/finish_join/...) -----------

_WIRE = (
    WireTruncatedError,
    WireTrailingDataError,
    WireSizeError,
    WireUnsupportedError,
    WireValueError,
)
_JOIN_START_ERRORS = (
    InvalidAccountError,
    family(EkCertificateError),  # the EK certificate chain (EkTrustStore.verify)
    EkTrustStoreError,
    family(KeyAttributesError),  # AK and DAA templates, MakeCredential's EK
    CredentialInputError,
    _WIRE,
    POINT_ERRORS,
    EkRevokedError,
    EkAlreadyMemberError,
    # docs/protocol.md "Join authorisation" and the platform and account bars (issuer/bars.py)
    JoinAuthorisationMissingError,
    JoinAuthorisationInvalidError,
    JoinAuthorisationExpiredError,
    JoinAuthorisationMismatchError,
    JoinAuthorisationReplayedError,
    CERT_ERRORS,  # the bank certificate of the authorisation
    CentralBankRootMissingError,
    EkDuplicateError,
    EkKindMissingError,
    AccountAlreadyMemberError,
    AccountRevokedError,
)
_JOIN_FINISH_ERRORS = (
    JoinUnknownError,
    JoinReplayedError,
    JoinExpiredError,
    # quote, certify, PCR policy, event log and measured boot: every attestation refusal
    # except the EK chain's, which join/start already checked
    tuple(c for c in family(AttestationError) if not issubclass(c, EkCertificateError)),
    family(WireFormatError),  # marshalled TPM structures and the event log
    JoinProofError,
    GroupsigEncodingError,
    POINT_ERRORS,
    EkRevokedError,
    EkAlreadyMemberError,
    T0RegisteredError,
    AccountAlreadyMemberError,
    AccountRevokedError,
    IssuerKeyError,
    REMOTE_ERRORS,  # T0 goes to the supervision department's registry
    err(
        RegistryConflictError,
        status=502,
        message="the supervision department refused the registration (its code is kept)",
    ),
)
_REVOKE_ERRORS = (
    MemberNotFoundError,
    RevocationEvidenceError,
    CERT_ERRORS,
    SIGNED_OBJECT_ERRORS,
    EvidenceInvalidError,
    TranscriptMalformedError,
    NotDoubleSpendError,
    OpeningsDisagreeError,
    SpendProofError,
)
_MEMBERS_TOKEN = bearer(
    "membersToken", "Only with insecure_http: the issuer's members_token (held by the bank)"
)


def _service(request: Request) -> IssuerService:
    service: IssuerService = request.app.state.issuer
    return service


@router.get("/v1/issuer/info", response_model=IssuerInfo, responses=errors())
def issuer_info(request: Request) -> IssuerInfo:
    """Current epoch, issuer public commitments, PCR selection, opener public key Hop."""
    return _service(request).info()


@router.post(
    "/v1/join/start", response_model=JoinStartResponse, responses=errors(_JOIN_START_ERRORS)
)
def join_start(body: JoinStartRequest, request: Request) -> JoinStartResponse:
    """Step 1 of the join: EK chain, AK and DAA templates -> MakeCredential challenge."""
    return _service(request).start_join(body)


@router.post(
    "/v1/join/finish", response_model=JoinFinishResponse, responses=errors(_JOIN_FINISH_ERRORS)
)
def join_finish(body: JoinFinishRequest, request: Request) -> JoinFinishResponse:
    """Step 3 of the join: quote, certify, DAA proof -> membership credential."""
    return _service(request).finish_join(body)


@router.get(
    "/v1/members",
    response_model=MemberList,
    dependencies=[_MEMBERS_TOKEN],
    responses=errors(
        ClientCertificateRequiredError,
        ClientWrongRoleError,
        MembersListingDisabledError,
        MembersUnauthorizedError,
    ),
)
def list_members(
    request: Request,
    account_id: str | None = Query(default=None, max_length=128),
    status: Literal["active", "revoked"] | None = None,
) -> MemberList:
    """Members, optionally of one account (the bank refuses withdrawals to revoked ones).

    Only for the bank: the list links accounts to platforms. Over TLS the bank's client
    certificate (role ``bank``) says so; with ``insecure_http`` the ``members_token`` does.
    """
    if not request.app.state.settings.insecure_http:
        peer_party(request, role="bank")
        return MemberList(
            members=_service(request).list_members(status=status, account_id=account_id)
        )
    require_bearer(
        request.headers.get("authorization"),
        getattr(request.app.state.settings, "members_token", None),
        disabled=MembersListingDisabledError("listing members over HTTP is off: no members_token"),
        unauthorized=MembersUnauthorizedError("listing members needs the service's bearer token"),
    )
    return MemberList(members=_service(request).list_members(status=status, account_id=account_id))


@router.get(
    "/v1/members/{member_id}", response_model=MemberRecord, responses=errors(MemberNotFoundError)
)
def get_member(member_id: str, request: Request) -> MemberRecord:
    """One member record (no secrets)."""
    return _service(request).get_member(member_id)


@router.post(
    "/v1/members/{member_id}/revoke", response_model=MemberRecord, responses=errors(_REVOKE_ERRORS)
)
def revoke_member(member_id: str, body: RevokeRequest, request: Request) -> MemberRecord:
    """Revoke on the supervision department's double-spend evidence (re-verified here)."""
    return _service(request).revoke_with_evidence(member_id, body.evidence, body.cert)


@router.post(
    "/v1/members/{member_id}/lift",
    response_model=MemberRecord,
    responses=errors(
        MemberNotFoundError,
        MemberNotRevokedError,
        RevocationLiftInvalidError,
        CERT_ERRORS,
        CentralBankRootMissingError,
    ),
)
def lift_revocation(member_id: str, body: LiftRequest, request: Request) -> MemberRecord:
    """The supervision department lifts a revocation: the account and TPM may join again."""
    return _service(request).lift_revocation(member_id, body.lift, body.cert)


def load_opener_public(settings: IssuerSettings) -> Point:
    """Hop from ``opener_public`` or ``opener_public_file`` (base64url text)."""
    if settings.opener_public:
        return parse_opener_public(settings.opener_public)
    if settings.opener_public_file is not None:
        try:
            text = Path(settings.opener_public_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise OpenerKeyConfigError(f"cannot read {settings.opener_public_file}: {exc}") from exc
        return parse_opener_public(text)
    default = settings.data_dir / "opener-public.txt"
    if default.exists():
        return parse_opener_public(default.read_text(encoding="ascii"))
    raise OpenerKeyConfigError(
        "the opener public key is not configured (opener_public, opener_public_file, or "
        "data_dir/opener-public.txt)"
    )


def _http_registry(settings: IssuerSettings) -> tuple[MemberRegistry, Callable[[], None]]:
    from ecash_tpm.clients.connect import party_link
    from ecash_tpm.clients.supervision import HttpMemberRegistry, SupervisionClient

    if not settings.supervision_url:
        raise ConfigError(
            "the issuer needs supervision_url: every member's T0 must reach the opener",
            code="issuer.registry_missing",
        )
    key = PartyKey.load(settings.resolved_signing_key_file())
    cert_path = settings.resolved_certificate_file()
    try:
        cert_pem = cert_path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the issuer certificate {cert_path}: {exc}") from exc
    conn = party_link(
        settings,
        settings.supervision_url,
        role="supervision",
        name=settings.supervision_name,
        root=settings.resolved_central_bank_root(),
    )
    client = SupervisionClient(settings.supervision_url, tls=conn.tls, expect=conn.expect)
    return HttpMemberRegistry(client, key, cert_pem), client.close


def build_service(
    settings: IssuerSettings,
    db: Database,
    *,
    registry: MemberRegistry,
    clock: Callable[[], float] | None = None,
    trust: EkTrustStore | None = None,
    policy: PcrPolicy | None = None,
    opener_public: Point | None = None,
) -> IssuerService:
    """An :class:`IssuerService` from settings (pieces may be injected by tests)."""
    root = None
    if settings.central_bank_root is not None:
        try:
            root = load_certificate(Path(settings.central_bank_root).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {settings.central_bank_root}: {exc}") from exc
    # join authorisations are checked against the root, else the TLS anchor in data_dir
    auth_root = root
    anchor = settings.resolved_central_bank_root()
    if auth_root is None and anchor.exists():
        try:
            auth_root = load_certificate(anchor.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {anchor}: {exc}") from exc
    kwargs = {} if clock is None else {"clock": clock}
    root_path = Path(settings.central_bank_root) if settings.central_bank_root else anchor
    return IssuerService(
        db,
        IssuerKeyStore.open(settings.resolved_key_dir()),
        trust or EkTrustStore.from_settings(settings),
        policy or PcrPolicy.load(settings.resolved_policy_file(), tofu=settings.pcr_tofu),
        opener_public=opener_public or load_opener_public(settings),
        registry=registry,
        join_ttl_s=settings.join_ttl_s,
        central_bank_root=root,
        authorisation_root=auth_root,
        required_ek_kinds=tuple(settings.required_ek_kinds),
        crl=crl_source_for(settings, root_path) if auth_root is not None else None,
        **kwargs,
    )


def create_issuer_app(
    settings: IssuerSettings,
    *,
    registry: MemberRegistry | None = None,
    clock: Callable[[], float] | None = None,
    trust: EkTrustStore | None = None,
    policy: PcrPolicy | None = None,
    opener_public: Point | None = None,
    database: Database | None = None,
) -> FastAPI:
    """The issuer's FastAPI app. Without ``registry``, T0s go to ``settings.supervision_url``."""
    closers: list[Callable[[], None]] = []

    def startup(app: FastAPI) -> None:
        reg = registry
        if reg is None:
            reg, close = _http_registry(settings)
            closers.append(close)
        app.state.issuer = build_service(
            settings,
            app.state.db,
            registry=reg,
            clock=clock,
            trust=trust,
            policy=policy,
            opener_public=opener_public,
        )
        app.state.crl = app.state.issuer.crl  # mTLS callers (the bank) are checked against it

    def shutdown(app: FastAPI) -> None:
        while closers:
            closers.pop()()

    return create_app(
        "issuer",
        settings=settings,
        routers=[router],
        migrations=MIGRATIONS,
        database=database,
        on_startup=[startup],
        on_shutdown=[shutdown],
        description="Group manager: attested TPM join and anonymous membership credentials.",
    )

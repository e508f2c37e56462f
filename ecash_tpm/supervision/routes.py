"""HTTP routes of the supervision department and its app factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from ecash_tpm.clients.revocation import crl_source_for
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.groupsig import OpenerSecret
from ecash_tpm.crypto.groupsig.errors import SpendProofError, UnknownMemberError
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.errors import ConfigError, InputError
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol.api.supervision import (
    DoubleSpendRequest,
    DoubleSpendResponse,
    OpenerInfo,
    OpenRequest,
    OpenResponse,
    RegistrationRequest,
    RegistrationResponse,
)
from ecash_tpm.protocol.errors import (
    NotDoubleSpendError,
    OpeningsDisagreeError,
    RegistryConflictError,
    TranscriptMalformedError,
)
from ecash_tpm.service.app import create_app
from ecash_tpm.service.auth import require_bearer
from ecash_tpm.service.openapi import (
    CERT_ERRORS,
    POINT_ERRORS,
    SIGNED_OBJECT_ERRORS,
    bearer,
    errors,
)
from ecash_tpm.service.tls import ClientCertificateRequiredError, ClientWrongRoleError, peer_party
from ecash_tpm.storage import Database
from ecash_tpm.supervision.domain import Revoker, SupervisionDepartment
from ecash_tpm.supervision.errors import (
    OpenDisabledError,
    OpenUnauthorizedError,
    SupervisionConfigError,
)
from ecash_tpm.supervision.keys import load_opener_secret
from ecash_tpm.supervision.settings import SupervisionSettings
from ecash_tpm.supervision.store import MIGRATIONS

router = APIRouter(tags=["supervision"])

_OPEN_TOKEN = bearer("openToken", "The operator's open_token (opening de-anonymises a spend)")


def _peer(request: Request, role: str) -> str | None:
    """The CN of the caller's client certificate for ``role`` (mutual TLS), or ``None`` when
    the department runs plain HTTP on request (``insecure_http``): then, as before TLS, the
    signature and certificate on the submitted object are the only authentication."""
    if request.app.state.settings.insecure_http:
        return None
    return peer_party(request, role=role)


def _dept(request: Request) -> SupervisionDepartment:
    dept: SupervisionDepartment = request.app.state.supervision
    return dept


@router.get("/v1/opener", response_model=OpenerInfo, responses=errors(storage=False))
def opener_info(request: Request) -> OpenerInfo:
    """Hop, to configure the issuer with and to check openings against."""
    return OpenerInfo(opener_public=_dept(request).opener_public.encode())


@router.post(
    "/v1/registry",
    response_model=RegistrationResponse,
    responses=errors(
        ClientCertificateRequiredError,
        ClientWrongRoleError,
        SupervisionConfigError,
        InputError,
        CERT_ERRORS,
        SIGNED_OBJECT_ERRORS,
        POINT_ERRORS,
        RegistryConflictError,
    ),
)
def register(body: RegistrationRequest, request: Request) -> RegistrationResponse:
    """Issuer-signed member registration (T0 -> member); over TLS only from an issuer's
    client certificate."""
    _peer(request, "issuer")
    entry = _dept(request).register_signed(body.registration, body.cert)
    return RegistrationResponse(member_id=entry.member_id)


@router.post(
    "/v1/open",
    response_model=OpenResponse,
    dependencies=[_OPEN_TOKEN],
    responses=errors(
        OpenDisabledError, OpenUnauthorizedError, InputError, POINT_ERRORS, UnknownMemberError
    ),
)
def open_spend(body: OpenRequest, request: Request) -> OpenResponse:
    """Open a spend's (c1, c2): the member and a proof (only with the operator's token)."""
    require_bearer(
        request.headers.get("authorization"),
        request.app.state.open_token,
        disabled=OpenDisabledError("opening over HTTP is disabled: no open_token is configured"),
        unauthorized=OpenUnauthorizedError("opening needs the operator's bearer token"),
    )
    result = _dept(request).open(Point.decode(body.c1), Point.decode(body.c2), reason=body.reason)
    return OpenResponse.model_validate(result.to_dict())


@router.post(
    "/v1/double-spend",
    response_model=DoubleSpendResponse,
    responses=errors(
        ClientCertificateRequiredError,
        ClientWrongRoleError,
        InputError,
        CERT_ERRORS,
        SIGNED_OBJECT_ERRORS,
        TranscriptMalformedError,
        NotDoubleSpendError,
        SpendProofError,
        OpeningsDisagreeError,
        UnknownMemberError,
    ),
)
def double_spend(body: DoubleSpendRequest, request: Request) -> DoubleSpendResponse:
    """Bank report of two spends of one serial -> evidence bundle and revocation request;
    over TLS only from a bank's client certificate."""
    _peer(request, "bank")
    case = _dept(request).handle_double_spend(body.transcripts, body.cert)
    return DoubleSpendResponse.model_validate(case.to_dict())


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc}") from exc


def build_department(
    settings: SupervisionSettings,
    db: Database,
    *,
    revoker: Revoker | None = None,
    opener: OpenerSecret | None = None,
    signer: PartyKey | None = None,
    clock: Callable[[], float] | None = None,
) -> SupervisionDepartment:
    """A :class:`SupervisionDepartment` from settings (pieces may be injected by tests)."""
    root = None
    if settings.central_bank_root is not None:
        root = load_certificate(_read_text(Path(settings.central_bank_root), "central bank root"))
    cert_file = settings.resolved_certificate_file()
    cert_pem = _read_text(cert_file, "supervision certificate") if cert_file.exists() else None
    kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
    return SupervisionDepartment(
        db,
        opener or load_opener_secret(settings.resolved_opener_key_file()),
        signer=signer or PartyKey.load(settings.resolved_signing_key_file()),
        cert_pem=cert_pem,
        central_bank_root=root,
        revoker=revoker,
        crl=None
        if root is None
        else crl_source_for(settings, settings.resolved_central_bank_root()),
        **kwargs,
    )


def create_supervision_app(
    settings: SupervisionSettings,
    *,
    revoker: Revoker | None = None,
    opener: OpenerSecret | None = None,
    signer: PartyKey | None = None,
    clock: Callable[[], float] | None = None,
    database: Database | None = None,
) -> FastAPI:
    """The supervision department's app. Without ``revoker``, ``settings.issuer_url`` is used."""
    closers: list[Callable[[], None]] = []

    def startup(app: FastAPI) -> None:
        rev = revoker
        if rev is None and settings.issuer_url:
            from ecash_tpm.clients.connect import party_link
            from ecash_tpm.clients.issuer import IssuerClient

            conn = party_link(
                settings,
                settings.issuer_url,
                role="issuer",
                name=settings.issuer_name,
                root=settings.resolved_central_bank_root(),
            )
            client = IssuerClient(settings.issuer_url, tls=conn.tls, expect=conn.expect)
            closers.append(client.close)
            rev = client
        app.state.open_token = settings.open_token
        app.state.supervision = build_department(
            settings, app.state.db, revoker=rev, opener=opener, signer=signer, clock=clock
        )
        app.state.crl = app.state.supervision.crl  # mTLS callers too (peer_party)

    def shutdown(app: FastAPI) -> None:
        while closers:
            closers.pop()()

    return create_app(
        "supervision",
        settings=settings,
        routers=[router],
        migrations=MIGRATIONS,
        database=database,
        on_startup=[startup],
        on_shutdown=[shutdown],
        description="Supervision department: member registry, opening with proof, double spends.",
    )

"""HTTP routes of the central bank (``/v1``): root, CRL, certify, revoke, supply reports.

Public: ``GET /v1/root`` (PEM), ``GET /v1/crl`` (DER, or PEM with ``?format=pem``),
``POST /v1/supply-reports`` (authenticated by the bank's signature and certificate, not by a
session) and ``GET /v1/supply-reports/latest``. Admin: ``POST /v1/certify`` and
``POST /v1/certify-tls`` (a party's TLS certificate) and
``POST /v1/revoke`` need ``Authorization: Bearer <admin token>`` whose SHA-256 is configured
(see :mod:`ecash_tpm.centralbank.settings`).

Endpoints are plain ``def``: they block on the database and the CA's signing, so FastAPI runs
them in worker threads.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import Field, StringConstraints

from ecash_tpm.centralbank.ca import (
    DEFAULT_LEAF_DAYS,
    CaStateError,
    CentralBankCA,
    UnknownSerialError,
    parse_serial,
)
from ecash_tpm.centralbank.certify import (
    IssuerEpochConflictError,
    IssuerEpochG2Error,
    IssuerEpochNotFoundError,
    KeysetListNotFoundError,
    certify_issuer_epoch,
    certify_keyset_list,
    issuer_epoch_certificate,
    latest_keyset_list,
)
from ecash_tpm.centralbank.settings import CentralBankSettings, token_matches
from ecash_tpm.centralbank.supply import accept_supply_report
from ecash_tpm.crypto.groupsig import IssuerPublic
from ecash_tpm.crypto.signing import PublicKeyError
from ecash_tpm.errors import (
    AuthenticationError,
    EcashError,
    ForbiddenError,
    InputError,
    NotFoundError,
)
from ecash_tpm.pki import UnknownRoleError
from ecash_tpm.protocol.api.centralbank import (
    CertifyRequest,
    CertifyResponse,
    IssuerEpochAnswer,
    IssuerEpochRequest,
    KeysetListAnswer,
    KeysetListSubmission,
    RevokeRequest,
    RevokeResponse,
    StoredSupplyReport,
    SupplyReportReceipt,
    SupplyReportSubmission,
)
from ecash_tpm.protocol.errors import KeysetDescriptorError
from ecash_tpm.protocol.supply import SupplyReportConflictError, SupplyReportInvalidError
from ecash_tpm.service.app import get_settings
from ecash_tpm.service.auth import bearer_token
from ecash_tpm.service.openapi import CERT_ERRORS, SIGNED_OBJECT_ERRORS, bearer, err, errors
from ecash_tpm.storage import Row

__all__ = [
    "make_router",
]

PEM_MEDIA_TYPE = "application/x-pem-file"
CRL_MEDIA_TYPE = "application/pkix-crl"
#: Largest accepted certificate PEM in a submission (a P-256 party cert is ~700 bytes).


class AdminDisabledError(ForbiddenError):
    """No admin token hash is configured: certify/revoke are switched off."""

    code = "centralbank.admin_disabled"


class AdminTokenError(AuthenticationError):
    """Missing or wrong admin bearer token."""

    code = "auth.admin_token_invalid"


class ReportNotFoundError(NotFoundError):
    """No supply report is stored (for this bank)."""

    code = "supply_report.not_found"


def get_ca(request: Request) -> CentralBankCA:
    """FastAPI dependency: the CA the start-up hook put on ``app.state``."""
    ca: CentralBankCA = request.app.state.ca
    return ca


def require_admin(
    settings: Annotated[CentralBankSettings, Depends(get_settings)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """FastAPI dependency: a valid ``Authorization: Bearer <token>`` for admin routes."""
    expected = settings.admin_token_sha256
    if expected is None:
        raise AdminDisabledError("admin routes are disabled (no admin_token_sha256 configured)")
    token = bearer_token(authorization)
    if token is None:
        raise AdminTokenError("admin bearer token required")
    if not token_matches(token, expected):
        raise AdminTokenError("admin bearer token is not valid")


# Module-level aliases: FastAPI resolves the (postponed) annotations in this module's namespace.
CA = Annotated[CentralBankCA, Depends(get_ca)]
Settings = Annotated[CentralBankSettings, Depends(get_settings)]

#: Admin routes: the documented bearer scheme, then the real check (require_admin).
_ADMIN = [
    bearer("adminToken", "The central bank's admin token (its SHA-256 is configured)"),
    Depends(require_admin),
]
_ADMIN_ERRORS = (AdminDisabledError, AdminTokenError)
_CA_STATE = err(CaStateError, message="the CA's records are inconsistent")
_INVALID_NAME = err(InputError, "cert.invalid_name", message="invalid party name")


def _receipt(row: Row, created: bool) -> SupplyReportReceipt:
    return SupplyReportReceipt(
        report_id=int(row["id"]),
        bank_id=str(row["bank_id"]),
        as_of=int(row["as_of"]),
        received_at=int(row["received_at"]),
        digest=bytes(row["body_digest"]),
        created=created,
    )


class CertifyTlsRequest(CertifyRequest):
    """``/v1/certify`` plus the host names (DNS or IP) the party is also reached by; the
    certificate always names the party's identity ``<name>.<role>.parties.ecash-tpm.internal``,
    which is what ecash-tpm clients check."""

    hosts: list[Annotated[str, StringConstraints(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=16
    )


def _certified(ca: CentralBankCA, cert: x509.Certificate) -> CertifyResponse:
    record = ca.get(cert.serial_number)
    return CertifyResponse(
        cert=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        serial=format(cert.serial_number, "x"),
        fingerprint=record.fingerprint,
        not_before=int(record.not_before.timestamp()),
        not_after=int(record.not_after.timestamp()),
    )


def make_router() -> APIRouter:
    """The central bank's routes (a new router per app: no module-level state)."""
    router = APIRouter(prefix="/v1", tags=["centralbank"])

    @router.get(
        "/root",
        summary="The root certificate (PEM): the trust anchor of every party",
        response_class=Response,
        responses={200: {"content": {PEM_MEDIA_TYPE: {}}}, **errors(storage=False)},
    )
    def root(ca: CA) -> Response:
        return Response(ca.root_pem(), media_type=PEM_MEDIA_TYPE)

    @router.get(
        "/crl",
        summary="The current CRL (DER by default, PEM with ?format=pem)",
        response_class=Response,
        responses={
            200: {"content": {CRL_MEDIA_TYPE: {}, PEM_MEDIA_TYPE: {}}},
            **errors(_CA_STATE),
        },
    )
    def crl(
        ca: CA,
        settings: Settings,
        fmt: Annotated[Literal["der", "pem"], Query(alias="format")] = "der",
    ) -> Response:
        current = ca.published_crl(valid_for=dt.timedelta(seconds=settings.crl_valid_s))
        if fmt == "pem":
            return Response(
                current.public_bytes(serialization.Encoding.PEM), media_type=PEM_MEDIA_TYPE
            )
        return Response(current.public_bytes(serialization.Encoding.DER), media_type=CRL_MEDIA_TYPE)

    @router.post(
        "/certify",
        summary="Issue a party certificate (admin)",
        dependencies=_ADMIN,
        responses=errors(
            _ADMIN_ERRORS,
            UnknownRoleError,
            _INVALID_NAME,
            PublicKeyError,
            err(InputError, "cert.invalid_validity", message="valid_days out of range"),
            _CA_STATE,
        ),
    )
    def certify(body: CertifyRequest, ca: CA) -> CertifyResponse:
        days = DEFAULT_LEAF_DAYS if body.valid_days is None else body.valid_days
        cert: x509.Certificate = ca.certify(body.role, body.name, body.public_key, valid_days=days)
        return _certified(ca, cert)

    @router.post(
        "/certify-tls",
        summary="Issue a party's TLS certificate (admin; server and client authentication)",
        dependencies=_ADMIN,
        responses=errors(
            _ADMIN_ERRORS,
            UnknownRoleError,
            _INVALID_NAME,
            err(InputError, "pki.name_not_dns", message="the name is not a DNS label"),
            PublicKeyError,
            err(InputError, "cert.invalid_validity", message="valid_days out of range"),
            _CA_STATE,
        ),
    )
    def certify_tls(body: CertifyTlsRequest, ca: CA) -> CertifyResponse:
        days = DEFAULT_LEAF_DAYS if body.valid_days is None else body.valid_days
        cert = ca.certify_tls(
            body.role, body.name, body.public_key, hosts=tuple(body.hosts), valid_days=days
        )
        return _certified(ca, cert)

    @router.post(
        "/revoke",
        summary="Revoke a party certificate (admin; idempotent, the first reason stands)",
        dependencies=_ADMIN,
        responses=errors(
            _ADMIN_ERRORS,
            err(InputError, message="certificate serial must be hex"),
            err(InputError, "crl.invalid_reason", message="unknown revocation reason"),
            UnknownSerialError,
            _CA_STATE,
        ),
    )
    def revoke(body: RevokeRequest, ca: CA) -> RevokeResponse:
        serial = parse_serial(body.serial)
        ca.revoke(serial, body.reason)
        record = ca.get(serial)
        if record.revoked_at is None or record.revocation_reason is None:  # pragma: no cover
            raise NotFoundError("revocation was not recorded")
        return RevokeResponse(
            serial=format(serial, "x"),
            reason=record.revocation_reason,
            revoked_at=int(record.revoked_at.timestamp()),
        )

    @router.post(
        "/supply-reports",
        summary="Submit the bank's signed money-supply report",
        responses=errors(
            CERT_ERRORS,
            SIGNED_OBJECT_ERRORS,
            err(InputError, message="invalid SupplyReportBody"),
            _INVALID_NAME,
            SupplyReportInvalidError,
            err(
                SupplyReportInvalidError,
                "supply_report.from_future",
                message="supply report is dated in the future",
            ),
            SupplyReportConflictError,
        ),
    )
    def submit_supply_report(
        body: SupplyReportSubmission, ca: CA, settings: Settings
    ) -> SupplyReportReceipt:
        row, created = accept_supply_report(
            ca, body.report, body.cert, max_skew_s=settings.report_max_skew_s
        )
        return _receipt(row, created)

    @router.get(
        "/supply-reports/latest",
        summary="The newest stored supply report",
        responses=errors(ReportNotFoundError),
    )
    def latest_supply_report(
        ca: CA,
        bank_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ) -> StoredSupplyReport:
        row = ca.store.latest_supply_report(bank_id)
        if row is None:
            raise ReportNotFoundError(
                "no supply report stored", detail={} if bank_id is None else {"bank_id": bank_id}
            )
        return StoredSupplyReport(
            report_id=int(row["id"]),
            bank_id=str(row["bank_id"]),
            as_of=int(row["as_of"]),
            received_at=int(row["received_at"]),
            report=json.loads(row["report_json"]),
            cert=str(row["cert_pem"]),
        )

    _register_certified_routes(router)
    return router


def _register_certified_routes(router: APIRouter) -> None:
    """Issuer epoch keys and bank keyset lists signed with the root (issue 10, #6 and #7;
    docs/protocol.md 3.6 and 4.1)."""

    @router.post(
        "/certify-issuer-epoch",
        summary="Certify the issuer's (X, Y) of an epoch (admin; one key per epoch, ever)",
        dependencies=_ADMIN,
        responses=errors(
            _ADMIN_ERRORS,
            _INVALID_NAME,
            IssuerEpochConflictError,
            IssuerEpochG2Error,
            err(InputError),
            _CA_STATE,
        ),
    )
    def certify_issuer_epoch_route(body: IssuerEpochRequest, ca: CA) -> IssuerEpochAnswer:
        try:
            public = IssuerPublic.from_dict(
                {"X": body.X, "Y": body.Y, "X2": body.X2, "Y2": body.Y2}
            )
        except EcashError as exc:
            raise InputError(
                f"issuer key: {exc.message}", code="centralbank.bad_epoch_key"
            ) from exc
        doc = certify_issuer_epoch(ca, body.issuer, body.epoch, public)
        return IssuerEpochAnswer(certificate=doc)

    @router.get(
        "/issuer-epochs/{issuer}/{epoch}",
        summary="The certified (X, Y) of an issuer epoch",
        responses=errors(IssuerEpochNotFoundError),
    )
    def issuer_epoch(
        ca: CA, issuer: Annotated[str, Path(max_length=64)], epoch: int
    ) -> IssuerEpochAnswer:
        return IssuerEpochAnswer(certificate=issuer_epoch_certificate(ca, issuer, epoch))

    @router.post(
        "/keyset-lists",
        summary="Register the bank's signed keysets; the root-signed list of all of them",
        responses=errors(CERT_ERRORS, KeysetDescriptorError, _CA_STATE),
    )
    def submit_keyset_list(body: KeysetListSubmission, ca: CA) -> KeysetListAnswer:
        return KeysetListAnswer(keyset_list=certify_keyset_list(ca, body.cert, body.keysets))

    @router.get(
        "/keyset-lists/{bank}",
        summary="The bank's current certified keyset list (the same for everyone)",
        responses=errors(KeysetListNotFoundError),
    )
    def keyset_list(ca: CA, bank: Annotated[str, Path(max_length=64)]) -> KeysetListAnswer:
        return KeysetListAnswer(keyset_list=latest_keyset_list(ca, bank))

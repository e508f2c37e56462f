"""The TTP's HTTP API (docs/api.md, "TTP") and its app factory: a thin shell over :class:`Ttp`.

Handlers are plain ``def`` (FastAPI runs them in worker threads): the domain blocks on the
database, the bank and the merchants. Each route declares its answer model (the records'
``to_dict()``, field for field) and the errors its domain method raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request

from ecash_tpm.clients.connect import party_link
from ecash_tpm.clients.revocation import crl_source_for
from ecash_tpm.clients.ttp import HttpBankQuery, HttpMerchantLinks
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig.errors import CredentialError
from ecash_tpm.crypto.sealing import SealError
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.errors import ConfigError, InputError
from ecash_tpm.pki import cert_pem, load_certificate
from ecash_tpm.protocol.errors import (
    DisputePendingError,
    EpochKeyUnavailableError,
    MalformedCoinError,
    RequestMismatchError,
    TooManyEpochsError,
    UnknownEpochError,
)
from ecash_tpm.service.app import create_app
from ecash_tpm.service.openapi import CERT_ERRORS, SIGNED_OBJECT_ERRORS, err, errors
from ecash_tpm.storage import Database
from ecash_tpm.ttp.domain import BankQueryGateway, MerchantLink, Ttp, TtpConfig
from ecash_tpm.ttp.errors import (
    BankAnswerError,
    BankUnavailableError,
    ContractMismatchError,
    CustomerKeyMissingError,
    DisputeClosedError,
    MerchantAnswerError,
    NotPaidError,
    RegistrationConflictError,
    RegistrationError,
    UnknownDisputeError,
    UnknownProductError,
    WrongMerchantError,
)
from ecash_tpm.ttp.models import (
    AnswerBody,
    CiphertextOut,
    DisputeBody,
    DisputeKeyOut,
    DisputeListOut,
    DisputeViewOut,
    ProductListOut,
    ProductOut,
    RegistrationOut,
    SignedWithCert,
    StrikeListOut,
    TtpInfoOut,
    TtpStatsOut,
)
from ecash_tpm.ttp.settings import TtpSettings
from ecash_tpm.ttp.store import COMPONENT, MIGRATIONS, TtpStore

__all__ = ["build_router", "create_ttp_app", "load_ttp_config"]


def get_ttp(request: Request) -> Ttp:
    """FastAPI dependency: the domain object put on ``app.state`` at start-up."""
    ttp: Ttp = request.app.state.ttp
    return ttp


TtpDep = Annotated[Ttp, Depends(get_ttp)]

_REGISTER_ERRORS = (
    RegistrationError,
    err(RegistrationError, "ttp.registration_stale", message="registration is too old"),
    err(RegistrationError, "ttp.content_too_large", status=413, message="content too large"),
    CERT_ERRORS,
    SIGNED_OBJECT_ERRORS,
    RegistrationConflictError,
    SealError,
)
_OPEN_DISPUTE_ERRORS = (
    err(InputError, message="request must be a signed payment request"),
    UnknownProductError,
    WrongMerchantError,
    ContractMismatchError,
    CustomerKeyMissingError,
    MalformedCoinError,
    RequestMismatchError,
    NotPaidError,
    CredentialError,  # docs/protocol.md 7.4: a coin's credential fails the public check
    UnknownEpochError,  # 7.4: fail closed on an uncertified epoch ...
    EpochKeyUnavailableError,  # ... and on a key that cannot be had now (503)
    TooManyEpochsError,  # 7.4: at most two epochs per dispute's coins
    BankAnswerError,
    BankUnavailableError,
)


def build_router() -> APIRouter:
    """The TTP's routes (state comes from ``app.state.ttp``)."""
    router = APIRouter(prefix="/v1", tags=["ttp"])

    @router.get(
        "/ttp",
        summary="TTP id, certificate, dispute window",
        response_model=TtpInfoOut,
        responses=errors(storage=False),
    )
    def info(ttp: TtpDep) -> dict[str, Any]:
        return ttp.info().to_dict()

    @router.get(
        "/ttp/stats",
        summary="What the TTP was asked (counters)",
        response_model=TtpStatsOut,
        responses=errors(),
    )
    def stats(ttp: TtpDep) -> dict[str, Any]:
        return ttp.stats().to_dict()

    @router.post(
        "/products",
        summary="Register a product (merchant-signed): encrypt + escrow",
        response_model=RegistrationOut,
        responses=errors(_REGISTER_ERRORS),
    )
    def register(body: SignedWithCert, ttp: TtpDep) -> dict[str, Any]:
        return ttp.register_product(body.model_dump(exclude={"cert"}), body.cert).to_dict()

    @router.get(
        "/products",
        summary="TTP-signed product descriptors",
        response_model=ProductListOut,
        responses=errors(),
    )
    def products(
        ttp: TtpDep, merchant_id: Annotated[str | None, Query(max_length=64)] = None
    ) -> dict[str, Any]:
        return ttp.products(merchant_id).to_dict()

    @router.get(
        "/products/{product_id}",
        summary="One product descriptor",
        response_model=ProductOut,
        responses=errors(UnknownProductError),
    )
    def product(product_id: str, ttp: TtpDep) -> dict[str, Any]:
        return ttp.product(product_id).to_dict()

    @router.get(
        "/products/{product_id}/ciphertext",
        summary="The public ciphertext",
        response_model=CiphertextOut,
        responses=errors(UnknownProductError),
    )
    def ciphertext(product_id: str, ttp: TtpDep) -> dict[str, Any]:
        return {"product_id": product_id, "ciphertext": b64u_encode(ttp.ciphertext(product_id))}

    @router.post(
        "/disputes",
        summary="Customer: paid but no (good) key -> open a dispute",
        response_model=DisputeViewOut,
        responses=errors(_OPEN_DISPUTE_ERRORS),
    )
    def open_dispute(body: DisputeBody, ttp: TtpDep) -> dict[str, Any]:
        return ttp.open_dispute(body.request, body.cert, body.spends).to_dict()

    @router.get(
        "/disputes",
        summary="Dispute views (merchants poll their pending ones)",
        response_model=DisputeListOut,
        responses=errors(),
    )
    def disputes(
        ttp: TtpDep,
        merchant_id: Annotated[str | None, Query(max_length=64)] = None,
        state: Literal["pending", "resolved"] | None = None,
    ) -> dict[str, Any]:
        views = ttp.disputes(merchant_id=merchant_id, state=state)
        return {"disputes": [v.to_dict() for v in views]}

    @router.get(
        "/disputes/{dispute_id}",
        summary="One dispute (resolved once overdue)",
        response_model=DisputeViewOut,
        responses=errors(UnknownDisputeError),
    )
    def dispute(dispute_id: str, ttp: TtpDep) -> dict[str, Any]:
        return ttp.dispute(dispute_id).to_dict()

    @router.get(
        "/disputes/{dispute_id}/key",
        summary="The sealed key; 409 while pending",
        response_model=DisputeKeyOut,
        responses=errors(
            UnknownDisputeError,
            err(DisputePendingError, retry_after=True, detail={"retry_after": 3600}),
        ),
    )
    def dispute_key(dispute_id: str, ttp: TtpDep) -> dict[str, Any]:
        return ttp.dispute_key(dispute_id).to_dict()

    @router.post(
        "/disputes/{dispute_id}/answer",
        summary="Merchant: the key for a dispute",
        response_model=DisputeViewOut,
        responses=errors(UnknownDisputeError, DisputeClosedError, MerchantAnswerError),
    )
    def answer(dispute_id: str, body: AnswerBody, ttp: TtpDep) -> dict[str, Any]:
        return ttp.answer_dispute(dispute_id, body.answer, body.cert).to_dict()

    @router.get(
        "/strikes",
        summary="Strikes recorded against merchants",
        response_model=StrikeListOut,
        responses=errors(),
    )
    def strikes(
        ttp: TtpDep, merchant_id: Annotated[str | None, Query(max_length=64)] = None
    ) -> dict[str, Any]:
        return {"strikes": [s.to_dict() for s in ttp.strikes(merchant_id)]}

    return router


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the TTP {what} ({path}); run `ecash-tpm ttp init`",
            code="ttp.not_initialized",
            detail={"path": str(path)},
        ) from exc


def load_ttp_config(settings: TtpSettings) -> TtpConfig:
    """Key, certificate and root from the files ``ttp init`` wrote, plus the policy."""
    return TtpConfig(
        name=settings.name,
        key=PartyKey.from_pem(_read(settings.resolved_key_file(), "key")),
        cert_pem=cert_pem(_read(settings.resolved_cert_file(), "certificate")),
        root=load_certificate(_read(settings.resolved_root_cert(), "central bank root")),
        dispute_window_s=settings.dispute_window_s,
        registration_window_s=settings.registration_window_s,
        max_content_bytes=settings.max_content_bytes,
        issuer_name=settings.issuer_name,
        crl=crl_source_for(settings, settings.resolved_root_cert()),
    )


def create_ttp_app(
    settings: TtpSettings,
    *,
    config: TtpConfig | None = None,
    bank: BankQueryGateway | None = None,
    merchants: Callable[[str, str], MerchantLink] | None = None,
    clock: Callable[[], int] | None = None,
    transport: httpx.BaseTransport | None = None,
    database: Database | None = None,
) -> FastAPI:
    """The TTP app; ``config``/``bank``/``merchants``/``clock`` override the defaults (files in
    ``data_dir``, HTTP to ``settings.bank_url`` and to each product's merchant URL)."""
    tick: Callable[[], int] = clock or (lambda: int(time.time()))
    closers: list[Callable[[], None]] = []

    def start(app: FastAPI) -> None:
        cfg = config or load_ttp_config(settings)
        gateway: BankQueryGateway
        if bank is None:
            conn = party_link(
                settings,
                settings.bank_url,
                role="bank",
                name=settings.bank_name,
                root=settings.resolved_root_cert(),
                transport=transport,
            )
            http_bank = HttpBankQuery(
                settings.bank_url,
                timeout=settings.remote_timeout_s,
                transport=transport,
                tls=conn.tls,
                expect=conn.expect,
            )
            closers.append(http_bank.close)
            gateway = http_bank
        else:
            gateway = bank
        links: Callable[[str, str], MerchantLink]
        if merchants is None:
            http_links = HttpMerchantLinks(
                timeout=settings.remote_timeout_s,
                transport=transport,
                connect=lambda url, merchant_id: party_link(
                    settings,
                    url,
                    role="merchant",
                    name=merchant_id,
                    root=settings.resolved_root_cert(),
                    transport=transport,
                ),
            )
            closers.append(http_links.close)
            links = http_links
        else:
            links = merchants
        store = TtpStore(app.state.db, tick)
        app.state.ttp = Ttp(cfg, store, gateway, links, clock=tick)
        app.state.crl = cfg.crl  # mTLS callers are checked against it too (peer_party)

    def stop(app: FastAPI) -> None:
        while closers:
            closers.pop()()

    return create_app(
        COMPONENT,
        settings=settings,
        routers=[build_router()],
        migrations=MIGRATIONS,
        database=database,
        on_startup=[start],
        on_shutdown=[stop],
        description="ecash-tpm TTP: product key escrow and fair-exchange dispute resolution",
    )

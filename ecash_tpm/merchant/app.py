"""Build the merchant's FastAPI app from its settings (keys and certificates from data_dir).

Dependencies can be injected (bank gateway, Hop, clock, the catalogue's key release) so
end-to-end tests and the demo can run a merchant in-process against real HTTP parties or fakes;
by default the bank is reached over HTTP at ``settings.bank_url`` and Hop is taken from
``settings.opener_public`` or the issuer's ``GET /v1/issuer/info``.

While the app runs, a :class:`~ecash_tpm.merchant.retry.DepositRetrier` re-sends deposits
whose bank answer was lost: at start-up and every ``settings.deposit_retry_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

from ecash_tpm.clients.bank import BankClient
from ecash_tpm.clients.connect import Link, party_link
from ecash_tpm.clients.merchant import fetch_opener_public
from ecash_tpm.clients.revocation import crl_source_for
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.errors import ConfigError, EcashError
from ecash_tpm.merchant.catalogue import KeyRelease, open_catalogue
from ecash_tpm.merchant.domain import BankGateway, Merchant, MerchantConfig
from ecash_tpm.merchant.refunds.desk import RefundDesk
from ecash_tpm.merchant.refunds.routes import refund_router
from ecash_tpm.merchant.refunds.store import RefundStore
from ecash_tpm.merchant.retry import DepositRetrier
from ecash_tpm.merchant.routes import router
from ecash_tpm.merchant.settings import MerchantSettings
from ecash_tpm.merchant.store import MIGRATIONS, MerchantStore
from ecash_tpm.pki import cert_pem, load_certificate
from ecash_tpm.service.app import create_app

__all__ = ["create_merchant_app", "load_merchant_config", "resolve_hop"]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the merchant {what} ({path}); run `ecash-tpm merchant init`",
            code="merchant.not_initialized",
            detail={"path": str(path)},
        ) from exc


def load_merchant_config(settings: MerchantSettings) -> MerchantConfig:
    """Key, certificate and root from the files ``merchant init`` wrote."""
    key = PartyKey.from_pem(_read(settings.resolved_key_file(), "key"))
    cert = cert_pem(_read(settings.resolved_cert_file(), "certificate"))
    root = load_certificate(_read(settings.resolved_root_cert(), "central bank root"))
    return MerchantConfig(
        name=settings.name,
        key=key,
        cert_pem=cert,
        root=root,
        currencies=tuple(settings.currencies),
        request_ttl_s=settings.request_ttl_s,
        reserve=settings.reserve,
        bank_name=settings.bank_name,
        deposit_retry_after_s=settings.deposit_retry_after_s,
        refund_period_s=settings.refund_period_s,
        issuer_name=settings.issuer_name,
        max_payment_epochs=settings.max_payment_epochs,
        crl=crl_source_for(settings, settings.resolved_root_cert()),
    )


def bank_link(settings: MerchantSettings, transport: httpx.BaseTransport | None = None) -> Link:
    """TLS to the bank (role ``bank``, ``bank_name`` or ``bank``) with the merchant's client
    certificate: the bank takes deposits only from the merchant the certificate names."""
    return party_link(
        settings,
        settings.bank_url,
        role="bank",
        name=settings.bank_name or "bank",
        root=settings.resolved_root_cert(),
        transport=transport,
    )


def resolve_hop(settings: MerchantSettings, transport: httpx.BaseTransport | None) -> Point:
    """The opener key Hop: ``settings.opener_public``, else asked from ``issuer_url``."""
    if settings.opener_public:
        raw = b64u_decode(settings.opener_public)
    elif settings.issuer_url:
        conn = party_link(
            settings,
            settings.issuer_url,
            role="issuer",
            name=settings.issuer_name,
            root=settings.resolved_root_cert(),
            transport=transport,
        )
        raw = fetch_opener_public(
            settings.issuer_url, transport=transport, tls=conn.tls, expect=conn.expect
        )
    else:
        raise ConfigError("set merchant.opener_public or merchant.issuer_url to learn Hop")
    try:
        return Point.decode(raw)
    except EcashError as exc:
        raise ConfigError(f"opener public key is not a valid point: {exc.message}") from exc


def create_merchant_app(
    settings: MerchantSettings,
    *,
    bank: BankGateway | None = None,
    hop: Point | None = None,
    clock: Callable[[], int] | None = None,
    transport: httpx.BaseTransport | None = None,
    key_release: KeyRelease | None = None,
) -> FastAPI:
    """The merchant app; ``bank``/``hop``/``clock``/``transport`` override the defaults and
    ``key_release`` the catalogue's (honest) choice of which product key to hand out."""
    tick: Callable[[], int] = clock or (lambda: int(time.time()))
    owned: list[BankClient] = []
    closers: list[Callable[[], None]] = []
    retriers: list[DepositRetrier] = []

    def start(app: FastAPI) -> None:
        config = load_merchant_config(settings)
        gateway: BankGateway
        if bank is None:
            conn = bank_link(settings, transport)
            http_bank = BankClient(
                settings.bank_url,
                timeout=settings.bank_timeout_s,
                transport=transport,
                tls=conn.tls,
                expect=conn.expect,
            )
            owned.append(http_bank)
            gateway = http_bank
        else:
            gateway = bank
        opener = hop if hop is not None else resolve_hop(settings, transport)
        opener = opener.fixed_base()  # Hop is in every spend proof: precomputed table
        store = MerchantStore(app.state.db, tick)
        catalogue, close_ttp = open_catalogue(  # fair exchange (issue 6)
            config,
            app.state.db,
            store,
            ttp_url=settings.ttp_url,
            clock=tick,
            key_release=key_release,
            timeout=settings.bank_timeout_s,
            transport=transport,
            ttp_link=None
            if settings.ttp_url is None
            else party_link(
                settings,
                settings.ttp_url,
                role="ttp",
                name=settings.ttp_name,
                root=settings.resolved_root_cert(),
                transport=transport,
            ),
        )
        closers.append(close_ttp)
        merchant = Merchant(config, store, gateway, opener, clock=tick, catalogue=catalogue)
        app.state.merchant = merchant
        app.state.refunds = RefundDesk(merchant, RefundStore(app.state.db, tick))  # issue 12
        app.state.crl = config.crl  # mTLS callers (the TTP) are checked against it too
        retrier = DepositRetrier(merchant.retry_deposits, settings.deposit_retry_s)
        retriers.append(retrier)
        retrier.start()

    def stop(app: FastAPI) -> None:
        while retriers:  # before the bank client closes under a pass in progress
            retriers.pop().stop(timeout=settings.bank_timeout_s + 5.0)
        for client in owned:
            client.close()
        owned.clear()
        while closers:
            closers.pop()()

    return create_app(
        "merchant",
        settings=settings,
        routers=[router, refund_router],
        migrations=MIGRATIONS,
        on_startup=[start],
        on_shutdown=[stop],
        description="ecash-tpm merchant: signed payment requests, payment check and deposit",
    )

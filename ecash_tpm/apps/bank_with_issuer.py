"""``ecash-tpm bank serve --with-issuer``: the bank and the group manager it operates, one process.

DESIGN §1 has the bank operate the group manager. Serving both from one process gives an
operator one service to run (the demo does) and lets the bank ask the issuer about membership
and read its epoch secrets without a network hop. Each keeps its own settings (``[bank]`` and
``[issuer]`` of the same TOML), database and keys: the two apps are built by their usual
factories, the issuer's routes are added to the bank's app and its lifespan runs inside the
bank's, so ``/healthz`` and errors behave as for the bank. Separate processes stay possible
(docker/ runs them so; the bank then reaches the issuer over HTTP, see :mod:`.wiring`).

Imports of the issuer are lazy, like in :mod:`.wiring`: the bank package depends on no party.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.errors import EcashError

if TYPE_CHECKING:
    from ecash_tpm.issuer.settings import IssuerSettings
    from ecash_tpm.storage import Database

__all__ = ["InProcessMembership", "IssuerNotRunningError", "create_bank_issuer_app", "serve"]


class IssuerNotRunningError(EcashError):
    """A withdrawal asked about membership before the in-process issuer had started."""

    code = "bank.issuer_unavailable"
    http_status = 503


class InProcessMembership:
    """The bank's ``MembershipCheck`` answered by the issuer service of the same process."""

    def __init__(self, issuer: Callable[[], Any]) -> None:
        self._issuer = issuer

    def is_active_member(self, account_id: str) -> bool:
        service = self._issuer()
        if service is None:
            raise IssuerNotRunningError("the group manager is not running yet")
        return bool(service.account_may_withdraw(account_id))


def create_bank_issuer_app(
    bank_settings: BankSettings, issuer_settings: IssuerSettings, db: Database
) -> FastAPI:
    """The bank's app on ``db`` (owned by the caller) with the issuer's routes and lifespan."""
    from ecash_tpm.apps.bank_wiring import HttpDoubleSpendReporter, double_spend_reporter
    from ecash_tpm.bank.domain import BankDomain
    from ecash_tpm.bank.routes import create_bank_app
    from ecash_tpm.issuer.keys import IssuerKeyStore
    from ecash_tpm.issuer.routes import create_issuer_app
    from ecash_tpm.issuer.routes import router as issuer_router

    issuer_app = create_issuer_app(issuer_settings)
    cert_pem = bank_settings.path("cert_file").read_text("ascii")
    reporter = double_spend_reporter(bank_settings, cert_pem)
    secrets_dir = bank_settings.issuer_secrets_dir or issuer_settings.resolved_key_dir()
    domain = BankDomain.from_settings(
        bank_settings,
        db,
        issuer_secrets=IssuerKeyStore.open(secrets_dir),
        membership=InProcessMembership(lambda: getattr(issuer_app.state, "issuer", None)),
        reporter=reporter,
    )
    app = create_bank_app(domain, bank_settings)
    app.include_router(issuer_router)
    bank_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(parent: Any) -> AsyncIterator[None]:
        async with issuer_app.router.lifespan_context(issuer_app):
            app.state.issuer = issuer_app.state.issuer
            try:
                async with bank_lifespan(parent):
                    yield
            finally:
                if isinstance(reporter, HttpDoubleSpendReporter):
                    reporter.close()

    app.router.lifespan_context = lifespan
    return app


def serve(bank_settings: BankSettings, issuer_settings: IssuerSettings) -> None:
    """Run the bank with the issuer until SIGINT/SIGTERM (blocking).

    The port is bound, the bank's database (made by ``bank init``) opened and both start-ups
    run before the URL is announced; a failed start removes an issuer database it created.
    """
    from ecash_tpm.bank.store import MIGRATIONS
    from ecash_tpm.errors import ConfigError
    from ecash_tpm.service.database import open_party_database
    from ecash_tpm.service.server import serve as serve_app

    if not bank_settings.opener_public:
        raise ConfigError(
            "opener_public is not configured: the bank cannot check spend proofs without Hop",
            detail={"setting": "opener_public"},
        )

    @contextmanager
    def app() -> Iterator[FastAPI]:
        db = open_party_database(
            bank_settings, MIGRATIONS, mode="existing", hint="run `ecash-tpm bank init` first"
        )
        try:
            yield create_bank_issuer_app(bank_settings, issuer_settings, db)
        finally:
            db.close()

    serve_app(
        app,
        bank_settings.host,
        bank_settings.port,
        tls=bank_settings.tls_files(bank_settings.path("central_bank_root")),
        healthz_port=bank_settings.healthz_port,
        log_level=bank_settings.log_level,
        label="bank + group manager",
        databases=[bank_settings.database_url, issuer_settings.database_url],
    )

"""The central bank as a service: the app factory and the blocking ``serve`` for the CLI.

The app uses the shared framework (:func:`ecash_tpm.service.create_app`): it opens
``settings.database_url``, applies the ``centralbank`` migrations, then the start-up hook opens
the CA in ``settings.data_dir`` on that database and keeps it on ``app.state.ca``. Nothing is
global, so tests and the demo can run several central banks in one process.
"""

from __future__ import annotations

from fastapi import FastAPI

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.routes import make_router
from ecash_tpm.centralbank.settings import CentralBankSettings
from ecash_tpm.centralbank.store import COMPONENT, MIGRATIONS
from ecash_tpm.service.app import create_app
from ecash_tpm.service.server import serve
from ecash_tpm.storage import Database

__all__ = ["create_centralbank_app", "serve_centralbank"]


def create_centralbank_app(
    settings: CentralBankSettings, *, database: Database | None = None
) -> FastAPI:
    """The central bank's FastAPI app; ``database`` (optional) stays owned by the caller."""

    def open_ca(app: FastAPI) -> None:
        db: Database = app.state.db
        if settings.init_if_missing:
            ca = CentralBankCA.open(settings.data_dir, database=db, name=settings.root_name)
        else:
            ca = CentralBankCA.load(settings.data_dir, database=db)
        app.state.ca = ca

    def close_ca(app: FastAPI) -> None:
        ca: CentralBankCA | None = getattr(app.state, "ca", None)
        if ca is not None:
            ca.close()
            app.state.ca = None

    return create_app(
        COMPONENT,
        settings=settings,
        routers=[make_router()],
        migrations=list(MIGRATIONS),
        database=database,
        on_startup=[open_ca],
        on_shutdown=[close_ca],
        description="Root CA of ecash-tpm: party certificates, CRL, money-supply reports.",
    )


def serve_centralbank(settings: CentralBankSettings) -> None:
    """Run the central bank until SIGINT/SIGTERM (blocking), over TLS with its own certificate
    (``centralbank init`` / ``cert renew``) unless ``insecure_http``."""
    serve(
        create_centralbank_app(settings),
        settings.host,
        settings.port,
        log_level=settings.log_level,
        tls=settings.tls_files(settings.data_dir / "root-cert.pem"),
        healthz_port=settings.healthz_port,
    )

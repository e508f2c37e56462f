"""Issue 13 item 6: honest health and bounded waits.

``/healthz`` opens a write transaction and tries a harmless write (rolled back): it answers 503
``storage.busy`` (with Retry-After) while another writer holds the lock past the bound, and 503
``storage.database_read_only`` when the database does not take writes; a write request on such
a database is a 503 with the same code, not a 500.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient

from ecash_tpm.service.app import create_app, get_db
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.storage import Database, DatabaseReadOnlyError, sqlite_url

MIGRATIONS = [(1, "notes", "CREATE TABLE note (id {pk}, text TEXT NOT NULL)")]


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/notes")
    def add(request: Request) -> dict[str, Any]:
        with get_db(request).transaction() as tx:
            tx.execute("INSERT INTO note (text) VALUES (:t)", {"t": "x"})
        return {"ok": True}

    return router


@contextmanager
def _client(tmp: Path, db: Database, *, migrate: bool = True) -> Iterator[TestClient]:
    if migrate:
        db.migrate(MIGRATIONS, component="notes")
    settings = ServiceSettings(data_dir=tmp)
    app = create_app("notes", settings=settings, routers=[_router()], database=db)
    with TestClient(app) as client:
        yield client


def test_healthz_says_writes_work(tmp_path: Path) -> None:
    with Database.open(sqlite_url(tmp_path / "n.db")) as db, _client(tmp_path, db) as client:
        r = client.get("/healthz")
        assert r.status_code == 200
        assert r.json()["writes"] == "ok"


def test_held_sqlite_write_lock_makes_healthz_and_writes_503(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with Database.open(sqlite_url(path), lock_timeout_s=0.3) as db, _client(tmp_path, db) as client:
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            for r in (client.get("/healthz"), client.post("/notes")):
                assert r.status_code == 503
                assert r.json()["code"] == "storage.busy"
                assert r.headers["Retry-After"] == "1"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.get("/healthz").status_code == 200


def test_unwritable_sqlite_database_is_503_not_500(tmp_path: Path) -> None:
    """One pooled connection, switched to query-only behind the pool's back: what a read-only
    file or mount looks like to SQLite (SQLITE_READONLY on the first write)."""
    with Database.open(sqlite_url(tmp_path / "n.db"), pool_size=1) as db:
        db.migrate(MIGRATIONS, component="notes")
        with db._pool.connection() as handle:
            handle.conn.execute("PRAGMA query_only = ON")
        with pytest.raises(DatabaseReadOnlyError) as err:
            db.check_writable()
        assert err.value.code == "storage.database_read_only"
        assert err.value.http_status == 503
        with pytest.raises(DatabaseReadOnlyError), db.transaction() as tx:
            tx.execute("INSERT INTO note (text) VALUES ('x')")


def test_read_only_postgresql_makes_healthz_and_writes_503(pg_url: str, tmp_path: Path) -> None:
    import psycopg
    from psycopg import sql

    name = pg_url.rsplit("/", 1)[1]
    with Database.open(pg_url) as setup:
        setup.migrate(MIGRATIONS, component="notes")
    admin_url = pg_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(name)
            )
        )
    with Database.open(pg_url) as db, _client(tmp_path, db, migrate=False) as client:
        for r in (client.get("/healthz"), client.post("/notes")):
            assert r.status_code == 503
            assert r.json()["code"] == "storage.database_read_only"
            assert "Retry-After" in r.headers

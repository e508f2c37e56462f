"""Tests of the data layer against real databases: SQLite files in tmp_path and, when the
binaries exist, a throw-away PostgreSQL server (initdb in a temp dir, 127.0.0.1, free port,
stopped by pid at the end). Every test that takes the ``db`` fixture runs on both backends.

Environment knobs: ``ECASH_TPM_TEST_PG=0`` skips PostgreSQL; ``ECASH_TPM_TEST_PG_URL`` uses an
existing server (a scratch database is created per test).
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

from ecash_tpm.errors import ConfigError, ConflictError, StorageError
from ecash_tpm.storage import (
    ConstraintViolationError,
    Database,
    Migration,
    MigrationError,
    QueryError,
    ReadOnlyViolationError,
    SchemaTooNewError,
    StorageBusyError,
    TransactionAbortedError,
    UniqueViolationError,
    migrations_from_dir,
    migrations_from_package,
    normalize_migrations,
    sqlite_url,
)
from ecash_tpm.storage.sql import split_sqlite_script, substitute_types, to_pyformat

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "accounts",
        """
        CREATE TABLE account (
            id {pk},
            name TEXT NOT NULL UNIQUE,
            balance BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0)
        );
        -- a comment; with a semicolon
        CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
        INSERT INTO counter (id, n) VALUES (1, 0);
        """,
    ),
    (
        2,
        "spent",
        """
        CREATE TABLE spent (
            sigma {blob} PRIMARY KEY,
            account_id BIGINT NOT NULL REFERENCES account (id),
            note TEXT
        );
        CREATE UNIQUE INDEX spent_note ON spent (note);
        """,
    ),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "test.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.open(db_url)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def mdb(db: Database) -> Database:
    """A database with MIGRATIONS applied."""
    db.migrate(MIGRATIONS, component="bank")
    return db


def _add_account(db: Database, name: str, balance: int = 0) -> int:
    with db.transaction() as tx:
        return tx.insert_returning_id(
            "INSERT INTO account (name, balance) VALUES (:name, :balance)",
            {"name": name, "balance": balance},
        )


# --- migrations -----------------------------------------------------------------------------


def test_migrations_apply_once_and_are_idempotent(db: Database) -> None:
    assert db.schema_version("bank") == 0
    assert db.migrate(MIGRATIONS, component="bank") == [1, 2]
    assert db.migrate(MIGRATIONS, component="bank") == []
    assert db.schema_version("bank") == 2
    with db.read() as tx:
        rows = tx.fetchall(
            "SELECT component, version, name, applied_at FROM schema_migrations ORDER BY version"
        )
        assert tx.fetchval("SELECT n FROM counter WHERE id = 1") == 0  # inserted exactly once
    assert [(r["component"], r["version"], r["name"]) for r in rows] == [
        ("bank", 1, "accounts"),
        ("bank", 2, "spent"),
    ]
    assert all(abs(int(r["applied_at"]) - time.time()) < 600 for r in rows)


def test_migrations_incremental_and_per_component(db: Database) -> None:
    assert db.migrate(MIGRATIONS[:1], component="bank") == [1]
    assert db.migrate(MIGRATIONS, component="bank") == [2]
    other = [(1, "things", "CREATE TABLE thing (id {pk}, label TEXT)")]
    assert db.migrate(other, component="merchant") == [1]
    assert db.schema_version("bank") == 2
    assert db.schema_version("merchant") == 1


def test_newer_database_is_refused(db: Database) -> None:
    db.migrate(MIGRATIONS, component="bank")
    with pytest.raises(SchemaTooNewError) as info:
        db.migrate(MIGRATIONS[:1], component="bank")
    err = info.value
    assert err.code == "storage.schema_too_new"
    assert err.detail == {"component": "bank", "db_version": 2, "code_version": 1}
    assert isinstance(err, MigrationError)


def test_changed_history_is_refused(db: Database) -> None:
    db.migrate(MIGRATIONS, component="bank")
    renamed = [MIGRATIONS[0], (2, "renamed", MIGRATIONS[1][2])]
    with pytest.raises(MigrationError) as info:
        db.migrate(renamed, component="bank")
    assert info.value.code == "storage.migration_mismatch"
    assert info.value.detail["version"] == 2


def test_failing_migration_leaves_nothing_half_applied(db: Database) -> None:
    broken = [
        *MIGRATIONS[:1],
        (2, "broken", "CREATE TABLE half (id BIGINT); CREATE TABLE oops (id NOSUCHSYNTAX ,,);"),
    ]
    with pytest.raises(MigrationError) as info:
        db.migrate(broken, component="bank")
    assert info.value.code == "storage.migration_failed"
    assert info.value.detail["version"] == 2
    assert db.schema_version("bank") == 1
    with pytest.raises(QueryError), db.read() as tx:
        tx.fetchall("SELECT * FROM half")
    # the fixed migration applies afterwards
    assert db.migrate(MIGRATIONS, component="bank") == [2]


def test_concurrent_migrators_apply_each_version_once(db_url: str) -> None:
    databases = [Database.open(db_url, pool_size=1) for _ in range(4)]
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(databases))

    def run(d: Database) -> None:
        try:
            barrier.wait()
            results.append(d.migrate(MIGRATIONS, component="bank"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert sorted(v for r in results for v in r) == [1, 2]
        with databases[0].read() as tx:
            assert tx.fetchval("SELECT COUNT(*) AS c FROM schema_migrations") == 2
    finally:
        for d in databases:
            d.close()


def test_migration_list_validation() -> None:
    with pytest.raises(MigrationError):
        normalize_migrations([(1, "a", "SELECT 1"), (3, "c", "SELECT 1")])  # gap
    with pytest.raises(MigrationError):
        normalize_migrations([(1, "a", "SELECT 1"), (1, "b", "SELECT 1")])  # duplicate
    with pytest.raises(MigrationError):
        normalize_migrations([(1, "Bad Name", "SELECT 1")])
    with pytest.raises(MigrationError):
        normalize_migrations([(0, "zero", "SELECT 1")])
    with pytest.raises(MigrationError):
        normalize_migrations([(1, "empty", "  ")])
    ordered = normalize_migrations([(2, "b", "SELECT 2"), Migration(1, "a", "SELECT 1")])
    assert [m.version for m in ordered] == [1, 2]


def test_migrations_from_dir(tmp_path: Path, db: Database) -> None:
    mdir = tmp_path / "migrations"
    mdir.mkdir()
    (mdir / "0001_accounts.sql").write_text(MIGRATIONS[0][2])
    (mdir / "0002_spent.sql").write_text(MIGRATIONS[1][2])
    (mdir / "README.txt").write_text("ignored: not .sql")
    loaded = migrations_from_dir(mdir)
    assert [(m.version, m.name) for m in loaded] == [(1, "accounts"), (2, "spent")]
    assert db.migrate(loaded, component="bank") == [1, 2]
    (mdir / "3_bad.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNNN_name"):
        migrations_from_dir(mdir)


def test_migrations_from_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: Database
) -> None:
    pkg = tmp_path / "fakeparty" / "sql"
    pkg.mkdir(parents=True)
    (tmp_path / "fakeparty" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "0001_accounts.sql").write_text(MIGRATIONS[0][2])
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = migrations_from_package("fakeparty.sql")
    assert [(m.version, m.name) for m in loaded] == [(1, "accounts")]
    assert db.migrate(loaded, component="fakeparty") == [1]
    with pytest.raises(MigrationError):
        migrations_from_package("no_such_package_xyz")


def test_bad_component_name(db: Database) -> None:
    with pytest.raises(MigrationError):
        db.migrate(MIGRATIONS, component="Bank; DROP")


# --- transactions -----------------------------------------------------------------------------


def test_commit_and_rollback_on_exception(mdb: Database) -> None:
    first = _add_account(mdb, "alice", 10)
    with pytest.raises(RuntimeError), mdb.transaction() as tx:
        tx.execute("UPDATE account SET balance = balance - 5 WHERE id = :id", {"id": first})
        tx.execute("INSERT INTO account (name) VALUES (:n)", {"n": "bob"})
        raise RuntimeError("boom after two writes")
    with mdb.read() as tx:
        rows = tx.fetchall("SELECT name, balance FROM account ORDER BY id")
    assert rows == [{"name": "alice", "balance": 10}]


def test_unique_violation_is_typed(mdb: Database) -> None:
    account = _add_account(mdb, "alice")
    with mdb.transaction() as tx:
        tx.execute(
            "INSERT INTO spent (sigma, account_id) VALUES (:s, :a)",
            {"s": b"\x01" * 32, "a": account},
        )
    with pytest.raises(UniqueViolationError) as info, mdb.transaction() as tx:
        tx.execute("INSERT INTO account (name) VALUES (:n)", {"n": "carol"})
        tx.execute(
            "INSERT INTO spent (sigma, account_id) VALUES (:s, :a)",
            {"s": b"\x01" * 32, "a": account},
        )
    err = info.value
    assert isinstance(err, ConflictError)
    assert err.code == "storage.unique_violation"
    assert err.http_status == 409
    assert err.detail["table"] == "spent"
    assert err.detail["columns"] == ["sigma"]
    assert err.detail["backend"] == mdb.backend
    assert "\x01" not in str(err.to_dict())  # no row values in the error
    with mdb.read() as tx:  # the whole transaction was rolled back
        assert tx.fetchval("SELECT COUNT(*) AS c FROM account WHERE name = 'carol'") == 0


def test_unique_index_violation_is_typed(mdb: Database) -> None:
    account = _add_account(mdb, "alice")
    params = {"a": account, "note": "same"}
    with mdb.transaction() as tx:
        tx.execute("INSERT INTO spent (sigma, account_id, note) VALUES ('x', :a, :note)", params)
    with pytest.raises(UniqueViolationError), mdb.transaction() as tx:
        tx.execute("INSERT INTO spent (sigma, account_id, note) VALUES ('y', :a, :note)", params)


def test_savepoint_lets_the_transaction_continue(mdb: Database) -> None:
    _add_account(mdb, "alice")
    with mdb.transaction() as tx:
        with pytest.raises(UniqueViolationError), tx.savepoint():
            tx.execute("INSERT INTO account (name) VALUES (:n)", {"n": "alice"})
        tx.execute("INSERT INTO account (name) VALUES (:n)", {"n": "bob"})
    with mdb.read() as tx:
        assert [r["name"] for r in tx.fetchall("SELECT name FROM account ORDER BY id")] == [
            "alice",
            "bob",
        ]


def test_swallowed_error_aborts_the_transaction(mdb: Database) -> None:
    _add_account(mdb, "alice")
    with pytest.raises(TransactionAbortedError), mdb.transaction() as tx:
        tx.execute("INSERT INTO account (name) VALUES (:n)", {"n": "bob"})
        with contextlib.suppress(UniqueViolationError):
            tx.execute("INSERT INTO account (name) VALUES (:n)", {"n": "alice"})
    with mdb.read() as tx:
        assert tx.fetchval("SELECT COUNT(*) AS c FROM account") == 1


def test_on_conflict_do_nothing_is_idempotent(mdb: Database) -> None:
    with mdb.transaction() as tx:
        sql = "INSERT INTO account (name) VALUES (:n) ON CONFLICT (name) DO NOTHING"
        assert tx.execute(sql, {"n": "alice"}) == 1
        assert tx.execute(sql, {"n": "alice"}) == 0


def test_other_constraints_are_typed(mdb: Database) -> None:
    with pytest.raises(ConstraintViolationError), mdb.transaction() as tx:  # foreign key
        tx.execute("INSERT INTO spent (sigma, account_id) VALUES (:s, 999)", {"s": b"z"})
    with pytest.raises(ConstraintViolationError), mdb.transaction() as tx:  # CHECK
        tx.execute("INSERT INTO account (name, balance) VALUES ('neg', -1)")
    with pytest.raises(ConstraintViolationError), mdb.transaction() as tx:  # NOT NULL
        tx.execute("INSERT INTO account (name) VALUES (NULL)")


def test_read_only_transaction_refuses_writes(mdb: Database) -> None:
    with pytest.raises(ReadOnlyViolationError), mdb.read() as tx:
        tx.execute("INSERT INTO account (name) VALUES ('x')")
    # the connection is usable for writes again afterwards
    _add_account(mdb, "after")
    with mdb.read() as tx:
        assert tx.read_only
        assert tx.fetchval("SELECT COUNT(*) AS c FROM account") == 1


def test_rows_values_and_placeholders(mdb: Database) -> None:
    a = _add_account(mdb, "50% ':odd' name", 7)
    b = _add_account(mdb, "second")
    assert b > a
    with mdb.transaction() as tx:
        inserted = tx.executemany(
            "INSERT INTO spent (sigma, account_id, note) VALUES (:s, :a, :n)",
            [{"s": bytes([i]) * 32, "a": a, "n": None if i else "x"} for i in range(3)],
        )
        assert inserted == 3
        assert tx.executemany("DELETE FROM spent WHERE sigma = :s", []) == 0
    with mdb.read() as tx:
        row = tx.fetchone("SELECT id, name, balance FROM account WHERE id = :id", {"id": a})
        assert row == {"id": a, "name": "50% ':odd' name", "balance": 7}
        assert isinstance(row, dict)
        # ':odd' inside a literal is not a placeholder, '%' is not a format character
        literal = tx.fetchval("SELECT name FROM account WHERE name = '50% '':odd'' name'")
        assert literal == "50% ':odd' name"
        assert tx.fetchval("SELECT name FROM account WHERE name LIKE '5_\\% %' ESCAPE '\\'") == (
            "50% ':odd' name"
        )
        sigmas = tx.fetchall("SELECT sigma FROM spent ORDER BY sigma")
        assert [r["sigma"] for r in sigmas] == [bytes([i]) * 32 for i in range(3)]
        assert all(isinstance(r["sigma"], bytes) for r in sigmas)
        assert tx.fetchone("SELECT * FROM account WHERE id = -1") is None
        assert tx.fetchval("SELECT name FROM account WHERE id = -1") is None
        with pytest.raises(QueryError) as info:
            tx.fetchone("SELECT * FROM account WHERE id = :id AND name = :name", {"id": 1})
        assert info.value.detail == {"missing": ["name"]}


def test_postgres_cast_is_not_a_placeholder(db: Database) -> None:
    if db.backend != "postgresql":
        pytest.skip("'::' casts are PostgreSQL syntax")
    with db.read() as tx:
        assert tx.fetchval("SELECT :v::text || '%' AS v", {"v": 5}) == "5%"


def test_invalid_sql_is_a_query_error(mdb: Database) -> None:
    with pytest.raises(QueryError), mdb.read() as tx:
        tx.fetchall("SELECT * FROM no_such_table")
    with pytest.raises(QueryError), mdb.transaction() as tx:
        tx.insert_returning_id("INSERT INTO account (name) VALUES ('x')", id_column="id; DROP")


def test_nested_transaction_is_refused(mdb: Database) -> None:
    with mdb.transaction(), pytest.raises(StorageError) as info, mdb.transaction():
        pass
    assert info.value.code == "storage.nested_transaction"
    _add_account(mdb, "still works")


def test_transaction_object_is_dead_after_block(mdb: Database) -> None:
    with mdb.transaction() as tx:
        pass
    with pytest.raises(StorageError):
        tx.execute("SELECT 1")


def test_concurrent_writers_lose_no_update(mdb: Database) -> None:
    """8 threads x 50 read-modify-write increments, each its own transaction."""
    threads_n, per_thread = 8, 50
    errors: list[BaseException] = []

    def increment(tx: Any) -> None:
        n = tx.fetchval("SELECT n FROM counter WHERE id = 1")
        tx.execute("UPDATE counter SET n = :n WHERE id = 1", {"n": n + 1})

    def worker() -> None:
        try:
            for _ in range(per_thread):
                mdb.run_in_transaction(increment, attempts=500)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with mdb.read() as tx:
        assert tx.fetchval("SELECT n FROM counter WHERE id = 1") == threads_n * per_thread


def test_sqlite_writers_serialize_without_retries(tmp_path: Path) -> None:
    """Plain ``with db.transaction()`` from 8 threads: no 'database is locked', no lost update."""
    with Database.open(sqlite_url(tmp_path / "c.db")) as db:
        db.migrate(MIGRATIONS, component="bank")
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(50):
                    with db.transaction() as tx:
                        n = tx.fetchval("SELECT n FROM counter WHERE id = 1")
                        tx.execute("UPDATE counter SET n = :n WHERE id = 1", {"n": n + 1})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with db.read() as tx:
            assert tx.fetchval("SELECT n FROM counter WHERE id = 1") == 400


def test_sqlite_busy_after_timeout_is_typed_and_retried(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "busy.db")
    with Database.open(url) as holder, Database.open(url, busy_timeout_ms=50) as impatient:
        holder.migrate(MIGRATIONS, component="bank")
        locked = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with holder.transaction() as tx:
                tx.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
                locked.set()
                release.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        try:
            assert locked.wait(5)
            with pytest.raises(StorageBusyError) as info, impatient.transaction():
                pass
            assert info.value.code == "storage.busy"
            assert info.value.http_status == 503
            assert info.value.detail["retry_after"] == 1
            threading.Timer(0.2, release.set).start()
            impatient.run_in_transaction(
                lambda tx: tx.execute("UPDATE counter SET n = n + 1 WHERE id = 1"), attempts=200
            )
        finally:
            release.set()
            t.join()
        with impatient.read() as tx:
            assert tx.fetchval("SELECT n FROM counter") == 2


def test_postgres_serialization_failure_is_typed(mdb: Database) -> None:
    if mdb.backend != "postgresql":
        pytest.skip("SQLite runs writers one at a time; there is nothing to conflict")
    read_done = threading.Event()
    other_done = threading.Event()

    def other_writer() -> None:
        read_done.wait(5)
        with mdb.transaction() as tx:
            tx.execute("UPDATE counter SET n = n + 10 WHERE id = 1")
        other_done.set()

    t = threading.Thread(target=other_writer)
    t.start()
    try:
        with pytest.raises(StorageBusyError) as info, mdb.transaction() as tx:
            n = tx.fetchval("SELECT n FROM counter WHERE id = 1")
            read_done.set()
            assert other_done.wait(5)
            tx.execute("UPDATE counter SET n = :n WHERE id = 1", {"n": n + 1})
    finally:
        read_done.set()
        t.join()
    assert info.value.code == "storage.serialization_failure"
    assert info.value.detail["retry_after"] == 1
    with mdb.read() as tx:
        assert tx.fetchval("SELECT n FROM counter WHERE id = 1") == 10


# --- opening databases ----------------------------------------------------------------------


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "x.db"  # parent directories are created
    with Database.open(sqlite_url(path)) as db, db.read() as tx:
        assert db.backend == "sqlite"
        assert tx.fetchval("PRAGMA journal_mode") == "wal"
        assert tx.fetchval("PRAGMA synchronous") == 2  # FULL
        assert tx.fetchval("PRAGMA foreign_keys") == 1
        assert tx.fetchval("PRAGMA busy_timeout") == 5000
    assert path.exists()


def test_sqlite_relative_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Database.open("sqlite:///rel/db.sqlite") as db:
        assert db.url == "sqlite:///rel/db.sqlite"
    assert (tmp_path / "rel" / "db.sqlite").exists()
    assert sqlite_url(Path("/abs/x.db")) == "sqlite:////abs/x.db"


@pytest.mark.parametrize(
    "url",
    ["mysql://x/y", "sqlite://host/x.db", "sqlite:///:memory:", "sqlite:///", "nonsense"],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        Database.open(url)


def test_missing_psycopg_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes "import psycopg" fail
    with pytest.raises(ConfigError, match="psycopg") as info:
        Database.open("postgresql://nobody@127.0.0.1:1/none")
    assert info.value.code == "config.invalid"


def test_unreachable_postgres_is_unavailable() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StorageError) as info:
        Database.open(f"postgresql://u:secret@127.0.0.1:{free_port()}/x", connect_timeout_s=2)
    assert info.value.code == "storage.unavailable"
    assert info.value.http_status == 503
    assert "secret" not in str(info.value.to_dict())


def test_unopenable_sqlite_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError) as info:
        Database.open(sqlite_url(blocker / "x.db"))
    assert info.value.code == "storage.unavailable"


def test_closed_database_refuses_work(tmp_path: Path) -> None:
    db = Database.open(sqlite_url(tmp_path / "x.db"))
    db.close()
    with pytest.raises(StorageError), db.transaction():
        pass


# --- SQL helpers ------------------------------------------------------------------------------


def test_to_pyformat() -> None:
    sql, names = to_pyformat(
        "SELECT a::text, '50%:x', \"c:y\", :p1 -- :c %\n/* :d */ FROM t WHERE b = :p2 AND e=:p1"
    )
    assert names == ("p1", "p2")
    assert sql == (
        "SELECT a::text, '50%%:x', \"c:y\", %(p1)s -- :c %%\n/* :d */ FROM t WHERE b = %(p2)s"
        " AND e=%(p1)s"
    )
    with pytest.raises(QueryError):
        to_pyformat("SELECT 'unterminated")


def test_split_sqlite_script_handles_triggers_and_literals() -> None:
    script = """
    CREATE TABLE t (a TEXT);
    -- comment only;
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'x;y'; END;
    INSERT INTO t VALUES ('semi;colon');
    """
    statements = split_sqlite_script(script)
    assert len(statements) == 3
    assert statements[1].startswith("-- comment only;\n") or "CREATE TRIGGER" in statements[1]
    conn = sqlite3.connect(":memory:")
    for statement in statements:
        conn.execute(statement)
    assert conn.execute("SELECT a FROM t").fetchall() == [("x;y",)]


def test_substitute_types() -> None:
    assert substitute_types("a {blob}, b {pk}, c '{}'", "postgresql") == (
        "a BYTEA, b BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, c '{}'"
    )
    assert substitute_types("a {blob}", "sqlite") == "a BLOB"
    with pytest.raises(QueryError):
        substitute_types("a {blobb}", "sqlite")

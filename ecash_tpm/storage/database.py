"""The data layer every party uses: one API over SQLite (embedded default) and PostgreSQL.

Money moves only inside a database transaction (DESIGN §7), so the API is built around
transactions rather than connections::

    db = Database.open("sqlite:////var/lib/ecash-tpm/bank/bank.db")
    db.migrate(MIGRATIONS, component="bank")
    with db.transaction() as tx:                      # BEGIN IMMEDIATE / SERIALIZABLE
        tx.execute("UPDATE account SET balance = balance - :v WHERE id = :id", {...})
        rid = tx.insert_returning_id("INSERT INTO withdrawal (account_id) VALUES (:id)", {...})
    with db.read() as tx:                             # consistent snapshot, writes refused
        rows = tx.fetchall("SELECT * FROM keyset WHERE currency = :c", {"c": "EUR"})
    receipt = db.run_in_transaction(lambda tx: deposit(tx, coin))   # retried on conflicts

Statements use ``:name`` placeholders only and values are always bound, never formatted into
SQL. Driver exceptions are translated to :mod:`ecash_tpm.storage.errors`, so a duplicate
serial is a ``UniqueViolationError`` (409, ``storage.unique_violation``) on both backends.
Rows come back as plain ``dict`` objects.

URLs: ``sqlite:///<path>`` where everything after the third slash is the file path, so
``sqlite:///data/bank.db`` is relative to the working directory and ``sqlite:////var/x.db`` is
absolute (use :func:`sqlite_url` to build one); ``postgresql://user:pw@host:5432/db``.

Calls block: use them from plain ``def`` FastAPI routes (which run in a worker thread) or wrap
them in ``anyio.to_thread.run_sync``; never hold a transaction across an ``await``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ecash_tpm.errors import ConfigError, EcashError, StorageError
from ecash_tpm.storage.errors import (
    DatabaseReadOnlyError,
    QueryError,
    ReadOnlyViolationError,
    SchemaMissingError,
    StorageBusyError,
    TransactionAbortedError,
)
from ecash_tpm.storage.pool import ConnectionPool, PooledConnection

T = TypeVar("T")
Row = dict[str, Any]

#: Isolation of write transactions on PostgreSQL (SQLite always runs one writer at a time).
ISOLATIONS = ("serializable", "read_committed")
_WRITE_MODES = {"serializable": "write", "read_committed": "write_rc"}


class _Probe(Exception):
    """Raised inside the write probe's block so that it always rolls back."""


def _unwritable(err: EcashError, mode: str) -> EcashError:
    """A read-only refusal inside a *write* transaction means the database itself cannot be
    written (read-only file, replica, read-only server): 503 ``storage.database_read_only``."""
    if mode != "read" and isinstance(err, ReadOnlyViolationError):
        unwritable = DatabaseReadOnlyError(
            "the database does not accept writes",
            detail={**err.detail, "retry_after": 5},
        )
        unwritable.__cause__ = err.__cause__
        return unwritable
    return err


Params = Mapping[str, Any] | None

_IDENTIFIER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class _Backend(Protocol):
    """What :class:`Database` needs from a backend (see ``_sqlite.py`` / ``_postgres.py``)."""

    name: str
    driver_errors: tuple[type[BaseException], ...]

    def describe(self) -> str: ...
    def connect(self) -> Any: ...
    def close(self, conn: Any) -> None: ...
    def begin(self, conn: Any, mode: str) -> None: ...
    def end(self, conn: Any, mode: str, *, commit: bool) -> None: ...
    def in_transaction(self, conn: Any) -> bool: ...
    def is_broken(self, conn: Any) -> bool: ...
    def execute(self, conn: Any, sql: str, params: dict[str, Any]) -> Any: ...
    def executemany(self, conn: Any, sql: str, seq: list[dict[str, Any]]) -> Any: ...
    def names(self, sql: str) -> tuple[str, ...]: ...
    def run_script(self, conn: Any, script: str) -> None: ...
    def migration_lock(self, conn: Any) -> None: ...
    def xact_lock(self, conn: Any, key: int) -> None: ...
    def write_probe(self, conn: Any) -> None: ...
    def quick_check(self, conn: Any) -> list[str]: ...
    def translate(self, exc: BaseException) -> EcashError: ...


def sqlite_url(path: str | Path) -> str:
    """The ``sqlite:///`` URL of a database file (absolute paths give four slashes)."""
    return f"sqlite:///{Path(path)}"


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (``None`` for other schemes); ConfigError if malformed."""
    if not url.startswith("sqlite:"):
        return None
    if not url.startswith("sqlite:///"):
        raise ConfigError(
            "SQLite URLs look like sqlite:///relative/path.db or sqlite:////abs/path.db",
            detail={"url": url},
        )
    raw = url[len("sqlite:///") :]
    if not raw or raw in (":memory:", "/:memory:") or "?" in raw:
        raise ConfigError(
            "SQLite URL needs a plain file path (no :memory:, no query string)",
            detail={"url": url},
        )
    return Path(raw)


def discard_sqlite_files(path: Path) -> None:
    """Remove a SQLite database file with its WAL, shared-memory and journal files.

    For undoing a database that a failed start created a moment ago (the caller decides that
    it is new); never use it on a database that holds data.
    """
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


class NewSqliteFiles:
    """The SQLite files of some URLs that do not exist yet, and the directories they would need.

    What a failed start or an interrupted ``init`` must take back: a database it created a
    moment ago and nothing else. :meth:`keep` once the work succeeded.
    """

    def __init__(self, urls: Iterable[str]) -> None:
        self._fresh: list[tuple[Path, list[Path]]] = []
        self._kept = False
        for url in urls:
            path = sqlite_path(url)
            if path is None or path.exists():
                continue
            made: list[Path] = []
            parent = path.absolute().parent
            while not parent.exists():
                made.append(parent)
                parent = parent.parent
            self._fresh.append((path, made))

    def keep(self) -> None:
        """The work succeeded: :meth:`discard` does nothing from now on."""
        self._kept = True

    def discard(self) -> None:
        """Remove the files that appeared since, and the directories made for them if empty
        (the database must be closed)."""
        if self._kept:
            return
        for path, made in self._fresh:
            discard_sqlite_files(path)
            for directory in made:  # deepest first; only if nothing else was put there
                try:
                    directory.rmdir()
                except OSError:
                    break


@contextmanager
def discard_new_sqlite_on_failure(urls: Iterable[str]) -> Iterator[NewSqliteFiles]:
    """Run a block that may create SQLite databases; if it raises (or is interrupted) before
    calling ``keep()`` on what it is given, the files it created are removed again."""
    new = NewSqliteFiles(urls)
    try:
        yield new
    except BaseException:
        new.discard()
        raise


class Transaction:
    """One open transaction on one pooled connection; only valid inside its ``with`` block."""

    def __init__(self, backend: _Backend, handle: PooledConnection[Any], *, mode: str) -> None:
        self._backend = backend
        self._handle = handle
        self._mode = mode
        self._closed = False
        self._failed = False
        self._savepoints = 0

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``, for the rare statement that must differ."""
        return self._backend.name

    @property
    def read_only(self) -> bool:
        return self._mode == "read"

    def _check_params(self, sql: str, params: Params) -> dict[str, Any]:
        if self._closed:
            raise StorageError("transaction used outside its 'with' block")
        values = dict(params) if params is not None else {}
        missing = [name for name in self._backend.names(sql) if name not in values]
        if missing:
            raise QueryError("SQL parameter(s) not supplied", detail={"missing": missing})
        return values

    def _fail(self, exc: BaseException) -> EcashError:
        """Remember that the transaction saw an error and translate the driver exception."""
        self._failed = True
        if self._backend.is_broken(self._handle.conn):
            self._handle.discard = True
        return _unwritable(self._backend.translate(exc), self._mode)

    def lock_keys(self, keys: Iterable[int]) -> None:
        """Hold transaction-scoped locks on ``keys`` (64-bit integers) until the transaction
        ends, taken in ascending order so two transactions never deadlock on them.

        PostgreSQL: ``pg_advisory_xact_lock`` (waits at most the lock bound, then
        ``storage.serialization_failure`` 503). SQLite: nothing to do, a write transaction
        already holds the database's only write lock.
        """
        if self.read_only:
            raise StorageError("locks are for write transactions")
        for key in sorted(set(keys)):
            try:
                self._backend.xact_lock(self._handle.conn, key)
            except self._backend.driver_errors as exc:
                raise self._fail(exc) from exc

    def _cursor(self, sql: str, params: Params) -> Any:
        values = self._check_params(sql, params)
        try:
            return self._backend.execute(self._handle.conn, sql, values)
        except self._backend.driver_errors as exc:
            raise self._fail(exc) from exc

    def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement; returns the number of rows it changed (``rowcount``).

        ``INSERT ... ON CONFLICT DO NOTHING`` returns 0 for a duplicate on both backends, which
        is the portable way to make an insert idempotent without an exception.
        """
        cur = self._cursor(sql, params)
        try:
            return int(cur.rowcount)
        finally:
            cur.close()

    def executemany(self, sql: str, seq: Iterable[Mapping[str, Any]]) -> int:
        """Run one statement for each parameter mapping; returns the summed ``rowcount``."""
        items = list(seq)
        if not items:
            return 0
        values = [self._check_params(sql, item) for item in items]
        try:
            cur = self._backend.executemany(self._handle.conn, sql, values)
        except self._backend.driver_errors as exc:
            raise self._fail(exc) from exc
        try:
            return int(cur.rowcount)
        finally:
            cur.close()

    def fetchone(self, sql: str, params: Params = None) -> Row | None:
        """The first row as a ``dict``, or ``None``."""
        cur = self._cursor(sql, params)
        try:
            row = cur.fetchone()
        except self._backend.driver_errors as exc:
            raise self._fail(exc) from exc
        finally:
            cur.close()
        return None if row is None else dict(row)

    def fetchall(self, sql: str, params: Params = None) -> list[Row]:
        """All rows as ``dict`` objects."""
        cur = self._cursor(sql, params)
        try:
            rows = cur.fetchall()
        except self._backend.driver_errors as exc:
            raise self._fail(exc) from exc
        finally:
            cur.close()
        return [dict(row) for row in rows]

    def fetchval(self, sql: str, params: Params = None) -> Any:
        """The first column of the first row, or ``None`` when there is no row."""
        row = self.fetchone(sql, params)
        return None if row is None else next(iter(row.values()), None)

    def insert_returning_id(self, sql: str, params: Params = None, *, id_column: str = "id") -> int:
        """Run an ``INSERT`` (without RETURNING) and return the generated ``id_column``.

        Uses ``RETURNING`` on both backends (SQLite >= 3.35), so it is correct for any integer
        key, not only SQLite's rowid alias.
        """
        if not id_column or not set(id_column) <= _IDENTIFIER_CHARS or id_column[0].isdigit():
            raise QueryError("invalid id column name", detail={"id_column": id_column})
        statement = sql.rstrip().rstrip(";") + " RETURNING " + id_column
        row = self.fetchone(statement, params)
        if row is None:
            raise QueryError("INSERT returned no row (was it an INSERT?)")
        return int(row[id_column])

    def execute_script(self, script: str) -> None:
        """Run a multi-statement DDL script without parameters (used by migrations)."""
        if self._closed:
            raise StorageError("transaction used outside its 'with' block")
        try:
            self._backend.run_script(self._handle.conn, script)
        except self._backend.driver_errors as exc:
            raise self._fail(exc) from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo only the statements of this block if it raises; the transaction continues.

        The portable way to try a statement that may fail (PostgreSQL aborts the whole
        transaction on any error otherwise).
        """
        self._savepoints += 1
        name = f"sp_{self._savepoints}"  # a counter, never user input
        failed_before = self._failed
        conn = self._handle.conn
        self._raw("SAVEPOINT " + name)
        try:
            yield
        except BaseException:
            try:
                self._backend.execute(conn, "ROLLBACK TO SAVEPOINT " + name, {})
                self._backend.execute(conn, "RELEASE SAVEPOINT " + name, {})
                self._failed = failed_before
            except self._backend.driver_errors:
                self._failed = True  # the backend already rolled the whole transaction back
            raise
        else:
            self._raw("RELEASE SAVEPOINT " + name)
        finally:
            self._savepoints -= 1

    def _raw(self, sql: str) -> None:
        try:
            self._backend.execute(self._handle.conn, sql, {})
        except self._backend.driver_errors as exc:
            raise self._fail(exc) from exc


class Database:
    """A pool of connections to one database plus the transaction and migration API.

    Create with :meth:`open`; the instance owns its pool (no global state) and must be
    :meth:`close`-d, e.g. from the service's shutdown hook or a ``with`` block.
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        pool_size: int,
        acquire_timeout_s: float,
        lock_timeout_s: float = 5.0,
    ) -> None:
        self._backend = backend
        self._lock_timeout_s = lock_timeout_s
        self._pool: ConnectionPool[Any] = ConnectionPool(
            backend.connect,
            backend.close,
            max_size=pool_size,
            acquire_timeout_s=acquire_timeout_s,
        )
        self._local = threading.local()
        self._counter_lock = threading.Lock()
        self._retries = 0
        # Connect once now: a bad path, a down server or a missing driver fails at start-up.
        with self._pool.connection():
            pass

    @classmethod
    def open(
        cls,
        url: str,
        *,
        must_exist: bool = False,
        pool_size: int | None = None,
        busy_timeout_ms: int | None = None,
        connect_timeout_s: float = 10.0,
        acquire_timeout_s: float | None = None,
        lock_timeout_s: float = 5.0,
    ) -> Database:
        """Open ``sqlite:///<path>`` or ``postgresql://...``; raises ConfigError for others.

        A SQLite file (and its directory) is created on first use unless ``must_exist``, which
        raises :class:`DatabaseMissingError` instead: what read-only and administrative
        commands use, so a wrong path never leaves an empty database behind. PostgreSQL
        databases are never created here (a missing one is ``storage.database_missing``).

        ``lock_timeout_s`` bounds every wait of a request: for a free pool slot, for SQLite's
        write lock (busy timeout) and for a PostgreSQL row/advisory lock (``lock_timeout``);
        past it the request fails with a 503 and Retry-After instead of queueing for minutes.
        ``busy_timeout_ms`` / ``acquire_timeout_s`` override the SQLite / pool part of it.
        """
        if not 0 < lock_timeout_s <= 3600:
            raise ConfigError("lock_timeout_s must be in (0, 3600]")
        busy_ms = busy_timeout_ms if busy_timeout_ms is not None else int(lock_timeout_s * 1000)
        acquire_s = acquire_timeout_s if acquire_timeout_s is not None else lock_timeout_s
        backend: _Backend
        path = sqlite_path(url)
        if path is not None:
            from ecash_tpm.storage._sqlite import SqliteBackend

            backend = SqliteBackend(path, busy_timeout_ms=busy_ms, must_exist=must_exist)
            size = pool_size if pool_size is not None else 8
        elif url.startswith(("postgresql://", "postgres://")):
            from ecash_tpm.storage._postgres import PostgresBackend

            backend = PostgresBackend(
                url, connect_timeout_s=connect_timeout_s, lock_timeout_ms=int(lock_timeout_s * 1000)
            )
            size = pool_size if pool_size is not None else 10
        else:
            scheme = url.split(":", 1)[0] if ":" in url else ""
            raise ConfigError(
                "unsupported database URL (use sqlite:/// or postgresql://)",
                detail={"scheme": scheme},
            )
        return cls(
            backend, pool_size=size, acquire_timeout_s=acquire_s, lock_timeout_s=lock_timeout_s
        )

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._backend.name

    @property
    def url(self) -> str:
        """The database URL with any password redacted."""
        return self._backend.describe()

    def close(self) -> None:
        """Close all connections; transactions still running finish on theirs first."""
        self._pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({self.url!r})"

    # --- transactions -------------------------------------------------------------------------

    def transaction(self, *, isolation: str = "serializable") -> _TransactionContext:
        """A write transaction: committed when the block ends, rolled back if it raises.

        SQLite: ``BEGIN IMMEDIATE`` (writers queue on the busy timeout, one at a time).
        PostgreSQL: ``SERIALIZABLE``; a conflict raises :class:`StorageBusyError`, so prefer
        :meth:`run_in_transaction` for code that should be retried automatically. With
        ``isolation="read_committed"`` PostgreSQL runs READ COMMITTED, which never fails with a
        serialization error: for code that detects its conflicts itself through unique
        constraints (``INSERT ... ON CONFLICT``) and :meth:`Transaction.lock_keys`.
        """
        if isolation not in _WRITE_MODES:
            raise StorageError("unknown isolation", detail={"isolation": isolation})
        return _TransactionContext(self, _WRITE_MODES[isolation])

    def read(self) -> _TransactionContext:
        """A read-only transaction on a consistent snapshot; any write raises."""
        return _TransactionContext(self, "read")

    def _migration_transaction(self) -> _TransactionContext:
        return _TransactionContext(self, "migrate")

    def run_in_transaction(
        self,
        fn: Callable[[Transaction], T],
        *,
        attempts: int = 20,
        max_backoff_s: float = 0.25,
        isolation: str = "serializable",
    ) -> T:
        """Run ``fn(tx)`` in a write transaction, retrying it on serialization failures.

        ``fn`` may run several times, so it must not have side effects outside the database
        (no HTTP calls, no TPM commands). Gives up after ``attempts`` and re-raises the last
        :class:`StorageBusyError` (a 503 with Retry-After at the HTTP layer). A lock wait that
        timed out (SQLite busy, PostgreSQL ``lock_timeout``) is retried only while another wait
        as long would still end within the lock bound, so a held lock costs a request one
        bound, not ``attempts`` of them.
        """
        if attempts < 1:
            raise StorageError("attempts must be at least 1")
        deadline = time.monotonic() + self._lock_timeout_s
        for attempt in range(1, attempts + 1):
            began = time.monotonic()
            try:
                with self.transaction(isolation=isolation) as tx:
                    return fn(tx)
            except StorageBusyError as exc:
                if attempt == attempts or exc.code == "storage.pool_exhausted":
                    raise
                now = time.monotonic()
                lock_wait = exc.code == "storage.busy" or exc.detail.get("sqlstate") == "55P03"
                if lock_wait and now + (now - began) > deadline:
                    raise
                with self._counter_lock:
                    self._retries += 1
                delay = min(max_backoff_s, 0.002 * (2 ** min(attempt, 10)))
                time.sleep(random.uniform(0, delay))
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def retries(self) -> int:
        """How many times :meth:`run_in_transaction` re-ran a transaction after a conflict
        (since this object was opened): what the PostgreSQL booking tests count."""
        with self._counter_lock:
            return self._retries

    def check_writable(self) -> None:
        """Raise the typed error of a write that would fail now, else return; writes nothing.

        Opens a write transaction (waiting at most the lock bound: ``storage.busy`` while
        another writer holds the lock), makes the backend try a harmless write and rolls it
        back (``storage.database_read_only`` for a read-only file, replica or server). For
        ``/healthz``, which must not answer "ok" while every write fails.
        """
        try:
            with self.transaction() as tx:
                try:
                    self._backend.write_probe(tx._handle.conn)
                except self._backend.driver_errors as exc:
                    raise tx._fail(exc) from exc
                raise _Probe
        except _Probe:
            return

    def quick_check(self) -> list[str]:
        """The database engine's own structural check (SQLite ``PRAGMA quick_check``: pages,
        indexes, constraints; PostgreSQL: nothing portable, an empty list). For start-up."""
        with self.read() as tx:
            try:
                return self._backend.quick_check(tx._handle.conn)
            except self._backend.driver_errors as exc:
                raise tx._fail(exc) from exc

    # --- migrations ---------------------------------------------------------------------------

    def migrate(self, migrations: Sequence[Any], *, component: str) -> list[int]:
        """Apply the pending migrations of ``component``; returns the versions applied now.

        See :mod:`ecash_tpm.storage.migrations` for the rules.
        """
        from ecash_tpm.storage.migrations import apply_migrations

        return apply_migrations(self, migrations, component=component)

    def require_schema(self, component: str) -> int:
        """The recorded version of ``component``; :class:`SchemaMissingError` if there is none.

        Only reads (no ``schema_migrations`` table is created), so it is safe on a database
        that turns out not to be the party's. Call it before :meth:`migrate` where an empty
        database would be a configuration mistake rather than a first start.
        """
        from ecash_tpm.storage.migrations import recorded_version

        version = recorded_version(self, component)
        if version < 1:
            raise SchemaMissingError(
                f"the database holds no {component} schema (not initialised, or the wrong "
                "database)",
                detail={"database": self.url, "component": component},
            )
        return version

    def schema_version(self, component: str) -> int:
        """The highest migration version recorded for ``component`` (0 if none)."""
        from ecash_tpm.storage.migrations import current_version

        return current_version(self, component)

    # --- internals ----------------------------------------------------------------------------

    def _enter(self, mode: str) -> tuple[PooledConnection[Any], Any, Transaction]:
        if getattr(self._local, "active", False):
            raise StorageError(
                "nested transaction on the same database and thread",
                code="storage.nested_transaction",
            )
        pool_cm = self._pool.connection()
        handle = pool_cm.__enter__()
        try:
            self._backend.begin(handle.conn, mode)
            if mode == "migrate":
                self._backend.migration_lock(handle.conn)
        except BaseException as exc:
            # e.g. SQLITE_BUSY after the busy timeout: the connection itself is fine, keep it
            # unless undoing the half-begun state fails or the link is broken.
            self._rollback(handle, mode)
            if self._backend.is_broken(handle.conn):
                handle.discard = True
            pool_cm.__exit__(None, None, None)
            if isinstance(exc, self._backend.driver_errors):
                raise _unwritable(self._backend.translate(exc), mode) from exc
            raise
        self._local.active = True
        return handle, pool_cm, Transaction(self._backend, handle, mode=mode)

    def _exit(
        self,
        handle: PooledConnection[Any],
        pool_cm: Any,
        tx: Transaction,
        mode: str,
        exc: BaseException | None,
    ) -> None:
        tx._closed = True
        try:
            if exc is not None or tx._failed:
                self._rollback(handle, mode)
                if exc is None:
                    raise TransactionAbortedError(
                        "a statement failed earlier in this transaction; nothing was committed"
                    )
                return
            try:
                self._backend.end(handle.conn, mode, commit=True)
            except self._backend.driver_errors as commit_exc:
                self._rollback(handle, mode)
                if self._backend.is_broken(handle.conn):
                    handle.discard = True
                raise _unwritable(self._backend.translate(commit_exc), mode) from commit_exc
        finally:
            self._local.active = False
            pool_cm.__exit__(None, None, None)

    def _rollback(self, handle: PooledConnection[Any], mode: str) -> None:
        try:
            self._backend.end(handle.conn, mode, commit=False)
        except Exception:  # the connection is unusable; the original error matters more
            handle.discard = True


class _TransactionContext:
    """``with db.transaction() as tx`` support (a class so the exit sees the exception)."""

    def __init__(self, db: Database, mode: str) -> None:
        self._db = db
        self._mode = mode
        self._state: tuple[PooledConnection[Any], Any, Transaction] | None = None

    def __enter__(self) -> Transaction:
        if self._state is not None:
            raise StorageError("a transaction context can be entered only once")
        self._state = self._db._enter(self._mode)
        return self._state[2]

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._state is None:
            return
        handle, pool_cm, tx = self._state
        self._db._exit(handle, pool_cm, tx, self._mode, exc)

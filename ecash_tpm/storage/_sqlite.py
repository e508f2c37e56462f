"""SQLite backend: the embedded default, tuned so that money is safe and writers never collide.

- ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers.
- ``busy_timeout`` (via ``sqlite3.connect(timeout=...)``): a writer that finds the write lock
  taken waits instead of failing at once. This is the fix for the "database is locked" errors
  that Cashu/nutshell users hit with default settings.
- ``isolation_level=None`` + explicit ``BEGIN IMMEDIATE`` for write transactions. Python's
  default opens a *deferred* transaction that starts as a reader and upgrades to a writer on the
  first INSERT/UPDATE; in WAL mode that upgrade fails with ``SQLITE_BUSY_SNAPSHOT`` immediately
  (no busy wait is possible, the snapshot is stale) whenever another writer committed in the
  meantime. Taking the write lock up front makes concurrent writers queue on the busy handler
  and serialize, which also means a read-modify-write inside a transaction never loses updates.
- ``synchronous=FULL``: a commit is on disk (WAL fsynced) before we answer "paid".
- ``foreign_keys=ON``: SQLite leaves it off by default.
- Read transactions run with ``PRAGMA query_only`` so an accidental write in ``db.read()``
  fails loudly instead of silently starting a write.
- ``must_exist``: the file is opened with ``mode=rw`` (never created, nor its directory), for
  commands that only make sense on a party's existing database.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ecash_tpm.errors import EcashError, StorageError
from ecash_tpm.storage.errors import (
    ConstraintViolationError,
    DatabaseMissingError,
    QueryError,
    ReadOnlyViolationError,
    StorageBusyError,
    StorageUnavailableError,
    UniqueViolationError,
)
from ecash_tpm.storage.sql import placeholder_names, split_sqlite_script

_UNIQUE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
_UNIQUE_INDEX_RE = re.compile(r"index '([^']+)'")

DRIVER_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error,)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class SqliteBackend:
    """Connection setup, transaction statements and error translation for SQLite."""

    name = "sqlite"
    driver_errors = DRIVER_ERRORS

    def __init__(self, path: Path, *, busy_timeout_ms: int, must_exist: bool = False) -> None:
        if busy_timeout_ms < 0:
            raise StorageError("busy timeout must not be negative")
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.must_exist = must_exist

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def _missing(self) -> DatabaseMissingError:
        return DatabaseMissingError(
            "the SQLite database does not exist", detail={"path": str(self.path)}
        )

    def connect(self) -> sqlite3.Connection:
        if self.must_exist and not self.path.is_file():
            raise self._missing()
        # mode=rw: a file removed since the check is an error, not a new empty database
        target = f"file:{quote(str(self.path.absolute()))}?mode=rw" if self.must_exist else None
        try:
            if target is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                target or str(self.path),
                uri=target is not None,
                timeout=self.busy_timeout_ms / 1000.0,
                isolation_level=None,
                check_same_thread=False,  # the pool hands a connection to one thread at a time
                cached_statements=256,
            )
        except (OSError, sqlite3.Error) as exc:
            if self.must_exist and not self.path.exists():
                raise self._missing() from exc
            raise StorageUnavailableError(
                "cannot open the SQLite database", detail={"path": str(self.path)}
            ) from exc
        try:
            conn.row_factory = _dict_row
            row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if row is None or str(row["journal_mode"]).lower() != "wal":
                raise StorageUnavailableError(
                    "SQLite refused WAL mode (unsupported file system?)",
                    detail={"path": str(self.path)},
                )
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise self.translate(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self, conn: sqlite3.Connection) -> None:
        conn.close()

    def begin(self, conn: sqlite3.Connection, mode: str) -> None:
        if mode == "read":
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")
        else:
            conn.execute("BEGIN IMMEDIATE")

    def end(self, conn: sqlite3.Connection, mode: str, *, commit: bool) -> None:
        try:
            if conn.in_transaction:
                conn.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            if mode == "read":
                conn.execute("PRAGMA query_only = OFF")

    def in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    def is_broken(self, conn: sqlite3.Connection) -> bool:
        return False

    def execute(self, conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> sqlite3.Cursor:
        return conn.execute(sql, params)

    def executemany(
        self, conn: sqlite3.Connection, sql: str, seq: list[dict[str, Any]]
    ) -> sqlite3.Cursor:
        return conn.executemany(sql, seq)

    def names(self, sql: str) -> tuple[str, ...]:
        return placeholder_names(sql)

    def run_script(self, conn: sqlite3.Connection, script: str) -> None:
        # executescript() would COMMIT our transaction first; run statement by statement.
        for statement in split_sqlite_script(script):
            conn.execute(statement)

    def migration_lock(self, conn: sqlite3.Connection) -> None:
        """Nothing to do: BEGIN IMMEDIATE already excludes every other writer."""

    def xact_lock(self, conn: sqlite3.Connection, key: int) -> None:
        """Nothing to do: BEGIN IMMEDIATE already excludes every other writer."""

    def quick_check(self, conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        found = [str(next(iter(row.values()))) for row in rows]
        return [] if found == ["ok"] else found

    def write_probe(self, conn: sqlite3.Connection) -> None:
        """Rewrite the header's ``user_version`` with its own value (rolled back by the
        caller): SQLITE_READONLY on a read-only file or mount, nothing on disk otherwise."""
        row = conn.execute("PRAGMA user_version").fetchone()
        version = int(row["user_version"]) if row is not None else 0
        conn.execute("PRAGMA user_version = " + str(version))  # an int read back, not input

    def translate(self, exc: BaseException) -> EcashError:
        """Map a ``sqlite3`` exception to the project's storage errors (values never copied)."""
        errorname = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        base = {"backend": self.name, "sqlite_error": errorname}
        if isinstance(exc, sqlite3.IntegrityError):
            if errorname in _UNIQUE_ERRORS:
                return UniqueViolationError(
                    "a row with the same unique key already exists",
                    detail={**base, **_parse_unique(str(exc))},
                )
            return ConstraintViolationError("an integrity constraint failed", detail=base)
        if errorname.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StorageBusyError(
                "the database is busy; retry", detail={**base, "retry_after": 1}
            )
        if errorname.startswith("SQLITE_READONLY"):
            return ReadOnlyViolationError("write attempted in a read-only transaction", detail=base)
        if errorname.startswith(
            ("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_NOTADB")
        ):
            return StorageUnavailableError("the database file cannot be used", detail=base)
        if isinstance(
            exc, sqlite3.OperationalError | sqlite3.ProgrammingError | sqlite3.InterfaceError
        ):
            return QueryError("invalid SQL statement or parameters", detail=base)
        return StorageError("database error", detail=base)


def _parse_unique(message: str) -> dict[str, Any]:
    """``UNIQUE constraint failed: spent.sigma, spent.x`` -> table and column names only."""
    _, _, tail = message.partition(":")
    tail = tail.strip()
    index = _UNIQUE_INDEX_RE.search(tail)
    if index is not None:
        return {"table": None, "columns": [], "constraint": index.group(1)}
    table: str | None = None
    columns: list[str] = []
    for item in tail.split(","):
        tbl, dot, col = item.strip().partition(".")
        if dot:
            table = table or tbl
            columns.append(col)
    return {"table": table, "columns": columns, "constraint": None}

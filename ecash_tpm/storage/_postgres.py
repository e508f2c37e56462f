"""PostgreSQL backend through psycopg 3 (optional extra ``postgres``; imported lazily).

Isolation choice: write transactions run at **SERIALIZABLE**. The SQLite backend executes write
transactions one at a time (``BEGIN IMMEDIATE``), so domain code written and tested against it
may read-modify-write without ``SELECT ... FOR UPDATE`` (which SQLite does not even parse).
SERIALIZABLE gives that code the same guarantee on PostgreSQL while still letting independent
transactions run in parallel; the price is that conflicting ones fail with SQLSTATE 40001/40P01,
which we raise as :class:`StorageBusyError` (``storage.serialization_failure``) and which
:meth:`Database.run_in_transaction` retries with jittered backoff. Hot single rows (one global
counter updated by every request) serialize badly under this scheme: prefer append-only rows.
Code that detects its own conflicts (unique constraints, ``INSERT ... ON CONFLICT``, advisory
locks through :meth:`Transaction.lock_keys`) asks for ``isolation="read_committed"`` instead and
never sees a serialization failure: the bank's deposit booking (issue 13). Every connection sets
``lock_timeout`` to the database's lock bound, so a lock wait ends in a 503, not a hang.
Read transactions use ``REPEATABLE READ READ ONLY`` (a consistent snapshot that never fails).
Migrations run at READ COMMITTED under a transaction-scoped advisory lock, so two processes
starting at once apply each migration exactly once.

Connections are in autocommit mode and we issue BEGIN/COMMIT ourselves, exactly as with SQLite.
"""

from __future__ import annotations

import importlib
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ecash_tpm.errors import ConfigError, EcashError, StorageError
from ecash_tpm.storage.errors import (
    ConstraintViolationError,
    DatabaseMissingError,
    QueryError,
    ReadOnlyViolationError,
    StorageBusyError,
    StorageUnavailableError,
    UniqueViolationError,
)
from ecash_tpm.storage.sql import to_pyformat

# pg_advisory_xact_lock key shared by every migrating process ("ecashtpm" in ASCII).
MIGRATION_LOCK_KEY = 0x656361736874D
_KEY_COLUMNS_RE = re.compile(r"^Key \((.+?)\)=")
_NO_DATABASE_RE = re.compile(r'FATAL:\s+database ".*" does not exist')


def _import_psycopg() -> Any:
    try:
        return importlib.import_module("psycopg")
    except ImportError as exc:
        raise ConfigError(
            "PostgreSQL support needs psycopg 3: pip install 'ecash-tpm[postgres]'",
            detail={"missing_module": "psycopg"},
        ) from exc


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and error details."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresBackend:
    """Connection setup, transaction statements and error translation for PostgreSQL."""

    name = "postgresql"

    def __init__(self, url: str, *, connect_timeout_s: float, lock_timeout_ms: int = 5000) -> None:
        self._psycopg = _import_psycopg()
        self._rows = importlib.import_module("psycopg.rows")
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.lock_timeout_ms = lock_timeout_ms
        self.driver_errors: tuple[type[BaseException], ...] = (self._psycopg.Error,)

    def describe(self) -> str:
        return redact_url(self.url)

    def connect(self) -> Any:
        try:
            conn = self._psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=self._rows.dict_row,
                connect_timeout=max(1, int(self.connect_timeout_s)),
            )
            # the request's bound on any lock wait (row, advisory): 55P03 -> 503 + Retry-After
            conn.execute(
                "SELECT set_config('lock_timeout', %(v)s, false)",
                {"v": f"{max(1, self.lock_timeout_ms)}ms"},
            )
            return conn
        except self._psycopg.Error as exc:
            # invalid_catalog_name; psycopg reports connection failures without a SQLSTATE,
            # so the server's (English) message is the fallback
            if getattr(exc, "sqlstate", None) == "3D000" or _NO_DATABASE_RE.search(str(exc)):
                raise DatabaseMissingError(
                    "the PostgreSQL database does not exist", detail={"url": self.describe()}
                ) from exc
            raise StorageUnavailableError(
                "cannot connect to PostgreSQL", detail={"url": self.describe()}
            ) from exc

    def close(self, conn: Any) -> None:
        conn.close()

    def begin(self, conn: Any, mode: str) -> None:
        if mode == "read":
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        elif mode in ("migrate", "write_rc"):
            conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        else:
            conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")

    def end(self, conn: Any, mode: str, *, commit: bool) -> None:
        if self.in_transaction(conn):
            conn.execute("COMMIT" if commit else "ROLLBACK")

    def in_transaction(self, conn: Any) -> bool:
        idle = self._psycopg.pq.TransactionStatus.IDLE
        return bool(conn.info.transaction_status != idle)

    def is_broken(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)

    def execute(self, conn: Any, sql: str, params: dict[str, Any]) -> Any:
        query, _ = to_pyformat(sql)
        return conn.execute(query, params)

    def executemany(self, conn: Any, sql: str, seq: list[dict[str, Any]]) -> Any:
        query, _ = to_pyformat(sql)
        cur = conn.cursor()
        cur.executemany(query, seq)
        return cur

    def names(self, sql: str) -> tuple[str, ...]:
        return to_pyformat(sql)[1]

    def run_script(self, conn: Any, script: str) -> None:
        # Without parameters psycopg sends the text as one simple query: several statements
        # (and dollar-quoted bodies) are fine and run inside our open transaction.
        conn.execute(script)

    def migration_lock(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": MIGRATION_LOCK_KEY})

    def xact_lock(self, conn: Any, key: int) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": key})

    def quick_check(self, conn: Any) -> list[str]:
        """Nothing portable to run (``amcheck`` is an extension); unique constraints and the
        application's own checks are the guard on PostgreSQL."""
        return []

    def write_probe(self, conn: Any) -> None:
        """Fail as a write would (25006) on a read-only server, replica or database."""
        row = conn.execute(
            "SELECT current_setting('transaction_read_only') AS ro, pg_is_in_recovery() AS rec"
        ).fetchone()
        if row is not None and (row["ro"] == "on" or row["rec"]):
            raise self._psycopg.errors.ReadOnlySqlTransaction(
                "cannot execute writes in a read-only transaction"
            )

    def translate(self, exc: BaseException) -> EcashError:
        """Map a psycopg exception to the project's storage errors by SQLSTATE."""
        state: str = getattr(exc, "sqlstate", None) or ""
        base: dict[str, Any] = {"backend": self.name, "sqlstate": state or None}
        diag = getattr(exc, "diag", None)
        if state == "23505":
            columns: list[str] = []
            message_detail = getattr(diag, "message_detail", None) or ""
            match = _KEY_COLUMNS_RE.match(message_detail)
            if match is not None:
                columns = [c.strip().strip('"') for c in match.group(1).split(",")]
            return UniqueViolationError(
                "a row with the same unique key already exists",
                detail={
                    **base,
                    "table": getattr(diag, "table_name", None),
                    "columns": columns,
                    "constraint": getattr(diag, "constraint_name", None),
                },
            )
        if state.startswith("23"):
            return ConstraintViolationError(
                "an integrity constraint failed",
                detail={**base, "constraint": getattr(diag, "constraint_name", None)},
            )
        if state in ("40001", "40P01", "55P03"):
            return StorageBusyError(
                "the transaction conflicted with a concurrent one; retry",
                code="storage.serialization_failure",
                detail={**base, "retry_after": 1},
            )
        if state == "25006":
            return ReadOnlyViolationError("write attempted in a read-only transaction", detail=base)
        if state.startswith(("08", "57P")) or (
            not state and isinstance(exc, self._psycopg.OperationalError)
        ):
            return StorageUnavailableError("lost the connection to PostgreSQL", detail=base)
        if state.startswith(("42", "22")) or isinstance(
            exc, self._psycopg.ProgrammingError | self._psycopg.InterfaceError
        ):
            return QueryError("invalid SQL statement or parameters", detail=base)
        return StorageError("database error", detail=base)

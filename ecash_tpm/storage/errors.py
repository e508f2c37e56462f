"""Typed errors of the data layer, identical for SQLite and PostgreSQL.

Domain code must be able to branch on *what* went wrong (a duplicate serial is a double spend,
a serialization failure is worth a retry) without knowing which database is underneath, so each
backend's driver exceptions are translated into these classes at the boundary. Messages never
carry row values (they may be secrets or personal data); the driver's exception stays chained as
``__cause__`` for the logs.
"""

from __future__ import annotations

from ecash_tpm.errors import ConflictError, StorageError


class UniqueViolationError(ConflictError):
    """An INSERT/UPDATE hit a UNIQUE or PRIMARY KEY constraint.

    ``detail`` holds ``backend``, ``table``, ``columns`` and (PostgreSQL only) ``constraint`` so
    that domain code can turn it into a 409 or an idempotent replay.
    """

    code = "storage.unique_violation"


class ConstraintViolationError(StorageError):
    """Any other integrity constraint failed (NOT NULL, CHECK, FOREIGN KEY): a bug, not a race."""

    code = "storage.constraint_violation"


class StorageBusyError(StorageError):
    """The database could not serialize this transaction right now; retrying may succeed.

    Raised for SQLite ``SQLITE_BUSY`` after the busy timeout, PostgreSQL serialization failures
    and deadlocks (code ``storage.serialization_failure``) and an exhausted connection pool.
    ``detail["retry_after"]`` makes the HTTP layer send ``Retry-After``.
    """

    code = "storage.busy"
    http_status = 503


class StorageUnavailableError(StorageError):
    """The database cannot be opened or reached (missing directory, server down, broken link)."""

    code = "storage.unavailable"
    http_status = 503


class DatabaseReadOnlyError(StorageUnavailableError):
    """A write transaction found the database unwritable (read-only file or replica, a
    ``default_transaction_read_only`` server): 503, not 500, since the operator must act and
    the same request may succeed on another node or later."""

    code = "storage.database_read_only"


class IntegrityCheckError(StorageError):
    """The start-up integrity check found damage (a corrupt page or index, spent serials whose
    transcript names another coin): the service refuses to start rather than book on it."""

    code = "storage.integrity_failed"
    http_status = 503


class ReadOnlyViolationError(StorageError):
    """A statement tried to write inside :meth:`Database.read`."""

    code = "storage.read_only"


class QueryError(StorageError):
    """A statement is invalid (syntax, unknown table, missing parameter): a programming error."""

    code = "storage.query_invalid"


class TransactionAbortedError(StorageError):
    """A statement failed inside a transaction, the error was swallowed, and the block went on.

    PostgreSQL silently turns COMMIT of such a transaction into ROLLBACK; we refuse on both
    backends instead, so the caller never believes something was written that was not. Use
    ``tx.savepoint()`` around a statement whose failure you want to handle and continue.
    """

    code = "storage.transaction_aborted"


class MigrationError(StorageError):
    """A migration list is malformed, does not match what the database recorded, or failed."""

    code = "storage.migration_failed"


class SchemaTooNewError(MigrationError):
    """The database was migrated by newer code than this one; running would corrupt it."""

    code = "storage.schema_too_new"


class DatabaseMissingError(StorageUnavailableError):
    """The database named by the configuration does not exist, and this command may not make it.

    Read-only and administrative commands open with ``must_exist=True``: a typo in a path, or a
    forgotten ``database_url``, must not silently create (and then report on) an empty database.
    PostgreSQL's "database does not exist" is reported with this code on every open.
    """

    code = "storage.database_missing"


class SchemaMissingError(StorageError):
    """The database exists but holds no schema of the component (never migrated: not its data).

    An empty PostgreSQL database, or a SQLite file of another party, would otherwise answer every
    question with "nothing" (a ledger with no entries is balanced).
    """

    code = "storage.schema_missing"
    http_status = 503

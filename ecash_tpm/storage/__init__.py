"""Storage for every party: SQLite by default, PostgreSQL for larger deployments, one API.

See :mod:`ecash_tpm.storage.database` for transactions, :mod:`ecash_tpm.storage.migrations` for
schema versions and :mod:`ecash_tpm.storage.sql` for the portable SQL dialect.
"""

from ecash_tpm.storage.database import (
    Database,
    NewSqliteFiles,
    Row,
    Transaction,
    discard_new_sqlite_on_failure,
    discard_sqlite_files,
    sqlite_path,
    sqlite_url,
)
from ecash_tpm.storage.errors import (
    ConstraintViolationError,
    DatabaseMissingError,
    DatabaseReadOnlyError,
    IntegrityCheckError,
    MigrationError,
    QueryError,
    ReadOnlyViolationError,
    SchemaMissingError,
    SchemaTooNewError,
    StorageBusyError,
    StorageUnavailableError,
    TransactionAbortedError,
    UniqueViolationError,
)
from ecash_tpm.storage.migrations import (
    Migration,
    migrations_from_dir,
    migrations_from_package,
    normalize_migrations,
)

__all__ = [
    "ConstraintViolationError",
    "Database",
    "DatabaseMissingError",
    "DatabaseReadOnlyError",
    "IntegrityCheckError",
    "Migration",
    "MigrationError",
    "NewSqliteFiles",
    "QueryError",
    "ReadOnlyViolationError",
    "Row",
    "SchemaMissingError",
    "SchemaTooNewError",
    "StorageBusyError",
    "StorageUnavailableError",
    "Transaction",
    "TransactionAbortedError",
    "UniqueViolationError",
    "discard_new_sqlite_on_failure",
    "discard_sqlite_files",
    "migrations_from_dir",
    "migrations_from_package",
    "normalize_migrations",
    "sqlite_path",
    "sqlite_url",
]

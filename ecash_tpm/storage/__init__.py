"""Storage for every party: SQLite by default, PostgreSQL for larger deployments, one API.

See :mod:`ecash_tpm.storage.database` for transactions, :mod:`ecash_tpm.storage.migrations` for
schema versions and :mod:`ecash_tpm.storage.sql` for the portable SQL dialect.
"""

from ecash_tpm.storage.database import Database, Row, Transaction, sqlite_url
from ecash_tpm.storage.errors import (
    ConstraintViolationError,
    MigrationError,
    QueryError,
    ReadOnlyViolationError,
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
    "Migration",
    "MigrationError",
    "QueryError",
    "ReadOnlyViolationError",
    "Row",
    "SchemaTooNewError",
    "StorageBusyError",
    "StorageUnavailableError",
    "Transaction",
    "TransactionAbortedError",
    "UniqueViolationError",
    "migrations_from_dir",
    "migrations_from_package",
    "normalize_migrations",
    "sqlite_url",
]

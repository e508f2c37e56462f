"""Numbered schema migrations per component (Cashu-style, without a framework).

Each party ships an ordered list of migrations, either in code::

    MIGRATIONS = [
        (1, "accounts", "CREATE TABLE account (id {pk}, name TEXT NOT NULL UNIQUE, ...);"),
        (2, "spent", "CREATE TABLE spent (sigma {blob} PRIMARY KEY, ...);"),
    ]

or as files ``NNNN_name.sql`` in a package directory (:func:`migrations_from_package`).
Rules, checked before anything runs: versions are 1, 2, 3, ... without gaps or duplicates, names
are ``[a-z0-9_]+``. ``db.migrate(MIGRATIONS, component="bank")`` then

- records applied versions in ``schema_migrations(component, version, name, applied_at)``
  (``applied_at`` in Unix seconds), so several components can share one database;
- refuses a database whose recorded version is higher than the code knows
  (:class:`SchemaTooNewError`) — running old code on a newer schema would corrupt it — and one
  whose recorded names differ from the code's (a renumbered or edited history);
- applies each pending migration in its own transaction together with its record, so a failing
  migration leaves neither half a schema nor a record; concurrent starters are serialized
  (SQLite write lock / PostgreSQL advisory lock) and each version is applied exactly once.

Migrations are forward-only; type tokens ``{blob}``/``{pk}`` are described in
:mod:`ecash_tpm.storage.sql`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.errors import StorageError
from ecash_tpm.storage.errors import MigrationError, SchemaTooNewError
from ecash_tpm.storage.sql import substitute_types

if TYPE_CHECKING:
    from ecash_tpm.storage.database import Database, Transaction

_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_COMPONENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (component, version)
)
"""


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` (1, 2, ...), a short ``name`` and its SQL script."""

    version: int
    name: str
    sql: str


def normalize_migrations(migrations: Iterable[Migration | Sequence[Any]]) -> list[Migration]:
    """Validate a migration list and return it as sorted :class:`Migration` objects."""
    result: list[Migration] = []
    for item in migrations:
        if isinstance(item, Migration):
            mig = item
        else:
            if isinstance(item, str | bytes) or len(item) != 3:
                raise MigrationError("a migration is (version, name, sql)")
            mig = Migration(*item)
        if isinstance(mig.version, bool) or not isinstance(mig.version, int) or mig.version < 1:
            raise MigrationError(
                "migration versions are positive integers", detail={"version": repr(mig.version)}
            )
        if not isinstance(mig.name, str) or not _NAME_RE.match(mig.name):
            raise MigrationError(
                "migration names match [a-z0-9_]+", detail={"version": mig.version}
            )
        if not isinstance(mig.sql, str) or not mig.sql.strip():
            raise MigrationError("migration SQL is empty", detail={"version": mig.version})
        result.append(mig)
    result.sort(key=lambda m: m.version)
    expected = list(range(1, len(result) + 1))
    actual = [m.version for m in result]
    if actual != expected:
        raise MigrationError(
            "migration versions must be 1..N without gaps or duplicates",
            detail={"versions": actual},
        )
    return result


def migrations_from_dir(directory: str | Path | Traversable) -> list[Migration]:
    """Load ``NNNN_name.sql`` files; any other ``*.sql`` file there is an error, not ignored."""
    root: Traversable = Path(directory) if isinstance(directory, str | Path) else directory
    if not root.is_dir():
        raise MigrationError("migration directory not found", detail={"path": str(directory)})
    found: list[Migration] = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.match(entry.name)
        if match is None:
            raise MigrationError(
                "migration files are named NNNN_name.sql", detail={"file": entry.name}
            )
        found.append(
            Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
        )
    return normalize_migrations(found)


def migrations_from_package(package: str) -> list[Migration]:
    """Load the ``NNNN_name.sql`` files shipped inside a package, e.g. ``ecash_tpm.bank.sql``."""
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise MigrationError("migration package not found", detail={"package": package}) from exc
    return migrations_from_dir(root)


def _ensure_table(tx: Transaction) -> None:
    tx.execute_script(_CREATE_TABLE)


def _recorded(tx: Transaction, component: str) -> dict[int, str]:
    rows = tx.fetchall(
        "SELECT version, name FROM schema_migrations WHERE component = :c ORDER BY version",
        {"c": component},
    )
    return {int(r["version"]): str(r["name"]) for r in rows}


def _check_compatible(component: str, recorded: dict[int, str], code: list[Migration]) -> None:
    latest = len(code)
    db_version = max(recorded, default=0)
    if db_version > latest:
        raise SchemaTooNewError(
            f"the {component} database schema (version {db_version}) is newer than this code "
            f"(version {latest}); upgrade the software instead of downgrading the database",
            detail={"component": component, "db_version": db_version, "code_version": latest},
        )
    by_version = {m.version: m.name for m in code}
    for version, name in recorded.items():
        if by_version.get(version) != name:
            raise MigrationError(
                "the database's migration history does not match the code",
                code="storage.migration_mismatch",
                detail={
                    "component": component,
                    "version": version,
                    "db_name": name,
                    "code_name": by_version.get(version),
                },
            )


def apply_migrations(
    db: Database, migrations: Iterable[Migration | Sequence[Any]], *, component: str
) -> list[int]:
    """Implementation of :meth:`Database.migrate`."""
    if not isinstance(component, str) or not _COMPONENT_RE.match(component):
        raise MigrationError(
            "component names match [a-z][a-z0-9_]*", detail={"component": component}
        )
    code = normalize_migrations(migrations)
    with db._migration_transaction() as tx:
        _ensure_table(tx)
        _check_compatible(component, _recorded(tx, component), code)
    applied: list[int] = []
    for mig in code:
        script = substitute_types(mig.sql, db.backend)
        with db._migration_transaction() as tx:
            recorded = _recorded(tx, component)  # re-read under the lock: others may have run
            _check_compatible(component, recorded, code)
            if mig.version in recorded:
                continue
            try:
                tx.execute_script(script)
            except StorageError as exc:
                raise MigrationError(
                    f"migration {component} {mig.version:04d}_{mig.name} failed",
                    detail={"component": component, "version": mig.version, "cause": exc.code},
                ) from exc
            tx.execute(
                "INSERT INTO schema_migrations (component, version, name, applied_at) "
                "VALUES (:component, :version, :name, :applied_at)",
                {
                    "component": component,
                    "version": mig.version,
                    "name": mig.name,
                    "applied_at": int(time.time()),
                },
            )
        applied.append(mig.version)
    return applied


def current_version(db: Database, component: str) -> int:
    """The highest recorded version of ``component``; 0 for a fresh database."""
    with db._migration_transaction() as tx:
        _ensure_table(tx)
        value = tx.fetchval(
            "SELECT MAX(version) AS v FROM schema_migrations WHERE component = :c",
            {"c": component},
        )
    return int(value or 0)


def recorded_version(db: Database, component: str) -> int:
    """Like :func:`current_version` but read-only: 0 also when there is no migration table."""
    from ecash_tpm.storage.errors import QueryError

    try:
        with db.read() as tx:
            value = tx.fetchval(
                "SELECT MAX(version) AS v FROM schema_migrations WHERE component = :c",
                {"c": component},
            )
    except QueryError:  # no schema_migrations table: nothing was ever migrated here
        return 0
    return int(value or 0)

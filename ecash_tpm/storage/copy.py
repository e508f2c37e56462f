"""Copy a party's database to another one (SQLite <-> PostgreSQL), rows, keys and sequences.

Why this exists: a party that outgrows SQLite must not be moved by re-initialising it (``init
--force`` makes a new identity and new keysets, orphaning every coin already issued). The
only correct move keeps every row as it is::

    report = copy_database(source, target, [("bank", MIGRATIONS)])

What it does, in order:

1. brings the **source** to the code's schema version (what every administrative command
   does anyway), so both sides have exactly the same tables;
2. derives the tables, their columns, primary keys and foreign-key order from the
   components' **migrations** (run on a private in-memory SQLite): identifiers in the copy's
   SQL come only from there, quoted by :func:`quote_identifier`, and values are always bound;
3. refuses a **target** with rows in any of those tables (:class:`CopyTargetNotEmptyError`);
   a target that has the empty schema already is fine; then migrates the target;
4. copies every table in foreign-key order, in batches paged by primary key, inside **one
   write transaction** on the target and one read snapshot of the source; primary keys keep
   their values, and each ``{pk}`` column's sequence continues after the copied ids (and after
   the source's own high-water mark, so ids of deleted rows are not handed out again);
5. before committing, reads every table back and compares the row count and a content digest
   with the source's (:class:`CopyVerificationError` rolls everything back).

The digest of a table is the sum modulo 2**256 of the SHA-256 of each row's canonical encoding
(column order, typed values): independent of row order, so the two backends' different text
collations do not matter. Only the database is copied: key files are never touched.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from ecash_tpm.errors import ConfigError, ConflictError, StorageError
from ecash_tpm.storage.database import Database, Transaction
from ecash_tpm.storage.migrations import Migration, normalize_migrations
from ecash_tpm.storage.sql import split_sqlite_script, substitute_types

__all__ = [
    "ComponentMigrations",
    "CopyReport",
    "CopySameDatabaseError",
    "CopySchemaError",
    "CopyTargetNotEmptyError",
    "CopyVerificationError",
    "TableCopy",
    "TablePlan",
    "copy_database",
    "plan_tables",
    "quote_identifier",
    "same_database",
]

#: ``(component, migrations)`` as a party passes them to :meth:`Database.migrate`.
ComponentMigrations = tuple[str, Sequence[Migration | tuple[int, str, str]]]

DEFAULT_BATCH = 500
_IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_MOD = 2**256


class CopySameDatabaseError(ConfigError):
    """Source and target are the same database: the copy would read what it writes."""

    code = "storage.copy_same_database"


class CopyTargetNotEmptyError(ConflictError):
    """The target already holds rows of the party's tables; merging two histories is never
    correct for money (``detail["tables"]`` names them with their row counts)."""

    code = "storage.copy_target_not_empty"


class CopySchemaError(StorageError):
    """The migrations or one side's tables do not describe a copyable schema."""

    code = "storage.copy_schema"


class CopyVerificationError(StorageError):
    """Rows read back from the target differ from the source's; nothing was committed."""

    code = "storage.copy_mismatch"


def quote_identifier(name: str) -> str:
    """``"name"`` for a lower-case table or column name taken from the migrations.

    Only names of the form ``[a-z_][a-z0-9_]*`` are accepted: they come from the schema, never
    from a user, and quoting them keeps reserved words (``value``, ``at``) harmless.
    """
    if not _IDENTIFIER_RE.match(name):
        raise CopySchemaError("not a plain identifier", detail={"identifier": name})
    return '"' + name + '"'


# --- the schema, from the migrations -----------------------------------------------------------


@dataclass(frozen=True)
class TablePlan:
    """One table to copy: its columns in order, its primary key and its ``{pk}`` column."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    serial: str | None  # the AUTOINCREMENT / identity column, whose sequence must continue

    def select(self, *, after: bool, limit: bool) -> str:
        """``SELECT cols FROM t [WHERE key > :k..] ORDER BY key [LIMIT :limit]``."""
        cols = ", ".join(quote_identifier(c) for c in self.columns)
        keys = [quote_identifier(c) for c in self.key]
        # identifiers from the migrations, quoted; values are bound (:k.., :limit)
        sql = "SELECT " + cols + " FROM " + quote_identifier(self.name)  # noqa: S608
        if after:
            names = [":k" + str(i) for i in range(len(keys))]
            if len(keys) == 1:
                sql += " WHERE " + keys[0] + " > " + names[0]
            else:
                sql += " WHERE (" + ", ".join(keys) + ") > (" + ", ".join(names) + ")"
        sql += " ORDER BY " + ", ".join(keys)
        return sql + (" LIMIT :limit" if limit else "")

    def insert(self) -> str:
        cols = ", ".join(quote_identifier(c) for c in self.columns)
        values = ", ".join(":v" + str(i) for i in range(len(self.columns)))
        table = quote_identifier(self.name)
        return "INSERT INTO " + table + " (" + cols + ") VALUES (" + values + ")"  # noqa: S608

    def count(self) -> str:
        return "SELECT COUNT(*) AS n FROM " + quote_identifier(self.name)  # noqa: S608


def plan_tables(components: Sequence[ComponentMigrations]) -> list[TablePlan]:
    """The tables the components' migrations create, parents before children.

    The migrations run on a throwaway in-memory SQLite (they are portable by construction), so
    the plan is exactly what the code defines, whatever else a shared database may hold.
    """
    conn = sqlite3.connect(":memory:")
    try:
        for _component, migrations in components:
            for migration in normalize_migrations(migrations):
                for statement in split_sqlite_script(substitute_types(migration.sql, "sqlite")):
                    conn.execute(statement)
        tables = [
            (str(name), str(sql or ""))
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite%' ORDER BY rowid"
            )
        ]
        plans: dict[str, TablePlan] = {}
        parents: dict[str, set[str]] = {}
        for name, create_sql in tables:
            info = conn.execute(
                "SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid", (name,)
            ).fetchall()
            columns = tuple(str(c[0]).lower() for c in info)
            key = tuple(str(c[0]).lower() for c in sorted(info, key=lambda c: c[2]) if c[2])
            if not key:
                raise CopySchemaError("table without a primary key", detail={"table": name})
            serial = None
            if len(key) == 1 and "AUTOINCREMENT" in create_sql.upper():
                serial = key[0]
            plans[name.lower()] = TablePlan(name.lower(), columns, key, serial)
            refs = conn.execute('SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)', (name,))
            parents[name.lower()] = {str(r[0]).lower() for r in refs} - {name.lower()}
    finally:
        conn.close()
    for plan in plans.values():
        quote_identifier(plan.name)  # every name must be plain before any SQL is built
        for column in plan.columns:
            quote_identifier(column)
    return [plans[name] for name in _parents_first(list(plans), parents)]


def _parents_first(names: list[str], parents: Mapping[str, set[str]]) -> list[str]:
    """Creation order, moved only as far as foreign keys require (stable topological sort)."""
    done: list[str] = []
    placed: set[str] = set()
    pending = list(names)
    while pending:
        ready = [n for n in pending if parents[n] & set(names) <= placed]
        if not ready:
            raise CopySchemaError("foreign keys form a cycle", detail={"tables": pending})
        first = ready[0]
        done.append(first)
        placed.add(first)
        pending.remove(first)
    return done


# --- digests -------------------------------------------------------------------------------------


def _encode(value: Any) -> bytes:
    """A value's canonical bytes, equal for what both drivers return for the same datum."""
    if value is None:
        return b"N"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, int):
        data, tag = str(value).encode("ascii"), b"I"
    elif isinstance(value, float | Decimal):
        data, tag = repr(float(value)).encode("ascii"), b"F"
    elif isinstance(value, str):
        data, tag = value.encode("utf-8"), b"S"
    elif isinstance(value, bytes | bytearray | memoryview):
        data, tag = bytes(value), b"B"
    else:
        raise CopySchemaError(
            "a column holds a value of an unsupported type", detail={"type": type(value).__name__}
        )
    return tag + len(data).to_bytes(8, "big") + data


def _row_digest(values: Sequence[Any]) -> int:
    h = hashlib.sha256()
    for value in values:
        h.update(_encode(value))
    return int.from_bytes(h.digest(), "big")


@dataclass
class _Tally:
    rows: int = 0
    digest: int = 0
    max_serial: int = 0

    def add(self, values: Sequence[Any], serial_index: int | None) -> None:
        self.rows += 1
        self.digest = (self.digest + _row_digest(values)) % _MOD
        if serial_index is not None and isinstance(values[serial_index], int):
            self.max_serial = max(self.max_serial, values[serial_index])


def _pages(tx: Transaction, plan: TablePlan, batch: int) -> Iterator[list[list[Any]]]:
    """The table's rows in primary-key order, ``batch`` at a time (keyset pagination)."""
    key_index = [plan.columns.index(k) for k in plan.key]
    params: dict[str, Any] = {"limit": batch}
    sql = plan.select(after=False, limit=True)
    while True:
        rows = [list(r.values()) for r in tx.fetchall(sql, params)]
        if rows:
            yield rows
        if len(rows) < batch:
            return
        last = rows[-1]
        params = {"limit": batch, **{"k" + str(i): last[j] for i, j in enumerate(key_index)}}
        sql = plan.select(after=True, limit=True)


# --- the copy -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableCopy:
    """What was copied into one table and verified on the target."""

    table: str
    rows: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "digest": self.digest}


@dataclass(frozen=True)
class CopyReport:
    """The outcome of :func:`copy_database` (URLs with passwords redacted)."""

    source: str
    target: str
    schema_versions: dict[str, int]
    tables: tuple[TableCopy, ...]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "schema_versions": dict(self.schema_versions),
            "tables": [t.to_dict() for t in self.tables],
            "rows_total": self.rows,
        }


def same_database(source_url: str, target_url: str) -> bool:
    """Whether two URLs name the same database (same SQLite file, or same server and name)."""
    from pathlib import Path

    if source_url.startswith("sqlite:///") and target_url.startswith("sqlite:///"):
        a = Path(source_url[len("sqlite:///") :]).expanduser().resolve()
        b = Path(target_url[len("sqlite:///") :]).expanduser().resolve()
        return a == b
    a_url, b_url = urlsplit(source_url), urlsplit(target_url)
    if a_url.scheme.startswith("postgres") and b_url.scheme.startswith("postgres"):
        return (a_url.hostname, a_url.port or 5432, a_url.path) == (
            b_url.hostname,
            b_url.port or 5432,
            b_url.path,
        )
    return False


def copy_database(
    source: Database,
    target: Database,
    components: Sequence[ComponentMigrations],
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[str, int, int], None] | None = None,
) -> CopyReport:
    """Copy every table of ``components`` from ``source`` to ``target``; see the module doc.

    Raises :class:`CopyTargetNotEmptyError` before writing anything if the target has rows,
    :class:`CopyVerificationError` (rolled back) if a table reads back differently.
    """
    if batch_size < 1:
        raise StorageError("batch_size must be at least 1")
    if same_database(source.url, target.url):
        raise CopySameDatabaseError(
            "source and target are the same database", detail={"url": target.url}
        )
    for component, migrations in components:
        source.migrate(migrations, component=component)
    plans = plan_tables(components)
    with source.read() as tx:
        _check_columns(tx, plans, "source")
    with target.read() as tx:
        _refuse_rows(tx, plans)
    for component, migrations in components:
        target.migrate(migrations, component=component)
    tables: list[TableCopy] = []
    with source.read() as src, target.transaction() as dst:
        _check_columns(dst, plans, "target")
        _refuse_rows(dst, plans)  # again, under the write lock: nobody slipped in
        for done, plan in enumerate(plans):
            if progress is not None:
                progress("copying " + plan.name, done, len(plans))
            tables.append(_copy_table(src, dst, plan, batch_size))
        if progress is not None:
            progress("copied", len(plans), len(plans))
    versions = {name: target.schema_version(name) for name, _ in components}
    return CopyReport(source.url, target.url, versions, tuple(tables))


def _copy_table(src: Transaction, dst: Transaction, plan: TablePlan, batch: int) -> TableCopy:
    serial_index = plan.columns.index(plan.serial) if plan.serial is not None else None
    sent = _Tally()
    insert = plan.insert()
    for rows in _pages(src, plan, batch):
        for values in rows:
            sent.add(values, serial_index)
        dst.executemany(insert, [{"v" + str(i): v for i, v in enumerate(r)} for r in rows])
    back = _Tally()
    for rows in _pages(dst, plan, batch):
        for values in rows:
            back.add(values, serial_index)
    if (back.rows, back.digest) != (sent.rows, sent.digest):
        raise CopyVerificationError(
            "a table reads back differently from the source; nothing was committed",
            detail={
                "table": plan.name,
                "source_rows": sent.rows,
                "target_rows": back.rows,
                "digest_equal": back.digest == sent.digest,
            },
        )
    if plan.serial is not None:
        high = max(sent.max_serial, _high_water(src, plan.name, plan.serial))
        _continue_sequence(dst, plan.name, plan.serial, high)
    return TableCopy(plan.name, sent.rows, format(sent.digest, "064x"))


# --- catalog and sequences (the only statements that differ per backend) ----------------------


def _table_exists(tx: Transaction, table: str) -> bool:
    if tx.backend == "sqlite":
        sql = "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = :t"
    else:
        sql = (
            "SELECT COUNT(*) AS n FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = :t"
        )
    return bool(tx.fetchval(sql, {"t": table}))


def _columns(tx: Transaction, table: str) -> set[str]:
    if tx.backend == "sqlite":
        rows = tx.fetchall("SELECT name FROM pragma_table_info(:t)", {"t": table})
        return {str(r["name"]).lower() for r in rows}
    rows = tx.fetchall(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = :t",
        {"t": table},
    )
    return {str(r["column_name"]).lower() for r in rows}


def _check_columns(tx: Transaction, plans: Sequence[TablePlan], side: str) -> None:
    """Both sides must hold exactly the columns the migrations define (a hand-edited schema
    would otherwise lose a column silently)."""
    for plan in plans:
        found = _columns(tx, plan.name)
        if found != set(plan.columns):
            raise CopySchemaError(
                f"the {side} table does not match the migrations",
                detail={
                    "side": side,
                    "table": plan.name,
                    "missing": sorted(set(plan.columns) - found),
                    "extra": sorted(found - set(plan.columns)),
                },
            )


def _refuse_rows(tx: Transaction, plans: Sequence[TablePlan]) -> None:
    filled: dict[str, int] = {}
    for plan in plans:
        if _table_exists(tx, plan.name):
            n = int(tx.fetchval(plan.count()) or 0)
            if n:
                filled[plan.name] = n
    if filled:
        raise CopyTargetNotEmptyError(
            "the target database already holds data of this party; copy only into an empty "
            "database (or one with the empty schema)",
            detail={"tables": filled},
        )


def _high_water(tx: Transaction, table: str, column: str) -> int:
    """The largest id the source's sequence ever handed out (0 if unknown)."""
    if tx.backend == "sqlite":
        value = tx.fetchval("SELECT seq FROM sqlite_sequence WHERE name = :t", {"t": table})
    else:
        value = tx.fetchval(
            "SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence(:t, :c) AS regclass))",
            {"t": quote_identifier(table), "c": column},
        )
    return int(value or 0)


def _continue_sequence(tx: Transaction, table: str, column: str, high: int) -> None:
    """Make the target's next generated id ``high + 1``."""
    if high < 1:
        return
    if tx.backend == "sqlite":
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT :t, :v "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = :t)",
            {"t": table, "v": high},
        )
        tx.execute(
            "UPDATE sqlite_sequence SET seq = :v WHERE name = :t AND seq < :v",
            {"t": table, "v": high},
        )
        return
    sequence = tx.fetchval(
        "SELECT pg_get_serial_sequence(:t, :c)", {"t": quote_identifier(table), "c": column}
    )
    if sequence is None:
        raise CopySchemaError(
            "the target's id column has no sequence", detail={"table": table, "column": column}
        )
    tx.fetchval(
        "SELECT setval(CAST(:s AS regclass), CAST(:v AS BIGINT), true)",
        {"s": str(sequence), "v": high},
    )

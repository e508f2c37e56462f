"""Opening a party's database as its settings say, with the checks that make mistakes loud.

Three ways to open, by what the command is allowed to assume:

- ``"create"``: a service's first start makes its database (SQLite file, schema) — ``serve`` of
  the parties whose ``init`` makes no database;
- ``"existing"``: commands that change a party's data (``bank account create``, ``deploy
  register-merchant``, ``bank serve``) need the database its ``init`` made;
- ``"read"``: read-only views (``issuer members``, ``ttp stats``, ``bank ledger``) need it too.

The last two never create anything: a missing database is ``storage.database_missing`` and one
without the party's schema (an empty PostgreSQL database, another party's file) is
``storage.schema_missing``. All three apply pending migrations of an existing schema.

A data directory remembers the database it was last used with when that was not the default
SQLite file (``<data_dir>/<section>-database.json``, the URL without its password). If a later
command falls back to the default because ``database_url`` is not configured (a forgotten
``ECASH_TPM_BANK_DATABASE_URL`` in an operator's shell), it is refused with
``config.database_mismatch`` instead of working on a stale or empty SQLite file next to the keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.errors import ConfigError
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.storage import (
    Database,
    DatabaseMissingError,
    Migration,
    SchemaMissingError,
    sqlite_path,
)

__all__ = ["DatabaseMismatchError", "Mode", "describe_url", "marker_path", "open_party_database"]

Mode = Literal["create", "existing", "read"]
MARKER_SUFFIX = "-database.json"


class DatabaseMismatchError(ConfigError):
    """The data directory belongs to another database than the one configured now."""

    code = "config.database_mismatch"


def describe_url(url: str) -> str:
    """The URL as it may appear in messages and files: PostgreSQL passwords replaced."""
    if sqlite_path(url) is not None:
        return url
    from ecash_tpm.storage._postgres import redact_url

    return redact_url(url)


def marker_path(settings: ServiceSettings) -> Path:
    """Where the data directory records its (non-default) database."""
    return settings.data_dir / f"{settings.section}{MARKER_SUFFIX}"


def _env_name(section: str) -> str:
    return f"ECASH_TPM_{section.upper()}_DATABASE_URL"


def _recorded(settings: ServiceSettings) -> str | None:
    path = marker_path(settings)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", detail={"path": str(path)}) from exc
    url = doc.get("database_url") if isinstance(doc, dict) else None
    return url if isinstance(url, str) else None


def _check_marker(settings: ServiceSettings) -> None:
    if not settings.uses_default_database():
        return
    recorded = _recorded(settings)
    if recorded is None or recorded == settings.database_url:
        return
    section = settings.section
    raise DatabaseMismatchError(
        f"the {section} data directory {settings.data_dir} was used with the database "
        f"{recorded}, but no database_url is configured now (is ${_env_name(section)} set?)",
        detail={
            "configured": settings.database_url,
            "recorded": recorded,
            "marker": str(marker_path(settings)),
            "hint": f"configure [{section}] database_url or ${_env_name(section)}; delete the "
            "marker file only to use the default SQLite file again",
        },
    )


def _record(settings: ServiceSettings) -> None:
    if settings.uses_default_database() or not settings.data_dir.is_dir():
        return
    url = describe_url(settings.database_url)
    if _recorded(settings) == url:
        return
    doc = {"database_url": url, "recorded_at": int(time.time())}
    write_file_atomic(
        marker_path(settings), (json.dumps(doc, indent=2) + "\n").encode("utf-8"), mode=0o600
    )


def _missing(settings: ServiceSettings, exc: DatabaseMissingError, hint: str | None) -> Exception:
    section = settings.section
    detail: dict[str, Any] = {**exc.detail, "database": describe_url(settings.database_url)}
    if settings.uses_default_database():
        message = (
            f"no database is configured for [{section}] and the default "
            f"{sqlite_path(settings.database_url)} does not exist"
        )
        configure = f"give --config FILE (or $ECASH_TPM_CONFIG) or ${_env_name(section)}"
        detail["hint"] = f"{configure}; {hint}" if hint else configure
    else:
        message = f"the {section} database does not exist"
        if hint:
            detail["hint"] = hint
    err = DatabaseMissingError(message, detail=detail)
    err.__cause__ = exc
    return err


def open_party_database(
    settings: ServiceSettings,
    migrations: Sequence[Migration | tuple[int, str, str]],
    *,
    mode: Mode,
    component: str | None = None,
    hint: str | None = None,
) -> Database:
    """Open ``settings.database_url`` for ``mode`` and migrate it as ``component``.

    ``hint`` says how the database comes to exist (``"run `ecash-tpm bank init` first"``); it
    is added to ``storage.database_missing`` and ``storage.schema_missing`` errors. The caller
    owns (closes) the returned database.
    """
    name = component or settings.section
    _check_marker(settings)
    try:
        db = Database.open(
            settings.database_url,
            must_exist=mode != "create",
            lock_timeout_s=settings.db_lock_timeout_s,
        )
    except DatabaseMissingError as exc:
        raise _missing(settings, exc, hint) from exc
    try:
        if mode != "create":
            try:
                db.require_schema(name)
            except SchemaMissingError as exc:
                if hint:
                    exc.detail.setdefault("hint", hint)
                raise
        db.migrate(migrations, component=name)
        if mode != "read":
            _record(settings)
    except BaseException:
        db.close()
        raise
    return db

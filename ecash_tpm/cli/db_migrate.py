"""``ecash-tpm <party> db migrate --to URL``: move a party's database to another backend.

Not a role of its own (deliberately not named ``*_cmd``, so the role discovery of
:mod:`ecash_tpm.cli` skips it): each party's ``register()`` calls
:func:`add_db_commands` so the same command exists for every party with a database::

    ecash-tpm bank db migrate --config ecash-tpm.toml --to postgresql://bank@db/bank [--json]

Why a command: re-initialising a party on the new database (``init --force``) makes a new
identity and new keysets, so every coin already issued becomes ``coin.unknown_keyset``. This
copies the rows instead (:func:`ecash_tpm.storage.copy.copy_database`: every table of the
party's components, foreign-key order, one transaction on the target, ids and sequences kept,
counts and digests verified), then runs the party's own consistency check on the target (the
bank: its ledger). The source is read, never changed (beyond bringing its schema up to date,
as every administrative command does); key files are not touched: they stay in the data
directory, which the party keeps using. Stop the party first, then point its
``database_url`` at the target and start it again.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecash_tpm.cli.output import Progress, emit
from ecash_tpm.errors import ConfigError, EcashError, StorageError

__all__ = ["PARTIES", "CopyCheckError", "PartyDatabase", "add_db_commands"]

Components = list[tuple[str, Any]]
Check = Callable[[Any], tuple[dict[str, Any], str]]


class CopyCheckError(StorageError):
    """The copy was committed but the party's own check failed on the target."""

    code = "storage.copy_check_failed"


def _bank_settings() -> type[Any]:
    from ecash_tpm.bank.settings import BankSettings

    return BankSettings


def _bank_components() -> Components:
    from ecash_tpm.bank.store import MIGRATIONS, redeems, refunds, swap_reports, swaps

    # swaps, refunds and redeems (issue 12) are money records: they travel with the ledger
    # they are booked in (ledger_check on the target reads them)
    return [
        ("bank", MIGRATIONS),
        (swaps.COMPONENT, swaps.MIGRATIONS),
        (refunds.COMPONENT, refunds.MIGRATIONS),
        (redeems.COMPONENT, redeems.MIGRATIONS),
        (swap_reports.COMPONENT, swap_reports.MIGRATIONS),  # §9.3: after bank_swap (its FK)
    ]


def _bank_check(db: Any) -> tuple[dict[str, Any], str]:
    """The bank's ledger invariants, re-derived on the target from entries and coin tables."""
    from ecash_tpm.bank.ledger import ledger_check

    ledger = ledger_check(db)
    return {"ledger": ledger}, (
        f"ledger OK on the target: {ledger['transactions']} transactions, "
        f"{ledger['entries']} entries, coins outstanding {ledger['outstanding_total']}"
    )


def _issuer_settings() -> type[Any]:
    from ecash_tpm.issuer.settings import IssuerSettings

    return IssuerSettings


def _issuer_components() -> Components:
    from ecash_tpm.issuer.store import MIGRATIONS

    return [("issuer", MIGRATIONS)]


def _merchant_settings() -> type[Any]:
    from ecash_tpm.merchant.settings import MerchantSettings

    return MerchantSettings


def _merchant_components() -> Components:
    from ecash_tpm.merchant.store import (
        CATALOGUE_COMPONENT,
        CATALOGUE_MIGRATIONS,
        COMPONENT,
        MIGRATIONS,
    )

    return [(COMPONENT, MIGRATIONS), (CATALOGUE_COMPONENT, CATALOGUE_MIGRATIONS)]


def _supervision_settings() -> type[Any]:
    from ecash_tpm.supervision.settings import SupervisionSettings

    return SupervisionSettings


def _supervision_components() -> Components:
    from ecash_tpm.supervision.store import MIGRATIONS

    return [("supervision", MIGRATIONS)]


def _ttp_settings() -> type[Any]:
    from ecash_tpm.ttp.settings import TtpSettings

    return TtpSettings


def _ttp_components() -> Components:
    from ecash_tpm.ttp.store import COMPONENT, MIGRATIONS

    return [(COMPONENT, MIGRATIONS)]


def _centralbank_settings() -> type[Any]:
    from ecash_tpm.centralbank.settings import CentralBankSettings

    return CentralBankSettings


def _centralbank_components() -> Components:
    from ecash_tpm.centralbank.store import COMPONENT, MIGRATIONS

    return [(COMPONENT, list(MIGRATIONS))]


@dataclass(frozen=True)
class PartyDatabase:
    """What ``db migrate`` needs to know about one party (imports deferred until used)."""

    settings: Callable[[], type[Any]]
    components: Callable[[], Components]
    key_files: str  # what stays in the data directory, for the output
    check: Check | None = None


PARTIES: dict[str, PartyDatabase] = {
    "bank": PartyDatabase(
        _bank_settings,
        _bank_components,
        "bank.key, bank.crt, central-bank-root.pem and the keysets' RSA keys (keysets/)",
        _bank_check,
    ),
    "issuer": PartyDatabase(
        _issuer_settings,
        _issuer_components,
        "epoch secrets (issuer-keys/), signing key and certificate, EK trust store, PCR policy",
    ),
    "merchant": PartyDatabase(
        _merchant_settings,
        _merchant_components,
        "merchant-key.pem, merchant-cert.pem, central-bank-root.pem",
    ),
    "supervision": PartyDatabase(
        _supervision_settings,
        _supervision_components,
        "opener.key, supervision-key.pem, supervision-cert.pem",
    ),
    "ttp": PartyDatabase(
        _ttp_settings, _ttp_components, "ttp-key.pem, ttp-cert.pem, central-bank-root.pem"
    ),
    "centralbank": PartyDatabase(
        _centralbank_settings, _centralbank_components, "root-key.pem, root-cert.pem"
    ),
}


def _source_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def _cmd_migrate(args: argparse.Namespace) -> int:
    from ecash_tpm.service.settings import load_settings
    from ecash_tpm.storage import Database
    from ecash_tpm.storage.copy import CopySameDatabaseError, copy_database, same_database

    party: str = args.db_party
    spec = PARTIES[party]
    settings = load_settings(
        spec.settings(),
        path=args.config,
        overrides={"data_dir": args.data, "database_url": args.database_url},
    )
    source_url: str = settings.database_url
    if same_database(source_url, args.to):
        raise CopySameDatabaseError(
            "--to names the database the party already uses", detail={"party": party}
        )
    path = _source_path(source_url)
    if path is not None and not path.exists():  # opening would create an empty one
        raise ConfigError(
            f"the {party} has no database at {path} (wrong --data, --config or --database-url?)",
            code="storage.copy_no_source",
            detail={"path": str(path)},
        )
    checks: dict[str, Any] = {}
    lines: list[str] = []
    with Database.open(source_url, must_exist=True) as source, Database.open(args.to) as target:
        with Progress(args) as progress:
            report = copy_database(
                source,
                target,
                spec.components(),
                batch_size=args.batch_size,
                progress=progress,
            )
        if spec.check is not None:
            try:
                found, text = spec.check(target)
            except EcashError as exc:
                raise CopyCheckError(
                    f"the copy was committed, but the {party}'s check failed on the target: "
                    f"{exc.message} (the source is unchanged; empty the target before retrying)",
                    detail={"party": party, "cause": exc.code, "target": target.url},
                ) from exc
            checks.update(found)
            lines.append(text)
    section = party.upper()
    payload = {
        "party": party,
        **report.to_dict(),
        "checks": checks,
        "key_files": {
            "moved": False,
            "data_dir": str(settings.data_dir),
            "files": spec.key_files,
        },
        "next": (
            f"with the {party} still stopped, set database_url of [{party}] (or "
            f"ECASH_TPM_{section}_DATABASE_URL) to the target, then start it; keep the source "
            "as a backup, but never start the party on it again"
        ),
    }

    def human() -> str:
        text = [
            f"copied {party} from {report.source} to {report.target}: "
            f"{len(report.tables)} tables, {report.rows} rows (row counts and digests verified)"
        ]
        text += [f"  {t.table:<28} {t.rows:>9}" for t in report.tables]
        text += lines
        text.append(
            f"key files untouched: {spec.key_files} stay in {settings.data_dir} "
            "(the party keeps using them there)"
        )
        text.append("next: " + payload["next"])
        return "\n".join(text)

    emit(args, payload, human)
    return 0


def add_db_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], party: str
) -> argparse.ArgumentParser:
    """Add ``db migrate`` under ``party``'s sub-commands (``party`` is a key of PARTIES)."""
    if party not in PARTIES:
        raise ValueError(f"no database description for party {party!r}")
    db = sub.add_parser("db", help="the party's database (move it to another backend)")
    dsub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    p = dsub.add_parser(
        "migrate",
        help="copy every table to another database (e.g. SQLite -> PostgreSQL)",
        description=(
            f"Copy the {party}'s database (every table, ids and sequences kept, verified) into "
            "an empty database; key files stay where they are. Stop the party first."
        ),
    )
    p.add_argument(
        "--to", required=True, metavar="URL", help="target: postgresql://... or sqlite:///..."
    )
    p.add_argument("--config", default=None, metavar="FILE", help=f"TOML file with [{party}]")
    p.add_argument(
        "--data", "--data-dir", dest="data", type=Path, metavar="DIR", help="data directory"
    )
    p.add_argument("--database-url", default=None, metavar="URL", help="source (default: config)")
    p.add_argument("--batch-size", type=int, default=500, help="rows per batch (default 500)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_migrate, db_party=party)
    return p

"""``ecash-tpm bank ...``: set up, run and administer the bank.

    ecash-tpm bank init --central-bank-dir DIR            # demo: certify the bank locally
    ecash-tpm bank init --cert bank.crt --key bank.key --root root.pem
    ecash-tpm bank serve [--with-issuer]                  # + the group manager it operates
    ecash-tpm bank account create alice --balance 1000    # prints the TOTP secret
    ecash-tpm bank account show alice
    ecash-tpm bank account fund alice 500
    ecash-tpm bank merchant add shop.crt
    ecash-tpm bank keyset rotate | keyset list [--all]
    ecash-tpm bank ledger                                 # invariants + blacklist audit
    ecash-tpm bank blacklist list | blacklist lift SUBJECT --by WHO --reason WHY
    ecash-tpm bank reports retry                          # resend double-spend reports
    ecash-tpm bank supply-report --central-bank URL       # signed money-supply report

Every command takes ``--config FILE`` (section ``[bank]``), ``--data-dir``, ``--database-url``
and ``--json``. Administrative commands open the database directly (the operator's machine);
only ``serve`` needs the issuer, the opener key and the supervision department configured.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.cli.db_migrate import add_db_commands
from ecash_tpm.cli.output import Progress, emit, keyset_label, money, prompt, when
from ecash_tpm.cli.tls_certs import (
    add_cert_commands,
    add_insecure_http,
    add_workers,
    insecure_override,
    renew_summary,
    renew_via_central_bank,
    serve_options,
)
from ecash_tpm.errors import ConfigError, InputError

if TYPE_CHECKING:
    from ecash_tpm.service.database import Mode


def _settings(args: argparse.Namespace) -> Any:
    from ecash_tpm.bank.settings import BankSettings
    from ecash_tpm.service.settings import load_settings

    overrides: dict[str, Any] = {
        "data_dir": args.data_dir,
        "database_url": args.database_url,
    }
    for name in ("host", "port", "workers"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    overrides["insecure_http"] = insecure_override(args)
    return load_settings(BankSettings, path=args.config, overrides=overrides)


INIT_HINT = "run `ecash-tpm bank init` first (with the same --config)"


@contextmanager
def _admin_bank(
    args: argparse.Namespace, *, full: bool = False, mode: Mode = "existing"
) -> Iterator[Any]:
    """Open + migrate the database and build the domain (with real protocols if ``full``).

    ``mode`` (:mod:`ecash_tpm.service.database`): only ``init`` creates the bank's database;
    every other command needs the one ``init`` made (``"read"`` for the views).
    """
    from ecash_tpm.bank.domain import BankDomain
    from ecash_tpm.bank.store import MIGRATIONS
    from ecash_tpm.service.database import open_party_database

    settings = _settings(args)
    _refuse_half_initialised(settings, mode)
    db = open_party_database(settings, MIGRATIONS, mode=mode, hint=INIT_HINT)
    try:
        if full:
            from ecash_tpm.apps.bank_wiring import load_dependencies

            deps = load_dependencies(settings, settings.path("cert_file").read_text("ascii"))
            bank = BankDomain.from_settings(
                settings,
                db,
                issuer_secrets=deps.issuer_secrets,
                membership=deps.membership,
                reporter=deps.reporter,
            )
        else:
            from ecash_tpm.apps.bank_wiring import AdminOnly

            stub = AdminOnly()
            bank = BankDomain.from_settings(
                settings, db, issuer_secrets=stub, membership=stub, reporter=stub
            )
        yield bank
    finally:
        db.close()


def _keyset_dict(keyset: Any, now: int) -> dict[str, Any]:
    return {
        "keyset_id": keyset.hex_id,
        "value": keyset.value,
        "currency": keyset.currency,
        "withdraw_from": keyset.withdraw_from,
        "withdraw_until": keyset.withdraw_until,
        "deposit_until": keyset.deposit_until,
        "bits": keyset.public_key.key_size,
        "withdrawable": keyset.can_withdraw(now),
        "depositable": keyset.can_deposit(now),
        "fees": keyset.fees.as_fields(),  # docs/protocol.md 4.2
    }


# --- init / serve --------------------------------------------------------------------------------


#: In the data directory while ``bank init`` runs; left behind only if it was killed outright.
INIT_MARKER = "bank-init.incomplete"


def _init_marker(settings: Any) -> Path:
    return Path(settings.data_dir) / INIT_MARKER


def _refuse_half_initialised(settings: Any, mode: Mode) -> None:
    """A bank whose ``init`` was killed half-way (some files, no keysets) must not be used."""
    marker = _init_marker(settings)
    if mode != "create" and marker.exists():
        raise ConfigError(
            "the bank's init did not finish; run `ecash-tpm bank init` again to complete it",
            code="bank.init_incomplete",
            detail={"marker": str(marker)},
        )


def _bank_identity(args: argparse.Namespace) -> tuple[Any, bytes, bytes]:
    """The bank's key, certificate and root, in memory (nothing written yet)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ecash_tpm.crypto.signing import PartyKey
    from ecash_tpm.pki import load_certificate

    if args.central_bank_dir:
        from ecash_tpm.centralbank.ca import CentralBankCA

        ca = CentralBankCA.load(args.central_bank_dir)
        try:
            key = PartyKey.generate()
            cert = ca.certify("bank", args.name, key.public_key)
            root_pem = ca.root_pem()
        finally:
            close = getattr(ca, "close", None)
            if close is not None:
                close()
        return key, cert.public_bytes(Encoding.PEM), root_pem
    if args.cert and args.key and args.root:
        key = PartyKey.load(args.key)
        cert_pem = Path(args.cert).read_bytes()
        load_certificate(cert_pem)
        return key, cert_pem, Path(args.root).read_bytes()
    raise InputError("give --central-bank-dir, or --cert, --key and --root")


def _cmd_init(args: argparse.Namespace) -> int:
    """All or nothing: an interrupted first init takes back what it made; a killed one leaves
    ``bank-init.incomplete``, and the next ``init`` finishes it instead of refusing."""
    from ecash_tpm.crypto.signing import write_file_atomic
    from ecash_tpm.service.database import marker_path
    from ecash_tpm.storage import discard_new_sqlite_on_failure

    settings = _settings(args)
    key_path, cert_path = settings.path("key_file"), settings.path("cert_file")
    root_path = settings.path("central_bank_root")
    marker = _init_marker(settings)
    resuming = marker.exists()
    interrupted_at = marker.stat().st_mtime if resuming else None
    if key_path.exists() and not args.force and not resuming:
        raise ConfigError(
            f"the bank is already initialised ({key_path}); use --force to replace its identity",
            code="bank.already_initialized",
        )
    key, cert_pem, root_pem = _bank_identity(args)
    data_dir: Path = settings.data_dir
    made_dir = not data_dir.exists()
    ours = [
        p
        for p in (key_path, cert_path, root_path, marker_path(settings))
        if not p.exists() and not resuming
    ]
    with discard_new_sqlite_on_failure([settings.database_url]) as new_db:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomic(marker, f"{os.getpid()}\n".encode("ascii"), mode=0o600)
        try:
            key.save(key_path, overwrite=args.force or resuming)
            write_file_atomic(cert_path, cert_pem, mode=0o644)
            write_file_atomic(root_path, root_pem, mode=0o644)
            # opening the bank checks that cert, key and root belong together
            with _admin_bank(args, mode="create") as bank, Progress(args) as progress:
                if interrupted_at is not None:  # keys the killed run wrote but never recorded
                    keys_dir = settings.path("keys_dir")
                    bank.keysets.discard_unrecorded_keys(
                        [
                            f.name
                            for f in keys_dir.glob("*.pem")
                            if f.stat().st_mtime >= interrupted_at
                        ]
                    )
                made = bank.ensure_keysets(progress=progress)  # one transaction
                now = bank.clock()
                payload = {
                    "data_dir": str(settings.data_dir),
                    "bank_name": bank.bank_name,
                    "database_url": bank.db.url,
                    "keysets_created": [_keyset_dict(k, now) for k in made],
                }
        except BaseException:
            if ours and not args.force:  # a first init: nothing of it may stay
                _take_back(ours, marker, settings.path("keys_dir"), data_dir if made_dir else None)
            raise
        new_db.keep()
        marker.unlink()
    emit(
        args,
        payload,
        f"bank {payload['bank_name']} initialised in {settings.data_dir} "
        f"({len(made)} keysets created)",
    )
    return 0


def _take_back(files: list[Path], marker: Path, keys_dir: Path, data_dir: Path | None) -> None:
    """Undo a first init that did not finish: its identity files and the marker; the keyset
    key files were already removed by the rotation, the new SQLite file by the caller."""
    for path in (*files, marker):
        path.unlink(missing_ok=True)
    for directory in (keys_dir, data_dir):
        if directory is not None:
            with contextlib.suppress(OSError):  # not empty: something else lives there
                directory.rmdir()


def _cmd_serve(args: argparse.Namespace) -> int:
    """Port, configuration and database are checked before the URL is announced (see
    :func:`ecash_tpm.service.server.serve`); the bank's database must exist (``bank init``)."""
    from ecash_tpm.bank.routes import create_bank_app
    from ecash_tpm.service.server import serve

    settings = _settings(args)
    _refuse_half_initialised(settings, "existing")
    tls = serve_options(settings, settings.path("central_bank_root"))
    if args.with_issuer:
        from ecash_tpm.apps import bank_with_issuer as with_issuer
        from ecash_tpm.issuer.settings import IssuerSettings
        from ecash_tpm.service.settings import load_settings

        issuer_settings = load_settings(
            IssuerSettings,
            path=args.config,
            overrides={"insecure_http": insecure_override(args)},
        )
        with_issuer.serve(settings, issuer_settings)
        return 0
    if not settings.opener_public:
        raise ConfigError(
            "opener_public is not configured: the bank cannot check spend proofs without Hop",
            detail={"setting": "opener_public"},
        )

    @contextmanager
    def bank_app() -> Iterator[Any]:
        with _admin_bank(args, full=True) as bank:
            yield create_bank_app(bank, settings)

    serve(
        bank_app,
        settings.host,
        settings.port,
        log_level=settings.log_level,
        label="bank",
        databases=[settings.database_url],
        **tls,
    )
    return 0


def _cmd_cert_renew(args: argparse.Namespace) -> int:
    settings = _settings(args)
    done = renew_via_central_bank(
        args,
        settings,
        role="bank",
        root=settings.path("central_bank_root"),
        signing_cert=settings.path("cert_file"),
    )
    emit(args, done, renew_summary(done))
    return 0


# --- accounts and merchants ------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        return Path(args.password_file).read_text(encoding="utf-8").rstrip("\n")
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise InputError("--password-stdin: no password on stdin")
        return line.rstrip("\n")
    first = prompt("password: ", secret=True)
    if prompt("again: ", secret=True) != first:
        raise InputError("the passwords differ")
    return first


def _cmd_account_create(args: argparse.Namespace) -> int:
    if args.totp_secret:
        try:
            totp_secret = base64.b32decode(args.totp_secret.upper().replace(" ", ""))
        except ValueError as exc:
            raise InputError("--totp-secret must be base32") from exc
    else:
        totp_secret = secrets.token_bytes(20)
    password = _read_password(args)
    with _admin_bank(args) as bank:
        info = bank.create_customer(
            args.account_id, password, totp_secret, initial_balance=args.balance
        )
        issuer = bank.bank_name
    b32 = base64.b32encode(totp_secret).decode("ascii").rstrip("=")
    uri = (
        f"otpauth://totp/{issuer}:{args.account_id}?secret={b32}&issuer={issuer}&digits=6&period=30"
    )
    payload = {**info.to_dict(), "totp_secret": b32, "otpauth_uri": uri}
    emit(
        args,
        payload,
        f"account {info.account_id} created, balance {money(info.balance, info.currency)}\n"
        f"TOTP secret (base32): {b32}\n{uri}",
    )
    return 0


def _cmd_account_show(args: argparse.Namespace) -> int:
    with _admin_bank(args, mode="read") as bank:
        info = bank.account(args.account_id)
    emit(
        args,
        info.to_dict(),
        f"{info.account_id} ({info.kind}): {money(info.balance, info.currency)}",
    )
    return 0


def _cmd_account_fund(args: argparse.Namespace) -> int:
    with _admin_bank(args) as bank:
        info = bank.fund(args.account_id, args.amount, ref=args.ref)
    emit(args, info.to_dict(), f"{info.account_id}: balance {money(info.balance, info.currency)}")
    return 0


def _cmd_merchant_add(args: argparse.Namespace) -> int:
    pem = Path(args.cert).read_bytes()
    with _admin_bank(args) as bank:
        info = bank.add_merchant(pem)
    emit(
        args, info.to_dict(), f"merchant {info.merchant_id} registered (key {info.key_id[:16]}...)"
    )
    return 0


# --- keysets, ledger, blacklist, reports -----------------------------------------------


def _fee_options(options: list[str] | None) -> dict[int, Any]:
    """``--fee VALUE=W,D,R,F`` (repeatable): the fees of the new keysets of one denomination
    (docs/protocol.md 4.2), over the configured ``fees``."""
    from ecash_tpm.errors import InputError
    from ecash_tpm.protocol.keysets import Fees

    out: dict[int, Any] = {}
    for option in options or []:
        value, _, rest = option.partition("=")
        parts = rest.split(",")
        if not value.isdigit() or len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise InputError(
                "--fee must be VALUE=WITHDRAW,DEPOSIT,REFRESH,REFUND (minor units)",
                detail={"fee": option},
            )
        fees = [int(p) for p in parts]
        if any(f >= int(value) for f in fees):
            raise InputError("every fee must be below the denomination", detail={"fee": option})
        out[int(value)] = Fees(*fees)
    return out


def _cmd_keyset_rotate(args: argparse.Namespace) -> int:
    fees = _fee_options(args.fee)
    with _admin_bank(args) as bank, Progress(args) as progress:
        made = bank.rotate_keysets(start=args.start, progress=progress, fees=fees)
        now = bank.clock()
        keysets = [_keyset_dict(k, now) for k in made]
    emit(
        args,
        {"keysets": keysets},
        "\n".join(
            f"{k['keyset_id']}  {money(k['value'], k['currency']):>14}"
            + (
                "  fees " + "/".join(str(f) for f in k["fees"].values())
                if any(k["fees"].values())
                else ""
            )
            for k in keysets
        ),
    )
    return 0


def _cmd_keyset_list(args: argparse.Namespace) -> int:
    with _admin_bank(args, mode="read") as bank:
        now = bank.clock()
        keysets = bank.keysets.list_keysets(now=None if args.all else now)
        rows = [_keyset_dict(k, now) for k in keysets]
    lines = [
        f"{k['keyset_id']}  {money(k['value'], k['currency']):>14}  "
        f"{'withdraw' if k['withdrawable'] else 'deposit-only' if k['depositable'] else 'expired'}"
        f"  until {when(k['withdraw_until'])}/{when(k['deposit_until'])}"
        for k in rows
    ]
    emit(args, {"keysets": rows}, "\n".join(lines) or "no keysets")
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    with _admin_bank(args, mode="read") as bank:
        audit = bank.audit()
    ledger = audit["ledger"]
    unjustified = audit["unjustified_blacklist_entries"]
    text = [
        f"ledger OK: {ledger['transactions']} transactions, {ledger['entries']} entries",
        f"customers {ledger['customers_total']}, merchants {ledger['merchants_total']}, "
        f"coins outstanding {ledger['outstanding_total']}",
    ]
    for k in ledger["keysets"]:
        text.append(
            f"  {k['keyset_id']} value {k['value']}: withdrawn {k['withdrawn']} - deposited "
            f"{k['deposited']} = outstanding {k['outstanding']}"
        )
    text.append(
        "blacklist: all entries justified"
        if not unjustified
        else f"blacklist: {len(unjustified)} UNJUSTIFIED entries"
    )
    emit(args, audit, "\n".join(text))
    return 1 if unjustified else 0


def _cmd_blacklist_list(args: argparse.Namespace) -> int:
    with _admin_bank(args, mode="read") as bank:
        entries = bank.blacklist_entries()
    lines = [
        f"#{e.entry_id} {e.subject} listed {e.listed_at}: {e.reason}"
        + (f" (lifted by {e.lifted_by}: {e.lift_reason})" if e.lifted_at else "")
        for e in entries
    ]
    emit(args, {"entries": [e.to_dict() for e in entries]}, "\n".join(lines) or "blacklist empty")
    return 0


def _cmd_blacklist_lift(args: argparse.Namespace) -> int:
    with _admin_bank(args) as bank:
        entry = bank.lift_blacklist(args.subject, lifted_by=args.by, reason=args.reason)
    emit(args, entry.to_dict(), f"lifted #{entry.entry_id} {entry.subject}")
    return 0


def _cmd_reports_retry(args: argparse.Namespace) -> int:
    with _admin_bank(args, full=True) as bank:
        result = bank.retry_double_spend_reports()
    emit(args, result, f"sent {result['sent']}, still failing {result['failed']}")
    return 0 if result["failed"] == 0 else 1


# --- money-supply report (issue 5) ------------------------------------------------------------


def _central_bank(settings: Any, url: str) -> Any:
    """The central bank's client for the bank: TLS to its identity (``centralbank``), the
    bank's own TLS certificate presented (the report is signed by the bank key besides)."""
    from ecash_tpm.cli.tls_certs import CENTRAL_BANK_TLS_NAME
    from ecash_tpm.clients.centralbank import CentralBankClient
    from ecash_tpm.clients.connect import party_link

    conn = party_link(
        settings,
        url,
        role="centralbank",
        name=CENTRAL_BANK_TLS_NAME,
        root=settings.path("central_bank_root"),
    )
    return CentralBankClient(url, tls=conn.tls, expect=conn.expect)


def _cmd_supply_report(args: argparse.Namespace) -> int:
    """Build the signed supply report from the ledger and send it to the central bank."""
    from ecash_tpm.bank.supply import build_supply_report, send_supply_report

    if not args.central_bank and not args.dry_run:
        raise InputError("give --central-bank URL (or --dry-run to only print the report)")
    with _admin_bank(args, mode="read") as bank:
        if args.dry_run:
            result: dict[str, Any] = {"report": build_supply_report(bank, as_of=args.as_of)}
        else:
            with _central_bank(_settings(args), args.central_bank) as central_bank:
                result = send_supply_report(bank, central_bank, as_of=args.as_of)
    body = result["report"]["body"]
    total = sum(k["outstanding_value"] for k in body["keysets"])
    currencies = sorted({k["currency"] for k in body["keysets"]})
    shown = money(total, currencies[0]) if len(currencies) == 1 else str(total)
    lines = [f"supply report of {body['bank_id']} as of {when(body['as_of'])}: outstanding {shown}"]
    lines += [
        f"  {keyset_label(k['keyset_id'])} value {money(k['value'], k['currency'])}: "
        f"{k['outstanding_count']} coins"
        for k in body["keysets"]
        if k["outstanding_count"]
    ]
    if "receipt" in result:
        receipt = result["receipt"]
        lines.append(
            f"accepted by the central bank as report #{receipt['report_id']}"
            + ("" if receipt["created"] else " (identical report already stored)")
        )
    emit(args, result, "\n".join(lines))
    return 0


# --- parser --------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bank`` and its sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "bank", help="run and administer the bank", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="bank_command", metavar="COMMAND", required=True)
    add_db_commands(sub, "bank")

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", metavar="FILE", help="TOML file with a [bank] section")
        p.add_argument("--data-dir", type=Path, help="bank data directory")
        p.add_argument("--database-url", help="sqlite:///... or postgresql://...")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    def leaf(
        parent: Any, name: str, func: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        p = common(parent.add_parser(name, help=help_text))
        p.set_defaults(func=func)
        return p

    p = leaf(sub, "init", _cmd_init, "create the bank's identity, database and keysets")
    p.add_argument("--central-bank-dir", help="certify with a local central bank CA (demo)")
    p.add_argument("--cert", help="bank certificate issued by the central bank (PEM)")
    p.add_argument("--key", help="the bank's P-256 key for --cert (PEM)")
    p.add_argument("--root", help="central bank root certificate (PEM)")
    p.add_argument("--name", default="bank", help="bank name (certificate CN)")
    p.add_argument("--force", action="store_true", help="replace an existing identity")

    p = leaf(sub, "serve", _cmd_serve, "run the bank's HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument(
        "--with-issuer",
        action="store_true",
        help="also serve the group manager ([issuer] of the same --config) in this process",
    )
    add_insecure_http(p)
    add_workers(p)
    add_cert_commands(sub, common, _cmd_cert_renew)

    account = sub.add_parser("account", help="customer accounts")
    acc = account.add_subparsers(dest="account_command", metavar="COMMAND", required=True)
    p = leaf(acc, "create", _cmd_account_create, "open a customer account")
    p.add_argument("account_id")
    p.add_argument("--balance", type=int, default=0, help="initial funding (minor units)")
    p.add_argument("--totp-secret", help="base32 TOTP secret (default: a new one, printed)")
    p.add_argument("--password-file", help="read the password from this file")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = leaf(acc, "show", _cmd_account_show, "balance of an account")
    p.add_argument("account_id")
    p = leaf(acc, "fund", _cmd_account_fund, "credit a customer with money from outside")
    p.add_argument("account_id")
    p.add_argument("amount", type=int)
    p.add_argument("--ref", help="idempotency reference (a repeated ref is refused)")

    merchant = sub.add_parser("merchant", help="merchant registration")
    mer = merchant.add_subparsers(dest="merchant_command", metavar="COMMAND", required=True)
    p = leaf(mer, "add", _cmd_merchant_add, "register (or re-key) a merchant certificate")
    p.add_argument("cert", help="merchant certificate from the central bank (PEM)")

    keyset = sub.add_parser("keyset", help="denomination keysets")
    ks = keyset.add_subparsers(dest="keyset_command", metavar="COMMAND", required=True)
    p = leaf(ks, "rotate", _cmd_keyset_rotate, "new keysets for every denomination")
    p.add_argument("--start", type=int, help="window start (Unix seconds, default now)")
    p.add_argument(
        "--fee",
        action="append",
        metavar="VALUE=W,D,R,F",
        help="fees of this denomination's new keysets: withdraw, deposit, refresh, refund "
        "(minor units; repeatable; over the configured fees)",
    )
    p = leaf(ks, "list", _cmd_keyset_list, "keysets still depositable")
    p.add_argument("--all", action="store_true", help="include expired keysets")

    leaf(sub, "ledger", _cmd_ledger, "check the ledger invariants and the blacklist")

    blacklist = sub.add_parser("blacklist", help="merchant and login blacklist")
    bl = blacklist.add_subparsers(dest="blacklist_command", metavar="COMMAND", required=True)
    leaf(bl, "list", _cmd_blacklist_list, "all entries, active and lifted")
    p = leaf(bl, "lift", _cmd_blacklist_lift, "lift an active entry")
    p.add_argument("subject", help="merchant:<id> or login:<account>")
    p.add_argument("--by", required=True, help="who lifts it (recorded)")
    p.add_argument("--reason", required=True, help="why (recorded)")

    reports = sub.add_parser("reports", help="double-spend reports")
    rep = reports.add_subparsers(dest="reports_command", metavar="COMMAND", required=True)
    leaf(rep, "retry", _cmd_reports_retry, "send pending/failed reports to supervision")

    p = leaf(sub, "supply-report", _cmd_supply_report, "send the money-supply report")
    p.add_argument("--central-bank", metavar="URL", help="central bank base URL")
    add_insecure_http(p)
    p.add_argument("--as-of", type=int, help="report time (Unix seconds, default now)")
    p.add_argument("--dry-run", action="store_true", help="print the signed report, send nothing")

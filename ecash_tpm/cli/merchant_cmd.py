"""``ecash-tpm merchant init|serve|request|stats|deposits retry``: run a shop.

``init --data DIR --name N`` makes the merchant's P-256 key (``merchant-key.pem``, 0600) and
gets it certified by the central bank for role ``merchant`` with CN = N: directly from the CA's
data directory with ``--ca-dir`` (operator console), or by installing a certificate obtained
out of band with ``--cert`` (``ecash-tpm centralbank certify --role merchant --name N
--public-key DIR/merchant-key.pub.der``). The central-bank root goes to
``central-bank-root.pem``. The bank must know the merchant too (``ecash-tpm bank merchant
add``) before it accepts deposits.

``serve`` reads ``[merchant]`` from the TOML file (and ``ECASH_TPM_MERCHANT_*``).
``request --url URL --amount N`` asks a running shop for a signed payment request and prints
``{request, cert}`` (what ``ecash-tpm wallet pay --request FILE`` takes).
``deposits retry`` re-sends, once, every deposit whose bank answer was lost (a running shop
does this by itself every ``deposit_retry_s``) and prints how each ended.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ecash_tpm.cli.db_migrate import add_db_commands
from ecash_tpm.cli.output import emit, money, when
from ecash_tpm.cli.party_key import add_init_options
from ecash_tpm.cli.tls_certs import (
    add_cert_commands,
    add_insecure_http,
    add_workers,
    insecure_override,
    renew_summary,
    renew_via_central_bank,
    serve_options,
    workers_override,
)


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from ecash_tpm.merchant.settings import MerchantSettings
    from ecash_tpm.service.settings import load_settings

    values = {"data_dir": getattr(args, "data", None), **overrides}
    return load_settings(MerchantSettings, path=getattr(args, "config", None), overrides=values)


def _cmd_init(args: argparse.Namespace) -> int:
    from ecash_tpm.cli.party_key import init_party_key

    settings = _settings(args, name=args.name)
    done = init_party_key(settings, args, role="merchant")
    lines = done.summary("merchant")
    if done.certified:
        lines.append("next: register it at the bank (ecash-tpm bank merchant add)")
    emit(args, done.payload, "\n".join(lines))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ecash_tpm.merchant.app import create_merchant_app
    from ecash_tpm.service.server import serve

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        bank_url=args.bank,
        issuer_url=args.issuer,
        insecure_http=insecure_override(args),
        workers=workers_override(args),
    )
    tls = serve_options(settings, settings.resolved_root_cert())
    app = create_merchant_app(settings)
    serve(app, settings.host, settings.port, log_level=settings.log_level, **tls)
    return 0


def _cmd_cert_renew(args: argparse.Namespace) -> int:
    settings = _settings(args)
    done = renew_via_central_bank(
        args,
        settings,
        role="merchant",
        root=settings.resolved_root_cert(),
        signing_cert=settings.resolved_cert_file(),
    )
    emit(args, done, renew_summary(done))
    return 0


def _cmd_request(args: argparse.Namespace) -> int:
    from ecash_tpm.clients.connect import link
    from ecash_tpm.clients.merchant import MerchantClient

    conn = link(
        args.url,
        role="merchant",
        name=args.name,
        root=Path(args.root) if args.root else None,
        insecure=args.insecure_http,
    )
    with MerchantClient(args.url, tls=conn.tls, expect=conn.expect) as client:
        answer = client.create_request(args.amount, args.currency, product_id=args.product_id)
    if args.out:
        Path(args.out).write_text(json.dumps(answer, indent=2) + "\n", encoding="utf-8")
    body = answer["request"]["body"]
    emit(
        args,
        answer,
        f"payment request from {body['merchant_id']}: {money(body['amount'], body['currency'])}, "
        f"deadline {when(body['deadline'])}" + (f", saved to {args.out}" if args.out else ""),
    )
    return 0


def _open_db(settings: Any, migrations: Any, *, read_only: bool) -> Any:
    """The shop's database as ``merchant serve`` made it; never a new one."""
    from ecash_tpm.service.database import open_party_database

    return open_party_database(
        settings,
        migrations,
        mode="read" if read_only else "existing",
        hint="the merchant's database is made by `ecash-tpm merchant serve`",
    )


def _cmd_stats(args: argparse.Namespace) -> int:
    from ecash_tpm.merchant.models import MerchantStats
    from ecash_tpm.merchant.store import MIGRATIONS, MerchantStore

    with _open_db(_settings(args), MIGRATIONS, read_only=True) as db:
        store = MerchantStore(db, lambda: 0)
        stats = MerchantStats(store.counters(), store.totals())
    totals = stats.totals.items()
    lines = [f"{cur}: {t['paid_count']} paid, {money(t['paid_amount'], cur)}" for cur, t in totals]
    for kind, codes in stats.counters.items():
        lines += [f"{kind} {code}: {n}" for code, n in sorted(codes.items())]
    emit(args, stats.to_dict(), "\n".join(lines) or "no payments yet")
    return 0


def _bank_client(settings: Any) -> Any:
    """The shop's bank client as ``serve`` makes it (TLS, its client certificate)."""
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.merchant.app import bank_link

    conn = bank_link(settings)
    return BankClient(
        settings.bank_url, timeout=settings.bank_timeout_s, tls=conn.tls, expect=conn.expect
    )


def _cmd_deposits_retry(args: argparse.Namespace) -> int:
    from ecash_tpm.merchant.app import load_merchant_config, resolve_hop
    from ecash_tpm.merchant.domain import Merchant
    from ecash_tpm.merchant.store import MIGRATIONS, MerchantStore

    settings = _settings(args)
    config = load_merchant_config(settings)
    with (
        _open_db(settings, MIGRATIONS, read_only=False) as db,
        _bank_client(settings) as bank,
    ):
        merchant = Merchant(config, MerchantStore(db, _now), bank, resolve_hop(settings, None))
        results = merchant.retry_deposits()
    rows = [r.to_dict() for r in results]
    settled = sum(1 for r in results if r.settled)
    lines = [
        f"{r['deposit_id']}: {money(r['amount'], r['currency'])} -> {r['outcome']}" for r in rows
    ]
    lines.append(f"{settled} of {len(rows)} pending deposit(s) settled")
    emit(
        args,
        {"retried": rows, "settled": settled, "pending": len(rows) - settled},
        "\n".join(lines) if rows else "no pending deposits",
    )
    return 0


def _now() -> int:
    import time

    return int(time.time())


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``merchant init|serve|request|stats|deposits retry``."""
    parser = subparsers.add_parser("merchant", help="merchant (shop)", description=__doc__)
    sub = parser.add_subparsers(dest="merchant_command", metavar="COMMAND", required=True)
    add_db_commands(sub, "merchant")

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data", type=Path, default=None, help="merchant data directory")
        p.add_argument("--config", default=None, help="TOML configuration file ([merchant])")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    p = common(sub.add_parser("init", help="make the merchant key and install its certificate"))
    add_init_options(p, role="merchant", default_name=None)
    p.set_defaults(func=_cmd_init)

    p = common(sub.add_parser("serve", help="run the merchant HTTP API"))
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--bank", default=None, metavar="URL", help="the bank's base URL")
    p.add_argument("--issuer", default=None, metavar="URL", help="issuer URL (for Hop)")
    add_insecure_http(p)
    add_workers(p)
    p.set_defaults(func=_cmd_serve)
    add_cert_commands(sub, common, _cmd_cert_renew)

    p = sub.add_parser("request", help="ask a running shop for a signed payment request")
    p.add_argument("--url", required=True, help="the merchant's base URL")
    p.add_argument("--name", default="merchant", help="expected shop certificate name")
    p.add_argument("--root", default=None, metavar="PEM", help="central bank root (for https)")
    add_insecure_http(p)
    p.add_argument("--amount", type=int, required=True, help="amount in minor units")
    p.add_argument("--currency", default=None)
    p.add_argument("--product-id", default=None)
    p.add_argument("--out", default=None, metavar="FILE", help="save {request, cert} here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_request)

    from ecash_tpm.cli.merchant_refund import register_refund

    register_refund(sub)  # issue 12 (#3): refund permissions

    p = common(sub.add_parser("stats", help="paid totals and failure counters by code"))
    p.set_defaults(func=_cmd_stats)

    deposits = sub.add_parser("deposits", help="deposits whose bank answer was lost")
    dsub = deposits.add_subparsers(dest="deposits_command", metavar="COMMAND", required=True)
    p = common(dsub.add_parser("retry", help="re-send every pending deposit once"))
    p.set_defaults(func=_cmd_deposits_retry)

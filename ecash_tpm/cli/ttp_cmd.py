"""``ecash-tpm ttp init|serve|products|disputes|strikes|stats``: the fair-exchange TTP.

``init --data DIR [--name ttp]`` makes the TTP's P-256 key (``ttp-key.pem``, 0600) and gets it
certified by the central bank for role ``ttp``: directly from the CA's data directory with
``--ca-dir`` (operator console), or by installing a certificate obtained out of band with
``--cert`` and ``--root`` (``ecash-tpm centralbank certify --role ttp --name N --public-key
DIR/ttp-key.pub.der``).

``serve`` reads ``[ttp]`` from the TOML file (and ``ECASH_TPM_TTP_*``); ``--bank`` is the bank
it asks whether coins were deposited. The other commands read the TTP's database directly
(operator view): registered products, disputes (``--sweep`` first resolves those past their
deadline, releasing escrowed keys and recording strikes), strikes per merchant, counters.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ecash_tpm.ttp.store import TtpStore


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from ecash_tpm.service.settings import load_settings
    from ecash_tpm.ttp.settings import TtpSettings

    values = {"data_dir": getattr(args, "data", None), **overrides}
    return load_settings(TtpSettings, path=getattr(args, "config", None), overrides=values)


def _cmd_init(args: argparse.Namespace) -> int:
    from ecash_tpm.cli.party_key import init_party_key

    settings = _settings(args, name=args.name)
    done = init_party_key(settings, args, role="ttp")
    lines = done.summary("TTP")
    emit(args, done.payload, "\n".join(lines))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ecash_tpm.service.server import serve
    from ecash_tpm.ttp.routes import create_ttp_app

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        bank_url=args.bank,
        insecure_http=insecure_override(args),
        workers=workers_override(args),
    )
    tls = serve_options(settings, settings.resolved_root_cert())
    serve(
        create_ttp_app(settings), settings.host, settings.port, log_level=settings.log_level, **tls
    )
    return 0


@contextmanager
def _store(args: argparse.Namespace, *, read_only: bool = True) -> Iterator[tuple[Any, TtpStore]]:
    """The TTP's database as ``ttp serve`` made it; never a new one (a missing database is an
    error, not "nothing yet")."""
    import time

    from ecash_tpm.service.database import open_party_database
    from ecash_tpm.ttp.store import COMPONENT, MIGRATIONS, TtpStore

    settings = _settings(args)
    with open_party_database(
        settings,
        MIGRATIONS,
        mode="read" if read_only else "existing",
        component=COMPONENT,
        hint="the TTP's database is made by `ecash-tpm ttp serve`",
    ) as db:
        yield settings, TtpStore(db, lambda: int(time.time()))


def _cmd_products(args: argparse.Namespace) -> int:
    with _store(args) as (_, store):
        docs = store.products(args.merchant)
    rows = [d["body"] for d in docs]
    text = "\n".join(
        f"{b['product_id']}  {b['merchant_id']:<12} {money(b['price'], b['currency']):>14}  "
        f"{b['ciphertext_size']:>8} B  {b['title']}"
        for b in rows
    )
    emit(args, {"products": docs}, text or "no products registered")
    return 0


def _cmd_cert_renew(args: argparse.Namespace) -> int:
    settings = _settings(args)
    done = renew_via_central_bank(
        args,
        settings,
        role="ttp",
        root=settings.resolved_root_cert(),
        signing_cert=settings.resolved_cert_file(),
    )
    emit(args, done, renew_summary(done))
    return 0


class _NoBank:
    """The bank gateway of an offline sweep: sweeping decides on what the TTP recorded and
    never asks the bank, so no connection (and no TLS set-up) is made for it."""

    def ttp_query(self, signed: Any, cert_pem: str) -> dict[str, Any]:
        from ecash_tpm.errors import ConfigError

        raise ConfigError("an offline dispute sweep does not ask the bank")

    def close(self) -> None:
        return None


def _cmd_disputes(args: argparse.Namespace) -> int:
    import time

    from ecash_tpm.clients.ttp import HttpMerchantLinks
    from ecash_tpm.ttp.domain import Ttp
    from ecash_tpm.ttp.routes import load_ttp_config

    with _store(args, read_only=not args.sweep) as (settings, store):
        bank = _NoBank()
        links = HttpMerchantLinks()  # never called either: sweeping asks no merchant
        try:
            ttp = Ttp(load_ttp_config(settings), store, bank, links, clock=lambda: int(time.time()))
            swept = ttp.sweep() if args.sweep else []
            views = ttp.disputes(merchant_id=args.merchant, state=args.state, sweep=False)
        finally:
            bank.close()
            links.close()
    rows = [{k: x for k, x in v.to_dict().items() if k != "sealed_key"} for v in views]
    text = "\n".join(
        f"{v.dispute_id}  {v.merchant_id:<12} {v.state:<8} deadline {v.deadline}  "
        f"{v.resolution or '-':<12} answer {v.merchant_answer or '-'}"
        for v in views
    )
    emit(args, {"disputes": rows, "swept": swept}, text or "no disputes")
    return 0


def _cmd_strikes(args: argparse.Namespace) -> int:
    with _store(args) as (_, store):
        strikes = store.strikes(args.merchant)
    per: dict[str, int] = {}
    for s in strikes:
        per[s.merchant_id] = per.get(s.merchant_id, 0) + 1
    text = "\n".join(
        f"{when(s.created_at)}  {s.merchant_id:<12} {s.reason:<10} {s.dispute_id}" for s in strikes
    )
    rows = [s.to_dict() for s in strikes]
    emit(args, {"strikes": rows, "per_merchant": per}, text or "no strikes")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from ecash_tpm.ttp.models import TtpStats

    with _store(args) as (_, store):
        stats = TtpStats(store.counters())
    text = "\n".join(f"{k:<28} {v}" for k, v in stats.counters.items())
    emit(args, stats.to_dict(), text or "nothing yet")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ttp init|serve|products|disputes|strikes|stats``."""
    parser = subparsers.add_parser("ttp", help="fair-exchange TTP", description=__doc__)
    sub = parser.add_subparsers(dest="ttp_command", metavar="COMMAND", required=True)
    add_db_commands(sub, "ttp")

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data", type=Path, default=None, help="TTP data directory")
        p.add_argument("--config", default=None, help="TOML configuration file ([ttp])")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    p = common(sub.add_parser("init", help="make the TTP key and install its certificate"))
    add_init_options(p, role="TTP", default_name="ttp")
    p.set_defaults(func=_cmd_init)

    p = common(sub.add_parser("serve", help="run the TTP HTTP API"))
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--bank", default=None, metavar="URL", help="the bank's base URL")
    add_insecure_http(p)
    add_workers(p)
    p.set_defaults(func=_cmd_serve)
    add_cert_commands(sub, common, _cmd_cert_renew)

    p = common(sub.add_parser("products", help="registered products (descriptors)"))
    p.add_argument("--merchant", default=None, help="only this merchant's")
    p.set_defaults(func=_cmd_products)

    p = common(sub.add_parser("disputes", help="disputes and their resolution"))
    p.add_argument("--merchant", default=None)
    p.add_argument("--state", choices=["pending", "resolved"], default=None)
    p.add_argument("--sweep", action="store_true", help="resolve overdue disputes first")
    p.set_defaults(func=_cmd_disputes)

    p = common(sub.add_parser("strikes", help="strikes recorded against merchants"))
    p.add_argument("--merchant", default=None)
    p.set_defaults(func=_cmd_strikes)

    p = common(sub.add_parser("stats", help="what the TTP was asked (counters)"))
    p.set_defaults(func=_cmd_stats)

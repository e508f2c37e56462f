"""``ecash-tpm dashboard --config FILE [--party NAME=URL ...] [--port P]``: the live dashboard
of a running deployment, read-only.

Reads the parties' URLs from the deployment's TOML file (each section's ``host`` and ``port``;
``--party merchant-b=http://...`` adds or overrides one, ``NAME:ROLE=URL`` when the name does
not start with its role) and serves a page on 127.0.0.1 (port ``P``, default a free one; the URL
is printed on stderr) that shows what anyone can see without a secret: each party's health and
certificate (chain to the central bank, validity, revocation on its CRL), the bank's signed
keysets, the group's public parameters, the TTP's strikes; and says what is not visible from
outside (the member registry, balances, double-spend cases, the audit). Polls every
``--interval`` seconds until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ecash_tpm.dashboard.errors import DashboardConfigError


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from ecash_tpm.dashboard.app import create_app
    from ecash_tpm.dashboard.bus import EventBus
    from ecash_tpm.dashboard.deployment import DeploymentWatch, parse_party, parties_from_config
    from ecash_tpm.dashboard.server import DashboardServer
    from ecash_tpm.deploy.processes import termination_as_interrupt

    config = args.config or (
        Path(os.environ["ECASH_TPM_CONFIG"]) if os.environ.get("ECASH_TPM_CONFIG") else None
    )
    if config is not None:
        parties = parties_from_config(config, args.party)
    elif args.party:
        parties = [parse_party(item) for item in args.party]
    else:
        raise DashboardConfigError(
            "name the deployment: --config FILE (or $ECASH_TPM_CONFIG) or --party NAME=URL"
        )
    if args.interval <= 0:
        raise DashboardConfigError("--interval must be positive")
    bus = EventBus()
    server = DashboardServer(create_app(bus), args.port)
    watch = DeploymentWatch(bus, parties, interval_s=args.interval)
    try:
        url = server.start()
        names = ", ".join(f"{p.name} {p.url}" for p in parties)
        print(
            f"ecash-tpm dashboard: {url} (read-only: {names}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        watch.start()
        with termination_as_interrupt():
            try:
                while True:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    finally:
        watch.stop()
        bus.close()
        server.stop()
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dashboard``."""
    p = subparsers.add_parser(
        "dashboard",
        help="live read-only dashboard of a running deployment (web page on 127.0.0.1)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="the deployment's TOML file (default: $ECASH_TPM_CONFIG)",
    )
    p.add_argument(
        "--party",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a party the file does not describe (repeatable)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=0,
        metavar="P",
        help="the page's port on 127.0.0.1 (default: a free port)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between two reads of the parties (default 5)",
    )
    p.set_defaults(func=_cmd_dashboard)

"""``ecash-tpm demo [--json] [--workdir DIR] [--keep] [--web [--port P]]``: the end-to-end story
on this machine.

Provisions two hermetic swtpm, starts every party as its own process on 127.0.0.1 (central
bank, bank + group manager, supervision department, two merchants), and runs the story of
:mod:`ecash_tpm.demo.story` with progress on stderr, or one JSON object on stdout with
``--json``: ``{"ok": bool, "version": 1, "steps": [{"step", "ok", "ms", "detail"}]}``.
Everything it starts is stopped on exit, also on Ctrl-C, SIGTERM and failure. Exit status 0
only if every step passed (130 when interrupted).

With ``--web`` it also serves the live attestation dashboard on 127.0.0.1 (port ``P``, default
a free one; the URL is printed on stderr before the story starts): parties and certificates,
the TPM evidence at join, the member registry, coins as they move, balances, the double spend
and its opening, the audit and the fair exchange, updated as the story runs. The page stays up
after the story (its parties are stopped by then) until Ctrl-C or ``--linger`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ecash_tpm.errors import ConfigError


def _cmd_demo(args: argparse.Namespace) -> int:
    from ecash_tpm.demo.story import run_demo

    if not args.web:
        if args.port is not None or args.linger is not None:
            raise ConfigError("--port and --linger belong to --web", code="demo.web_option")
        return run_demo(json_mode=args.json, workdir=args.workdir, keep=args.keep)
    return _demo_on_the_web(args)


def _demo_on_the_web(args: argparse.Namespace) -> int:
    """The story with the dashboard: serve first (a busy port fails before anything starts),
    then run the story with the page listening, then keep the page up."""
    from ecash_tpm.dashboard.app import create_app
    from ecash_tpm.dashboard.bus import EventBus
    from ecash_tpm.dashboard.feed import StoryFeed
    from ecash_tpm.dashboard.server import DashboardServer
    from ecash_tpm.demo.story import STORY, run_demo

    bus = EventBus()
    server = DashboardServer(create_app(bus), args.port or 0)
    try:
        feed = StoryFeed(bus, [(step.name, step.title) for step in STORY])
        url = server.start()
        print(f"ecash-tpm demo: dashboard at {url}", file=sys.stderr, flush=True)
        status = run_demo(json_mode=args.json, workdir=args.workdir, keep=args.keep, events=feed)
        verdict = {0: "every step ok", 130: "interrupted"}.get(status, "FAILED")
        feed.finish(ok=status == 0, message=f"demo {verdict}")
        if status != 130:
            _linger(url, args.linger)
        return status
    finally:
        server.stop()


def _linger(url: str, seconds: float | None) -> None:
    """Keep the page up after the story, until Ctrl-C/SIGTERM or ``seconds``."""
    from ecash_tpm.deploy.processes import termination_as_interrupt

    if seconds is not None and seconds <= 0:
        return
    until = "Ctrl-C" if seconds is None else f"{seconds:g} s or Ctrl-C"
    print(f"ecash-tpm demo: the dashboard stays at {url} ({until})", file=sys.stderr, flush=True)
    deadline = None if seconds is None else time.monotonic() + seconds
    with termination_as_interrupt():
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo``."""
    p = subparsers.add_parser(
        "demo",
        help="run the end-to-end demo (own swtpm, every party a process on 127.0.0.1)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help="empty or new directory for TPM state, data, configs and logs "
        "(default: a temporary directory)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, configs) afterwards"
    )
    p.add_argument(
        "--web",
        action="store_true",
        help="serve the live attestation dashboard on 127.0.0.1 while the story runs",
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="P",
        help="the dashboard's port (with --web; default: a free port)",
    )
    p.add_argument(
        "--linger",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --web: keep the page up this long after the story (default: until Ctrl-C; "
        "0: exit at once)",
    )
    p.set_defaults(func=_cmd_demo)

"""``ecash-tpm demo [--json] [--workdir DIR] [--keep]``: the end-to-end story on this machine.

Provisions two hermetic swtpm, starts every party as its own process on 127.0.0.1 (central
bank, bank + group manager, supervision department, two merchants), and runs the story of
:mod:`ecash_tpm.demo.story` with progress on stderr, or one JSON object on stdout with
``--json``: ``{"ok": bool, "steps": [{"step", "ok", "ms", "detail"}]}``. Everything it starts
is stopped on exit, also on Ctrl-C, SIGTERM and failure. Exit status 0 only if every step
passed (130 when interrupted).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_demo(args: argparse.Namespace) -> int:
    from ecash_tpm.demo.story import run_demo

    return run_demo(json_mode=args.json, workdir=args.workdir, keep=args.keep)


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
    p.set_defaults(func=_cmd_demo)

"""``ecash-tpm verify transcript|receipt|opening|evidence FILE --root ROOT``: check a deposit
transcript, a bank receipt, an opening or a double-spend evidence bundle with nothing but public
data and the central bank's root certificate, and print what it proves.

The file carries every signed object and certificate it needs; nothing is fetched. Exit status
0 when every check passes, 1 with the refusal's code otherwise. ``--issuer NAME`` (transcripts
and evidence) requires the coin's certified epoch key to be that issuer's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ecash_tpm.cli.output import emit, file_error, read_json
from ecash_tpm.protocol.artefacts import (
    EVIDENCE_FORMAT,
    OPENING_FORMAT,
    RECEIPT_FORMAT,
    TRANSCRIPT_FORMAT,
)
from ecash_tpm.protocol.verify_artefacts import Verified, verify_artefact

_KINDS = {
    "transcript": (TRANSCRIPT_FORMAT, "a deposit transcript signed by the bank"),
    "receipt": (RECEIPT_FORMAT, "a deposit receipt signed by the bank"),
    "opening": (OPENING_FORMAT, "an opening signed by the supervision department"),
    "evidence": (EVIDENCE_FORMAT, "a double-spend evidence bundle"),
}


def _human(kind: str, path: str, result: Verified) -> str:
    lines = [f"{kind} {path}: verified against the central-bank root", "proven:"]
    lines += [f"  - {p}" for p in result.proven]
    if result.not_checked:
        lines.append("not shown by this file:")
        lines += [f"  - {n}" for n in result.not_checked]
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    try:
        root = Path(args.root).read_bytes()
    except OSError as exc:
        raise file_error(exc) from exc
    fmt, _ = _KINDS[args.verify_kind]
    doc: Any = read_json(args.file, f"{args.verify_kind} file")
    issuer = getattr(args, "issuer", None)
    result = verify_artefact(doc, root, expected=fmt, now=args.at, issuer=issuer)
    emit(
        args,
        {"kind": args.verify_kind, "file": args.file, **result.to_dict()},
        lambda: _human(args.verify_kind, args.file, result),
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``verify`` and its four sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "verify",
        help="check a transcript, receipt, opening or evidence file (public data only)",
        description=__doc__,
    )
    sub = parser.add_subparsers(dest="verify_kind", metavar="KIND", required=True)
    for kind, (_, what) in _KINDS.items():
        p = sub.add_parser(kind, help=f"check {what}", description=f"Check {what}.")
        p.add_argument("file", metavar="FILE", help=f"the {kind} file (JSON)")
        p.add_argument(
            "--root", required=True, metavar="FILE", help="the central bank's root certificate"
        )
        p.add_argument(
            "--at",
            type=int,
            metavar="UNIX_TIME",
            help="check the certificates as of this time, e.g. when the file was signed "
            "(default: now)",
        )
        if kind in ("transcript", "evidence"):
            p.add_argument(
                "--issuer",
                metavar="NAME",
                help="require the coin's epoch key to be this issuer's (default: report the "
                "issuer the file names, not required)",
            )
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=_cmd)

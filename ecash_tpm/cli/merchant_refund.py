"""``merchant refund``: sign a refund permission for a paid request at a running shop (issue 12,
item 3; docs/protocol.md "Refunds"). The shop's admin route ``POST /v1/refunds`` with its
``admin_token``; the customer's wallet then claims it (``wallet refund-claim``) and the bank
debits the shop."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ecash_tpm.cli.output import emit


def _cmd_refund(args: argparse.Namespace) -> int:
    from ecash_tpm.clients.connect import link
    from ecash_tpm.clients.merchant import MerchantClient
    from ecash_tpm.crypto.encoding import b64u_decode
    from ecash_tpm.errors import InputError

    token = (
        Path(args.admin_token_file).read_text(encoding="utf-8").strip()
        if args.admin_token_file
        else os.environ.get("ECASH_TPM_ADMIN_TOKEN", "")
    )
    if not token:
        raise InputError("give --admin-token-file FILE or set ECASH_TPM_ADMIN_TOKEN")
    conn = link(
        args.url,
        role="merchant",
        name=args.name,
        root=Path(args.root) if args.root else None,
        insecure=args.insecure_http,
    )
    with MerchantClient(args.url, tls=conn.tls, expect=conn.expect) as client:
        answer = client.create_refund(b64u_decode(args.preq), args.amount, admin_token=token)
    body = answer["refunds"][0]["body"]
    emit(
        args,
        answer,
        f"refund {body['refund_id']}: {body['amount']} {body['currency']} of deposit "
        f"{body['deposit_id']} (the customer claims it with `wallet refund-claim`)",
    )
    return 0


def register_refund(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``merchant refund --url URL --preq B64 [--amount N]``."""
    from ecash_tpm.cli.tls_certs import add_insecure_http

    p = sub.add_parser("refund", help="refund all or part of a paid request (admin token)")
    p.add_argument("--url", required=True, help="the merchant's base URL")
    p.add_argument("--name", default="merchant", help="expected shop certificate name")
    p.add_argument("--root", default=None, metavar="PEM", help="central bank root (for https)")
    add_insecure_http(p)
    p.add_argument(
        "--preq",
        required=True,
        help="the paid request's digest (base64url); write --preq=VALUE, it may start with '-'",
    )
    p.add_argument("--amount", type=int, default=None, help="default: all that is left")
    p.add_argument("--admin-token-file", default=None, help="else $ECASH_TPM_ADMIN_TOKEN")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_refund)

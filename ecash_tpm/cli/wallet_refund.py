"""``wallet refund-claim``: claim the refunds a merchant granted for a paid request (issue 12,
item 3; docs/protocol.md "Refunds").

The wallet asks the shop for the refund permissions of the payment (by ``preq``), proves with
its TPM that it holds the DAA key the refunded coins were bound to, and gets fresh coins from
the bank over an anonymous connection (no login). Claiming again finishes a claim whose answer
was lost (same claim id, the bank books once).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ecash_tpm.cli.output import emit

if TYPE_CHECKING:
    from ecash_tpm.wallet.refund import RefundClaimResult


def _cmd_refund_claim(args: argparse.Namespace) -> int:
    from ecash_tpm.cli.wallet_cmd import (
        _bank_client,
        _coin_root,
        _coin_settings,
        _existing_wallet,
        _link,
        _now,
        _spending_context,
        _wallet_context,
        resolve_tcti,
    )
    from ecash_tpm.clients.merchant import MerchantClient
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.errors import InputError
    from ecash_tpm.wallet.membership import load_membership
    from ecash_tpm.wallet.refund import claim_refunds, resume_refund_claims
    from ecash_tpm.wallet.store import WalletStore

    data = _existing_wallet(args)
    cfg = _coin_settings(args, need_bank=True)
    root = _coin_root(args)
    membership = load_membership(data)
    with WalletStore.open(data, _now) as store:
        if args.resume:  # lost answers: the saved claims again, without the merchant
            with _bank_client(args, cfg) as bank, TpmDevice(resolve_tcti(args)) as device:
                ctx = _wallet_context(store, root, cfg, args)
                spending = _spending_context(ctx, device, data, membership)
                return _report(args, resume_refund_claims(spending, bank))
        if not args.payment:
            raise InputError("give --payment ID (or --resume)")
        payment = store.payment(args.payment)
        url = args.merchant or payment.merchant_url
        if not url:
            raise InputError("the payment has no merchant URL: pass --merchant URL")
        conn = _link(args, url, role="merchant", name=args.merchant_name or payment.merchant_id)
        with (
            MerchantClient(url, tls=conn.tls, expect=conn.expect) as merchant,
            _bank_client(args, cfg) as bank,
            TpmDevice(resolve_tcti(args)) as device,
        ):
            ctx = _wallet_context(store, root, cfg, args)
            result = claim_refunds(
                _spending_context(ctx, device, data, membership),
                bank,
                merchant,
                payment.preq,
                credential=membership.credential,
                epoch=membership.epoch,
            )
    return _report(args, result)


def _report(args: argparse.Namespace, result: RefundClaimResult) -> int:
    d = result.to_dict()
    text = (
        f"refunded {d['amount']} {d['currency']} as coins {d['coins']} "
        f"({', '.join(d['refund_ids'])})"
        if d["refund_ids"]
        else "no refund to claim"
    )
    emit(args, d, text)
    return 0


def register_refund_claim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``wallet refund-claim --payment ID`` or ``--resume``."""
    from ecash_tpm.cli.wallet_cmd import add_device_args, add_tls_args

    p = sub.add_parser("refund-claim", help="claim a merchant's refund of a payment (TPM proof)")
    add_device_args(p)  # --data, --tcti, --swtpm-state, --json
    p.add_argument("--payment", default=None, help="the payment id (wallet history)")
    p.add_argument(
        "--resume", action="store_true", help="send saved claims whose answer was lost again"
    )
    p.add_argument("--merchant", default=None, metavar="URL", help="default: the payment's shop")
    p.add_argument("--merchant-name", default=None, help="default: the payment's merchant id")
    p.add_argument("--bank", default=None, metavar="URL", help="bank base URL (remembered)")
    p.add_argument("--bank-name", default=None, help="expected bank certificate CN")
    p.add_argument("--root", default=None, metavar="PEM", help="central bank root (kept)")
    add_tls_args(p)
    p.set_defaults(func=_cmd_refund_claim)

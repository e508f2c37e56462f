"""``wallet balance``, ``wallet pay`` (with change) and ``wallet refresh`` (issue 12).

Moved out of :mod:`ecash_tpm.cli.wallet_cmd` (its size limit). Payments are exact; when the
wallet holds no exact combination it swaps first (docs/protocol.md 9.3: anonymous change, at
most one swap per payment, shown in the output), and every operation with a bank first
refreshes coins whose keyset's deposit window ends within the refresh margin. ``wallet
balance`` shows those expiring coins and never counts expired coins as spendable.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, Any

from ecash_tpm.cli.output import Progress, emit, read_json
from ecash_tpm.wallet.swap import REFRESH_MARGIN_S

if TYPE_CHECKING:
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.wallet.context import SpendingContext
    from ecash_tpm.wallet.membership import Membership
    from ecash_tpm.wallet.swap import Change

__all__ = ["cmd_balance", "cmd_pay", "register_refresh"]


def _change(
    ctx: SpendingContext, bank: BankClient, membership: Membership, margin_s: int
) -> Change:
    from ecash_tpm.wallet.swap import Change

    return Change(ctx, bank, membership.credential, membership.epoch, refresh_margin_s=margin_s)


def _swap_line(d: dict[str, Any]) -> str:
    return (
        f"swapped coins {d['inputs']} for {d['outputs']} at the bank ({d['reason']}, "
        f"fee {d['fee']})"
    )


def cmd_balance(args: argparse.Namespace) -> int:
    """Spendable (not expired), expiring within the refresh margin, pending, expired."""
    from ecash_tpm.cli.wallet_cmd import _existing_wallet, _now
    from ecash_tpm.wallet.store import WalletStore

    now = _now()
    with WalletStore.open(_existing_wallet(args), _now) as store:
        balance = store.balance()
        coins: dict[str, dict[int, int]] = {}
        expiring: dict[str, int] = {}
        for hc in store.coins("unspent"):
            if hc.deposit_until <= now:
                continue  # expired: never listed as spendable
            per = coins.setdefault(hc.currency, {})
            per[hc.value] = per.get(hc.value, 0) + 1
            if hc.deposit_until <= now + getattr(args, "margin", REFRESH_MARGIN_S):
                expiring[hc.currency] = expiring.get(hc.currency, 0) + hc.value
    lines = []
    for cur, b in sorted(balance.items()):
        held = ", ".join(f"{n}x{v}" for v, n in sorted(coins.get(cur, {}).items(), reverse=True))
        lines.append(
            f"{b['unspent']} {cur} spendable ({held or 'no coins'}); "
            f"{expiring.get(cur, 0)} expiring soon (`wallet refresh`), "
            f"{b['pending']} pending, {b['expired']} expired"
        )
    payload = {
        "balance": balance,
        "coins": {c: {str(v): n for v, n in per.items()} for c, per in coins.items()},
        "expiring": {c: expiring.get(c, 0) for c in balance},  # of the spendable value
    }
    emit(args, payload, "\n".join(lines) or "empty wallet")
    return 0


def cmd_pay(args: argparse.Namespace) -> int:
    """Pay a merchant's request; swap first when no exact combination is held (needs the
    bank: ``--bank``, remembered)."""
    from ecash_tpm.cli.wallet_cmd import (
        _bank_client,
        _coin_root,
        _coin_settings,
        _link,
        _merchant_name,
        _now,
        _spending_context,
        _wallet_context,
        resolve_tcti,
    )
    from ecash_tpm.clients.merchant import MerchantClient
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.errors import InputError
    from ecash_tpm.wallet.membership import load_membership
    from ecash_tpm.wallet.pay import pay
    from ecash_tpm.wallet.store import WalletStore

    cfg = _coin_settings(args)
    root = _coin_root(args)
    membership = load_membership(args.data)
    offer: Any = None
    if args.request:
        offer = read_json(args.request, "--request")
        if not isinstance(offer, dict) or not {"request", "cert"} <= offer.keys():
            raise InputError(
                f"--request {args.request} must hold {{request, cert}} "
                "(what `ecash-tpm merchant request --out` saves)",
                detail={"path": str(args.request)},
            )
    conn = _link(args, args.merchant, role="merchant", name=_merchant_name(args, offer))
    with (
        contextlib.ExitStack() as stack,
        MerchantClient(args.merchant, tls=conn.tls, expect=conn.expect) as merchant,
        Progress(args) as progress,
    ):
        if offer is None:
            if not args.amount:
                raise InputError("give --request FILE or --amount N")
            progress.note(f"asking {args.merchant} for a payment request of {args.amount}")
            offer = merchant.create_request(args.amount, product_id=args.product_id)
        tcti = resolve_tcti(args)
        with TpmDevice(tcti) as device, WalletStore.open(args.data, _now) as store:
            ctx = _spending_context(
                _wallet_context(store, root, cfg, args), device, args.data, membership
            )
            change = None
            if cfg.get("bank_url"):  # 9.3: change and refresh need the bank (no login)
                bank = stack.enter_context(_bank_client(args, cfg))
                change = _change(ctx, bank, membership, REFRESH_MARGIN_S)
            result = pay(
                ctx,
                offer["request"],
                offer["cert"],
                merchant=merchant,
                merchant_url=merchant.base_url,
                progress=progress,
                change=change,
            )
    d = result.to_dict()
    swapped = [_swap_line(s.to_dict()) for s in (change.swaps if change else [])]
    text = "\n".join(
        [
            *swapped,
            f"paid {d['amount']} {d['currency']} to {d['merchant_id']} with coins {d['coins']} "
            f"(deposit {d['deposit_id']})",
        ]
    )
    emit(args, d, text)
    return 0


def _cmd_refresh(args: argparse.Namespace) -> int:
    """Swap coins whose keyset's deposit window ends within ``--margin`` into current keysets;
    first complete swaps whose answer was lost."""
    from ecash_tpm.cli.wallet_cmd import (
        _bank_client,
        _coin_root,
        _coin_settings,
        _now,
        _spending_context,
        _wallet_context,
        resolve_tcti,
    )
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.wallet.membership import load_membership
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.swap import resume_swaps

    cfg = _coin_settings(args, need_bank=True)
    root = _coin_root(args)
    membership = load_membership(args.data)
    with (
        _bank_client(args, cfg) as bank,
        TpmDevice(resolve_tcti(args)) as device,
        WalletStore.open(args.data, _now) as store,
    ):
        ctx = _spending_context(
            _wallet_context(store, root, cfg, args), device, args.data, membership
        )
        resumed = resume_swaps(ctx, bank)
        change = _change(ctx, bank, membership, args.margin)
        done = [s.to_dict() for s in change.refresh()]
        balance = store.balance()
    lines = [f"completed swap {r} (its answer had been lost)" for r in resumed]
    lines += [_swap_line(d) for d in done] or ["no coins expire within the margin"]
    emit(args, {"resumed": resumed, "swaps": done, "balance": balance}, "\n".join(lines))
    return 0


def register_refresh(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``wallet refresh [--margin SECONDS]``."""
    from ecash_tpm.cli.wallet_cmd import add_device_args, add_tls_args

    p = sub.add_parser("refresh", help="swap coins that expire soon into current keysets")
    add_device_args(p)  # --data, the TPM
    p.add_argument("--bank", default=None, metavar="URL", help="bank base URL (remembered)")
    p.add_argument("--bank-name", default=None, help="expected bank certificate CN")
    p.add_argument("--root", default=None, metavar="PEM", help="central bank root (kept)")
    add_tls_args(p)
    p.add_argument(
        "--margin",
        type=int,
        default=REFRESH_MARGIN_S,
        metavar="SECONDS",
        help=f"refresh coins depositable for less than this (default {REFRESH_MARGIN_S})",
    )
    p.set_defaults(func=_cmd_refresh)

"""``wallet redeem AMOUNT`` / ``wallet redeem --all``: coins back into the bank account (issue 12,
item 5; docs/protocol.md §9.4).

Uses the wallet's bank session like ``wallet withdraw`` (password and TOTP only when it has
expired); swaps first when no exact combination of coins is held (§9.3, as ``wallet pay``
does). The deposit fee of the chosen coins (docs/protocol.md 4.2) is shown before any spend
proof is made; the account is credited the amount less it. A lost answer leaves the coins
pending; ``wallet recover`` settles them from the bank's signed coin status.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from ecash_tpm.cli.output import Progress, emit, money


def _cmd_redeem(args: argparse.Namespace) -> int:
    from ecash_tpm.cli.wallet_cmd import (
        _bank_client,
        _coin_root,
        _coin_settings,
        _existing_wallet,
        _now,
        _spending_context,
        _wallet_context,
        resolve_tcti,
    )
    from ecash_tpm.cli.wallet_coins import _change, _swap_line, bank_session
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.errors import InputError
    from ecash_tpm.wallet.membership import load_membership
    from ecash_tpm.wallet.pay import SPENDABLE_MARGIN_S
    from ecash_tpm.wallet.redeem import redeem, redeem_all_amount
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.swap import REFRESH_MARGIN_S

    data = _existing_wallet(args)
    cfg = _coin_settings(args, need_bank=True)
    root = _coin_root(args)
    membership = load_membership(data)
    currency = str(cfg.get("currency", "EUR"))
    if args.all == bool(args.amount):
        raise InputError("give AMOUNT (minor units) or --all")
    with (
        WalletStore.open(data, _now) as store,
        _bank_client(args, cfg) as bank,
        TpmDevice(resolve_tcti(args)) as device,
        Progress(args) as progress,
    ):
        amount = int(args.amount or 0)
        if args.all:  # every coin still depositable: an exact sum, no swap needed
            amount = redeem_all_amount(
                store.coins("unspent"), currency, _now() + SPENDABLE_MARGIN_S
            )
            if amount <= 0:
                raise InputError("the wallet holds no spendable coins", code="wallet.empty")
        ctx = _spending_context(_wallet_context(store, root, cfg, args), device, data, membership)
        session = bank_session(args, bank, cfg, args.account or membership.account_id, progress)
        change = None if args.all else _change(ctx, bank, membership, REFRESH_MARGIN_S)
        progress.note(f"redeeming {money(amount, currency)} into the bank account")
        result = redeem(
            ctx,
            bank,
            account_id=args.account or membership.account_id,
            amount=amount,
            currency=currency,
            run=session.run,
            change=change,
            progress=progress,
            on_fees=lambda fees: progress.note(_fees_line(fees.to_dict(), currency)),
        )
        balance: dict[str, Any] = {}
        with contextlib.suppress(Exception):  # the account balance is a courtesy
            balance = session.run(bank.account)
        wallet = store.balance()
    d = result.to_dict()
    payload = {**d, "account": balance, "wallet": wallet}
    lines = [_swap_line(s.to_dict()) for s in (change.swaps if change else [])]
    lines.append(_fees_line(d["fees"], d["currency"]))
    lines.append(
        f"redeemed {money(d['amount'], d['currency'])} into account {d['account_id']} with coins "
        f"{', '.join(money(c, d['currency']) for c in d['coins'])} (request {d['request_id']}): "
        f"credited {money(d['credited'], d['currency'])}, deposit fee "
        f"{money(d['fee'], d['currency'])}"
    )
    if balance:
        lines.append(f"account balance: {money(balance['balance'], balance['currency'])}")
    lines.append(
        f"wallet: {money(wallet.get(d['currency'], {}).get('unspent', 0), d['currency'])} spendable"
    )
    emit(args, payload, "\n".join(lines))
    return 0


def recover_redeems(
    args: argparse.Namespace, store: Any, bank: Any, cfg: dict[str, Any], crl: Any
) -> list[dict[str, Any]]:
    """``wallet recover``, docs/protocol.md §9.4: redeems sent without an answer are sent again
    with the session (the bank answers with its stored receipt) and end redeemed; only when
    there is such a redeem is the session used (password and TOTP only if it expired)."""
    from ecash_tpm.cli.wallet_cmd import _coin_root, _now
    from ecash_tpm.cli.wallet_coins import bank_session
    from ecash_tpm.wallet.membership import load_membership
    from ecash_tpm.wallet.records import REDEEM_MERCHANT
    from ecash_tpm.wallet.redeem import fetch_redeem_receipts

    open_redeems = [
        r
        for r in store.payments(open_only=True)
        if r.merchant_id == REDEEM_MERCHANT and r.state == "sent" and r.spends
    ]
    if not open_redeems:
        return []
    account = getattr(args, "account", None) or load_membership(args.data).account_id
    session = bank_session(args, bank, cfg, account)
    fetched = fetch_redeem_receipts(
        store,
        bank,
        root=_coin_root(args),
        bank_name=cfg.get("bank_name") or "bank",
        clock=_now,
        crl=crl,
        run=session.run,
    )
    return [f.to_dict() for f in fetched]


def _fees_line(fees: dict[str, Any], cur: str) -> str:
    """docs/protocol.md 4.2, 9.4: the redeem's fees, shown before the coins leave the wallet."""
    refresh = f", refresh {money(fees['refresh'], cur)} (swap)" if fees["refresh"] else ""
    return (
        f"fees: deposit {money(fees['deposit'], cur)}{refresh}; the account is credited "
        f"{money(fees['credited'], cur)}, your coins pay {money(fees['customer_total'], cur)}"
    )


def register_redeem(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``wallet redeem AMOUNT`` or ``wallet redeem --all``."""
    from ecash_tpm.cli.wallet_cmd import add_device_args, add_tls_args
    from ecash_tpm.cli.wallet_coins import login_args

    p = sub.add_parser("redeem", help="deposit coins into your own bank account")
    add_device_args(p)  # --data, --tcti, --swtpm-state, --json
    p.add_argument("amount", type=int, nargs="?", default=0, help="minor units")
    p.add_argument("--all", action="store_true", help="redeem every spendable coin")
    p.add_argument("--account", default=None, help="bank account (default: the member's)")
    p.add_argument("--bank", default=None, metavar="URL", help="bank base URL (remembered)")
    p.add_argument("--bank-name", default=None, help="expected bank certificate CN")
    p.add_argument("--root", default=None, metavar="PEM", help="central bank root (kept)")
    add_tls_args(p)
    login_args(p)
    p.set_defaults(func=_cmd_redeem)

"""``ecash-tpm wallet withdraw|balance|pay|refresh|recover|history``: the wallet's coin commands.

Moved out of ``wallet_cmd`` (which keeps the shared helpers: settings, links, login input).
Payments are exact; when the wallet holds no exact combination ``wallet pay`` swaps first
(docs/protocol.md 9.3: anonymous change, at most one swap per payment, shown in the output),
and every swap first refreshes coins whose keyset's deposit window ends within the refresh
margin. ``wallet balance`` shows those expiring coins and never counts expired coins as
spendable; ``wallet refresh`` swaps them into current keysets; ``wallet recover`` also
completes swaps whose answer was lost.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.cli.output import Progress, emit, money, read_json, when
from ecash_tpm.cli.wallet_cmd import (
    _bank_client,
    _coin_root,
    _coin_settings,
    _existing_wallet,
    _link,
    _merchant_name,
    _now,
    _password,
    _spending_context,
    _totp_code,
    _wallet_context,
    add_device_args,
    add_tls_args,
    resolve_tcti,
)
from ecash_tpm.wallet.pay import RECOVERY_GRACE_S
from ecash_tpm.wallet.swap import REFRESH_MARGIN_S

if TYPE_CHECKING:
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.pki import CrlInput
    from ecash_tpm.wallet.context import SpendingContext
    from ecash_tpm.wallet.membership import Membership
    from ecash_tpm.wallet.session import SessionKeeper
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.swap import Change


def bank_session(
    args: argparse.Namespace,
    bank: BankClient,
    cfg: dict[str, Any],
    account_id: str,
    progress: Progress | None = None,
) -> SessionKeeper:
    """The wallet's stored bank session (docs/protocol.md, "Wallet sessions"): password and
    TOTP are asked for only when the stored token is missing, expired or refused."""
    from ecash_tpm.wallet.session import SessionKeeper

    return SessionKeeper(
        Path(args.data),
        bank,
        account_id=account_id,
        bank_url=str(cfg["bank_url"]),
        clock=_now,
        credentials=lambda: (_password(args), _totp_code(args)),
        on_login=None if progress is None else lambda: progress.note("logging in at the bank"),
    )


def _cmd_withdraw(args: argparse.Namespace) -> int:
    from ecash_tpm.errors import NotFoundError
    from ecash_tpm.wallet.membership import load_membership
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.withdraw import (
        WithdrawResult,
        new_request_id,
        resume_withdrawals,
        withdraw,
    )

    cfg = _coin_settings(args, need_bank=True)
    root = _coin_root(args)
    membership = load_membership(args.data)
    with (
        WalletStore.open(args.data, _now) as store,
        _bank_client(args, cfg) as bank,
        Progress(args) as progress,
    ):
        ctx = _wallet_context(store, root, cfg, args)
        session = bank_session(args, bank, cfg, args.account or membership.account_id, progress)
        rid = new_request_id()  # a retry after a fresh login resumes this very request
        done: list[WithdrawResult] = []

        def work() -> None:
            if store.pending_withdrawals():
                progress.note("completing withdrawals whose answer was lost")
                done.extend(resume_withdrawals(ctx, bank, progress=progress))
            if args.amount and not any(r.request_id == rid for r in done):
                with contextlib.suppress(NotFoundError):
                    store.withdrawal(rid)
                    return  # saved before the token was refused: resumed above on the retry
                progress.note(f"withdrawing {args.amount}")
                done.append(
                    withdraw(
                        ctx,
                        bank,
                        credential=membership.credential,
                        epoch=membership.epoch,
                        amount=args.amount,
                        currency=cfg.get("currency", "EUR"),
                        strategy=args.split,
                        progress=progress,
                        request_id=rid,
                    )
                )

        session.run(work)
        balance = store.balance()
    rows = [r.to_dict() for r in done]
    lines = [
        f"withdrew {money(d['amount'], d['currency'])} as coins "
        f"{', '.join(money(c, d['currency']) for c in d['coins'])} (request {d['request_id']}; "
        f"withdraw fee {money(d['fee'], d['currency'])}, "
        f"account debited {money(d['debited'], d['currency'])})"
        for d in rows
    ] or ["nothing to withdraw"]
    emit(args, {"withdrawals": rows, "balance": balance}, "\n".join(lines))
    return 0


def _cmd_balance(args: argparse.Namespace) -> int:
    """Spendable (never an expired coin), expiring within the refresh margin (docs/protocol.md
    9.3: ``wallet refresh``), pending, expired."""
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
            if hc.deposit_until <= now + REFRESH_MARGIN_S:
                expiring[hc.currency] = expiring.get(hc.currency, 0) + hc.value
    lines = []
    for cur, b in sorted(balance.items()):
        per_value = sorted(coins.get(cur, {}).items(), reverse=True)
        held = ", ".join(f"{n} x {money(v, cur)}" for v, n in per_value)
        lines.append(
            f"{money(b['unspent'], cur)} spendable ({held or 'no coins'}); "
            f"{money(expiring.get(cur, 0), cur)} expiring soon (`wallet refresh`), "
            f"{money(b['pending'], cur)} pending, {money(b['expired'], cur)} expired"
        )
    payload = {
        "balance": balance,
        "coins": {c: {str(v): n for v, n in per.items()} for c, per in coins.items()},
        "expiring": {c: expiring.get(c, 0) for c in balance},  # of the spendable value
    }
    emit(args, payload, "\n".join(lines) or "empty wallet")
    return 0


def _change(
    ctx: SpendingContext, bank: BankClient, membership: Membership, margin_s: int
) -> Change:
    """The wallet's swapper (docs/protocol.md 9.3): anonymous, no bank login."""
    from ecash_tpm.wallet.swap import Change

    return Change(ctx, bank, membership.credential, membership.epoch, refresh_margin_s=margin_s)


def _swap_line(d: dict[str, Any]) -> str:
    cur = str(d["currency"])
    return (
        f"swapped coins {', '.join(money(v, cur) for v in d['inputs'])} for "
        f"{', '.join(money(v, cur) for v in d['outputs'])} at the bank "
        f"({d['reason']}, fee {money(d['fee'], cur)})"
    )


def _fees_line(fees: dict[str, Any], cur: str) -> str:
    """docs/protocol.md 4.2: the payment's fees, shown before the coins leave the wallet."""
    return (
        f"fees: refresh {money(fees['refresh'], cur)} (yours), deposit "
        f"{money(fees['deposit'], cur)} (the merchant's); your coins pay "
        f"{money(fees['customer_total'], cur)}"
    )


def _cmd_pay(args: argparse.Namespace) -> int:
    """Pay a merchant's request; swap first when no exact combination is held (docs/protocol.md
    9.3: needs the bank, ``--bank``, remembered; no login) and refresh coins about to expire."""
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
        body = offer["request"].get("body", {}) if isinstance(offer["request"], dict) else {}
        currency = str(body.get("currency") or cfg.get("currency", "EUR"))
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
                on_fees=lambda fees: progress.note(_fees_line(fees.to_dict(), currency)),
            )
    d = result.to_dict()
    swapped = [_swap_line(s.to_dict()) for s in (change.swaps if change else [])]
    paid = (
        f"paid {money(d['amount'], d['currency'])} to {d['merchant_id']} with coins "
        f"{', '.join(money(c, d['currency']) for c in d['coins'])} "
        f"(deposit {d['deposit_id']})"
    )
    emit(args, d, "\n".join([*swapped, _fees_line(d["fees"], d["currency"]), paid]))
    return 0


def _cmd_refresh(args: argparse.Namespace) -> int:
    """Swap coins whose keyset's deposit window ends within ``--margin`` into current keysets
    (docs/protocol.md 9.3); first complete swaps whose answer was lost."""
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


def _fetch_receipts(
    args: argparse.Namespace, store: WalletStore, crl: CrlInput | None
) -> dict[str, Any]:
    """protocol.md §8.1: ask each open payment's (and purchase's) merchant for its answer."""
    from ecash_tpm.clients.merchant import MerchantClient
    from ecash_tpm.wallet.purchases import PURCHASES_DB_FILE, PurchaseStore
    from ecash_tpm.wallet.receipt_fetch import fetch_purchases, fetch_receipts

    root, names = _coin_root(args), {p.merchant_url: p.merchant_id for p in store.payments()}
    with contextlib.ExitStack() as stack:

        def shop(url: str | None) -> MerchantClient | None:
            if not url or url not in names:
                return None
            conn = _link(args, url, role="merchant", name=names[url])
            return stack.enter_context(MerchantClient(url, tls=conn.tls, expect=conn.expect))

        bought: list[dict[str, Any]] = []
        if (Path(args.data) / PURCHASES_DB_FILE).is_file():  # purchases first: key and receipt
            purchases = stack.enter_context(PurchaseStore.open(args.data, _now))
            bought = fetch_purchases(store, purchases, shop, root=root, clock=_now, crl=crl)
        paid = fetch_receipts(store, lambda r: shop(r.merchant_url), root=root, clock=_now, crl=crl)
    return {"purchases": bought, "receipts": [r.to_dict() for r in paid]}


def _cmd_recover(args: argparse.Namespace) -> int:
    from ecash_tpm.cli.wallet_redeem import recover_redeems
    from ecash_tpm.wallet.pay import recover_payments
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.swap import resume_swaps

    data = _existing_wallet(args)
    cfg = _coin_settings(args, need_bank=True)
    root = _coin_root(args)
    with WalletStore.open(data, _now) as store, _bank_client(args, cfg) as bank:
        ctx = _wallet_context(store, root, cfg, args)
        crl = ctx.crl
        fetched = _fetch_receipts(args, store, crl)  # issue 10, attack 8: the merchant's answer
        fetched["swaps"] = resume_swaps(ctx, bank)  # 9.3: a lost swap answer, asked again
        fetched["redeems"] = recover_redeems(args, store, bank, cfg, crl)  # 9.4: the receipt
        results = recover_payments(
            store,
            bank,
            clock=_now,
            root=root,
            bank_name=cfg.get("bank_name") or "bank",  # the name the TLS link pins
            grace_s=args.grace,
            crl=crl,
        )
    rows = [r.to_dict() for r in results]
    lines = [f"{r['purchase_id']}: {r['outcome']}" for r in fetched["purchases"]]
    lines += [f"{r['payment_id']}: {r['outcome']}" for r in fetched["receipts"] + rows]
    lines += [
        f"{r['payment_id']}: {r['outcome']} (redeem)"
        + (f"; {r['fee_mismatch']['message']}" if r.get("fee_mismatch") else "")
        for r in fetched["redeems"]
    ]
    lines += [f"swap {rid}: completed (its answer had been lost)" for rid in fetched["swaps"]]
    emit(args, {**fetched, "payments": rows}, "\n".join(lines) or "no open payments")
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from ecash_tpm.wallet.store import WalletStore

    with WalletStore.open(_existing_wallet(args), _now) as store:
        rows = [p.to_dict() for p in store.payments(limit=args.limit)]
    text = "\n".join(
        f"{when(r['created_at'])}  {r['state']:<7} {money(r['amount'], r['currency']):>14}  "
        f"{r['merchant_id']}  {r['payment_id']}"
        + (f"  [{r['error_code']}]" if r["error_code"] else "")
        for r in rows
    )
    emit(args, {"payments": rows}, text or "no payments")
    return 0


def login_args(p: argparse.ArgumentParser) -> None:
    """Password and TOTP: asked only when the wallet has no usable bank session."""
    p.add_argument(
        "--password-file",
        default=None,
        help="file holding the bank password (else $ECASH_TPM_PASSWORD, else a prompt); "
        "only read when the wallet has to log in",
    )
    p.add_argument(
        "--totp",
        default=None,
        help="one-time code from your authenticator (only needed when the wallet logs in; "
        "the session is kept until it expires)",
    )
    p.add_argument("--totp-secret-file", default=None, help="file holding the base32 TOTP secret")


def _cmd_logout(args: argparse.Namespace) -> int:
    from ecash_tpm.wallet.session import delete_session

    gone = delete_session(_existing_wallet(args))
    emit(args, {"logged_out": gone}, "bank session deleted" if gone else "no bank session")
    return 0


def register_coins(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``wallet withdraw|logout|balance|pay|refresh|recover|history``."""

    def data_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data", type=Path, required=True, help="wallet data directory")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    def bank_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bank", default=None, metavar="URL", help="bank base URL (remembered)")
        p.add_argument("--bank-name", default=None, help="expected bank certificate CN")
        p.add_argument("--root", default=None, metavar="PEM", help="central bank root (kept)")
        add_tls_args(p)

    p = data_args(sub.add_parser("withdraw", help="withdraw coins from the bank account"))
    bank_args(p)
    p.add_argument("amount", type=int, nargs="?", default=0, help="minor units (0: resume only)")
    p.add_argument("--currency", default=None, help="currency (remembered; default EUR)")
    p.add_argument("--account", default=None, help="bank account (default: the member's)")
    login_args(p)
    p.add_argument(
        "--split",
        choices=["payable", "fewest"],
        default="payable",
        help="denominations: 'payable' keeps every smaller amount payable (default)",
    )
    p.set_defaults(func=_cmd_withdraw)

    p = data_args(sub.add_parser("logout", help="forget the stored bank session"))
    p.set_defaults(func=_cmd_logout)

    p = data_args(sub.add_parser("balance", help="coins held, expiring, pending and expired"))
    p.set_defaults(func=_cmd_balance)

    from ecash_tpm.cli.wallet_keysets import register_keysets
    from ecash_tpm.cli.wallet_redeem import register_redeem
    from ecash_tpm.cli.wallet_refund import register_refund_claim

    register_keysets(sub)  # docs/protocol.md 4.1: the certified keyset list trusted
    register_refund_claim(sub)  # issue 12 (#3): claim a merchant's refund
    register_redeem(sub)  # issue 12 (#5): coins back into the bank account

    p = sub.add_parser("pay", help="pay a merchant with TPM-bound coins")
    add_device_args(p)
    bank_args(p)
    p.add_argument("--merchant", required=True, metavar="URL", help="the shop's base URL")
    p.add_argument(
        "--merchant-name", default=None, help="expected shop certificate name (merchant id)"
    )
    add_tls_args(p)
    p.add_argument("--request", default=None, metavar="FILE", help="{request, cert} JSON")
    p.add_argument("--amount", type=int, default=None, help="ask the shop for this amount")
    p.add_argument("--product-id", default=None)
    p.add_argument(
        "--max-deadline",
        type=int,
        default=None,
        metavar="SECONDS",
        help="refuse requests whose deadline lies further ahead (remembered; default "
        "600): the coins of a payment whose answer is lost stay pending until then",
    )
    p.set_defaults(func=_cmd_pay)

    p = sub.add_parser("refresh", help="swap coins that expire soon into current keysets")
    add_device_args(p)  # --data, the TPM
    bank_args(p)
    p.add_argument(
        "--margin",
        type=int,
        default=REFRESH_MARGIN_S,
        metavar="SECONDS",
        help=f"refresh coins depositable for less than this (default {REFRESH_MARGIN_S})",
    )
    p.set_defaults(func=_cmd_refresh)

    p = data_args(sub.add_parser("recover", help="settle payments sent without an answer"))
    bank_args(p)
    login_args(p)  # 9.4: a redeem sent without an answer is asked again with the session
    p.add_argument(
        "--grace",
        type=int,
        default=RECOVERY_GRACE_S,
        metavar="SECONDS",
        help="wait this long past a request's deadline, by the bank's signed time, before "
        f"releasing its coins (deposits in flight; default {RECOVERY_GRACE_S})",
    )
    p.set_defaults(func=_cmd_recover)

    p = data_args(sub.add_parser("history", help="payments, newest first"))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_cmd_history)

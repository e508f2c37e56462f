"""Step 4, ``withdraw``: the customer logs in (password + TOTP) and withdraws blind-signed coins:
the story's amount, coins for the fair-exchange purchases, and one coin of a keyset whose
deposit window closes a few seconds later (for ``expired_coin_rejected``)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ecash_tpm.clients.bank import BankClient
from ecash_tpm.demo.context import (
    EXPIRING_VALUE,
    EXPIRING_WINDOW_S,
    PRODUCT_PRICE,
    WITHDRAW_AMOUNT,
    ExpiringCoin,
    StoryContext,
    now,
)
from ecash_tpm.deploy.bootstrap import admin_bank
from ecash_tpm.protocol.money import format_amount

if TYPE_CHECKING:
    from ecash_tpm.wallet.coins import SplitStrategy
    from ecash_tpm.wallet.withdraw import WithdrawResult


def withdraw(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Log in, withdraw, and create the short-lived keyset (an operator action)."""
    from ecash_tpm.crypto import blindrsa
    from ecash_tpm.wallet.store import WalletStore

    dep = ctx.dep
    customer = dep.customer
    if ctx.bank is None:
        bank = BankClient(dep.url("bank"), **dep.client_kwargs("bank"))
        ctx.on_close(bank.close)
        login = bank.login(customer.account_id, customer.password, customer.totp())
        ctx.bank = bank
        ctx.fact(
            "login",
            f"{customer.account_id}: password + TOTP -> session until "
            f"{dt.datetime.fromtimestamp(login['expires_at'], dt.UTC):%H:%M:%S} UTC",
        )
    else:
        ctx.fact("login", f"{customer.account_id}: the session of the join's authorisation")
    bank = ctx.bank_session
    store = WalletStore.open(ctx.wallet_dir, now)
    ctx.store = store
    ctx.on_close(store.close)
    result = _withdraw(ctx, WITHDRAW_AMOUNT)
    coins = result.to_dict()["coins"]
    ctx.fact(
        "coins",
        f"{' + '.join(format_amount(c, result.currency) for c in coins)} = "
        f"{format_amount(result.amount, result.currency)} "
        "(blinded: the bank never saw them)",
    )
    # Coins for the two purchases of the fair-exchange step: after the double spend the
    # member is revoked and gets no new coins (coins already held stay spendable).
    goods = _withdraw(ctx, 2 * PRODUCT_PRICE).to_dict()["coins"]
    ctx.fact("for digital goods", " + ".join(map(str, goods)))

    # A keyset whose deposit window closes in a few seconds, and one coin of it.
    key = blindrsa.generate_key(2048)  # first, so that the window starts after it
    with admin_bank(dep.bank_settings(), keygen=lambda _bits: key) as admin:
        created = now()
        ks = admin.keysets.create(
            value=EXPIRING_VALUE,
            currency=dep.currency,
            withdraw_from=created,
            withdraw_until=created + EXPIRING_WINDOW_S,
            deposit_until=created + EXPIRING_WINDOW_S,
            now=created,
        )
        _certify_keysets(ctx, admin)  # on the central bank's list, or no wallet takes it
    short = _withdraw(ctx, EXPIRING_VALUE, strategy="fewest")
    (held,) = short.coins
    ctx.expiring_coin = ExpiringCoin(
        keyset_id=ks.hex_id,
        deposit_until=ks.deposit_until,
        sigma=held.sigma,
        value=held.value,
    )
    ctx.fact(
        "short-lived keyset",
        f"{ks.hex_id[:16]}...: one {EXPIRING_VALUE} "
        f"{dep.currency} coin, deposit window closes in {EXPIRING_WINDOW_S} s",
    )
    account = bank.account()
    wallet = ctx.wallet_balance()
    ctx.fact("bank account", format_amount(account["balance"], account["currency"]))
    ctx.fact("wallet", f"{wallet.get('unspent', 0)} spendable")
    detail.update(
        amount=result.amount,
        currency=result.currency,
        coins=coins,
        expiring_coin={
            "value": EXPIRING_VALUE,
            "keyset_id": ks.hex_id,
            "deposit_until": ks.deposit_until,
        },
        customer_balance=account["balance"],
        wallet=wallet,
    )


def _certify_keysets(ctx: StoryContext, admin: Any) -> None:
    """The bank submits its keysets to the central bank (docs/protocol.md 4.1)."""
    from ecash_tpm.clients.centralbank import CentralBankClient
    from ecash_tpm.deploy.bootstrap import certify_bank_keysets

    dep = ctx.dep
    with CentralBankClient(dep.url("centralbank"), **dep.client_kwargs("centralbank")) as cb:
        listed = certify_bank_keysets(admin, cb)
    ctx.fact(
        "keyset list",
        f"certified by the central bank: list {listed.list_id[:16]}... "
        f"(#{listed.sequence}, {len(listed.keyset_ids)} keysets, the same for every wallet)",
    )


def _withdraw(
    ctx: StoryContext, amount: int, *, strategy: SplitStrategy = "payable"
) -> WithdrawResult:
    """Withdraw ``amount`` into the wallet with the customer's session."""
    from ecash_tpm.wallet.context import WalletContext
    from ecash_tpm.wallet.withdraw import withdraw as wallet_withdraw

    dep, member = ctx.dep, ctx.member
    return wallet_withdraw(
        WalletContext(ctx.wallet, dep.root_pem(), now, "bank"),
        ctx.bank_session,
        credential=member.credential,
        epoch=member.epoch,
        amount=amount,
        currency=dep.currency,
        strategy=strategy,
    )

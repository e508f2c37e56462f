"""Step ``change`` (after ``deposit``): a payment that needs a swap (docs/protocol.md 9.3).

Payments are exact; a purse that holds no exact combination swaps coins at the bank first,
anonymously (no account; the TPM spend proofs sign the swap request), then pays. The purse is a
second coin store of the same member holding one 64 coin, so the main wallet keeps the coins
the later steps spend."""

from __future__ import annotations

from typing import Any

from ecash_tpm.demo.context import DemoCheckError, StoryContext, now

#: The purse's one coin and the payment it cannot make exactly without change.
PURSE_COIN = 64
CHANGE_AMOUNT = 10


def change(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Withdraw one 64 coin into a purse, pay 10 at merchant A: one swap, then the payment."""
    from ecash_tpm.wallet.context import WalletContext
    from ecash_tpm.wallet.pay import pay
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.swap import Change
    from ecash_tpm.wallet.withdraw import withdraw

    dep, member, bank = ctx.dep, ctx.member, ctx.bank_session
    if ctx.signer is None:
        raise DemoCheckError("the wallet's TPM signer is not open")
    purse = WalletStore.open(ctx.workdir / "wallet-a-purse", now)
    ctx.on_close(purse.close)
    wallet = WalletContext(purse, dep.root_pem(), now, "bank", crl=dep.crl_source())
    withdraw(
        wallet,
        bank,
        credential=member.credential,
        epoch=member.epoch,
        amount=PURSE_COIN,
        currency=dep.currency,
        strategy="fewest",
    )
    ctx.fact("purse", f"one {PURSE_COIN} {dep.currency} coin (a second coin store of member A)")
    spending = wallet.spending(ctx.signer, hop=member.opener_public, expected_t0=member.t0)
    changer = Change(spending, bank, member.credential, member.epoch)
    shop = ctx.merchant("merchant-a")
    offer = shop.create_request(CHANGE_AMOUNT)
    result = pay(
        spending,
        offer["request"],
        offer["cert"],
        merchant=shop,
        merchant_url=shop.base_url,
        change=changer,
    )
    if result.swap is None or len(changer.swaps) != 1:
        raise DemoCheckError("the payment did not need exactly one swap", detail=result.to_dict())
    swap = result.swap
    ctx.fact(
        "swap at the bank",
        f"coins {swap['inputs']} in, {swap['outputs']} out (fee {swap['fee']}); no account, "
        "TPM spend proofs over the swap request",
    )
    ctx.fact("paid", f"{result.amount} {result.currency} to merchant A with coins {result.coins}")
    left = purse.balance().get(dep.currency, {})
    ctx.fact("purse after", f"{left.get('unspent', 0)} spendable")
    books = ctx.books()
    ctx.fact("coins outstanding", f"{books['outstanding']} {dep.currency}")
    detail.update(
        swap=swap,
        amount=result.amount,
        coins=result.coins,
        purse_left=int(left.get("unspent", 0)),
        deposit_id=result.to_dict()["deposit_id"],
    )

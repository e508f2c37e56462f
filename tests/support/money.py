"""Issue 12 helpers: a wallet's :class:`~ecash_tpm.wallet.swap.Change` over the test system,
payments that swap first, and a swap request made by hand (for attacks on the swap route)."""

from __future__ import annotations

import secrets
from typing import Any

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.groupsig import coin_message, make_spend_proof
from ecash_tpm.protocol.coins import Coin, Spend
from ecash_tpm.protocol.swap import SwapRequest
from ecash_tpm.wallet.swap import Change
from support.system import MERCHANTS, WalletHandle

__all__ = ["change_for", "hand_swap", "pay_with_change"]


def change_for(wallet: WalletHandle, **kw: Any) -> Change:
    """The wallet's swapper: anonymous bank client, membership credential, TPM signer."""
    return Change(
        wallet.spending(),
        wallet.system.bank_client(),
        wallet.membership.credential,
        wallet.membership.epoch,
        **kw,
    )


def pay_with_change(
    wallet: WalletHandle, amount: int, merchant: str = MERCHANTS[0], *, change: Change
) -> Any:
    """``wallet.pay`` with ``change``: at most one swap before the coins are picked."""
    return wallet.pay(amount, merchant, change=change)


def hand_swap(
    wallet: WalletHandle, coins: list[Coin], values: list[int], *, deadline_s: int = 300
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(request body, spends)`` of a swap of ``coins`` made by hand (no wallet records):
    outputs blinded under the current keysets, TPM spend proofs over the swap's preq."""
    system = wallet.system
    now = system.clock()
    keysets = system.bank.keysets.list_keysets(now=now)
    by_value = {k.value: k for k in keysets if k.can_withdraw(now)}
    outputs = []
    for value in values:
        ks = by_value[value]
        rc = wallet.membership.credential.randomize()
        prepared = blindrsa.prepare(
            coin_message(ks.keyset_id, wallet.membership.epoch, secrets.token_bytes(32), rc)
        )
        blinded, _ = blindrsa.blind(ks.public_key, prepared, salt_length=ks.variant.salt_length)
        outputs.append((ks.keyset_id, blinded))
    req = SwapRequest.build(
        bank="bank",
        request_id=secrets.token_urlsafe(16),
        inputs=[c.sigma for c in coins],
        outputs=outputs,
        deadline=now + deadline_s,
    )
    spends = [
        Spend(
            c,
            make_spend_proof(
                wallet.signer,
                hop=wallet.membership.opener_public,
                preq=req.preq,
                keyset_id=c.keyset_id,
                epoch=c.epoch,
                sigma=c.sigma,
                coin=c.credential,
            ),
        ).to_dict()
        for c in coins
    ]
    return req.to_body(), spends

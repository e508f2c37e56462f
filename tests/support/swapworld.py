"""Issue 12: swaps in a :class:`~support.bankworld.BankWorld` (in-process bank, software DAA
keys): coins in, new coins out, as a wallet's swap would send them (docs/protocol.md 9.3)."""

from __future__ import annotations

import secrets

from ecash_tpm.protocol.coins import Coin
from ecash_tpm.protocol.swap import SwapRequest
from support.bankworld import BankWorld
from support.coinmint import Member, make_spend, prepare_coin

__all__ = ["swap"]


def swap(
    world: BankWorld, member: Member, coins: list[Coin], values: list[int]
) -> tuple[str, list[Coin]]:
    """Swap ``coins`` for new coins of ``values`` at the world's bank; ``(request_id, coins)``."""
    latest = {k.value: k for k in sorted(world.keysets(), key=lambda k: k.withdraw_from)}
    pending = [prepare_coin(member, latest[v]) for v in values]
    req = SwapRequest.build(
        bank=world.bank.bank_name,
        request_id="s-" + secrets.token_hex(12),
        inputs=[c.sigma for c in coins],
        outputs=[p.item for p in pending],
        deadline=world.clock() + 300,
    )
    spends = [make_spend(member, c, req.preq, world.issuer.hop).to_dict() for c in coins]
    rid, sigs = world.bank.swap({"request": req.to_body(), "spends": spends})
    return rid, [p.finalize(s) for p, s in zip(pending, sigs, strict=True)]

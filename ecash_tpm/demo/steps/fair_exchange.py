"""Step 12, ``fair_exchange``: digital goods with an offline TTP (DESIGN §6), told by
:mod:`ecash_tpm.demo.fair_exchange`: an honest purchase at merchant A that never involves the
TTP, then one at merchant B, which withholds the key, resolved by the TTP."""

from __future__ import annotations

from typing import Any

from ecash_tpm.demo.context import PRODUCT_PRICE, DemoCheckError, StoryContext, now, short


def fair_exchange(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Buy both products with the wallet's remaining coins; the TTP strikes merchant B."""
    from ecash_tpm.demo.fair_exchange import run_fair_exchange_story
    from ecash_tpm.wallet.context import WalletContext
    from ecash_tpm.wallet.purchases import Buyer, PurchaseStore

    dep = ctx.dep
    if ctx.signer is None:
        raise DemoCheckError("the wallet's TPM signer is not open")
    purchases = PurchaseStore.open(ctx.wallet_dir, now)
    ctx.on_close(purchases.close)
    wallet = WalletContext(ctx.wallet, dep.root_pem(), now, "bank", crl=dep.crl_source())
    buyer = Buyer(
        wallet.spending(ctx.signer, hop=ctx.member.opener_public, expected_t0=ctx.member.t0),
        purchases,
    )
    shops = {"honest": dep.url("merchant-a"), "cheating": dep.url("merchant-b")}
    ctx.fact("TTP", f"{dep.url('ttp')}: escrows each product's AES-256-GCM key")
    story = run_fair_exchange_story(
        buyer=buyer,
        ttp_url=dep.url("ttp"),
        honest_url=shops["honest"],
        cheating_url=shops["cheating"],
        admin_tokens={url: dep.merchant_token for url in shops.values()},
        price=PRODUCT_PRICE,
        links={
            dep.url("ttp"): dep.client_kwargs("ttp"),
            shops["honest"]: dep.client_kwargs("merchant-a"),
            shops["cheating"]: dep.client_kwargs("merchant-b"),
        },
    )
    honest, cheating = story["honest"], story["cheating"]
    ctx.fact(
        "merchant A (honest)",
        f"{honest['bytes']} bytes delivered by {honest['delivered_by']}; "
        f"TTP contacted: {'yes' if honest['ttp_contacted'] else 'no'}",
    )
    ctx.fact(
        "merchant B (withholds)",
        f"{cheating['failure']} -> dispute {short(str(cheating['dispute_id']), 12)}, "
        f"{cheating['resolution']} after {cheating['waited_s']} s; "
        f"{cheating['bytes']} bytes delivered by {cheating['delivered_by']}",
    )
    ctx.fact("strike", f"merchant B: {cheating['strike']}")
    detail.update(story)
    if honest["ttp_contacted"] or not cheating["strike"]:
        raise DemoCheckError(
            "the honest purchase must not involve the TTP, and the cheater must get a strike",
            detail=story,
        )

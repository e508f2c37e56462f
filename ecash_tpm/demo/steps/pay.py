"""Step 5, ``pay``: the customer pays at merchant A through the wallet library, one TPM spend
proof per coin; the purchase is left in the context for ``deposit`` and the double spend."""

from __future__ import annotations

from typing import Any

from ecash_tpm.demo.context import PAY_AMOUNT, Paid, StoryContext, now
from ecash_tpm.protocol.money import format_amount


def pay(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Pay as the wallet CLI does; this opens the TPM signer the later steps use."""
    from ecash_tpm.wallet.context import WalletContext
    from ecash_tpm.wallet.membership import open_signer
    from ecash_tpm.wallet.pay import pay as wallet_pay

    dep, member = ctx.dep, ctx.member
    shop = ctx.merchant("merchant-a")
    offer = shop.create_request(PAY_AMOUNT)
    body = offer["request"]["body"]
    ctx.fact(
        "payment request",
        f"{format_amount(body['amount'], body['currency'])} from "
        f"{body['merchant_id']}, signed by its certified key",
    )
    ctx.signer = open_signer(ctx.devices["A"], ctx.wallet_dir, member)
    wallet = WalletContext(ctx.wallet, dep.root_pem(), now, "bank", crl=dep.crl_source())
    result = wallet_pay(
        wallet.spending(ctx.signer, hop=member.opener_public, expected_t0=member.t0),
        offer["request"],
        offer["cert"],
        merchant=shop,
        merchant_url=shop.base_url,
    )
    ctx.paid_order = Paid(
        offer=offer,
        result=result,
        serials=ctx.wallet.payment(result.payment_id).serials,
    )
    timings = {k: round(v * 1000, 1) for k, v in result.timings.items()}
    ctx.fact("coins paid", " + ".join(map(str, result.coins)))
    ctx.fact(
        "TPM spend proofs",
        f"{len(result.coins)} (one TPM2_Commit + TPM2_Sign each), "
        f"{timings.get('proofs_s', 0):.0f} ms",
    )
    ctx.fact(
        "merchant A",
        f"checked the proofs, deposited, answered in {timings.get('merchant_s', 0):.0f} ms",
    )
    detail.update(
        payment_id=result.payment_id,
        merchant_id=result.merchant_id,
        amount=result.amount,
        coins=result.coins,
        timings_ms={k.removesuffix("_s"): v for k, v in timings.items()},
    )

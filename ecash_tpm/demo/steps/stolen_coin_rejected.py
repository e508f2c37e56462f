"""Step 9, ``stolen_coin_rejected``: a copy of wallet A on device B cannot spend: TPM B refuses
TPM A's key blob, and a fresh key on TPM B makes spend proofs the merchant refuses."""

from __future__ import annotations

import shutil
from typing import Any

from ecash_tpm.demo.context import (
    STOLEN_AMOUNT,
    DemoCheckError,
    StoryContext,
    error_of,
    now,
    refusal,
)


def stolen_coin_rejected(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Copy wallet A's files and try both ways a thief with device B could spend."""
    from ecash_tpm.wallet.context import WalletContext
    from ecash_tpm.wallet.membership import load_membership, open_signer
    from ecash_tpm.wallet.pay import pay
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

    dep, device = ctx.dep, ctx.devices["B"]
    copy = ctx.workdir / "wallet-b-copy"
    shutil.copytree(ctx.wallet_dir, copy)
    membership = load_membership(copy)
    attempts: list[dict[str, Any]] = []
    ctx.fact("copy", f"{copy.name}: membership, coins and TPM key blobs of wallet A")
    blob_error = error_of(lambda: open_signer(device, copy, membership))
    if blob_error is None:
        raise DemoCheckError("device B loaded device A's DAA key blob")
    attempts.append(
        {
            "how": "load the copied DAA key blob on TPM B",
            "layer": "device (TPM B)",
            "code": blob_error.code,
        }
    )
    ctx.fact(
        "1. copied key blob",
        f"refused by TPM B: {blob_error.code} (wrapped by TPM A's storage key)",
    )
    for blob in ("daa.pub", "daa.priv"):
        (copy / "tpm" / blob).unlink()
    key = device.load_or_create_daa_key(copy / "tpm")
    thief = TpmDaaSigner(device, key)
    shop = ctx.merchant("merchant-a")
    with WalletStore.open(copy, now) as stolen:
        offer = shop.create_request(STOLEN_AMOUNT)
        wallet = WalletContext(stolen, dep.root_pem(), now, "bank")
        err = refusal(
            lambda: pay(
                wallet.spending(thief, hop=membership.opener_public),
                offer["request"],
                offer["cert"],
                merchant=shop,
                merchant_url=shop.base_url,
                self_check=False,
            ),
            what="the stolen coins",
        )
        coins = [hc.sigma for hc in stolen.coins("pending")]
    device.unload(key)
    if err.code != "daa.spend_proof_invalid":
        raise DemoCheckError(f"expected daa.spend_proof_invalid, got {err.code}")
    attempts.append(
        {
            "how": "fresh DAA key on TPM B, the wallet's own checks bypassed",
            "layer": "merchant",
            "code": err.code,
            "http_status": err.status,
        }
    )
    states = sorted({ctx.bank_session.coin_status(s)["state"] for s in coins})
    ctx.fact(
        "2. fresh key on TPM B",
        f"merchant A refused: HTTP {err.status} {err.code} "
        "(W = sk*S binds each coin to TPM A's key)",
    )
    ctx.fact("the coins", f"still {', '.join(states)} at the bank: the owner keeps them")
    detail.update(
        refused=True,
        layer=attempts[-1]["layer"],
        code=err.code,
        attempts=attempts,
        coin_states_at_bank=states,
    )

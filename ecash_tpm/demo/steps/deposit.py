"""Step 6, ``deposit``: merchant A deposited while answering; the bank's receipt is verified
here and the balances are shown on every side (bank ledger, wallet)."""

from __future__ import annotations

from typing import Any

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.demo.context import DemoCheckError, StoryContext
from ecash_tpm.protocol.money import format_amount


def deposit(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Check the receipt of step ``pay`` and that its coins are spent at the bank."""
    from ecash_tpm.protocol.coins import verify_payment_request
    from ecash_tpm.protocol.payments import verify_receipt

    dep, offer, result = ctx.dep, ctx.paid.offer, ctx.paid.result
    serials = ctx.paid.serials
    req = verify_payment_request(offer["request"], offer["cert"], dep.root_pem())
    body = verify_receipt(
        result.receipt,
        ctx.bank_session.keysets().bank_cert,
        dep.root_pem(),
        preq=req.preq,
        merchant_id=req.merchant_id,
        amount=req.amount,
        currency=req.currency,
        serials=serials,
    )
    states = {b64u_encode(s)[:12]: ctx.bank_session.coin_status(s)["state"] for s in serials}
    if set(states.values()) != {"spent"}:
        raise DemoCheckError("the paid coins are not spent at the bank", detail=states)
    books = ctx.books()
    wallet = ctx.wallet_balance()
    ctx.fact(
        "receipt",
        f"deposit {body.deposit_id}, {format_amount(body.amount, body.currency)}, "
        f"{len(body.serials)} serials; bank signature valid (cert from the root)",
    )
    ctx.fact("coins at the bank", ", ".join(f"{s}... {st}" for s, st in states.items()))
    ctx.fact("customer (bank)", f"{books['customer']} {dep.currency}")
    ctx.fact(
        "customer (wallet)",
        f"{wallet.get('unspent', 0)} spendable, {wallet.get('pending', 0)} pending",
    )
    ctx.fact("merchant A (bank)", f"{books['merchant-a']} {dep.currency}")
    ctx.fact("coins outstanding", f"{books['outstanding']} {dep.currency}")
    detail.update(
        receipt={
            "deposit_id": body.deposit_id,
            "amount": body.amount,
            "serials": len(body.serials),
            "verified": True,
        },
        coin_states=sorted(set(states.values())),
        balances={
            "customer_bank": books["customer"],
            "wallet": wallet,
            "merchant_a": books["merchant-a"],
            "merchant_b": books["merchant-b"],
            "outstanding": books["outstanding"],
        },
    )
    # issue 14 item 5: the receipt as a file for `ecash-tpm verify receipt` (a new key)
    from ecash_tpm.demo.artefacts import write_receipt_artefact

    detail["artefacts"] = {"receipt": write_receipt_artefact(ctx)}

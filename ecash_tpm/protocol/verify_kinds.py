"""What a verified transcript states for each kind of request it answers (docs/protocol.md
§15.1): a merchant's payment request (§9), the bank's redeem request (§9.4) or the customer's
swap request (§9.3). Pure helpers of :mod:`ecash_tpm.protocol.verify_artefacts`: the facts a
request kind adds and the sentences of :class:`~ecash_tpm.protocol.verify_artefacts.Verified`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecash_tpm.protocol.coins import PaymentRequest
from ecash_tpm.protocol.evidence import Transcript
from ecash_tpm.protocol.redeem import RedeemRequest
from ecash_tpm.protocol.swap import SwapRequest

__all__ = ["request_facts", "spender", "transcript_sentences"]


def request_facts(
    t: Transcript, req: PaymentRequest | RedeemRequest | SwapRequest
) -> dict[str, Any]:
    """What the request kind adds. §9.4: the bank puts the request id in ``deposit_id`` of a
    refused redeem attempt too: a redeem is booked only under transcript ``redeem:<id>``.
    §9.3: a swap is booked only under transcript ``swap:<id>``."""
    if isinstance(req, SwapRequest):
        return {
            "request_kind": "swap",
            "swap_request_id": req.request_id,
            "accepted": t.transcript_id == f"swap:{req.request_id}",
        }
    if not isinstance(req, RedeemRequest):
        return {"request_kind": "payment"}
    return {
        "request_kind": "redeem",
        "account_id": req.account_id,
        "redeem_request_id": req.request_id,
        "accepted": t.transcript_id == f"redeem:{req.request_id}",
    }


def spender(f: Mapping[str, Any]) -> str:
    """Who a transcript's coin went to, for the sentences of ``Verified``."""
    if f["request_kind"] == "redeem":
        return ("" if f["accepted"] else "refused: ") + f"redeemed into account {f['account_id']}"
    if f["request_kind"] == "swap":
        return ("" if f["accepted"] else "refused: ") + f"swapped by request {f['swap_request_id']}"
    return f"for merchant {f['merchant_id']}'s payment request"


def transcript_sentences(f: Mapping[str, Any], bank: str) -> tuple[str, str, str]:
    """``(booked, refused, request)``: how a transcript's spend is named when booked or refused,
    and what is proven of its request."""
    kind = f["request_kind"]
    if kind == "redeem":  # §9.4
        return (
            f" of the coin redeemed into account {f['account_id']}",
            f" of a redeem into account {f['account_id']} it refused",
            f"bank {bank} itself signed the redeem request {f['redeem_request_id']} "
            f"({f['preq']}) for {f['request_amount']} {f['currency']} into account "
            f"{f['account_id']}",
        )
    if kind == "swap":  # §9.3
        return (
            f" of the coin swapped by request {f['swap_request_id']}",
            f" of a swap by request {f['swap_request_id']} it refused",
            f"the swap request {f['swap_request_id']} names bank {bank} and this coin, "
            f"and hashes to {f['preq']} under the swap's tag",
        )
    return (
        f" of deposit {f['deposit_id']}",
        " of a spend it refused (no deposit)",
        f"merchant {f['merchant_id']} (certificate from the root) signed the payment "
        f"request {f['preq']} for {f['request_amount']} {f['currency']}",
    )

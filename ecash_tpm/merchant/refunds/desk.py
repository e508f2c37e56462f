"""Refund permissions, merchant side (issue 12, item 3; docs/protocol.md "Refunds").

The shop refunds all or part of a *paid* request whose payment request carried a
``refund_deadline`` that has not passed: it signs a ``refund-permission`` naming the deposit and
coins from the bank's receipt, and hands it to whoever asks by ``preq`` (the permission is useless
without the TPM that spent the coins). The bank debits the shop when the customer claims it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.errors import InputError
from ecash_tpm.merchant.domain import Merchant, PaymentNotPaidError, UnknownRequestError
from ecash_tpm.merchant.refunds.store import RefundStore
from ecash_tpm.protocol.coins import parse_request_body
from ecash_tpm.protocol.refunds import (
    RefundAmountError,
    RefundDeadlinePassedError,
    RefundNotAllowedError,
    RefundNotFoundError,
    sign_refund_permission,
)

__all__ = ["RefundAnswer", "RefundDesk"]


@dataclass(frozen=True, slots=True)
class RefundAnswer:
    """Refund permissions of one request with the merchant certificate that checks them."""

    refunds: tuple[dict[str, Any], ...]
    cert: str

    def to_dict(self) -> dict[str, Any]:
        return {"refunds": list(self.refunds), "cert": self.cert}


class RefundDesk:
    """Signs and serves refund permissions for one merchant."""

    def __init__(self, merchant: Merchant, store: RefundStore) -> None:
        self._merchant = merchant
        self._store = store

    def create(self, preq: bytes, amount: int | None = None) -> RefundAnswer:
        """Sign a permission for ``amount`` (default: what is left of the payment)."""
        m = self._merchant
        row = m.store.get(preq)
        if row is None:
            raise UnknownRequestError(
                "payment request not issued by this shop", detail={"preq": b64u_encode(preq)}
            )
        if row.state != "paid" or row.receipt is None:
            raise PaymentNotPaidError(
                "this payment request is not paid", detail={"preq": b64u_encode(preq)}
            )
        req = parse_request_body(row.request["body"])
        now = m.clock()
        if req.refund_deadline is None:
            raise RefundNotAllowedError("this payment request carries no refund deadline")
        if now > req.refund_deadline:
            raise RefundDeadlinePassedError(
                "the refund deadline of this payment has passed",
                detail={"refund_deadline": req.refund_deadline, "now": now},
            )
        left = row.amount - self._store.refunded(preq)
        value = left if amount is None else amount
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= left:
            raise RefundAmountError(
                "the refund must be positive and at most what is left of the payment",
                detail={"amount": value, "left": left},
            )
        receipt = row.receipt["body"]
        refund_id = "ref-" + secrets.token_hex(16)
        permission = sign_refund_permission(
            m.config.key,
            refund_id=refund_id,
            merchant_id=m.name,
            preq=preq,
            deposit_id=str(receipt["deposit_id"]),
            serials=[b64u_decode(s) for s in receipt["serials"]],
            amount=value,
            currency=row.currency,
            issued_at=now,
        )
        if not self._store.add_if_within(preq, refund_id, value, permission, row.amount):
            raise RefundAmountError("a concurrent refund took what was left of the payment")
        return RefundAnswer((permission,), m.config.cert_pem)

    def permissions(self, preq: bytes) -> RefundAnswer:
        """Every permission issued for ``preq`` (404 ``refund.not_found`` if none)."""
        if not isinstance(preq, bytes) or len(preq) != 32:
            raise InputError("preq must be 32 bytes")
        found = self._store.for_request(preq)
        if not found:
            raise RefundNotFoundError(
                "no refund for this payment request", detail={"preq": b64u_encode(preq)}
            )
        return RefundAnswer(tuple(r.permission for r in found), self._merchant.config.cert_pem)

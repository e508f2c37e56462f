"""The wallet's records of coins in flight and of payments (what :mod:`.store` reads and writes).

A :class:`PendingCoin` holds everything needed to finish a withdrawal after a crash (its blinding
inverse and serial are secrets); a :class:`PaymentRecord` is what history and recovery read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode

__all__ = [
    "REDEEM_MERCHANT",
    "SWAP_MERCHANT",
    "PaymentRecord",
    "PendingCoin",
    "PendingWithdrawal",
]

#: The ``merchant_id`` of the payment record that holds a swap's input coins pending
#: (docs/protocol.md 9.3): the bank itself takes them; the record's ``request`` keeps the swap.
SWAP_MERCHANT = "bank:swap"
#: The ``merchant_id`` of the payment record of a redeem into the account (docs/protocol.md
#: 9.4): the bank takes the coins and credits the account; ``request`` keeps the redeem request.
REDEEM_MERCHANT = "bank:redeem"


@dataclass(frozen=True)
class PendingCoin:
    """One coin of a withdrawal in flight: everything needed to finish it after a crash."""

    keyset_id: bytes
    value: int
    currency: str
    deposit_until: int
    epoch: int
    sigma: bytes
    credential: dict[str, str]
    msg_prefix: bytes
    blinded_msg: bytes
    inv: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "keyset_id": b64u_encode(self.keyset_id),
            "value": self.value,
            "currency": self.currency,
            "deposit_until": self.deposit_until,
            "epoch": self.epoch,
            "sigma": b64u_encode(self.sigma),
            "credential": dict(self.credential),
            "msg_prefix": b64u_encode(self.msg_prefix),
            "blinded_msg": b64u_encode(self.blinded_msg),
            "inv": b64u_encode(self.inv),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingCoin:
        return cls(
            keyset_id=b64u_decode(data["keyset_id"]),
            value=int(data["value"]),
            currency=str(data["currency"]),
            deposit_until=int(data["deposit_until"]),
            epoch=int(data["epoch"]),
            sigma=b64u_decode(data["sigma"]),
            credential=dict(data["credential"]),
            msg_prefix=b64u_decode(data["msg_prefix"]),
            blinded_msg=b64u_decode(data["blinded_msg"]),
            inv=b64u_decode(data["inv"]),
        )


@dataclass(frozen=True)
class PendingWithdrawal:
    """A withdrawal as saved before sending: retried with the same request_id."""

    request_id: str
    state: str
    amount: int
    currency: str
    items: list[PendingCoin]
    error_code: str | None


@dataclass(frozen=True)
class PaymentRecord:
    """One payment as the wallet remembers it (history and recovery)."""

    payment_id: str
    merchant_id: str
    merchant_url: str | None
    preq: bytes
    amount: int
    currency: str
    deadline: int
    request: dict[str, Any]
    spends: list[dict[str, Any]] | None
    state: str
    receipt: dict[str, Any] | None
    error_code: str | None
    created_at: int
    updated_at: int
    serials: tuple[bytes, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Summary for ``wallet history --json`` (no spends: they are large)."""
        return {
            "payment_id": self.payment_id,
            "merchant_id": self.merchant_id,
            "amount": self.amount,
            "currency": self.currency,
            "state": self.state,
            "preq": b64u_encode(self.preq),
            "coins": len(self.serials),
            "error_code": self.error_code,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "receipt_deposit_id": (self.receipt or {}).get("body", {}).get("deposit_id"),
        }

"""Refunds (issue 12, item 3; docs/protocol.md "Refunds"): the merchant-signed permission, the
digest a claim's ownership proofs are bound to, and the refusals of the refund protocol.

GNU Taler's refunds are the model. A payment request may carry ``refund_deadline`` (section 6);
only such a request can be refunded, and only until then by the bank's clock. The merchant signs
a ``refund-permission`` naming its deposit, the refunded coins and the amount; the customer's
wallet claims it at the bank anonymously: for every refunded coin a fresh TPM spend proof
(section 7) whose ``preq`` is :func:`refund_claim_digest` — the hash of the refund id, the claim
id and the blinded output coins — so the proof shows the claimer holds the DAA key the coins
were bound to, cannot be replayed for another claim, and the outputs cannot be swapped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode, tagged_hash
from ecash_tpm.crypto.groupsig import KEYSET_ID_LEN, SIGMA_LEN
from ecash_tpm.crypto.signing import PartyKey, canonical_encode, sign_object, verify_object
from ecash_tpm.errors import (
    ConflictError,
    EcashError,
    EncodingError,
    InputError,
    NotFoundError,
    ProofError,
)
from ecash_tpm.pki import CrlInput, verify_party_certificate
from ecash_tpm.protocol.fields import read_bytes, read_currency, read_int, read_name, read_str

__all__ = [
    "MAX_REFUND_OUTPUTS",
    "REFUND_PERMISSION_KIND",
    "TAG_REFUND_CLAIM",
    "RefundAlreadyClaimedError",
    "RefundAmountError",
    "RefundDeadlinePassedError",
    "RefundMerchantFundsError",
    "RefundNotAllowedError",
    "RefundNotFoundError",
    "RefundPermission",
    "RefundPermissionError",
    "RefundProofError",
    "RefundUnknownDepositError",
    "check_claim_id",
    "refund_claim_digest",
    "sign_refund_permission",
]

REFUND_PERMISSION_KIND = "refund-permission"
TAG_REFUND_CLAIM = "ecash-tpm/v1/refund-claim"
#: At most this many fresh coins per claim (like ``max_withdraw_items``).
MAX_REFUND_OUTPUTS = 64
_MAX_SERIALS = 64
_FIELDS = frozenset(
    {"refund_id", "merchant_id", "preq", "deposit_id", "serials", "amount", "currency", "issued_at"}
)


# --- refusals ---------------------------------------------------------------------------------


class RefundPermissionError(InputError):
    """The refund permission is not a merchant-signed, well-formed ``refund-permission``."""

    code = "refund.permission_invalid"


class RefundNotAllowedError(InputError):
    """The payment request carries no ``refund_deadline``: it cannot be refunded."""

    code = "refund.not_refundable"


class RefundDeadlinePassedError(InputError):
    """The request's refund deadline has passed (the bank's or the merchant's clock)."""

    code = "refund.deadline_passed"


class RefundUnknownDepositError(NotFoundError):
    """The permission names coins not booked in that deposit of that merchant and request."""

    code = "refund.unknown_deposit"


class RefundAmountError(InputError):
    """The amount is not positive, exceeds what is left of the deposit, or the outputs do not
    add up to it."""

    code = "refund.bad_amount"


class RefundAlreadyClaimedError(ConflictError):
    """This refund id was already claimed (with other outputs), or already issued."""

    code = "refund.already_claimed"


class RefundProofError(ProofError):
    """An ownership proof does not verify: the claimer does not hold the coins' DAA key."""

    code = "refund.bad_proof"


class RefundMerchantFundsError(ConflictError):
    """The merchant's account does not cover the refund."""

    code = "refund.merchant_insufficient_funds"


class RefundNotFoundError(NotFoundError):
    """The merchant issued no refund for this payment request."""

    code = "refund.not_found"


# --- the permission ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundPermission:
    """The parsed body of a merchant's ``refund-permission``."""

    refund_id: str
    merchant_id: str
    preq: bytes
    deposit_id: str
    serials: tuple[bytes, ...]
    amount: int
    currency: str
    issued_at: int

    @classmethod
    def from_body(cls, body: Any) -> RefundPermission:
        err = RefundPermissionError
        if not isinstance(body, Mapping) or set(body) != _FIELDS:
            raise err("refund permission must have exactly " + ", ".join(sorted(_FIELDS)))
        raw = body["serials"]
        if not isinstance(raw, list) or not 0 < len(raw) <= _MAX_SERIALS:
            raise err(f"serials must be a list of 1..{_MAX_SERIALS}", detail={"field": "serials"})
        try:
            serials = tuple(b64u_decode(s) if isinstance(s, str) else b"" for s in raw)
        except EncodingError as exc:
            raise err("serials must be base64url", detail={"field": "serials"}) from exc
        if any(len(s) != SIGMA_LEN for s in serials) or len(set(serials)) != len(serials):
            raise err("serials must be distinct 32-byte serials", detail={"field": "serials"})
        return cls(
            refund_id=check_claim_id(read_str(body, "refund_id", err, 64), "refund_id"),
            merchant_id=read_name(body, "merchant_id", err),
            preq=read_bytes(body, "preq", err, 32),
            deposit_id=read_str(body, "deposit_id", err, 64),
            serials=serials,
            amount=read_int(body, "amount", err, low=1),
            currency=read_currency(body, err),
            issued_at=read_int(body, "issued_at", err),
        )

    @classmethod
    def from_signed(
        cls,
        doc: Any,
        cert: x509.Certificate | bytes | str,
        root: x509.Certificate | bytes | str,
        *,
        now: int,
        crl: CrlInput | None = None,
    ) -> RefundPermission:
        """docs/protocol.md "Refunds": (1) the certificate chains to the central bank's root
        with role ``merchant`` and CN = ``merchant_id``, not on the CRL; (2) the signature;
        (3) the body. Whether the coins were booked is the bank's check."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("body"), Mapping):
            raise RefundPermissionError("refund permission must be a signed object")
        merchant_id = doc["body"].get("merchant_id")
        if not isinstance(merchant_id, str):
            raise RefundPermissionError("refund permission has no merchant_id")
        try:
            key = verify_party_certificate(  # (1)
                cert,
                root,
                role="merchant",
                name=merchant_id,
                now=dt.datetime.fromtimestamp(now, dt.UTC),
                crl=crl,
            )
            body = verify_object(doc, key, REFUND_PERMISSION_KIND)  # (2)
        except EcashError as exc:
            raise RefundPermissionError(
                f"refund permission not signed by a certified merchant: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        return cls.from_body(body)  # (3)


def check_claim_id(value: str, what: str) -> str:
    """Refund and claim ids: 8..64 characters of ``[A-Za-z0-9_-]`` (like withdrawal ids)."""
    if not isinstance(value, str) or not 8 <= len(value) <= 64:
        raise InputError(f"{what} must be 8..64 characters", detail={"field": what})
    if any(not (c.isascii() and (c.isalnum() or c in "_-")) for c in value):
        raise InputError(f"{what} must be of [A-Za-z0-9_-]", detail={"field": what})
    return value


def sign_refund_permission(
    key: PartyKey,
    *,
    refund_id: str,
    merchant_id: str,
    preq: bytes,
    deposit_id: str,
    serials: Sequence[bytes],
    amount: int,
    currency: str,
    issued_at: int,
) -> dict[str, Any]:
    """The merchant-signed ``refund-permission`` (docs/protocol.md "Refunds")."""
    body = {
        "refund_id": refund_id,
        "merchant_id": merchant_id,
        "preq": b64u_encode(preq),
        "deposit_id": deposit_id,
        "serials": [b64u_encode(s) for s in serials],
        "amount": amount,
        "currency": currency,
        "issued_at": issued_at,
    }
    return sign_object(key, REFUND_PERMISSION_KIND, body)


def refund_claim_digest(
    refund_id: str, claim_id: str, outputs: Sequence[tuple[bytes, bytes]]
) -> bytes:
    """The ``preq`` of a claim's ownership proofs:
    ``Hash("ecash-tpm/v1/refund-claim", refund_id, claim_id, canonical_encode(outputs))`` with
    outputs ``[{keyset_id, blinded_msg}, ...]`` in order (docs/protocol.md "Refunds")."""
    for keyset_id, _ in outputs:
        if len(keyset_id) != KEYSET_ID_LEN:
            raise InputError("output keyset_id has the wrong length")
    encoded = canonical_encode(
        [{"keyset_id": b64u_encode(k), "blinded_msg": b64u_encode(m)} for k, m in outputs]
    )
    return tagged_hash(
        TAG_REFUND_CLAIM, refund_id.encode("ascii"), claim_id.encode("ascii"), encoded
    )

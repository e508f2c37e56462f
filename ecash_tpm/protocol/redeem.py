"""Redeem to an account: coins back into an ordinary bank account (docs/protocol.md §9.4).

The logged-in account holder asks the bank for a **redeem request** (kind ``redeem-request``,
signed by the bank, single-use, short-lived); the wallet makes one TPM spend proof per coin over
``preq = Hash("ecash-tpm/v1/redeem", canonical_encode(body))`` exactly as for a payment (§7) and
posts the coins with its session; the bank books them in one transaction and answers with a
bank-signed ``redeem-receipt``.

Request body (every field required, nothing else)::

    {bank, account_id, request_id, amount, currency, nonce, issued_at, deadline}

The tag keeps a redeem's ``preq`` apart from a payment's (plain SHA-256 of a payment-request
body) and a swap's, so no spend proof made for one can be booked as another. Binding the
account id into the signed body means a request stolen from one account holder cannot credit
another (the bank also checks the session's account against it).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode, tagged_hash
from ecash_tpm.crypto.signing import canonical_encode, verify_object
from ecash_tpm.errors import (
    ConflictError,
    CryptoError,
    EcashError,
    EncodingError,
    ForbiddenError,
    NotFoundError,
    ProtocolError,
)
from ecash_tpm.pki import CrlInput, verify_party_certificate
from ecash_tpm.protocol.fields import read_bytes, read_currency, read_int, read_name, read_str

__all__ = [
    "REDEEM_PREQ_TAG",
    "REDEEM_RECEIPT_KIND",
    "REDEEM_REQUEST_KIND",
    "REDEEM_SPENDER",
    "RedeemConflictError",
    "RedeemExpiredError",
    "RedeemReceipt",
    "RedeemReceiptInvalidError",
    "RedeemRequest",
    "RedeemRequestInvalidError",
    "RedeemTooManyError",
    "RedeemUnknownRequestError",
    "RedeemUsedError",
    "RedeemWrongAccountError",
    "verify_redeem_receipt",
]

REDEEM_REQUEST_KIND = "redeem-request"
REDEEM_RECEIPT_KIND = "redeem-receipt"
REDEEM_PREQ_TAG = "ecash-tpm/v1/redeem"
#: The ``merchant_id`` a coin status, refusal or transcript names for a redeemed coin (§9.4).
REDEEM_SPENDER = "bank:redeem"

_FIELDS = frozenset(
    {"bank", "account_id", "request_id", "amount", "currency", "nonce", "issued_at", "deadline"}
)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_NONCE_LEN = 16
_ACCOUNT_MAX = 128


class RedeemRequestInvalidError(CryptoError):
    """A redeem request is malformed or not signed by the bank (``redeem.request_invalid``)."""

    code = "redeem.request_invalid"


class RedeemReceiptInvalidError(CryptoError):
    """A redeem receipt is not signed by a certified bank or is not for this redeem."""

    code = "redeem.receipt_invalid"


class RedeemUnknownRequestError(NotFoundError):
    """The bank never issued this redeem request (or not this exact document)."""

    code = "bank.redeem_unknown"


class RedeemWrongAccountError(ForbiddenError):
    """The redeem request was issued to another account than the session's."""

    code = "bank.redeem_wrong_account"


class RedeemUsedError(ConflictError):
    """The redeem request was already used for other coins (single use)."""

    code = "bank.redeem_used"


class RedeemConflictError(ConflictError):
    """A coin was spent concurrently through a path that took no serial lock; retry."""

    code = "bank.redeem_conflict"


class RedeemTooManyError(EcashError):
    """The account already holds the most live, unused redeem requests the bank allows."""

    code = "bank.redeem_too_many"
    http_status = 429


class RedeemExpiredError(ProtocolError):
    """The redeem request's deadline has passed by the bank's clock (or lies too far ahead)."""

    code = "bank.redeem_expired"


def _aware(now: int | None) -> dt.datetime | None:
    return None if now is None else dt.datetime.fromtimestamp(now, dt.UTC)


@dataclass(frozen=True, slots=True)
class RedeemRequest:
    """A parsed redeem request body (see the module docstring)."""

    bank: str
    account_id: str
    request_id: str
    amount: int
    currency: str
    nonce: bytes
    issued_at: int
    deadline: int

    def to_body(self) -> dict[str, Any]:
        return {
            "bank": self.bank,
            "account_id": self.account_id,
            "request_id": self.request_id,
            "amount": self.amount,
            "currency": self.currency,
            "nonce": b64u_encode(self.nonce),
            "issued_at": self.issued_at,
            "deadline": self.deadline,
        }

    @property
    def preq(self) -> bytes:
        """What the coins' spend proofs sign (§9.4)."""
        return tagged_hash(REDEEM_PREQ_TAG, canonical_encode(self.to_body()))

    @classmethod
    def from_body(cls, body: Any) -> RedeemRequest:
        """Validate a body (``redeem.request_invalid`` for anything malformed)."""
        err = RedeemRequestInvalidError
        if not isinstance(body, Mapping) or set(body) != _FIELDS:
            raise err("a redeem request has exactly " + ", ".join(sorted(_FIELDS)))
        rid = body["request_id"]
        if not isinstance(rid, str) or not _REQUEST_ID_RE.match(rid):
            raise err("request_id must be 8..64 characters of [A-Za-z0-9_-]")
        issued_at, deadline = read_int(body, "issued_at", err), read_int(body, "deadline", err)
        if deadline < issued_at:
            raise err("the deadline lies before the issue time", detail={"field": "deadline"})
        return cls(
            bank=read_name(body, "bank", err),
            account_id=read_str(body, "account_id", err, _ACCOUNT_MAX),
            request_id=rid,
            amount=read_int(body, "amount", err, low=1),
            currency=read_currency(body, err),
            nonce=read_bytes(body, "nonce", err, _NONCE_LEN),
            issued_at=issued_at,
            deadline=deadline,
        )

    @classmethod
    def from_signed_by(cls, doc: Any, bank_key: Any) -> RedeemRequest:
        """A request signed with ``bank_key`` (a public key or an already validated bank
        certificate): what the bank checks of its own request and the supervision of one
        inside evidence (§12.1)."""
        try:
            body = verify_object(doc, bank_key, REDEEM_REQUEST_KIND)
        except EcashError as exc:
            raise RedeemRequestInvalidError(
                f"redeem request not signed by the bank: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        return cls.from_body(body)

    @classmethod
    def from_signed(
        cls,
        doc: Any,
        cert: x509.Certificate | bytes | str,
        root: x509.Certificate | bytes | str,
        *,
        bank_name: str | None = None,
        now: int | None = None,
        crl: CrlInput | None = None,
    ) -> RedeemRequest:
        """The wallet's check: signed by a bank certified (role ``bank``) under ``root``."""
        try:
            key = verify_party_certificate(
                cert, root, role="bank", name=bank_name, now=_aware(now), crl=crl
            )
        except EcashError as exc:
            raise RedeemRequestInvalidError(
                f"redeem request not from a certified bank: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        return cls.from_signed_by(doc, key)


@dataclass(frozen=True, slots=True)
class RedeemReceipt:
    """The bank's redeem receipt body (kind ``redeem-receipt``), signature-checked."""

    request_id: str
    account_id: str
    preq: bytes
    amount: int
    currency: str
    serials: tuple[bytes, ...]
    redeemed_at: int
    #: the coins' deposit fees (§4.2) kept from the credit; 0 in a receipt made before fees
    fee: int = 0
    #: what the account was credited: ``amount - fee``
    credited: int = 0


def verify_redeem_receipt(
    doc: Any,
    cert: x509.Certificate | bytes | str,
    root: x509.Certificate | bytes | str,
    *,
    request: RedeemRequest,
    serials: Iterable[bytes],
    bank_name: str | None = None,
    now: int | None = None,
    crl: CrlInput | None = None,
) -> RedeemReceipt:
    """§9.4: a receipt signed by a certified bank for *this* request, account, amount and
    exactly these serials (``redeem.receipt_invalid`` otherwise)."""
    err = RedeemReceiptInvalidError
    try:
        key = verify_party_certificate(
            cert, root, role="bank", name=bank_name, now=_aware(now), crl=crl
        )
        body = verify_object(doc, key, REDEEM_RECEIPT_KIND)
    except EcashError as exc:
        raise err(
            f"redeem receipt not signed by a certified bank: {exc.message}",
            detail={"cause": exc.code},
        ) from exc
    raw = body.get("serials")
    if not isinstance(raw, list):
        raise err("serials must be a list", detail={"field": "serials"})
    try:
        got = tuple(b64u_decode(s) for s in raw)
    except (EncodingError, TypeError) as exc:
        raise err("receipt serials are not base64url", detail={"field": "serials"}) from exc
    receipt = RedeemReceipt(
        request_id=read_str(body, "request_id", err, 64),
        account_id=read_str(body, "account_id", err, _ACCOUNT_MAX),
        preq=read_bytes(body, "preq", err, 32),
        amount=read_int(body, "amount", err, low=1),
        currency=read_currency(body, err),
        serials=got,
        redeemed_at=read_int(body, "redeemed_at", err),
    )
    # §4.2: the deposit fees kept from the credit (absent in a receipt made before fees: none)
    fee = read_int(body, "fee", err, low=0) if "fee" in body else 0
    credited = read_int(body, "credited", err, low=1) if "credited" in body else receipt.amount
    receipt = replace(receipt, fee=fee, credited=credited)
    wrong = [
        name
        for name, ok in (
            ("request_id", receipt.request_id == request.request_id),
            ("account_id", receipt.account_id == request.account_id),
            ("preq", hmac.compare_digest(receipt.preq, request.preq)),
            ("amount", receipt.amount == request.amount),
            ("currency", receipt.currency == request.currency),
            ("serials", sorted(got) == sorted(serials) and len(set(got)) == len(got)),
            ("credited", credited == receipt.amount - fee),
        )
        if not ok
    ]
    if wrong:
        raise err("the receipt is not for this redeem", detail={"fields": wrong})
    return receipt

"""Wire forms the bank reads and writes: coins, spends, payment requests, deposit envelopes.

Shared by the bank, merchants and wallets (docs/api.md "Shared encodings"). Everything that is
signed travels as a JSON dict with base64url strings, because signatures cover
``canonical_encode(body)`` and the verifier must rebuild exactly what was signed; the
dataclasses here are the parsed, validated views of those dicts. Malformed coins and proofs
raise :class:`~ecash_tpm.bank.errors.MalformedCoinError` (never a bare ``KeyError``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import (
    KEYSET_ID_LEN,
    SIGMA_LEN,
    RandomizedCredential,
    SpendProof,
    coin_message,
)
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object, verify_object
from ecash_tpm.errors import EcashError, EncodingError, InputError
from ecash_tpm.pki import CrlInput, verify_party_certificate
from ecash_tpm.protocol.errors import (
    MalformedCoinError,
    RequestExpiredError,
    RequestFormatError,
    RequestMismatchError,
)
from ecash_tpm.protocol.money import is_currency_code

__all__ = [
    "DEPOSIT_KIND",
    "LIFT_KIND",
    "MSG_PREFIX_LEN",
    "PAYMENT_REQUEST_KIND",
    "RECEIPT_KIND",
    "RESERVE_KIND",
    "TRANSCRIPT_KIND",
    "Coin",
    "PaymentRequest",
    "Spend",
    "check_currency",
    "check_identifier",
    "parse_spends",
    "sign_deposit",
    "sign_payment_request",
    "sign_reserve",
]

PAYMENT_REQUEST_KIND = "payment-request"
DEPOSIT_KIND = "deposit"
RESERVE_KIND = "reserve"
RECEIPT_KIND = "deposit-receipt"
TRANSCRIPT_KIND = "deposit-transcript"
LIFT_KIND = "blacklist-lift"
MSG_PREFIX_LEN = 32
MAX_RSA_SIG_LEN = 512  # 4096-bit keys

_COIN_FIELDS = frozenset({"keyset_id", "epoch", "sigma", "credential", "msg_prefix", "signature"})
_SPEND_FIELDS = frozenset({"coin", "proof"})
_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _malformed(message: str, **detail: Any) -> MalformedCoinError:
    return MalformedCoinError(message, detail=detail)


def _bytes_field(data: Mapping[str, Any], key: str, length: int | None = None) -> bytes:
    value = data.get(key)
    if not isinstance(value, str):
        raise _malformed(f"{key} must be a base64url string", field=key)
    try:
        raw = b64u_decode(value)
    except EcashError as exc:
        raise _malformed(f"{key} is not canonical base64url", field=key) from exc
    if length is not None and len(raw) != length:
        raise _malformed(f"{key} must be {length} bytes", field=key, length=len(raw))
    return raw


def check_currency(currency: object) -> str:
    """Currencies are short upper-case codes (``EUR``, ``TEST``); anything else is refused."""
    if not is_currency_code(currency):
        raise RequestMismatchError(
            "invalid currency code", detail={"currency": repr(currency)[:40]}
        )
    return currency


def check_identifier(value: object, what: str) -> str:
    """Account, merchant, deposit and request ids: 1..64 of ``[A-Za-z0-9._:-]``."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InputError(
            f"{what} must be 1..64 characters of [A-Za-z0-9._:-]", detail={"field": what}
        )
    return value


@dataclass(frozen=True, slots=True)
class Coin:
    """A withdrawn coin: blind-signed ``msg_prefix || m`` with m binding (R, S, T, W)."""

    keyset_id: bytes
    epoch: int
    sigma: bytes
    credential: RandomizedCredential
    msg_prefix: bytes
    signature: bytes

    def message(self) -> bytes:
        """m = Hash("ecash-tpm/v1/coin", keyset_id, epoch, sigma, R, S, T, W)."""
        return coin_message(self.keyset_id, self.epoch, self.sigma, self.credential)

    def prepared(self) -> bytes:
        """What the RSA signature covers (RFC 9474 prepared message)."""
        return self.msg_prefix + self.message()

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyset_id": b64u_encode(self.keyset_id),
            "epoch": self.epoch,
            "sigma": b64u_encode(self.sigma),
            "credential": self.credential.to_dict(),
            "msg_prefix": b64u_encode(self.msg_prefix),
            "signature": b64u_encode(self.signature),
        }

    @classmethod
    def from_dict(cls, data: object) -> Coin:
        if not isinstance(data, Mapping) or set(data) != _COIN_FIELDS:
            raise _malformed("coin must have exactly " + ", ".join(sorted(_COIN_FIELDS)))
        epoch = data["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**32:
            raise _malformed("epoch must be an integer in [0, 2^32)", field="epoch")
        signature = _bytes_field(data, "signature")
        if not 0 < len(signature) <= MAX_RSA_SIG_LEN:
            raise _malformed("signature has an impossible length", field="signature")
        try:
            credential = RandomizedCredential.from_dict(data["credential"])
        except EcashError as exc:
            raise _malformed(
                f"credential: {exc.message}", field="credential", cause=exc.code
            ) from exc
        return cls(
            keyset_id=_bytes_field(data, "keyset_id", KEYSET_ID_LEN),
            epoch=epoch,
            sigma=_bytes_field(data, "sigma", SIGMA_LEN),
            credential=credential,
            msg_prefix=_bytes_field(data, "msg_prefix", MSG_PREFIX_LEN),
            signature=signature,
        )


@dataclass(frozen=True, slots=True)
class Spend:
    """One coin paid towards one payment request: the coin and its spend proof over preq."""

    coin: Coin
    proof: SpendProof

    def to_dict(self) -> dict[str, Any]:
        return {"coin": self.coin.to_dict(), "proof": self.proof.to_dict()}

    @classmethod
    def from_dict(cls, data: object) -> Spend:
        if not isinstance(data, Mapping) or set(data) != _SPEND_FIELDS:
            raise _malformed("spend must have exactly coin, proof")
        coin = Coin.from_dict(data["coin"])
        try:
            proof = SpendProof.from_dict(data["proof"])
        except EcashError as exc:
            raise _malformed(f"proof: {exc.message}", field="proof", cause=exc.code) from exc
        return cls(coin, proof)


def parse_spends(data: object, *, max_spends: int) -> list[Spend]:
    """Parse a non-empty list of spends with pairwise distinct serials."""
    if not isinstance(data, list) or not data:
        raise _malformed("spends must be a non-empty list")
    if len(data) > max_spends:
        raise RequestMismatchError(
            f"at most {max_spends} coins per request", detail={"count": len(data)}
        )
    spends = []
    for i, item in enumerate(data):
        try:
            spends.append(Spend.from_dict(item))
        except MalformedCoinError as exc:
            exc.detail.setdefault("index", i)
            raise
    if len({s.coin.sigma for s in spends}) != len(spends):
        raise RequestMismatchError("the same coin appears twice in one request")
    return spends


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """The parsed body of a merchant's signed payment request (kind ``payment-request``)."""

    merchant_id: str
    amount: int
    currency: str
    contract_hash: bytes
    nonce: bytes
    deadline: int
    bank: str
    product_id: str | None
    customer_key: bytes | None
    preq: bytes
    #: docs/protocol.md 6: until when the merchant may refund the payment (None: no refunds);
    #: optional on the wire, so a request without it keeps its old form and digest.
    refund_deadline: int | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PaymentRequest:
        fields = {
            "merchant_id",
            "amount",
            "currency",
            "contract_hash",
            "nonce",
            "deadline",
            "bank",
            "product_id",
            "customer_key",
        }
        if set(body) - {"refund_deadline"} != fields:
            raise RequestMismatchError(
                "payment request must have exactly " + ", ".join(sorted(fields))
            )
        amount, deadline = body["amount"], body["deadline"]
        for name, value in (("amount", amount), ("deadline", deadline)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise RequestMismatchError(
                    f"{name} must be a positive integer", detail={"field": name}
                )
        refund_deadline = body.get("refund_deadline")
        if "refund_deadline" in body and (
            isinstance(refund_deadline, bool)
            or not isinstance(refund_deadline, int)
            or refund_deadline < deadline
        ):
            raise RequestMismatchError(
                "refund_deadline must be an integer not before the deadline",
                detail={"field": "refund_deadline"},
            )
        if not isinstance(body["bank"], str):
            raise RequestMismatchError("bank must be a string", detail={"field": "bank"})
        product_id = body["product_id"]
        if product_id is not None and not isinstance(product_id, str):
            raise RequestMismatchError("product_id must be a string or null")
        try:
            contract_hash = _bytes_field(body, "contract_hash", 32)
            nonce = _bytes_field(body, "nonce", 16)
            customer_key = (
                None if body["customer_key"] is None else _bytes_field(body, "customer_key")
            )
        except MalformedCoinError as exc:
            raise RequestMismatchError(exc.message, detail=exc.detail) from exc
        return cls(
            merchant_id=check_identifier(body["merchant_id"], "merchant_id"),
            amount=amount,
            currency=check_currency(body["currency"]),
            contract_hash=contract_hash,
            nonce=nonce,
            deadline=deadline,
            bank=body["bank"],
            product_id=product_id,
            customer_key=customer_key,
            preq=canonical_digest(dict(body)),
            refund_deadline=refund_deadline,
        )

    @classmethod
    def from_signed(
        cls,
        doc: Any,
        cert: x509.Certificate | bytes | str,
        root: x509.Certificate | bytes | str,
        *,
        now: int | None = None,
        crl: CrlInput | None = None,
    ) -> PaymentRequest:
        """A merchant's signed request as a wallet must check it before paying (docs/protocol.md,
        "Payment requests"): (1) the certificate chains to the central bank's ``root`` with role
        ``merchant`` and CN = ``merchant_id``, not on the central bank's CRL (``crl``,
        docs/protocol.md "Revocation"); (2) the signature; (3) the body; (4) the deadline.
        Returns the parsed request (``preq`` included)."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("body"), Mapping):
            raise RequestFormatError("payment request must be a signed object")
        t = int(dt.datetime.now(dt.UTC).timestamp()) if now is None else int(now)
        merchant_id = doc["body"].get("merchant_id")
        if not isinstance(merchant_id, str):
            raise RequestFormatError("payment request has no merchant_id")
        key = verify_party_certificate(  # (1)
            cert,
            root,
            role="merchant",
            name=merchant_id,
            now=dt.datetime.fromtimestamp(t, dt.UTC),
            crl=crl,
        )
        req = parse_request_body(verify_object(doc, key, PAYMENT_REQUEST_KIND))  # (2), (3)
        require_open(req, t)  # (4)
        return req


def parse_request_body(body: Any) -> PaymentRequest:
    """Parse a request body with the bank's rules, reporting ``payment.request_invalid``."""
    if not isinstance(body, Mapping):
        raise RequestFormatError("payment request body must be a JSON object")
    try:
        return PaymentRequest.from_body(body)
    except (InputError, EncodingError) as exc:
        raise RequestFormatError(
            f"payment request malformed: {exc.message}", detail={"cause": exc.code, **exc.detail}
        ) from exc


def require_open(req: PaymentRequest, now: int) -> None:
    """Raise :class:`RequestExpiredError` once the request's deadline has passed."""
    if now > req.deadline:
        raise RequestExpiredError(
            "payment request is past its deadline",
            detail={"deadline": req.deadline, "now": now},
        )


def verify_payment_request(
    doc: Any,
    cert: x509.Certificate | bytes | str,
    root: x509.Certificate | bytes | str,
    *,
    now: int | None = None,
    crl: CrlInput | None = None,
) -> PaymentRequest:
    """The wallet-side name of :meth:`PaymentRequest.from_signed`."""
    return PaymentRequest.from_signed(doc, cert, root, now=now, crl=crl)


def sign_payment_request(
    key: PartyKey,
    *,
    merchant_id: str,
    amount: int,
    currency: str,
    contract_hash: bytes,
    nonce: bytes,
    deadline: int,
    bank: str,
    product_id: str | None = None,
    customer_key: bytes | None = None,
    refund_deadline: int | None = None,
) -> dict[str, Any]:
    """A merchant's signed payment request in the docs/api.md shape (helper for merchants)."""
    body: dict[str, Any] = {
        "merchant_id": merchant_id,
        "amount": amount,
        "currency": currency,
        "contract_hash": b64u_encode(contract_hash),
        "nonce": b64u_encode(nonce),
        "deadline": deadline,
        "bank": bank,
        "product_id": product_id,
        "customer_key": None if customer_key is None else b64u_encode(customer_key),
    }
    if refund_deadline is not None:  # docs/protocol.md 6: only refundable requests carry it
        body["refund_deadline"] = refund_deadline
    return sign_object(key, PAYMENT_REQUEST_KIND, body)


def _spend_dicts(spends: Sequence[Spend | Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [s.to_dict() if isinstance(s, Spend) else dict(s) for s in spends]


def sign_deposit(
    key: PartyKey,
    *,
    deposit_id: str,
    merchant_id: str,
    request: Mapping[str, Any],
    spends: Sequence[Spend | Mapping[str, Any]],
) -> dict[str, Any]:
    """The merchant-signed deposit (kind ``deposit``) that ``POST /v1/deposit`` carries."""
    body = {
        "deposit_id": deposit_id,
        "merchant_id": merchant_id,
        "request": dict(request),
        "spends": _spend_dicts(spends),
    }
    return sign_object(key, DEPOSIT_KIND, body)


def sign_reserve(
    key: PartyKey,
    *,
    merchant_id: str,
    request: Mapping[str, Any],
    spends: Sequence[Spend | Mapping[str, Any]],
) -> dict[str, Any]:
    """The merchant-signed reservation (kind ``reserve``) that ``POST /v1/reserve`` carries."""
    body = {"merchant_id": merchant_id, "request": dict(request), "spends": _spend_dicts(spends)}
    return sign_object(key, RESERVE_KIND, body)

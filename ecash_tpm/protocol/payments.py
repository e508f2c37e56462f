"""Wire objects the merchant and the wallet share: keysets, coins, spends, requests, receipts.

Everything here is pure (no HTTP, no storage, no TPM) so the same checks run in the wallet
before it pays, in the merchant before it deposits, and in tests. Encodings follow
docs/api.md: bytes are base64url, money is integer minor units, times are Unix seconds.

Trust chains checked here:

* keyset descriptor -> bank certificate (role ``bank``) -> central-bank root;
* payment request -> merchant certificate (role ``merchant``, CN = ``merchant_id``) -> root;
* deposit receipt -> bank certificate -> root.

The coin check done here is everything a party without the issuer secret can do (DESIGN §5):
the RSA blind signature on ``msg_prefix || m`` under a keyset valid for deposit, the points,
and the spend proof for this request with the opener key. The credential check
(S == y*R, T == x*(R + W)) is the bank's.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.signing import verify_object
from ecash_tpm.errors import EcashError, EncodingError
from ecash_tpm.pki import (
    CrlInput,
    cert_pem,
    common_name,
    load_certificate,
    verify_party_certificate,
)
from ecash_tpm.protocol.coins import (
    RECEIPT_KIND,
)
from ecash_tpm.protocol.errors import (
    KeysetDescriptorError,
    ReceiptInvalidError,
    UnknownKeysetError,
)
from ecash_tpm.protocol.fields import read_bytes, read_currency, read_int, read_str
from ecash_tpm.protocol.keysets import BankKeysets, Keyset

__all__ = [
    "CUSTOMER_KEY_LEN",
    "RESERVE_CHECKS",
    "RESERVE_VERDICT",
    "KeysetBook",
    "ReceiptBody",
    "book_from_bank_keysets",
    "verify_keyset_list",
    "verify_receipt",
]


CUSTOMER_KEY_LEN = 32  # X25519 public key (DESIGN §6)

#: docs/protocol.md §10: the checks a reservation ran and passed, named in the bank's answer
#: (``verdict`` = :data:`RESERVE_VERDICT`, ``checks``) — every check of a deposit (§9 steps 1-3,
#: the credential included) and the state checks; so a merchant that reserved knows the bank's
#: verdict on the coins before it delivers anything.
RESERVE_CHECKS = (
    "envelope",
    "request",
    "keysets",
    "amount",
    "coin_signature",
    "credential",
    "spend_proof",
    "not_spent",
    "not_locked",
)
RESERVE_VERDICT = "valid"
_NAME_MAX = 64


# --- small helpers -------------------------------------------------------------------------


def _now(now: int | None) -> int:
    return int(dt.datetime.now(dt.UTC).timestamp()) if now is None else int(now)


def _aware(now: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


# --- keysets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeysetBook:
    """The bank's published keysets, verified: bank identity plus keysets by id.

    ``descriptors`` keeps each signed descriptor as published, so a wallet can store it.
    """

    bank_name: str
    bank_cert_pem: str
    bank_key: ec.EllipticCurvePublicKey = field(repr=False)
    keysets: dict[bytes, Keyset]
    descriptors: dict[bytes, dict[str, Any]] = field(repr=False)

    def get(self, keyset_id: bytes) -> Keyset:
        ks = self.keysets.get(keyset_id)
        if ks is None:
            raise UnknownKeysetError("unknown keyset", detail={"keyset_id": b64u_encode(keyset_id)})
        return ks

    def withdrawable(self, currency: str, now: int) -> list[Keyset]:
        """Keysets of ``currency`` open for withdrawal now, largest value first."""
        found = [k for k in self.keysets.values() if k.currency == currency and k.can_withdraw(now)]
        return sorted(found, key=lambda k: (-k.value, -k.deposit_until))


def book_from_bank_keysets(
    keysets: BankKeysets,
    root: x509.Certificate | bytes | str,
    *,
    bank_name: str | None = None,
    now: int | None = None,
) -> KeysetBook:
    """A :class:`KeysetBook` from ``BankClient.keysets()`` (re-checks the bank certificate
    at ``now`` and its name; the descriptors were verified under that certificate's key)."""
    return verify_keyset_list(
        {"bank_cert": cert_pem(keysets.bank_cert), "keysets": keysets.signed},
        root,
        bank_name=bank_name,
        now=now,
    )


def verify_keyset_list(
    doc: Any,
    root: x509.Certificate | bytes | str,
    *,
    bank_name: str | None = None,
    now: int | None = None,
) -> KeysetBook:
    """Check ``GET /v1/keysets`` (``{bank_cert, keysets}``): bank cert, then each descriptor.

    A single bad descriptor fails the whole list: a bank that signs garbage is not to be
    half-trusted.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keysets"), list):
        raise KeysetDescriptorError("keyset list must be {bank_cert, keysets: [...]}")
    cert_text = doc.get("bank_cert")
    if not isinstance(cert_text, str):
        raise KeysetDescriptorError("keyset list has no bank_cert")
    t = _now(now)
    bank_key = verify_party_certificate(cert_text, root, role="bank", name=bank_name, now=_aware(t))
    cert = load_certificate(cert_text)
    book: dict[bytes, Keyset] = {}
    descriptors: dict[bytes, dict[str, Any]] = {}
    for item in doc["keysets"]:
        try:
            ks = Keyset.from_signed(item, bank_key)
        except EcashError as exc:
            raise KeysetDescriptorError(
                f"keyset descriptor rejected: {exc.message}", detail={"cause": exc.code}
            ) from exc
        book[ks.keyset_id] = ks
        descriptors[ks.keyset_id] = dict(item)
    bank = common_name(cert)
    if not bank:
        raise KeysetDescriptorError("bank certificate has no single CN")
    return KeysetBook(bank, cert_pem(cert), bank_key, book, descriptors)


# --- deposits and receipts ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptBody:
    """The bank's deposit receipt body (kind ``deposit-receipt``), signature-checked."""

    deposit_id: str
    merchant_id: str
    preq: bytes
    amount: int
    currency: str
    serials: tuple[bytes, ...]
    transcript_ids: tuple[int, ...]
    deposited_at: int

    @classmethod
    def from_signed(
        cls,
        doc: Any,
        bank_cert: x509.Certificate | bytes | str,
        root: x509.Certificate | bytes | str,
        *,
        now: int | None = None,
        crl: CrlInput | None = None,
    ) -> ReceiptBody:
        """A receipt signed by a bank certified (role ``bank``) under ``root`` at ``now``.
        Says nothing about *which* payment it is for: :func:`verify_receipt` checks that."""
        t = _now(now)
        try:
            key = verify_party_certificate(bank_cert, root, role="bank", now=_aware(t), crl=crl)
            body = verify_object(doc, key, RECEIPT_KIND)
        except EcashError as exc:
            raise ReceiptInvalidError(
                f"receipt not signed by a certified bank: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        err = ReceiptInvalidError
        raw_serials = body.get("serials")
        raw_ids = body.get("transcript_ids")
        if not isinstance(raw_serials, list) or not isinstance(raw_ids, list):
            raise ReceiptInvalidError("receipt serials/transcript_ids must be lists")
        try:
            got_serials = tuple(b64u_decode(s) for s in raw_serials)
        except EncodingError as exc:
            raise ReceiptInvalidError("receipt serials are not base64url") from exc
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in raw_ids):
            raise ReceiptInvalidError("receipt transcript ids must be integers")
        return cls(
            deposit_id=read_str(body, "deposit_id", err, _NAME_MAX),
            merchant_id=read_str(body, "merchant_id", err, _NAME_MAX),
            preq=read_bytes(body, "preq", err, 32),
            amount=read_int(body, "amount", err, low=0),
            currency=read_currency(body, err),
            serials=got_serials,
            transcript_ids=tuple(raw_ids),
            deposited_at=read_int(body, "deposited_at", err),
        )


def verify_receipt(
    doc: Any,
    bank_cert: x509.Certificate | bytes | str,
    root: x509.Certificate | bytes | str,
    *,
    preq: bytes,
    merchant_id: str,
    amount: int,
    currency: str,
    serials: Iterable[bytes],
    now: int | None = None,
    crl: CrlInput | None = None,
) -> ReceiptBody:
    """Check the bank's receipt: bank cert (role bank), signature, and that it is for *this*
    payment (request digest, merchant, amount, currency, exactly these serials)."""
    rb = ReceiptBody.from_signed(doc, bank_cert, root, now=now, crl=crl)
    mismatches = []
    if not hmac.compare_digest(rb.preq, preq):
        mismatches.append("preq")
    if rb.merchant_id != merchant_id:
        mismatches.append("merchant_id")
    if rb.amount != amount:
        mismatches.append("amount")
    if rb.currency != currency:
        mismatches.append("currency")
    if sorted(rb.serials) != sorted(serials):
        mismatches.append("serials")
    if mismatches:
        raise ReceiptInvalidError(
            "receipt does not match this payment", detail={"fields": mismatches}
        )
    return rb

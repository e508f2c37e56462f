"""Denomination keysets as published: the bank-signed descriptor and its parsed form (DESIGN §5).

A keyset is published as a descriptor signed by the bank (kind ``bank-keyset``)::

    {keyset_id, value, currency, withdraw_from, withdraw_until, deposit_until,
     public_key (SPKI DER), variant, fee_withdraw, fee_deposit, fee_refresh, fee_refund}
    keyset_id = SHA-256(canonical_encode(descriptor without keyset_id))[:16]

so a wallet or merchant can check that the id commits to the key, the windows and the fees
(docs/protocol.md, "Keysets"; fees: §4.2). A descriptor without the four fee fields (made
before fees existed) parses as zero fees and is re-encoded without them, so its id still holds.
The bank's key files and rows live in ``ecash_tpm.bank.keysets``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import KEYSET_ID_LEN
from ecash_tpm.crypto.signing import canonical_encode, verify_object
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import check_currency
from ecash_tpm.protocol.errors import KeysetDescriptorError, KeysetExpiredError

__all__ = [
    "DESCRIPTOR_FIELDS",
    "FEE_ACCOUNT",
    "FEE_FIELDS",
    "KEYSET_DESCRIPTOR_KIND",
    "BankKeysets",
    "Fees",
    "Keyset",
    "deposit_fee",
    "keyset_id_for",
    "refresh_fee",
    "refund_fee",
    "spki",
    "withdraw_fee",
]

KEYSET_DESCRIPTOR_KIND = "bank-keyset"

#: The fields of a keyset descriptor, exactly (docs/protocol.md, "Keysets").
DESCRIPTOR_FIELDS = frozenset(
    {
        "keyset_id",
        "value",
        "currency",
        "withdraw_from",
        "withdraw_until",
        "deposit_until",
        "public_key",
        "variant",
    }
)
#: The fee fields of a descriptor (docs/protocol.md 4.2); all four or none (none: zero fees).
FEE_FIELDS = ("fee_withdraw", "fee_deposit", "fee_refresh", "fee_refund")
#: The bank's ledger account that every fee is credited to (docs/protocol.md 4.2).
FEE_ACCOUNT = "bank:fees"


@dataclass(frozen=True, slots=True)
class Fees:
    """A keyset's fees per coin in minor units (docs/protocol.md 4.2); zero by default."""

    withdraw: int = 0
    deposit: int = 0
    refresh: int = 0
    refund: int = 0

    def as_fields(self) -> dict[str, int]:
        """The descriptor's fee fields."""
        return dict(
            zip(FEE_FIELDS, (self.withdraw, self.deposit, self.refresh, self.refund), strict=True)
        )

    @classmethod
    def from_fields(cls, body: Mapping[str, Any], value: int) -> Fees:
        """The fees of a descriptor body; each a non-negative integer below the coin's value
        (a coin must keep a positive worth after any one fee)."""
        fees = []
        for name in FEE_FIELDS:
            v = body[name]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < value:
                raise KeysetDescriptorError(
                    f"{name} must be an integer from 0 to below the coin's value",
                    detail={"field": name, "value": value},
                )
            fees.append(v)
        return cls(*fees)


def keyset_id_for(descriptor_without_id: Mapping[str, Any]) -> bytes:
    """First 16 bytes of SHA-256 of the canonical descriptor without ``keyset_id``."""
    return hashlib.sha256(canonical_encode(dict(descriptor_without_id))).digest()[:KEYSET_ID_LEN]


def spki(public_key: rsa.RSAPublicKey) -> bytes:
    """The SubjectPublicKeyInfo DER of a keyset key (the descriptor's ``public_key``)."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True, slots=True)
class Keyset:
    """One denomination key and its windows; immutable once published."""

    keyset_id: bytes
    value: int
    currency: str
    withdraw_from: int
    withdraw_until: int
    deposit_until: int
    public_key: rsa.RSAPublicKey
    variant: blindrsa.Variant
    fees: Fees = Fees()
    #: False for a descriptor made before fees existed (no fee fields; zero fees, §4.2)
    fee_fields: bool = True

    @property
    def hex_id(self) -> str:
        return self.keyset_id.hex()

    @property
    def ledger_account(self) -> str:
        """The ledger account holding the value of this keyset's unspent coins."""
        return "coins-outstanding:" + self.hex_id

    def columns(self) -> dict[str, Any]:
        """The descriptor's values as raw columns (id and key as bytes, variant by name): what a
        bank stores per keyset and compares its rows against."""
        return {
            "keyset_id": self.keyset_id,
            "value": self.value,
            "currency": self.currency,
            "withdraw_from": self.withdraw_from,
            "withdraw_until": self.withdraw_until,
            "deposit_until": self.deposit_until,
            "public_key": spki(self.public_key),
            "variant": self.variant.name,
        }

    @property
    def fee_withdraw(self) -> int:
        return self.fees.withdraw

    @property
    def fee_deposit(self) -> int:
        return self.fees.deposit

    @property
    def fee_refresh(self) -> int:
        return self.fees.refresh

    @property
    def fee_refund(self) -> int:
        return self.fees.refund

    def can_withdraw(self, now: int) -> bool:
        return self.withdraw_from <= now < self.withdraw_until

    def can_deposit(self, now: int) -> bool:
        return self.withdraw_from <= now < self.deposit_until

    def require_withdraw(self, now: int) -> None:
        """Refuse signing under a keyset outside its withdraw window."""
        if not self.can_withdraw(now):
            raise KeysetExpiredError(
                "keyset is not valid for withdrawal now",
                detail={
                    "keyset_id": b64u_encode(self.keyset_id),
                    "withdraw_from": self.withdraw_from,
                    "withdraw_until": self.withdraw_until,
                },
            )

    def require_deposit(self, now: int) -> None:
        """Refuse coins of a keyset whose deposit window is over (or not yet open)."""
        if not self.can_deposit(now):
            raise KeysetExpiredError(
                "keyset is not valid for deposit now",
                detail={
                    "keyset_id": b64u_encode(self.keyset_id),
                    "deposit_until": self.deposit_until,
                    "now": now,
                },
            )

    def descriptor(self) -> dict[str, Any]:
        """The JSON descriptor (keyset_id included) that the bank signs."""
        body = self._body_without_id()
        body["keyset_id"] = b64u_encode(self.keyset_id)
        return body

    def _body_without_id(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "value": self.value,
            "currency": self.currency,
            "withdraw_from": self.withdraw_from,
            "withdraw_until": self.withdraw_until,
            "deposit_until": self.deposit_until,
            "public_key": b64u_encode(spki(self.public_key)),
            "variant": self.variant.name,
        }
        if self.fee_fields:
            body.update(self.fees.as_fields())
        return body

    @classmethod
    def from_descriptor(cls, body: Mapping[str, Any]) -> Keyset:
        """Parse a descriptor and check that its keyset_id commits to the rest."""
        if not isinstance(body, Mapping) or set(body) not in (
            DESCRIPTOR_FIELDS,
            DESCRIPTOR_FIELDS | set(FEE_FIELDS),
        ):
            raise KeysetDescriptorError("keyset descriptor has the wrong fields")
        ints = {}
        for name in ("value", "withdraw_from", "withdraw_until", "deposit_until"):
            v = body[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise KeysetDescriptorError(f"{name} must be a non-negative integer")
            ints[name] = v
        if ints["value"] <= 0 or not (
            ints["withdraw_from"] < ints["withdraw_until"] <= ints["deposit_until"]
        ):
            raise KeysetDescriptorError("keyset value or windows are inconsistent")
        fee_fields = FEE_FIELDS[0] in body  # §4.2: no fee fields (older descriptor) = no fees
        fees = Fees.from_fields(body, ints["value"]) if fee_fields else Fees()
        try:
            keyset_id = b64u_decode(body["keyset_id"])
            spki = b64u_decode(body["public_key"])
            public_key = serialization.load_der_public_key(spki)
            variant = blindrsa.get_variant(body["variant"])
            currency = check_currency(body["currency"])
        except (EcashError, ValueError, UnsupportedAlgorithm) as exc:
            raise KeysetDescriptorError("keyset descriptor cannot be parsed") from exc
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < 2048:
            raise KeysetDescriptorError("keyset key must be RSA of at least 2048 bits")
        if not variant.randomized:
            raise KeysetDescriptorError("coins carry a message prefix: variant must be randomized")
        without_id = {k: v for k, v in body.items() if k != "keyset_id"}
        if keyset_id != keyset_id_for(without_id):
            raise KeysetDescriptorError("keyset_id does not match the descriptor")
        return cls(
            keyset_id=keyset_id,
            currency=currency,
            public_key=public_key,
            variant=variant,
            fees=fees,
            fee_fields=fee_fields,
            **ints,
        )

    @classmethod
    def from_signed(cls, doc: Mapping[str, Any], bank_public_key: Any) -> Keyset:
        """Verify a bank-signed descriptor (wallets, merchants) and parse it."""
        return cls.from_descriptor(verify_object(doc, bank_public_key, KEYSET_DESCRIPTOR_KIND))


def withdraw_fee(keysets: Sequence[Keyset]) -> int:
    """Charged to the account on top of the coins' value at withdrawal (§4.2, §5.2)."""
    return sum(k.fees.withdraw for k in keysets)


def deposit_fee(keysets: Sequence[Keyset]) -> int:
    """Kept from the merchant's credit, per deposited coin (§4.2, §9)."""
    return sum(k.fees.deposit for k in keysets)


def refresh_fee(keysets: Sequence[Keyset]) -> int:
    """Kept from a swap's outputs, per input coin (§4.2, §9.3)."""
    return sum(k.fees.refresh for k in keysets)


def refund_fee(keysets: Sequence[Keyset]) -> int:
    """Kept from a refund's fresh coins, per refunded coin (§4.2, §9.2)."""
    return sum(k.fees.refund for k in keysets)


@dataclass(frozen=True)
class BankKeysets:
    """The bank's certificate and its keysets, parsed and signature-checked."""

    bank_cert: x509.Certificate
    keysets: list[Keyset]
    signed: list[dict[str, Any]]
    #: the central bank's ``bank-keyset-list`` served with them (docs/protocol.md 4.1)
    keyset_list: dict[str, Any] | None = None

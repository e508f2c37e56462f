"""Denomination keysets as published: the bank-signed descriptor and its parsed form (DESIGN §5).

A keyset is published as a descriptor signed by the bank (kind ``bank-keyset``)::

    {keyset_id, value, currency, withdraw_from, withdraw_until, deposit_until,
     public_key (SPKI DER), variant}
    keyset_id = SHA-256(canonical_encode(descriptor without keyset_id))[:16]

so a wallet or merchant can check that the id commits to the key and the windows
(docs/protocol.md, "Keysets"). The bank's key files and rows live in ``ecash_tpm.bank.keysets``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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
    "KEYSET_DESCRIPTOR_KIND",
    "BankKeysets",
    "Keyset",
    "keyset_id_for",
    "spki",
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
        return {
            "value": self.value,
            "currency": self.currency,
            "withdraw_from": self.withdraw_from,
            "withdraw_until": self.withdraw_until,
            "deposit_until": self.deposit_until,
            "public_key": b64u_encode(spki(self.public_key)),
            "variant": self.variant.name,
        }

    @classmethod
    def from_descriptor(cls, body: Mapping[str, Any]) -> Keyset:
        """Parse a descriptor and check that its keyset_id commits to the rest."""
        if not isinstance(body, Mapping) or set(body) != DESCRIPTOR_FIELDS:
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
            **ints,
        )

    @classmethod
    def from_signed(cls, doc: Mapping[str, Any], bank_public_key: Any) -> Keyset:
        """Verify a bank-signed descriptor (wallets, merchants) and parse it."""
        return cls.from_descriptor(verify_object(doc, bank_public_key, KEYSET_DESCRIPTOR_KIND))


@dataclass(frozen=True)
class BankKeysets:
    """The bank's certificate and its keysets, parsed and signature-checked."""

    bank_cert: x509.Certificate
    keysets: list[Keyset]
    signed: list[dict[str, Any]]
    #: the central bank's ``bank-keyset-list`` served with them (docs/protocol.md 4.1)
    keyset_list: dict[str, Any] | None = None

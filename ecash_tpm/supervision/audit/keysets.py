"""Keysets: signed by the bank's certified key, ``keyset_id`` commits to key and windows, rows
agree with their descriptors, and every descriptor the bank published is in its database.

Descriptors are checked with the audit's own code rather than ``Keyset.from_descriptor``, so
a bug in the parser the bank uses cannot hide in the audit too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import KEYSET_ID_LEN
from ecash_tpm.crypto.signing import canonical_encode, verify_object
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.keysets import DESCRIPTOR_FIELDS, FEE_FIELDS, KEYSET_DESCRIPTOR_KIND, Fees
from ecash_tpm.supervision.audit.context import AuditContext, AuditKeyset, blob
from ecash_tpm.supervision.audit.store import BankTables
from ecash_tpm.supervision.audit_report import AuditInputError

__all__ = ["check_published", "load_keysets"]


def load_keysets(ctx: AuditContext, tables: BankTables) -> None:
    """Fill ``ctx.keysets``: from the signed descriptor where it verifies, else from the row."""
    for row in tables.keysets():
        ctx.counts["keysets"] += 1
        kid = blob(row["keyset_id"])
        keyset = _keyset_from_row(row)
        try:
            body = _descriptor_body(ctx, json.loads(row["descriptor"]))
        except (EcashError, ValueError, TypeError) as exc:
            message = exc.message if isinstance(exc, EcashError) else str(exc)
            ctx.flag(
                "keyset.descriptor_invalid",
                f"keyset descriptor: {message}",
                table="keyset",
                row_id=kid.hex(),
            )
            ctx.keysets[kid] = keyset
            continue
        columns = {
            "keyset_id": b64u_encode(kid),
            "value": keyset.value,
            "currency": keyset.currency,
            "withdraw_from": keyset.withdraw_from,
            "withdraw_until": keyset.withdraw_until,
            "deposit_until": keyset.deposit_until,
            "public_key": b64u_encode(blob(row["public_key"])),
            "variant": str(row["variant"]),
        }
        for name, value in columns.items():
            if body[name] != value:
                ctx.flag(
                    "keyset.row_mismatch",
                    f"keyset column {name} differs from the signed descriptor",
                    table="keyset",
                    row_id=kid.hex(),
                    expected=body[name],
                    found=value,
                    field=name,
                )
        # From here on the signed descriptor is what counts, not the columns.
        ctx.keysets[kid] = _keyset_from_descriptor(body)


def check_published(ctx: AuditContext, descriptors: Sequence[Mapping[str, Any]]) -> None:
    """Descriptors the bank published (``GET /v1/keysets``) must all be in its database."""
    for index, doc in enumerate(descriptors):
        try:
            body = _descriptor_body(ctx, doc)
        except (EcashError, ValueError, TypeError) as exc:
            message = exc.message if isinstance(exc, EcashError) else str(exc)
            ctx.flag(
                "keyset.descriptor_invalid",
                f"published descriptor #{index}: {message}",
                row_id=index,
            )
            continue
        kid = b64u_decode(body["keyset_id"])
        known = ctx.keysets.get(kid)
        if known is None or not known.trusted:
            ctx.flag(
                "keyset.not_in_database",
                "a published keyset is not (validly) recorded in the bank's database",
                table="keyset",
                row_id=kid.hex(),
            )


def _keyset_from_row(row: Mapping[str, Any]) -> AuditKeyset:
    public_key: rsa.RSAPublicKey | None
    variant: blindrsa.Variant | None
    try:
        loaded = serialization.load_der_public_key(blob(row["public_key"]))
        public_key = loaded if isinstance(loaded, rsa.RSAPublicKey) else None
        variant = blindrsa.get_variant(str(row["variant"]))
    except (ValueError, UnsupportedAlgorithm, EcashError):
        public_key, variant = None, None
    return AuditKeyset(
        blob(row["keyset_id"]),
        int(row["value"]),
        str(row["currency"]),
        int(row["withdraw_from"]),
        int(row["withdraw_until"]),
        int(row["deposit_until"]),
        public_key,
        variant,
        False,
    )


def _descriptor_body(ctx: AuditContext, doc: Any) -> dict[str, Any]:
    """Verify a signed keyset descriptor with the bank key; return its checked body."""
    body = verify_object(doc, ctx.bank_key, KEYSET_DESCRIPTOR_KIND)
    if set(body) not in (DESCRIPTOR_FIELDS, DESCRIPTOR_FIELDS | set(FEE_FIELDS)):
        raise AuditInputError("descriptor has the wrong fields")
    for name in ("value", "withdraw_from", "withdraw_until", "deposit_until"):
        v = body[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise AuditInputError(f"descriptor {name} is not a non-negative integer")
    if body["value"] <= 0 or not (
        body["withdraw_from"] < body["withdraw_until"] <= body["deposit_until"]
    ):
        raise AuditInputError("descriptor value or windows are inconsistent")
    without_id = {k: v for k, v in body.items() if k != "keyset_id"}
    commitment = hashlib.sha256(canonical_encode(without_id)).digest()[:KEYSET_ID_LEN]
    if b64u_decode(body["keyset_id"]) != commitment:
        raise AuditInputError("keyset_id does not commit to the descriptor")
    key = serialization.load_der_public_key(b64u_decode(body["public_key"]))
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < blindrsa.MIN_KEY_BITS:
        raise AuditInputError("descriptor key is not RSA of at least 2048 bits")
    if not blindrsa.get_variant(body["variant"]).randomized:
        raise AuditInputError("descriptor variant is not randomized")
    _fees(body)  # 4.2: all four fee fields or none, each below the value
    return body


def _fees(body: Mapping[str, Any]) -> Fees:
    """The descriptor's fees (docs/protocol.md 4.2), checked with the audit's own code."""
    if FEE_FIELDS[0] not in body:
        return Fees()
    values = [body[name] for name in FEE_FIELDS]
    if any(
        isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < body["value"] for v in values
    ):
        raise AuditInputError("descriptor fees must be integers from 0 to below the value")
    return Fees(*values)


def _keyset_from_descriptor(body: Mapping[str, Any]) -> AuditKeyset:
    key = serialization.load_der_public_key(b64u_decode(body["public_key"]))
    if not isinstance(key, rsa.RSAPublicKey):  # checked in _descriptor_body
        raise AuditInputError("descriptor key is not RSA")
    return AuditKeyset(
        b64u_decode(body["keyset_id"]),
        int(body["value"]),
        str(body["currency"]),
        int(body["withdraw_from"]),
        int(body["withdraw_until"]),
        int(body["deposit_until"]),
        key,
        blindrsa.get_variant(body["variant"]),
        True,
        _fees(body),
    )

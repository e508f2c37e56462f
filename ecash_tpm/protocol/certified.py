"""What the central bank certifies besides party keys: each issuer epoch's public key and the
list of each bank's keysets (issue 10, #6 and #7; docs/protocol.md §3.6 and §4.1).

Both are signed objects (:mod:`ecash_tpm.crypto.signing`) made with the central bank's **root
key**, so a wallet checks them with nothing but the root it already pins:

* ``issuer-epoch-key`` ``{issuer, epoch, X, Y, X2, Y2, certified_at}``: the one (X = x*G,
  Y = y*G) of an epoch and its G2 images X2 = x*P2, Y2 = y*P2 (issue 14: anyone verifies coin
  credentials with them, protocol §7.4). The central bank signs at most one key per (issuer,
  epoch), so every member of the epoch checks its credential against the same key
  (:mod:`ecash_tpm.crypto.groupsig.keyproof`). Every parser checks e(X, P2) == e(G, X2) and
  e(Y, P2) == e(G, Y2) (``issuer_epoch.g2_mismatch``). Certificates without X2, Y2 (made before
  issue 14) are still accepted for one release; coins of such an epoch are checked only by the
  bank.
* ``bank-keyset-list`` ``{bank, sequence, certified_at, keysets: [{keyset_id, deposit_until}]}``:
  every keyset of the bank the central bank has registered (append-only, expired ones dropped),
  ``sequence`` counting the lists issued for that bank. A wallet withdraws only when the bank
  offers exactly the keysets on it (none added, none withheld), so a bank can neither tag a
  customer with a keyset of its own nor steer its choice by hiding some.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import KEYSET_ID_LEN, IssuerPublic
from ecash_tpm.crypto.signing import canonical_digest, verify_object
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol.errors import IssuerEpochCertificateError, KeysetListError

__all__ = [
    "ISSUER_EPOCH_KIND",
    "KEYSET_LIST_KIND",
    "CertifiedKeysetList",
    "IssuerEpochCertificate",
    "issuer_epoch_body",
    "keyset_list_body",
]

ISSUER_EPOCH_KIND = "issuer-epoch-key"
KEYSET_LIST_KIND = "bank-keyset-list"

_EPOCH_FIELDS = frozenset({"issuer", "epoch", "X", "Y", "X2", "Y2", "certified_at"})
_EPOCH_FIELDS_V1 = frozenset({"issuer", "epoch", "X", "Y", "certified_at"})  # before issue 14
_LIST_FIELDS = frozenset({"bank", "sequence", "certified_at", "keysets"})
_ENTRY_FIELDS = frozenset({"keyset_id", "deposit_until"})
_MAX_KEYSETS = 4096


def _int(body: Mapping[str, Any], name: str, err: type[EcashError]) -> int:
    v = body[name]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**53:
        raise err(f"{name} must be a non-negative integer", detail={"field": name})
    return v


def _name(body: Mapping[str, Any], name: str, err: type[EcashError]) -> str:
    v = body[name]
    if not isinstance(v, str) or not 0 < len(v) <= 64:
        raise err(f"{name} must be a party name", detail={"field": name})
    return v


def _root_key(root: x509.Certificate | bytes | str) -> x509.Certificate:
    return load_certificate(root)


def issuer_epoch_body(issuer: str, epoch: int, public: IssuerPublic, now: int) -> dict[str, Any]:
    """The body the central bank signs for an issuer epoch key."""
    return {"issuer": issuer, "epoch": epoch, **public.to_dict(), "certified_at": now}


def keyset_list_body(
    bank: str, sequence: int, keysets: Mapping[bytes, int], now: int
) -> dict[str, Any]:
    """The body the central bank signs for a bank's keyset list: ``keysets`` maps keyset id to
    its ``deposit_until`` (sorted by id)."""
    return {
        "bank": bank,
        "sequence": sequence,
        "certified_at": now,
        "keysets": [
            {"keyset_id": b64u_encode(k), "deposit_until": keysets[k]} for k in sorted(keysets)
        ],
    }


@dataclass(frozen=True, slots=True)
class IssuerEpochCertificate:
    """A central-bank-certified issuer epoch key, signature checked."""

    issuer: str
    epoch: int
    public: IssuerPublic
    certified_at: int

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> IssuerEpochCertificate:
        if not isinstance(body, Mapping) or set(body) not in (_EPOCH_FIELDS, _EPOCH_FIELDS_V1):
            raise IssuerEpochCertificateError("issuer epoch certificate has the wrong fields")
        keys = {k: body[k] for k in ("X", "Y", "X2", "Y2") if k in body}
        try:
            public = IssuerPublic.from_dict(keys)
        except EcashError as exc:
            raise IssuerEpochCertificateError(
                f"issuer epoch key is not a pair of points: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        if public.has_g2:  # §3.6: the G2 keys are the images of X, Y
            try:
                public.check_g2()
            except EcashError as exc:
                raise IssuerEpochCertificateError(
                    f"issuer epoch key: {exc.message}", code="issuer_epoch.g2_mismatch"
                ) from exc
        err = IssuerEpochCertificateError
        return cls(
            issuer=_name(body, "issuer", err),
            epoch=_int(body, "epoch", err),
            public=public,
            certified_at=_int(body, "certified_at", err),
        )

    @classmethod
    def from_signed(cls, doc: Any, root: x509.Certificate | bytes | str) -> IssuerEpochCertificate:
        """Verify the root's signature on ``doc`` and parse it (``issuer_epoch.invalid``)."""
        try:
            body = verify_object(doc, _root_key(root), ISSUER_EPOCH_KIND)
        except EcashError as exc:
            raise IssuerEpochCertificateError(
                f"issuer epoch key is not certified by the central bank: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        return cls.from_body(body)


@dataclass(frozen=True, slots=True)
class CertifiedKeysetList:
    """A central-bank-certified list of one bank's keysets, signature checked."""

    bank: str
    sequence: int
    certified_at: int
    keyset_ids: frozenset[bytes]
    #: hex SHA-256 of the canonical body: names this list (the wallet shows it).
    list_id: str
    #: keyset id -> deposit_until: the bank serves each keyset until then
    deposit_until: Mapping[bytes, int]

    def expected(self, now: int, grace_s: int = 300) -> frozenset[bytes]:
        """Keysets the bank must still serve at ``now`` (``grace_s`` for clock skew)."""
        return frozenset(k for k, until in self.deposit_until.items() if until > now + grace_s)

    def __contains__(self, keyset_id: object) -> bool:
        return keyset_id in self.keyset_ids

    def to_summary(self) -> dict[str, Any]:
        """What the wallet shows about the list it trusts."""
        return {
            "bank": self.bank,
            "list_id": self.list_id,
            "sequence": self.sequence,
            "certified_at": self.certified_at,
            "keysets": len(self.keyset_ids),
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> CertifiedKeysetList:
        if not isinstance(body, Mapping) or set(body) != _LIST_FIELDS:
            raise KeysetListError("keyset list has the wrong fields")
        entries = body["keysets"]
        if not isinstance(entries, list) or len(entries) > _MAX_KEYSETS:
            raise KeysetListError("keysets must be a list")
        parsed: dict[bytes, int] = {}
        for item in entries:
            if not isinstance(item, Mapping) or set(item) != _ENTRY_FIELDS:
                raise KeysetListError("keyset list entry must be {keyset_id, deposit_until}")
            try:
                kid = b64u_decode(item["keyset_id"])
            except EcashError as exc:
                raise KeysetListError("keyset id is not base64url") from exc
            if len(kid) != KEYSET_ID_LEN or kid in parsed:
                raise KeysetListError("keyset id must be 16 bytes and listed once")
            parsed[kid] = _int(item, "deposit_until", KeysetListError)
        return cls(
            bank=_name(body, "bank", KeysetListError),
            sequence=_int(body, "sequence", KeysetListError),
            certified_at=_int(body, "certified_at", KeysetListError),
            keyset_ids=frozenset(parsed),
            list_id=canonical_digest(dict(body)).hex(),
            deposit_until=MappingProxyType(parsed),
        )

    @classmethod
    def from_signed(
        cls,
        doc: Any,
        root: x509.Certificate | bytes | str,
        *,
        bank_name: str | None = None,
    ) -> CertifiedKeysetList:
        """Verify the root's signature, parse, and check the bank's name (``keyset_list.*``)."""
        if doc is None:
            raise KeysetListError(
                "the bank served no central-bank-certified keyset list",
                code="keyset_list.missing",
            )
        try:
            body = verify_object(doc, _root_key(root), KEYSET_LIST_KIND)
        except EcashError as exc:
            raise KeysetListError(
                f"keyset list is not certified by the central bank: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        listed = cls.from_body(body)
        if bank_name is not None and listed.bank != bank_name:
            raise KeysetListError(
                "keyset list is for another bank",
                detail={"expected": bank_name, "got": listed.bank},
            )
        return listed

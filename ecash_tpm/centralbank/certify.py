"""The central bank certifies each issuer epoch key and each bank's keyset list (issue 10, #6
and #7; docs/protocol.md 3.6 and 4.1).

* An issuer epoch key (X, Y) is certified once per (issuer, epoch): a second, different key for
  the same epoch is refused (``centralbank.issuer_epoch_conflict``), so the issuer cannot give
  members their own keys under one epoch and still show each of them a certificate.
* A bank's keyset list is append-only: the bank (or anyone holding its signed descriptors, which
  only the bank can make) submits descriptors; the central bank checks the bank certificate
  against its own issuance log, every descriptor's signature, and signs the list of every keyset
  it registered for that bank that is still depositable. There is one current list per bank,
  published at ``GET /v1/keyset-lists/{bank}``: the same for every customer.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from ecash_tpm.centralbank.ca import CentralBankCA, UnknownSerialError
from ecash_tpm.crypto.groupsig import IssuerPublic
from ecash_tpm.crypto.signing import canonical_encode
from ecash_tpm.errors import ConflictError, EcashError, InputError, NotFoundError
from ecash_tpm.pki import (
    CertificateRevokedError,
    CertificateUntrustedError,
    check_name,
    common_name,
    load_certificate,
    verify_party_certificate,
)
from ecash_tpm.protocol.certified import (
    ISSUER_EPOCH_KIND,
    KEYSET_LIST_KIND,
    CertifiedKeysetList,
    issuer_epoch_body,
    keyset_list_body,
)
from ecash_tpm.protocol.errors import KeysetDescriptorError
from ecash_tpm.protocol.keysets import Keyset
from ecash_tpm.storage import Row

__all__ = [
    "IssuerEpochConflictError",
    "IssuerEpochG2Error",
    "IssuerEpochNotFoundError",
    "KeysetListNotFoundError",
    "certify_issuer_epoch",
    "certify_keyset_list",
    "issuer_epoch_certificate",
    "latest_keyset_list",
]

_MAX_EPOCH = 2**32 - 1


class IssuerEpochConflictError(ConflictError):
    """The epoch already has another certified key: one key per epoch, for every member."""

    code = "centralbank.issuer_epoch_conflict"


class IssuerEpochG2Error(InputError):
    """The submitted key has no X2, Y2 on G2, or they are not the images of X, Y (protocol
    §3.6): certifying it would make coins of the epoch unverifiable by the public."""

    code = "centralbank.issuer_epoch_g2_mismatch"


class IssuerEpochNotFoundError(NotFoundError):
    """No key is certified for this issuer and epoch."""

    code = "centralbank.issuer_epoch_not_found"


class KeysetListNotFoundError(NotFoundError):
    """No keyset list is certified for this bank."""

    code = "centralbank.keyset_list_not_found"


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def certify_issuer_epoch(
    ca: CentralBankCA,
    issuer: str,
    epoch: int,
    public: IssuerPublic,
    *,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The root-signed ``issuer-epoch-key`` for (issuer, epoch); idempotent for the same key,
    ``centralbank.issuer_epoch_conflict`` (409) for another one. A stored certificate made
    before issue 14 (no X2, Y2) for the same X, Y is upgraded once to the new document. The
    key must carry X2, Y2 on G2 with e(X, P2) == e(G, X2) and e(Y, P2) == e(G, Y2) (§3.6), else
    ``centralbank.issuer_epoch_g2_mismatch`` (400): a certified key always allows public
    verification of coins (§7.4)."""
    check_name(issuer)
    try:
        public.check_g2()
    except EcashError as exc:
        raise IssuerEpochG2Error(
            f"issuer epoch key refused: {exc.message}", detail={"check": exc.detail.get("check")}
        ) from exc
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= _MAX_EPOCH:
        raise InputError("epoch must be an integer in [0, 2^32)", code="centralbank.bad_epoch")
    t = int(_now(now).timestamp())
    xy = public.X.encode() + public.Y.encode()
    doc = ca.sign_object(ISSUER_EPOCH_KIND, issuer_epoch_body(issuer, epoch, public, t))
    encoded = canonical_encode(doc).decode()
    row = ca.store.insert_issuer_epoch(issuer, epoch, xy, encoded, t)
    if bytes(row["public_xy"]) != xy:
        raise IssuerEpochConflictError(
            "this issuer epoch already has another certified key",
            detail={"issuer": issuer, "epoch": epoch},
        )
    stored = _doc(row)
    body = stored.get("body")
    if isinstance(body, dict) and ("X2" not in body or "Y2" not in body):
        # §3.6: the one upgrade of a certificate made before issue 14: same X, Y, now with the
        # G2 keys just pairing-checked against them (X2, Y2 follow from x, y, so there is only
        # ever one such upgrade); the new document replaces the old one for good
        upgraded = ca.store.upgrade_issuer_epoch(issuer, epoch, xy, str(row["doc_json"]), encoded)
        if upgraded is None:  # pragma: no cover - rows are never deleted
            raise IssuerEpochNotFoundError("issuer epoch vanished during its upgrade")
        stored = _doc(upgraded)
    return stored


def issuer_epoch_certificate(ca: CentralBankCA, issuer: str, epoch: int) -> dict[str, Any]:
    """The stored certificate of (issuer, epoch); ``centralbank.issuer_epoch_not_found``."""
    row = ca.store.issuer_epoch(issuer, epoch)
    if row is None:
        raise IssuerEpochNotFoundError(
            "no certified key for this issuer epoch", detail={"issuer": issuer, "epoch": epoch}
        )
    return _doc(row)


def _doc(row: Row) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(str(row["doc_json"]))
    return doc


def _bank_of(ca: CentralBankCA, cert_pem: str | bytes, moment: dt.datetime) -> tuple[str, Any]:
    """Name and key of a bank certificate this central bank issued and has not revoked."""
    leaf = load_certificate(cert_pem)
    key = verify_party_certificate(leaf, ca.root_certificate, role="bank", now=moment)
    detail = {"serial": format(leaf.serial_number, "x")}
    try:
        record = ca.get(leaf.serial_number)
    except UnknownSerialError as exc:
        raise CertificateUntrustedError(
            "certificate is not in the central bank's issuance log", detail=detail
        ) from exc
    if record.certificate != leaf:
        raise CertificateUntrustedError(
            "certificate differs from the one the central bank issued", detail=detail
        )
    if record.revoked_at is not None:
        raise CertificateRevokedError("certificate has been revoked", detail=detail)
    return common_name(leaf), key


def certify_keyset_list(
    ca: CentralBankCA,
    bank_cert: str | bytes,
    descriptors: Sequence[Any],
    *,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Register the bank's signed keyset descriptors and return its root-signed keyset list.

    Refuses a certificate that is not a live bank certificate from this central bank (the PKI
    errors) and any descriptor not signed by it (``keyset.descriptor_invalid``). A new list
    (next ``sequence``) is signed only when the set of keysets changed.
    """
    moment = _now(now)
    t = int(moment.timestamp())
    bank, key = _bank_of(ca, bank_cert, moment)
    keysets: list[Keyset] = []
    for doc in descriptors:
        try:
            keysets.append(Keyset.from_signed(doc, key))
        except EcashError as exc:
            raise KeysetDescriptorError(
                f"keyset descriptor rejected: {exc.message}", detail={"cause": exc.code}
            ) from exc

    def build(sequence: int, ids: dict[bytes, int], latest: Row | None) -> str | None:
        if latest is not None:
            old = CertifiedKeysetList.from_body(_doc(latest)["body"])
            if dict(old.deposit_until) == ids:
                return None
        body = keyset_list_body(bank, sequence, ids, t)
        return canonical_encode(ca.sign_object(KEYSET_LIST_KIND, body)).decode()

    stored = ca.store.certify_keysets(
        bank, [(k.keyset_id, k.deposit_until) for k in keysets], t, build
    )
    out: dict[str, Any] = json.loads(stored)
    return out


def latest_keyset_list(ca: CentralBankCA, bank: str) -> dict[str, Any]:
    """The bank's current certified list; ``centralbank.keyset_list_not_found``."""
    stored = ca.store.latest_keyset_list(bank)
    if stored is None:
        raise KeysetListNotFoundError(
            "no keyset list certified for this bank", detail={"bank": bank}
        )
    out: dict[str, Any] = json.loads(stored)
    return out

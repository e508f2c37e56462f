"""Who may join (docs/protocol.md 3.1, "Join authorisation", "Lifting a revocation").

The attested join proves *a* genuine TPM; these checks decide whether *this* join may happen:

- the account owner authorised it at the bank (a fresh, single-use, bank-signed
  ``join-authorisation`` for the account and this join's AK);
- every EK certificate the device presents belongs to no active member and to no revoked member
  whose revocation the supervision department has not lifted (a TPM is recognised through any
  of its EKs, since the device presents them all and activates a credential with each);
- the account has no active membership and no unlifted revocation.

Run at join/start (read transaction) and again inside join/finish's transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ecash_tpm.attest import PublicArea, as_public_area
from ecash_tpm.issuer import store
from ecash_tpm.issuer.errors import (
    AccountAlreadyMemberError,
    AccountRevokedError,
    CentralBankRootMissingError,
    EkAlreadyMemberError,
    EkDuplicateError,
    EkKindMissingError,
    EkRevokedError,
    JoinAuthorisationReplayedError,
)
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.pki import CrlInput
from ecash_tpm.protocol.api.issuer import EkPresentation, JoinStartRequest
from ecash_tpm.protocol.join_auth import JoinAuthorisation, JoinAuthorisationMissingError
from ecash_tpm.storage import Transaction, UniqueViolationError

__all__ = [
    "account_barred",
    "check_account_free",
    "check_authorisation",
    "check_platform_free",
    "check_required_kinds",
    "ek_key_id",
    "require_root",
    "spend_authorisation",
    "verify_other_eks",
]


def require_root(root: x509.Certificate | None) -> x509.Certificate:
    """The central bank root; without it no bank or supervision signature can be checked."""
    if root is None:
        raise CentralBankRootMissingError(
            "the issuer has no central bank root (central_bank_root): it cannot check the "
            "bank's join authorisations"
        )
    return root


def check_authorisation(
    req: JoinStartRequest, root: x509.Certificate | None, now: int, crl: CrlInput | None = None
) -> JoinAuthorisation:
    """docs/protocol.md "Join authorisation", steps (1)-(5); the nonce is spent later."""
    if req.authorisation is None or req.authorisation_cert is None:
        raise JoinAuthorisationMissingError(
            "join/start needs the bank's join authorisation for the account and its certificate"
        )
    auth = JoinAuthorisation.from_signed(
        req.authorisation, req.authorisation_cert, require_root(root), now=now, crl=crl
    )
    auth.check_for(req.account_id, req.ak_public)
    return auth


def spend_authorisation(tx: Transaction, auth: JoinAuthorisation, now: int) -> None:
    """Single use: the nonce goes into the issuer's table in the join/start transaction."""
    try:
        store.use_authorisation(tx, auth.nonce, auth.account_id, now, auth.expires_at)
    except UniqueViolationError as exc:
        raise JoinAuthorisationReplayedError(
            "this join authorisation was already used; ask the bank for a new one"
        ) from exc


def ek_key_id(public: bytes | PublicArea) -> str:
    """Hex SHA-256 of the EK's SubjectPublicKeyInfo: the EK itself, whatever its certificate."""
    key = as_public_area(public).to_crypto_key()
    return hashlib.sha256(
        key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).hexdigest()


def ek_kind(area: PublicArea) -> str:
    """``rsa2048``, ``ecc_p256``, ``ecc_p384`` (the wallet's EkKind values), else ``other``."""
    key = area.to_crypto_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa2048" if key.key_size == 2048 else "other"
    return {"secp256r1": "ecc_p256", "secp384r1": "ecc_p384"}.get(key.curve.name, "other")


def check_required_kinds(eks: Sequence[PresentedEk], required: Sequence[str]) -> None:
    """3.2 step 4: the join presents every EK type the issuer requires (a TPM has an RSA-2048
    EK certificate: if it must always show it, it is always recognised by it)."""
    present = {ek_kind(e.area) for e in eks}
    missing = [k for k in required if k not in present]
    if missing:
        raise EkKindMissingError(
            "the join must present the TPM's " + ", ".join(missing) + " EK",
            detail={"missing": missing, "presented": sorted(present)},
        )


@dataclass(frozen=True)
class PresentedEk:
    """A verified EK of the joining TPM."""

    fingerprint: str  # SHA-256 of its certificate's DER (the issuer's EK id since migration 1)
    key_id: str
    area: PublicArea


def verify_other_eks(
    trust: EkTrustStore, eks: Sequence[EkPresentation], primary: PresentedEk, now: dt.datetime
) -> list[PresentedEk]:
    """Each further EK: chain and binding to its public as for the first; no EK twice."""
    seen = {primary.fingerprint, primary.key_id}
    out: list[PresentedEk] = []
    for index, presented in enumerate(eks):
        ek, area = trust.verify(presented.ek_cert, presented.ek_public, now=now)
        this = PresentedEk(ek.fingerprint, ek_key_id(area), area)
        if this.fingerprint in seen or this.key_id in seen:
            raise EkDuplicateError("the same EK was presented twice", detail={"other_eks": index})
        seen.update((this.fingerprint, this.key_id))
        out.append(this)
    return out


def _barring(rows: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(an active member, a revoked member whose revocation is not lifted) among ``rows``."""
    active = revoked = None
    for row in rows:
        if row["status"] == "active":
            active = active or str(row["member_id"])
        elif row["lifted_at"] is None:
            revoked = revoked or str(row["member_id"])
    return active, revoked


def check_platform_free(tx: Transaction, eks: Sequence[tuple[str, str]]) -> None:
    """No presented EK ((certificate fingerprint, key id)) belongs to an active member or to an
    unlifted revoked one."""
    for fingerprint, key_id in eks:
        active, revoked = _barring(store.members_of_platform(tx, fingerprint, key_id))
        if active is not None:
            raise EkAlreadyMemberError(
                "this TPM already has an active membership",
                detail={"ek_fingerprint": fingerprint, "member_id": active},
            )
        if revoked is not None:
            raise EkRevokedError(
                "this TPM's membership was revoked (until the supervision department lifts it)",
                detail={"ek_fingerprint": fingerprint, "member_id": revoked},
            )


def check_account_free(tx: Transaction, account_id: str) -> None:
    """One active membership per account; a revoked account stays out until lifted."""
    active, revoked = _barring(store.members_of_account(tx, account_id))
    if active is not None:
        raise AccountAlreadyMemberError(
            "this account already has an active membership",
            detail={"account_id": account_id, "member_id": active},
        )
    if revoked is not None:
        raise AccountRevokedError(
            "a membership of this account was revoked (until the supervision department lifts it)",
            detail={"account_id": account_id, "member_id": revoked},
        )


def account_barred(tx: Transaction, account_id: str) -> bool:
    """True when the account has a revoked membership whose revocation is not lifted."""
    return _barring(store.members_of_account(tx, account_id))[1] is not None

"""The bank-signed join authorisation (docs/protocol.md, "Join authorisation").

A join must be for an account whose owner authenticated to the bank for *this* join: the wallet
logs in, asks ``POST /v1/join-authorisation`` with the hash of its AK public, and the bank signs
``{account_id, binding, nonce, issued_at, expires_at}`` as kind ``join-authorisation``. The issuer
checks, in the order of docs/protocol.md: (1) the bank certificate against the central bank root
(role ``bank``); (2) the signature and the kind; (3) the body's shape; (4) freshness (``issued_at
<= now + skew``, ``now <= expires_at``, a lifetime of at most :data:`MAX_TTL_S`); (5) the account
is the join's and the binding is Hash(AK public) of the join; the issuer then spends the nonce
once (its own database). A customer with her own genuine TPM therefore cannot join under an
account whose login she does not hold, nor reuse an authorisation seen elsewhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode, tagged_hash
from ecash_tpm.crypto.signing import verify_object
from ecash_tpm.errors import AuthenticationError, EcashError, ForbiddenError, ProtocolError
from ecash_tpm.pki import CrlInput, verify_party_certificate

__all__ = [
    "JOIN_AUTHORISATION_KIND",
    "MAX_TTL_S",
    "JoinAuthorisation",
    "JoinAuthorisationExpiredError",
    "JoinAuthorisationInvalidError",
    "JoinAuthorisationMismatchError",
    "JoinAuthorisationMissingError",
    "REVOCATION_LIFT_KIND",
    "RevocationLift",
    "RevocationLiftInvalidError",
    "join_binding",
]

JOIN_AUTHORISATION_KIND = "join-authorisation"
TAG_JOIN_BINDING = "ecash-tpm/v1/join-binding"
MAX_TTL_S = 300
"""Longest lifetime an issuer accepts (the bank issues 120 s)."""
CLOCK_SKEW_S = 30
"""How far in the future ``issued_at`` may be (the parties' clocks differ a little)."""
NONCE_LEN = 16

_FIELDS = frozenset({"account_id", "binding", "nonce", "issued_at", "expires_at"})


class JoinAuthorisationMissingError(AuthenticationError):
    """join/start came without the bank's join authorisation (or without its certificate)."""

    code = "join.authorisation_missing"


class JoinAuthorisationInvalidError(ForbiddenError):
    """The authorisation is not a well-formed ``join-authorisation`` signed by a certified bank."""

    code = "join.authorisation_invalid"


class JoinAuthorisationExpiredError(ProtocolError):
    """The authorisation is outside its lifetime (or claims too long a one)."""

    code = "join.authorisation_expired"
    http_status = 410


class JoinAuthorisationMismatchError(ForbiddenError):
    """The authorisation is for another account, or for another join (AK binding)."""

    code = "join.authorisation_mismatch"


def join_binding(ak_public: bytes) -> str:
    """Hash("ecash-tpm/v1/join-binding", AK public), hex: ties an authorisation to one join."""
    return tagged_hash(TAG_JOIN_BINDING, ak_public).hex()


@dataclass(frozen=True)
class JoinAuthorisation:
    """A verified join authorisation (build with :meth:`from_signed`)."""

    account_id: str
    binding: str
    nonce: bytes
    issued_at: int
    expires_at: int

    def to_body(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "binding": self.binding,
            "nonce": b64u_encode(self.nonce),
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JoinAuthorisation:
        """Step (3): exactly the five fields, with their types."""
        if set(body) != _FIELDS:
            raise JoinAuthorisationInvalidError(
                "join authorisation body must have exactly " + ", ".join(sorted(_FIELDS))
            )
        account, binding, nonce = body["account_id"], body["binding"], body["nonce"]
        issued, expires = body["issued_at"], body["expires_at"]
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (issued, expires))
        if not (isinstance(account, str) and isinstance(binding, str) and ints):
            raise JoinAuthorisationInvalidError("join authorisation fields have the wrong types")
        try:
            raw_nonce = b64u_decode(nonce) if isinstance(nonce, str) else b""
        except EcashError:
            raw_nonce = b""
        if len(raw_nonce) != NONCE_LEN or len(binding) != 64:
            raise JoinAuthorisationInvalidError("join authorisation nonce or binding is malformed")
        return cls(account, binding, raw_nonce, int(issued), int(expires))

    @classmethod
    def from_signed(
        cls,
        doc: Any,
        cert: x509.Certificate | bytes | str,
        root: x509.Certificate | bytes | str,
        *,
        now: int,
        crl: CrlInput | None = None,
    ) -> JoinAuthorisation:
        """Steps (1)-(4): certificate (not on the central bank's CRL, 13.2), signature, body,
        freshness. (5) is :meth:`check_for`."""
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        key = verify_party_certificate(cert, root, role="bank", now=when, crl=crl)  # (1) cert.*
        try:
            body = verify_object(doc, key, JOIN_AUTHORISATION_KIND)  # (2)
        except EcashError as exc:
            raise JoinAuthorisationInvalidError(
                f"join authorisation does not verify: {exc.message}", detail={"cause": exc.code}
            ) from exc
        auth = cls.from_body(body)  # (3)
        lifetime = auth.expires_at - auth.issued_at
        if not 0 < lifetime <= MAX_TTL_S or auth.issued_at > now + CLOCK_SKEW_S:
            raise JoinAuthorisationExpiredError(
                "join authorisation has an impossible lifetime",
                detail={"issued_at": auth.issued_at, "expires_at": auth.expires_at},
            )
        if now > auth.expires_at:  # (4)
            raise JoinAuthorisationExpiredError(
                "join authorisation expired; ask the bank for a new one",
                detail={"expires_at": auth.expires_at, "now": now},
            )
        return auth

    def check_for(self, account_id: str, ak_public: bytes) -> None:
        """Step (5): the join's account and AK are the ones the bank authorised."""
        if self.account_id != account_id:
            raise JoinAuthorisationMismatchError(
                "join authorisation is for another account",
                detail={"authorised": self.account_id[:128], "requested": account_id[:128]},
            )
        if self.binding != join_binding(ak_public):
            raise JoinAuthorisationMismatchError(
                "join authorisation is bound to another AK", detail={"binding": self.binding}
            )


# --- lifting a revocation (docs/protocol.md, "Lifting a revocation") --------------------------

REVOCATION_LIFT_KIND = "revocation-lift"
_LIFT_FIELDS = frozenset({"member_id", "reason", "issued_at"})


class RevocationLiftInvalidError(ForbiddenError):
    """A revocation lift is not a well-formed ``revocation-lift`` of the supervision department."""

    code = "issuer.lift_invalid"


@dataclass(frozen=True)
class RevocationLift:
    """The supervision department's order to let a revoked member's account and TPM join again.

    The revoked credential stays revoked; only the bar on new joins (account and every EK of
    that TPM) is lifted.
    """

    member_id: str
    reason: str
    issued_at: int

    def to_body(self) -> dict[str, Any]:
        return {"member_id": self.member_id, "reason": self.reason, "issued_at": self.issued_at}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RevocationLift:
        if set(body) != _LIFT_FIELDS:
            raise RevocationLiftInvalidError(
                "revocation lift must have exactly " + ", ".join(sorted(_LIFT_FIELDS))
            )
        member, reason, issued = body["member_id"], body["reason"], body["issued_at"]
        if not (
            isinstance(member, str)
            and isinstance(reason, str)
            and 0 < len(reason) <= 200
            and isinstance(issued, int)
            and not isinstance(issued, bool)
        ):
            raise RevocationLiftInvalidError("revocation lift fields have the wrong types")
        return cls(member, reason, issued)

    @classmethod
    def from_signed(
        cls,
        doc: Any,
        cert: x509.Certificate | bytes | str,
        root: x509.Certificate | bytes | str,
        *,
        now: int,
        crl: CrlInput | None = None,
    ) -> RevocationLift:
        """Supervision certificate (role ``supervision``, not on the CRL), signature, body."""
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        key = verify_party_certificate(cert, root, role="supervision", now=when, crl=crl)
        try:
            body = verify_object(doc, key, REVOCATION_LIFT_KIND)
        except EcashError as exc:
            raise RevocationLiftInvalidError(
                f"revocation lift does not verify: {exc.message}", detail={"cause": exc.code}
            ) from exc
        return cls.from_body(body)

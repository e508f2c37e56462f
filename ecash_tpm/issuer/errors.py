"""Leaf errors of the group manager (issuer), each with its own stable code.

Attestation failures keep the precise codes of :mod:`ecash_tpm.attest` (``ek.unknown_root``,
``quote.nonce_mismatch``, ``certify.name_mismatch`` ...) and the group-signature codes of
:mod:`ecash_tpm.crypto.groupsig` (``daa.join_proof_invalid``); the classes here cover what only
the issuer can judge: join state, membership rules, PCR policy, keys and revocation evidence.
"""

from __future__ import annotations

from ecash_tpm.errors import (
    AttestationError,
    AuthenticationError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    ProtocolError,
)


class JoinUnknownError(NotFoundError):
    """No join with this join_id was started (or it was purged long after it expired)."""

    code = "join.unknown"


class JoinReplayedError(ConflictError):
    """The join_id was already used (finished or burned by a failed attempt): single use."""

    code = "join.replayed"


class JoinExpiredError(ProtocolError):
    """join/finish came after the join's deadline; start again."""

    code = "join.expired"
    http_status = 410


class EkAlreadyMemberError(ConflictError):
    """This EK already has an active membership: one per EK."""

    code = "join.ek_already_member"


class EkRevokedError(ForbiddenError):
    """This EK's membership was revoked (double spending): it may not join again."""

    code = "join.ek_revoked"


class T0RegisteredError(ConflictError):
    """The DAA key's tracing tag T0 belongs to an existing member (same DAA key twice)."""

    code = "join.t0_registered"


class PcrPolicyError(AttestationError):
    """The quoted PCR values are not all in the issuer's allow-list."""

    code = "join.pcr_policy_violation"


class PcrPolicyConfigError(ConfigError):
    """The PCR policy file is missing, malformed, or leaves a selected PCR uncovered."""

    code = "issuer.pcr_policy_invalid"


class InvalidAccountError(InputError):
    """The account id is empty, too long or not printable."""

    code = "join.invalid_account"


class UnknownEpochError(NotFoundError):
    """The issuer holds no key for this epoch."""

    code = "issuer.unknown_epoch"


class IssuerKeyError(ConfigError):
    """The issuer key directory is missing, unreadable, or a key file is malformed."""

    code = "issuer.key_invalid"


class IssuerKeyPermissionError(ConfigError):
    """An issuer secret key file is readable by group or others (must be 0600)."""

    code = "issuer.key_permissions"


class EkTrustStoreConfigError(ConfigError):
    """The EK trust store directory (``trust_dir``) is missing."""

    code = "issuer.trust_store_invalid"


class EkTrustCertUnusableError(InputError):
    """``issuer trust add``: a certificate cannot serve as an EK anchor (reason in the detail)."""

    code = "issuer.trust_cert_unusable"


class EkTrustCertUnknownError(NotFoundError):
    """``issuer trust remove``: no certificate of the operator directory matches."""

    code = "issuer.trust_cert_unknown"


class EkTrustCertShippedError(ConflictError):
    """``issuer trust remove`` of a shipped certificate: turn the shipped store off instead."""

    code = "issuer.trust_cert_shipped"


class OpenerKeyConfigError(ConfigError):
    """The opener public key (Hop) is not configured or is not a valid BN_P256 point."""

    code = "issuer.opener_key_invalid"


class MembersListingDisabledError(ForbiddenError):
    """Listing members needs the configured service token (none is configured).

    The list ties accounts to EK fingerprints and PCR values: not for strangers' eyes.
    """

    code = "issuer.members_disabled"


class MembersUnauthorizedError(AuthenticationError):
    """Listing members needs the service's bearer token."""

    code = "issuer.members_unauthorized"


class MemberNotFoundError(NotFoundError):
    """No member with this member_id."""

    code = "issuer.member_not_found"


class RevocationEvidenceError(ForbiddenError):
    """The revocation evidence does not prove that this member double spent."""

    code = "issuer.evidence_invalid"


# --- one TPM, one account, one active membership (issue 10, attack 3) -------------------------


class AccountAlreadyMemberError(ConflictError):
    """The account already has an active membership (one per account)."""

    code = "join.account_already_member"


class AccountRevokedError(ForbiddenError):
    """A membership of this account was revoked and the revocation has not been lifted."""

    code = "join.account_revoked"


class EkDuplicateError(InputError):
    """join/start presented the same EK certificate twice."""

    code = "join.ek_duplicate"


class JoinAuthorisationReplayedError(ConflictError):
    """This join authorisation was already used for a join (single use)."""

    code = "join.authorisation_replayed"


class MemberNotRevokedError(ConflictError):
    """A lift was ordered for a member that is not revoked."""

    code = "issuer.member_not_revoked"


class CentralBankRootMissingError(ConfigError):
    """The issuer has no central bank root, so it cannot check bank or supervision signatures."""

    code = "issuer.central_bank_root_missing"


class EkKindMissingError(ForbiddenError):
    """The join does not present an EK type the issuer requires (``required_ek_kinds``)."""

    code = "join.ek_kind_missing"

"""Error classes of the group-signature layer.

Their ``code`` strings are part of the wire API (docs/api.md), so they live in one place and
never change with the module layout.
"""

from __future__ import annotations

from ecash_tpm.errors import EncodingError, NotFoundError, ProofError, TpmError

__all__ = [
    "CredentialError",
    "CredentialKeyProofError",
    "CredentialProofError",
    "GroupsigEncodingError",
    "IssuerKeyG2Error",
    "JoinProofError",
    "OpeningProofError",
    "SignerOutputError",
    "SpendProofError",
    "UnknownMemberError",
]


class GroupsigEncodingError(EncodingError):
    """A proof, credential or key blob is malformed (length, missing field, bad type)."""

    code = "daa.encoding"


class JoinProofError(ProofError):
    """The join DAA proof (knowledge of sk with Q = sk*G and T0 = sk*J0) does not verify."""

    code = "daa.join_proof_invalid"


class CredentialProofError(ProofError):
    """The issuer's proof that log_G(B) = log_Q(D) does not verify (member-side check)."""

    code = "daa.credential_proof_invalid"


class CredentialKeyProofError(ProofError):
    """The issuer's proof that the credential is under the epoch's certified (X, Y) fails."""

    code = "daa.credential_key_proof_invalid"


class CredentialError(ProofError):
    """A coin's (R, S, T, W) is not a credential of this epoch's issuer key."""

    code = "daa.credential_invalid"


class IssuerKeyG2Error(ProofError):
    """The issuer's G2 keys X2, Y2 are missing or not the images of its X, Y (protocol §3.6)."""

    code = "daa.issuer_g2_key_mismatch"


class SpendProofError(ProofError):
    """The spend proof (TPM response, tracing ciphertext) does not verify."""

    code = "daa.spend_proof_invalid"


class OpeningProofError(ProofError):
    """An opening's Chaum-Pedersen proof does not verify."""

    code = "open.proof_invalid"


class SignerOutputError(TpmError):
    """The DAA signer (TPM) returned something the protocol cannot use."""

    code = "daa.signer_output_invalid"


class UnknownMemberError(NotFoundError):
    """An opened T0 is not in the member registry."""

    code = "open.unknown_member"

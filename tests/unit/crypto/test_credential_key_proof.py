"""The issuer's proof that a credential is under the epoch's certified (X, Y) (issue 10, #6;
docs/protocol.md §3.6): complete for an honest issuer, sound against a per-member key."""

from __future__ import annotations

import pytest

from ecash_tpm.crypto.bn256 import G, N
from ecash_tpm.crypto.groupsig import (
    Credential,
    CredentialKeyProof,
    CredentialKeyProofError,
    GroupsigEncodingError,
    IssuerSecret,
    issue_credential,
    prove_credential_key,
    verify_credential_key,
)
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner


@pytest.fixture(scope="module")
def q() -> object:
    return SoftwareDaaSigner().public_point


def test_honest_issuer_proof_verifies(q: object) -> None:
    secret = IssuerSecret.generate()
    cred, _ = issue_credential(secret, q)  # type: ignore[arg-type]
    proof = prove_credential_key(secret, cred)
    verify_credential_key(secret.public, cred, proof)
    # the wire form round-trips
    verify_credential_key(secret.public, cred, CredentialKeyProof.from_dict(proof.to_dict()))


@pytest.mark.parametrize("which", ["x", "y", "both"])
def test_credential_under_another_key_is_refused(q: object, which: str) -> None:
    """A per-member (x', y') cannot be proven against the certified X, Y of the epoch."""
    certified = IssuerSecret.generate()
    other = IssuerSecret.generate()
    tag_key = IssuerSecret(
        other.x if which in ("x", "both") else certified.x,
        other.y if which in ("y", "both") else certified.y,
    )
    cred, _ = issue_credential(tag_key, q)  # type: ignore[arg-type]
    # the issuer proves honestly for its own tagging key: still not the certified one
    with pytest.raises(CredentialKeyProofError) as exc:
        verify_credential_key(certified.public, cred, prove_credential_key(tag_key, cred))
    assert exc.value.code == "daa.credential_key_proof_invalid"
    # nor does a proof made with the certified secret fit the tagged credential
    with pytest.raises(CredentialKeyProofError):
        verify_credential_key(certified.public, cred, prove_credential_key(certified, cred))


def test_tampered_proof_or_credential_is_refused(q: object) -> None:
    secret = IssuerSecret.generate()
    cred, _ = issue_credential(secret, q)  # type: ignore[arg-type]
    proof = prove_credential_key(secret, cred)
    for bad in (
        CredentialKeyProof(proof.k, (proof.zy + 1) % N, proof.zx),
        CredentialKeyProof(proof.k, proof.zy, (proof.zx + 1) % N),
        CredentialKeyProof((proof.k + 1) % N, proof.zy, proof.zx),
    ):
        with pytest.raises(CredentialKeyProofError):
            verify_credential_key(secret.public, cred, bad)
    swapped = Credential(cred.A, cred.B, cred.C + G, cred.D)
    with pytest.raises(CredentialKeyProofError):
        verify_credential_key(secret.public, swapped, proof)


def test_malformed_proof_dict_is_an_encoding_error() -> None:
    with pytest.raises(GroupsigEncodingError) as exc:
        CredentialKeyProof.from_dict({"k": "AA", "zy": "AA"})
    assert exc.value.code == "daa.encoding"

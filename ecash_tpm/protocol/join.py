"""Join constants shared by the issuer and the device (kept free of storage and HTTP imports)."""

from __future__ import annotations

from collections.abc import Sequence

from ecash_tpm.crypto.encoding import tagged_hash

TAG_JOIN_QUOTE = "ecash-tpm/v1/join-quote"
TAG_JOIN_CERTIFY = "ecash-tpm/v1/join-certify"
SECRET_LEN = 32


def join_qualifying_data(nonce: bytes, secret: bytes) -> tuple[bytes, bytes]:
    """(quote, certify) qualifying data: Hash("ecash-tpm/v1/join-quote"|"join-certify", nonce,
    secret). Only the TPM that activated the credential knows the secret, so a quote carrying
    this value proves the AK lives in the TPM of the certified EK (DESIGN §4 step 2)."""
    return (
        tagged_hash(TAG_JOIN_QUOTE, nonce, secret),
        tagged_hash(TAG_JOIN_CERTIFY, nonce, secret),
    )


TAG_JOIN_SECRETS = "ecash-tpm/v1/join-secrets"


def join_secret(secret: bytes, others: Sequence[bytes]) -> bytes:
    """The secret the qualifying data binds: the EK's own, or with further EKs activated too
    Hash("ecash-tpm/v1/join-secrets", secret, secret_1..secret_n) in request order, so the
    quote proves that the TPM holding every presented EK activated its credential."""
    if not others:
        return secret
    return tagged_hash(TAG_JOIN_SECRETS, secret, *others)

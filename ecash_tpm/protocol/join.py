"""Join constants shared by the issuer and the device (kept free of storage and HTTP imports)."""

from __future__ import annotations

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

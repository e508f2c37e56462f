"""Small marshalled structures MakeCredential takes apart: a bare TPM2B and a digest Name."""

from __future__ import annotations

from ecash_tpm.attest.wire.codec import Reader
from ecash_tpm.attest.wire.constants import TpmAlg, hash_size


def parse_tpm2b(data: bytes, max_size: int, what: str) -> bytes:
    """Parse a TPM2B of at most ``max_size`` bytes that fills ``data`` exactly."""
    r = Reader(data, what)
    inner = r.tpm2b(max_size, "buffer")
    r.done()
    return inner


def parse_name(data: bytes) -> tuple[TpmAlg, bytes]:
    """Split a digest Name (nameAlg || digest) and check the digest length fits the alg."""
    r = Reader(data, "TPM2B_NAME")
    alg = r.hash_alg("nameAlg")
    digest = r.take(hash_size(alg), "digest")
    r.done()
    return alg, digest

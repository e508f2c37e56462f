"""The "before" of issue 13 items 1-2, reachable in the same process as the "after".

``reference_arithmetic()`` routes every BN_P256 scalar multiplication behind ``Point`` through
the first implementation (``bn256.scalar_mult_reference`` / ``multi_mult_reference``: width-5
wNAF, 4-bit comb for G, no GLV, no tables for J0/Hop), turns the bank's credential batch off
(per-coin checks as on main), checks spend proofs one by one in the first encoding's way
(E, R1, R2 recomputed, three multi-scalar multiplications), checks merchant certificates in
full on every call and encodes signed bodies with the reference canonical encoder.
Benchmarks only: it swaps module attributes for the duration of the ``with`` block, so
reference and new runs can be interleaved round by round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ecash_tpm.bank import verify as bank_verify
from ecash_tpm.crypto import bn256, bn256_glv, bn256_reference, signing
from ecash_tpm.pki import certcache
from ecash_tpm.protocol import spend as protocol_spend


def _ref_msm(terms: Sequence[tuple[int, Any, Any, bn256_glv.FixedBase | None]]) -> Any:
    work = [(int(k % bn256.N), x, y) for k, x, y, _ in terms]
    work = [t for t in work if t[0]]
    if len(work) == 1 and (work[0][1], work[0][2]) == (bn256.GX, bn256.GY):
        return bn256_reference.mul_comb(work[0][0], bn256.GX, bn256.GY)
    return bn256_reference.multi_mult_jac(work) if work else (1, 1, 0)


def _ref_mul(k: int, x: Any, y: Any, fb: bn256_glv.FixedBase | None = None) -> Any:
    return _ref_msm(((k, x, y, fb),))


def _ref_mul_secret(k: int, x: Any, y: Any) -> Any:
    return _ref_msm(((k, x, y, None),))


@contextmanager
def reference_arithmetic() -> Iterator[None]:
    """Inside the block: main's arithmetic and no credential batch."""
    saved = (bn256_glv.msm, bn256_glv.mul_public, bn256_glv.mul_secret)
    saved_batch = bank_verify.credentials_batch_ok
    bn256_glv.msm, bn256_glv.mul_public, bn256_glv.mul_secret = (  # type: ignore[assignment]
        _ref_msm,
        _ref_mul,
        _ref_mul_secret,
    )
    bank_verify.credentials_batch_ok = lambda secret, coins: False  # type: ignore[assignment]
    saved_verify = certcache.PartyCertCache.verify
    saved_encode = signing.canonical_encode

    def full_check(self: Any, cert: Any, *, role: str, name: str | None, now: Any) -> Any:
        return certcache.verify_party_certificate(
            cert, self._root, role=role, name=name, now=now, crl=self._crl
        )

    certcache.PartyCertCache.verify = full_check  # type: ignore[method-assign]
    signing.canonical_encode = signing.canonical_encode_reference
    saved_proofs = protocol_spend.spend_proofs_batch_ok, protocol_spend.verify_spend_proof
    first = saved_proofs[1]

    def old_way(proof: Any, **kw: Any) -> None:
        first(dataclasses.replace(proof, commitments=None), **kw)

    protocol_spend.spend_proofs_batch_ok = lambda items, **kw: False  # type: ignore[assignment]
    protocol_spend.verify_spend_proof = old_way  # type: ignore[assignment]
    try:
        yield
    finally:
        protocol_spend.spend_proofs_batch_ok, protocol_spend.verify_spend_proof = saved_proofs
        bn256_glv.msm, bn256_glv.mul_public, bn256_glv.mul_secret = saved
        bank_verify.credentials_batch_ok = saved_batch
        certcache.PartyCertCache.verify = saved_verify  # type: ignore[method-assign]
        signing.canonical_encode = saved_encode


@contextmanager
def new_arithmetic() -> Iterator[None]:
    """The production code as it is (for symmetry with :func:`reference_arithmetic`)."""
    yield

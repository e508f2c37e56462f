"""The join DAA proof: the device proves knowledge of sk with Q = sk*G and T0 = sk*J0.

DESIGN §4 steps 2-3; docs/protocol.md §3.3 (device side, step 5) and §3.4 (issuer check).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ecash_tpm.crypto.bn256 import G, Point, encode_scalar, multi_mult, tpm_challenge, tracing_base
from ecash_tpm.crypto.encoding import b64u_encode, tagged_hash
from ecash_tpm.crypto.groupsig.encoding import (
    DIGEST_LEN,
    JOIN_NONCE_LEN,
    TAG_JOIN,
    _dict_fields,
    _fixed,
    _nonce_k,
    _point,
    _pt,
    _Reader,
    _sc,
    _scalar,
)
from ecash_tpm.crypto.groupsig.errors import GroupsigEncodingError, JoinProofError
from ecash_tpm.crypto.groupsig.signer import DaaSigner, _commit, _finite_or, _sign

__all__ = ["JoinProof", "join_challenge", "make_join_proof", "verify_join_proof"]


@dataclass(frozen=True, slots=True)
class JoinProof:
    """Device -> issuer at join/finish: T0 = sk*J0 and the TPM's (c', nonceK, s)."""

    t0: Point
    c_prime: bytes
    nonce_k: bytes
    s: int

    def __post_init__(self) -> None:
        _point(self.t0, "t0")
        _fixed(self.c_prime, DIGEST_LEN, "c_prime")
        _nonce_k(self.nonce_k)
        _scalar(self.s, "s")

    def to_bytes(self) -> bytes:
        """``T0(65) || c'(32) || u8(len nonceK) || nonceK || s(32)``."""
        return (
            self.t0.encode()
            + self.c_prime
            + bytes([len(self.nonce_k)])
            + self.nonce_k
            + encode_scalar(self.s)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> JoinProof:
        r = _Reader(data, "join proof")
        t0 = _pt(r.take(65), "t0")
        c_prime = r.take(32)
        nonce_k = r.take(r.take(1)[0])
        s = _sc(r.take(32), "s")
        r.done()
        return cls(t0, c_prime, _nonce_k(nonce_k), s)

    def to_dict(self) -> dict[str, str]:
        return {
            "t0": b64u_encode(self.t0.encode()),
            "c_prime": b64u_encode(self.c_prime),
            "nonce_k": b64u_encode(self.nonce_k),
            "s": b64u_encode(encode_scalar(self.s)),
        }

    @classmethod
    def from_dict(cls, data: object) -> JoinProof:
        f = _dict_fields(data, ("t0", "c_prime", "nonce_k", "s"), "join proof")
        return cls(
            _pt(f["t0"], "t0"),
            _fixed(f["c_prime"], DIGEST_LEN, "c_prime"),
            _nonce_k(f["nonce_k"]),
            _sc(f["s"], "s"),
        )


def join_challenge(nonce: bytes, q: Point, t0: Point, e: Point, l_pt: Point) -> bytes:
    """c' = Hash("ecash-tpm/v1/join", nonce, Q, T0, E, L)."""
    return tagged_hash(
        TAG_JOIN,
        _fixed(nonce, JOIN_NONCE_LEN, "nonce"),
        q.encode(),
        t0.encode(),
        e.encode(),
        l_pt.encode(),
    )


def make_join_proof(signer: DaaSigner, nonce: bytes, *, self_check: bool = True) -> JoinProof:
    """Device side of join step 2: one Commit(P1=G, s2_0, y(J0)) and one Sign.

    ``self_check`` verifies the result before it leaves the device, so a TPM/host mismatch
    shows up here rather than as an issuer rejection.
    """
    _fixed(nonce, JOIN_NONCE_LEN, "nonce")
    q = _point(signer.public_point, "Q")
    t0, l_pt, e, counter = _commit(signer, G)
    c_prime = join_challenge(nonce, q, t0, e, l_pt)
    nonce_k, s = _sign(signer, c_prime, counter)
    proof = JoinProof(t0, c_prime, nonce_k, s)
    if self_check:
        verify_join_proof(nonce, q, proof)
    return proof


def verify_join_proof(nonce: bytes, q: Point, proof: JoinProof) -> None:
    """Issuer side: c = H'(nonceK, c'), E = s*G - c*Q, L = s*J0 - c*T0, c' must match."""
    if not isinstance(proof, JoinProof):
        raise GroupsigEncodingError("proof must be a JoinProof")
    _fixed(nonce, JOIN_NONCE_LEN, "nonce")
    q = _point(q, "Q")
    _, j0 = tracing_base()
    c = tpm_challenge(proof.nonce_k, proof.c_prime)
    e = multi_mult(((proof.s, G), (-c, q)))
    l_pt = multi_mult(((proof.s, j0), (-c, proof.t0)))
    _finite_or(JoinProofError, "join proof", e, l_pt)
    expected = join_challenge(nonce, q, proof.t0, e, l_pt)
    if not hmac.compare_digest(expected, proof.c_prime):
        raise JoinProofError(
            "join DAA proof does not verify (c' mismatch: wrong key, nonce or T0)",
            detail={"check": "challenge"},
        )

"""Opening a spend: T0 = c2 - h*c1, with a Chaum-Pedersen proof anyone can check.

DESIGN §5 (opening, double-spend evidence); docs/protocol.md §12.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ecash_tpm.crypto.bn256 import (
    G,
    N,
    Point,
    encode_scalar,
    hash_to_scalar,
    multi_mult,
    random_scalar,
    scalar_mult_secret,
)
from ecash_tpm.crypto.encoding import b64u_encode, tagged_hash
from ecash_tpm.crypto.groupsig.encoding import TAG_OPEN, _dict_fields, _point, _Reader, _sc, _scalar
from ecash_tpm.crypto.groupsig.errors import (
    GroupsigEncodingError,
    OpeningProofError,
    UnknownMemberError,
)
from ecash_tpm.crypto.groupsig.signer import _finite_or

__all__ = [
    "Opening",
    "OpeningProof",
    "identify_member",
    "open_and_identify",
    "open_proof",
    "verify_opening",
]


@dataclass(frozen=True, slots=True)
class OpeningProof:
    """Chaum-Pedersen proof that log_G(Hop) = log_c1(c2 - T0): challenge e, response z."""

    e: int
    z: int

    def __post_init__(self) -> None:
        _scalar(self.e, "e", allow_zero=True)
        _scalar(self.z, "z")

    def to_bytes(self) -> bytes:
        """``e(32) || z(32)``."""
        return encode_scalar(self.e) + encode_scalar(self.z)

    @classmethod
    def from_bytes(cls, data: bytes) -> OpeningProof:
        r = _Reader(data, "opening proof")
        e, z = _sc(r.take(32), "e", allow_zero=True), _sc(r.take(32), "z")
        r.done()
        return cls(e, z)

    def to_dict(self) -> dict[str, str]:
        return {"e": b64u_encode(encode_scalar(self.e)), "z": b64u_encode(encode_scalar(self.z))}

    @classmethod
    def from_dict(cls, data: object) -> OpeningProof:
        f = _dict_fields(data, ("e", "z"), "opening proof")
        return cls(_sc(f["e"], "e", allow_zero=True), _sc(f["z"], "z"))


M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Opening:
    """Result of opening a spend: who (registry value), their T0, and the proof."""

    member: Any
    t0: Point
    proof: OpeningProof


def _open_challenge(hop: Point, c1: Point, c2: Point, t0: Point, v1: Point, v2: Point) -> int:
    return hash_to_scalar(tagged_hash(TAG_OPEN, *(p.encode() for p in (hop, c1, c2, t0, v1, v2))))


def open_proof(h: int, c1: Point, c2: Point) -> tuple[Point, OpeningProof]:
    """Supervision: T0 = c2 - h*c1 and a proof that this used the key behind Hop = h*G."""
    h = _scalar(h, "h")
    c1, c2 = _point(c1, "c1"), _point(c2, "c2")
    hop = scalar_mult_secret(h, G)
    t0 = (c2 - scalar_mult_secret(h, c1)).require_finite("T0")
    n = N
    while True:
        v = random_scalar()
        v1, v2 = v * G, v * c1
        e = _open_challenge(hop, c1, c2, t0, v1, v2)
        z = (v + e * h) % n
        if z:
            return t0, OpeningProof(e, z)


def verify_opening(hop: Point, c1: Point, c2: Point, t0: Point, proof: OpeningProof) -> None:
    """Anyone: V1 = z*G - e*Hop, V2 = z*c1 - e*(c2 - T0), e must equal the hash."""
    if not isinstance(proof, OpeningProof):
        raise GroupsigEncodingError("proof must be an OpeningProof")
    hop, c1, c2, t0 = (_point(p, n) for p, n in ((hop, "Hop"), (c1, "c1"), (c2, "c2"), (t0, "T0")))
    v1 = multi_mult(((proof.z, G), (-proof.e, hop)))
    v2 = multi_mult(((proof.z, c1), (-proof.e, c2), (proof.e, t0)))
    _finite_or(OpeningProofError, "opening proof", v1, v2)
    if _open_challenge(hop, c1, c2, t0, v1, v2) != proof.e:
        raise OpeningProofError(
            "opening proof does not verify (wrong T0, ciphertext or opener key)",
            detail={"check": "challenge"},
        )


def identify_member(registry: Mapping[bytes, M], t0: Point) -> M:
    """Look T0 up in a registry keyed by T0's 65-byte encoding."""
    key = _point(t0, "T0").encode()
    try:
        return registry[key]
    except KeyError:
        raise UnknownMemberError(
            "opened T0 is not a registered member", detail={"t0": b64u_encode(key)}
        ) from None


def open_and_identify(h: int, c1: Point, c2: Point, registry: Mapping[bytes, Any]) -> Opening:
    """Open (c1, c2), name the member from ``registry`` and return the checkable evidence."""
    t0, proof = open_proof(h, c1, c2)
    return Opening(identify_member(registry, t0), t0, proof)

"""The member credential (A, B, C, D), its issuance proof, and per-coin randomisation.

DESIGN §4 (issuance) and §5 (randomisation, credential check); docs/protocol.md §3.4-§3.5
(issuance, member check), §5.1 (the coin) and §7.2 (who checks what).

Credential scheme: the issuer/bank holds x, y and checks S == y*R and T == x*(R + W)
(designated check, here). The issuer's ``X = x*G, Y = y*G`` identify an epoch key; the member
checks its credential against them at join (:mod:`.keyproof`, protocol §3.6). With the G2
keys X2 = x*P2, Y2 = y*P2 anyone checks coins with pairings (:mod:`.public`, protocol §7.4).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Self

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
from ecash_tpm.crypto.groupsig.encoding import (
    TAG_CRED,
    _dict_fields,
    _point,
    _pt,
    _Reader,
    _sc,
    _scalar,
)
from ecash_tpm.crypto.groupsig.errors import (
    CredentialError,
    CredentialProofError,
    GroupsigEncodingError,
)
from ecash_tpm.crypto.groupsig.keys import IssuerSecret

__all__ = [
    "Credential",
    "CredentialProof",
    "RandomizedCredential",
    "issue_credential",
    "verify_credential",
    "verify_credential_proof",
]


class _PointQuad:
    """Shared encoding of the two four-point tuples (A, B, C, D) and (R, S, T, W).

    Subclasses are frozen dataclasses whose four Point fields are named by ``_NAMES``; the byte
    form is the four 65-byte encodings concatenated, the dict form base64url per field name.
    """

    __slots__ = ()
    _NAMES: ClassVar[str]
    _WHAT: ClassVar[str]

    def __post_init__(self) -> None:
        for n in self._NAMES:
            _point(getattr(self, n), n)

    def __iter__(self) -> Iterator[Point]:
        return iter(tuple(getattr(self, n) for n in self._NAMES))

    def to_bytes(self) -> bytes:
        """The four points, 65 bytes each, in field order."""
        return b"".join(p.encode() for p in self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        r = _Reader(data, cls._WHAT)
        pts = [_pt(r.take(65), n) for n in cls._NAMES]
        r.done()
        return cls(*pts)

    def to_dict(self) -> dict[str, str]:
        return {n: b64u_encode(p.encode()) for n, p in zip(self._NAMES, self, strict=True)}

    @classmethod
    def from_dict(cls, data: object) -> Self:
        f = _dict_fields(data, tuple(cls._NAMES), cls._WHAT)
        return cls(*(_pt(f[n], n) for n in cls._NAMES))


@dataclass(frozen=True, slots=True)
class RandomizedCredential(_PointQuad):
    """Per-coin (R, S, T, W) = l*(A, B, C, D); iterable so ``*coin`` unpacks R, S, T, W."""

    _NAMES: ClassVar[str] = "RSTW"
    _WHAT: ClassVar[str] = "randomized credential"

    R: Point
    S: Point
    T: Point
    W: Point


@dataclass(frozen=True, slots=True)
class Credential(_PointQuad):
    """The member's credential (A, B, C, D) with B = y*A, D = (a*y)*Q, C = x*(A + D)."""

    _NAMES: ClassVar[str] = "ABCD"
    _WHAT: ClassVar[str] = "credential"

    A: Point
    B: Point
    C: Point
    D: Point

    def randomize(self, l_scalar: int | None = None) -> RandomizedCredential:
        """Fresh (R, S, T, W) = l*(A, B, C, D) for one coin (l random unless given)."""
        lv = random_scalar() if l_scalar is None else _scalar(l_scalar, "l")
        return RandomizedCredential(*(lv * p for p in self))


@dataclass(frozen=True, slots=True)
class CredentialProof:
    """Issuer's proof that log_G(B) = log_Q(D): commitments U1, U2 and response z."""

    U1: Point
    U2: Point
    z: int

    def __post_init__(self) -> None:
        _point(self.U1, "U1")
        _point(self.U2, "U2")
        _scalar(self.z, "z")

    def to_bytes(self) -> bytes:
        return self.U1.encode() + self.U2.encode() + encode_scalar(self.z)

    @classmethod
    def from_bytes(cls, data: bytes) -> CredentialProof:
        r = _Reader(data, "credential proof")
        u1, u2, z = _pt(r.take(65), "U1"), _pt(r.take(65), "U2"), _sc(r.take(32), "z")
        r.done()
        return cls(u1, u2, z)

    def to_dict(self) -> dict[str, str]:
        return {
            "U1": b64u_encode(self.U1.encode()),
            "U2": b64u_encode(self.U2.encode()),
            "z": b64u_encode(encode_scalar(self.z)),
        }

    @classmethod
    def from_dict(cls, data: object) -> CredentialProof:
        f = _dict_fields(data, ("U1", "U2", "z"), "credential proof")
        return cls(_pt(f["U1"], "U1"), _pt(f["U2"], "U2"), _sc(f["z"], "z"))


def _cred_challenge(cred: Credential, u1: Point, u2: Point) -> int:
    """k = int(Hash("ecash-tpm/v1/cred", A, B, C, D, U1, U2)) mod n."""
    return hash_to_scalar(
        tagged_hash(TAG_CRED, *(p.encode() for p in cred), u1.encode(), u2.encode())
    )


def issue_credential(secret: IssuerSecret, q: Point) -> tuple[Credential, CredentialProof]:
    """Issuer: credential for DAA key Q under (x, y), plus the proof the member checks.

    Call only after :func:`verify_join_proof` accepted Q (and the attestation checks passed).
    """
    if not isinstance(secret, IssuerSecret):
        raise GroupsigEncodingError("secret must be an IssuerSecret")
    q = _point(q, "Q")
    n = N
    while True:
        a = random_scalar()
        ay = a * secret.y % n
        if ay == 0:  # impossible for a, y in [1, n-1] with n prime; kept for clarity
            continue
        big_a = a * G
        big_b = scalar_mult_secret(secret.y, big_a)
        big_d = ay * q
        ad = big_a + big_d
        if ad.is_infinity:  # needs Q = -(1/y)*G: negligible, but C must be finite
            continue
        cred = Credential(big_a, big_b, scalar_mult_secret(secret.x, ad), big_d)
        u = random_scalar()
        u1, u2 = u * G, u * q
        k = _cred_challenge(cred, u1, u2)
        z = (u + k * ay) % n
        if z:
            return cred, CredentialProof(u1, u2, z)


def verify_credential_proof(q: Point, cred: Credential, proof: CredentialProof) -> None:
    """Member: check z*G - k*B == U1 and z*Q - k*D == U2, i.e. D = (a*y)*Q for B = y*A.

    C = x*(A + D) is not checked here (with the G2 key it is e(C, P2) = e(A + D, X2), the
    coin check of :mod:`.public`); a bad C would make every coin fail the credential check,
    so the issuer gains nothing by it except denial of service.
    Structure is checked: all points on the curve and not infinity (done on construction).
    """
    if not isinstance(cred, Credential) or not isinstance(proof, CredentialProof):
        raise GroupsigEncodingError("need a Credential and a CredentialProof")
    q = _point(q, "Q")
    if cred.A == cred.B or cred.A == cred.D:
        # Not wrong per se, but y = 1 or a*y*Q = A indicates a broken issuer: refuse.
        raise CredentialProofError(
            "credential structure is degenerate", detail={"check": "structure"}
        )
    k = _cred_challenge(cred, proof.U1, proof.U2)
    if multi_mult(((proof.z, G), (-k, cred.B))) != proof.U1:
        raise CredentialProofError("credential proof fails z*G - k*B == U1", detail={"check": "U1"})
    if multi_mult(((proof.z, q), (-k, cred.D))) != proof.U2:
        raise CredentialProofError("credential proof fails z*Q - k*D == U2", detail={"check": "U2"})


def verify_credential(secret: IssuerSecret, R: Point, S: Point, T: Point, W: Point) -> None:
    """Designated check (bank/issuer): S == y*R and T == x*(R + W), R not infinity."""
    if not isinstance(secret, IssuerSecret):
        raise GroupsigEncodingError("secret must be an IssuerSecret")
    for name, pt in (("R", R), ("S", S), ("T", T), ("W", W)):
        if not isinstance(pt, Point):
            raise GroupsigEncodingError(f"{name} must be a Point")
        if pt.is_infinity:
            raise CredentialError(
                f"{name} is the point at infinity", detail={"check": f"{name}_finite"}
            )
    if scalar_mult_secret(secret.y, R) != S:
        raise CredentialError(
            "credential check S == y*R failed (wrong epoch key or forged)", detail={"check": "S"}
        )
    if scalar_mult_secret(secret.x, R + W) != T:
        raise CredentialError(
            "credential check T == x*(R + W) failed (W or T forged)", detail={"check": "T"}
        )

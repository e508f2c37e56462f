"""The group-signature layer of ecash-tpm: DAA join proof, credential, spend proof, opening.

Implements DESIGN §4 (join proof and credential issuance) and §5 (coin randomization, spend
proof, verification, opening) exactly; encodings the design leaves open are fixed here and
listed in :data:`ENCODING_NOTES`.

The device half of every proof is delegated to a :class:`DaaSigner` (TPM2_Commit + TPM2_Sign
with an ECDAA key), so this module stays pure: no TPM library import. The TPM's semantics,
checked against libtpms (``CryptEccCommitCompute``, ``TpmEcc_SignEcdaa``):

* ``commit(P1, s2, y2)``: with s2/y2 the TPM forms J = (int(SHA-256(s2)) mod p, y2) and
  returns K = sk*J, L = r*J, and E = r*P1 if P1 is given; without s2 it returns only
  E = r*P1, or E = r*G when P1 is absent too. (With s2 but no P1, E is *not* computed.)
* ``sign(digest, counter)``: nonceK = random n_T in [1, n-1] as a minimal big-endian octet
  string, c = int(SHA-256(nonceK || digest)) mod n, s = r + c*sk mod n.

Credential scheme: designated-verifier (issuer/bank holds x, y and checks S == y*R and
T == x*(R + W)). The issuer's ``X = x*G, Y = y*G`` are published only as commitments that
identify an epoch key. Pairing-based public verification (X, Y on G2) is not implemented.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, Self, TypeVar, runtime_checkable

from ecash_tpm.crypto.bn256 import (
    G,
    N,
    Point,
    decode_scalar,
    encode_scalar,
    hash_to_scalar,
    multi_mult,
    random_scalar,
    tpm_challenge,
    tracing_base,
)
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode, tagged_hash
from ecash_tpm.errors import (
    EcashError,
    EncodingError,
    InvalidScalarError,
    NotFoundError,
    ProofError,
    TpmError,
)

__all__ = [
    "DIGEST_LEN",
    "ENCODING_NOTES",
    "JOIN_NONCE_LEN",
    "KEYSET_ID_LEN",
    "NONCE_K_MAX_LEN",
    "PREQ_LEN",
    "SIGMA_LEN",
    "TAG_COIN",
    "TAG_CRED",
    "TAG_JOIN",
    "TAG_OPEN",
    "TAG_SPEND",
    "CommitResult",
    "Credential",
    "CredentialError",
    "CredentialProof",
    "CredentialProofError",
    "DaaSigner",
    "GroupsigEncodingError",
    "IssuerPublic",
    "IssuerSecret",
    "JoinProof",
    "JoinProofError",
    "Opening",
    "OpeningProof",
    "OpeningProofError",
    "OpenerSecret",
    "RandomizedCredential",
    "SignerOutputError",
    "SpendProof",
    "SpendProofError",
    "UnknownMemberError",
    "coin_message",
    "identify_member",
    "issue_credential",
    "join_challenge",
    "make_join_proof",
    "make_spend_proof",
    "open_and_identify",
    "open_proof",
    "spend_challenge",
    "verify_credential",
    "verify_credential_proof",
    "verify_join_proof",
    "verify_opening",
    "verify_spend_proof",
]

TAG_JOIN = "ecash-tpm/v1/join"
TAG_CRED = "ecash-tpm/v1/cred"
TAG_COIN = "ecash-tpm/v1/coin"
TAG_SPEND = "ecash-tpm/v1/spend"
TAG_OPEN = "ecash-tpm/v1/open"

JOIN_NONCE_LEN = 32
KEYSET_ID_LEN = 16
SIGMA_LEN = 32
PREQ_LEN = 32
DIGEST_LEN = 32
NONCE_K_MAX_LEN = 32

ENCODING_NOTES = """\
Encodings fixed by this module where DESIGN.md is silent:
- epoch inside hashes: u32be (4 bytes, 0 <= epoch < 2^32).
- keyset_id: 16 bytes; sigma: 32 bytes; preq: 32 bytes; join nonce: 32 bytes; c': 32 bytes.
- hash -> scalar (credential k, opening e): int.from_bytes(digest, "big") mod n.
- nonceK: 1..32 bytes, value in [1, n-1], kept and hashed exactly as the TPM returned it.
- proof bytes: fixed-width fields in order, nonceK as u8(len) || nonceK; dict form: the same
  fields as base64url strings (points 65-byte SEC1, scalars 32-byte big-endian), exact key set.
- opening proof: (e, z) with V1 = z*G - e*Hop, V2 = z*c1 - e*(c2 - T0),
  e = Hash("ecash-tpm/v1/open", Hop, c1, c2, T0, V1, V2) mod n.
"""


# --- errors --------------------------------------------------------------------------------


class GroupsigEncodingError(EncodingError):
    """A proof, credential or key blob is malformed (length, missing field, bad type)."""

    code = "daa.encoding"


class JoinProofError(ProofError):
    """The join DAA proof (knowledge of sk with Q = sk*G and T0 = sk*J0) does not verify."""

    code = "daa.join_proof_invalid"


class CredentialProofError(ProofError):
    """The issuer's proof that log_G(B) = log_Q(D) does not verify (member-side check)."""

    code = "daa.credential_proof_invalid"


class CredentialError(ProofError):
    """A coin's (R, S, T, W) is not a credential of this epoch's issuer key."""

    code = "daa.credential_invalid"


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


# --- small encoding helpers --------------------------------------------------------------------


def _u32(epoch: int) -> bytes:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**32:
        raise GroupsigEncodingError("epoch must be an integer in [0, 2^32)")
    return struct.pack(">I", epoch)


def _fixed(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise GroupsigEncodingError(f"{what} must be bytes", detail={"field": what})
    value = bytes(value)
    if len(value) != length:
        raise GroupsigEncodingError(
            f"{what} must be {length} bytes, got {len(value)}",
            detail={"field": what, "length": len(value)},
        )
    return value


def _nonce_k(value: object) -> bytes:
    """Validate nonceK: 1..32 bytes with value in [1, n-1]; returned unchanged."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise GroupsigEncodingError("nonceK must be bytes", detail={"field": "nonce_k"})
    value = bytes(value)
    if not 1 <= len(value) <= NONCE_K_MAX_LEN:
        raise GroupsigEncodingError(
            f"nonceK must be 1..{NONCE_K_MAX_LEN} bytes, got {len(value)}",
            detail={"field": "nonce_k", "length": len(value)},
        )
    if not 0 < int.from_bytes(value, "big") < N:
        raise GroupsigEncodingError("nonceK out of range [1, n-1]", detail={"field": "nonce_k"})
    return value


def _point(value: object, what: str) -> Point:
    if not isinstance(value, Point):
        raise GroupsigEncodingError(f"{what} must be a Point", detail={"field": what})
    return value.require_finite(what)


def _scalar(value: object, what: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GroupsigEncodingError(f"{what} must be an integer", detail={"field": what})
    low = 0 if allow_zero else 1
    if not low <= value < N:
        raise GroupsigEncodingError(f"{what} out of range [{low}, n-1]", detail={"field": what})
    return int(value)


def _dict_fields(data: object, keys: tuple[str, ...], what: str) -> dict[str, bytes]:
    """Decode a JSON object whose values are all base64url, with exactly ``keys``."""
    if not isinstance(data, Mapping):
        raise GroupsigEncodingError(f"{what} must be a JSON object")
    if set(data) != set(keys):
        raise GroupsigEncodingError(
            f"{what} must have exactly the fields {sorted(keys)}",
            detail={"got": sorted(str(k) for k in data)},
        )
    out = {}
    for k in keys:
        try:
            out[k] = b64u_decode(data[k])
        except EncodingError as exc:
            raise GroupsigEncodingError(
                f"{what}.{k} is not base64url", detail={"field": k}
            ) from exc
    return out


def _pt(data: bytes, what: str) -> Point:
    """Decode a point, tagging the error with the field name (keeps the precise subclass)."""
    try:
        return Point.decode(data)
    except EcashError as exc:
        exc.detail.setdefault("field", what)
        raise


def _sc(data: bytes, what: str, allow_zero: bool = False) -> int:
    try:
        return decode_scalar(data, allow_zero=allow_zero)
    except InvalidScalarError as exc:
        exc.detail.setdefault("field", what)
        raise


class _Reader:
    """Cursor over a canonical byte encoding; every short read is a GroupsigEncodingError."""

    def __init__(self, data: object, what: str) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise GroupsigEncodingError(f"{what} must be bytes")
        self.data = bytes(data)
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise GroupsigEncodingError(f"{self.what} is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def done(self) -> None:
        if self.pos != len(self.data):
            raise GroupsigEncodingError(f"{self.what} has trailing bytes")


# --- keys --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuerPublic:
    """Public commitments to an epoch's issuer key: X = x*G, Y = y*G."""

    X: Point
    Y: Point

    def to_dict(self) -> dict[str, str]:
        return {"X": b64u_encode(self.X.encode()), "Y": b64u_encode(self.Y.encode())}

    @classmethod
    def from_dict(cls, data: object) -> IssuerPublic:
        f = _dict_fields(data, ("X", "Y"), "issuer public key")
        return cls(_pt(f["X"], "X"), _pt(f["Y"], "Y"))


@dataclass(frozen=True, slots=True, repr=False)
class IssuerSecret:
    """The issuer's per-epoch secret (x, y) for the designated-verifier credential."""

    x: int
    y: int

    def __post_init__(self) -> None:
        _scalar(self.x, "x")
        _scalar(self.y, "y")

    @classmethod
    def generate(cls) -> IssuerSecret:
        return cls(random_scalar(), random_scalar())

    @property
    def public(self) -> IssuerPublic:
        return IssuerPublic(self.x * G, self.y * G)

    def to_bytes(self) -> bytes:
        """``x(32) || y(32)``."""
        return encode_scalar(self.x) + encode_scalar(self.y)

    @classmethod
    def from_bytes(cls, data: bytes) -> IssuerSecret:
        r = _Reader(data, "issuer secret")
        x, y = _sc(r.take(32), "x"), _sc(r.take(32), "y")
        r.done()
        return cls(x, y)

    def __repr__(self) -> str:
        return "IssuerSecret(<secret>)"


@dataclass(frozen=True, slots=True, repr=False)
class OpenerSecret:
    """The supervision department's opening key h; Hop = h*G encrypts T0 in every spend."""

    h: int

    def __post_init__(self) -> None:
        _scalar(self.h, "h")

    @classmethod
    def generate(cls) -> OpenerSecret:
        return cls(random_scalar())

    @property
    def public(self) -> Point:
        return self.h * G

    def to_bytes(self) -> bytes:
        return encode_scalar(self.h)

    @classmethod
    def from_bytes(cls, data: bytes) -> OpenerSecret:
        return cls(_sc(_fixed(data, 32, "opener secret"), "h"))

    def __repr__(self) -> str:
        return "OpenerSecret(<secret>)"


# --- the signer interface ----------------------------------------------------------------------


class CommitResult(NamedTuple):
    """TPM2_Commit outputs; absent points are None (tpm2-pytss gives size-4 empties)."""

    K: Point | None
    L: Point | None
    E: Point | None
    counter: int


@runtime_checkable
class DaaSigner(Protocol):
    """What the protocol needs from the TPM's ECDAA key (device code implements this).

    ``public_point`` is Q = sk*G. ``commit`` is TPM2_Commit (s2/y2 both given or both None).
    ``sign`` is TPM2_Sign with scheme ECDAA and the commit counter; it returns nonceK exactly
    as the TPM returned it (signatureR) and s as an int.
    """

    @property
    def public_point(self) -> Point: ...

    def commit(self, p1: Point | None, s2: bytes | None, y2: bytes | None) -> CommitResult: ...

    def sign(self, digest: bytes, counter: int) -> tuple[bytes, int]: ...


def _commit(signer: DaaSigner, p1: Point) -> tuple[Point, Point, Point, int]:
    """One TPM2_Commit(P1, s2_0, y(J0)); check it returned K, L, E."""
    s2_0, j0 = tracing_base()
    res = signer.commit(p1, s2_0, j0.y_bytes())
    out = []
    for name in ("K", "L", "E"):
        v = getattr(res, name)
        if not isinstance(v, Point) or v.is_infinity:
            raise SignerOutputError(
                f"TPM2_Commit did not return a usable {name}", detail={"field": name}
            )
        out.append(v)
    if isinstance(res.counter, bool) or not isinstance(res.counter, int) or res.counter < 0:
        raise SignerOutputError("TPM2_Commit returned a bad counter")
    return out[0], out[1], out[2], res.counter


def _sign(signer: DaaSigner, digest: bytes, counter: int) -> tuple[bytes, int]:
    nonce_k, s = signer.sign(digest, counter)
    try:
        nonce_k = _nonce_k(nonce_k)
        s = _scalar(s, "s")
    except GroupsigEncodingError as exc:
        raise SignerOutputError(f"TPM2_Sign output unusable: {exc.message}") from exc
    return nonce_k, s


def _finite_or(exc_type: type[ProofError], what: str, *points: Point) -> None:
    """A recomputed commitment at infinity cannot be hashed: the proof is simply wrong."""
    for pt in points:
        if pt.is_infinity:
            raise exc_type(
                f"{what}: a recomputed commitment is the point at infinity",
                detail={"check": "commitment_finite"},
            )


# --- join ----------------------------------------------------------------------------------------


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


# --- credential ----------------------------------------------------------------------------------


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
        big_b = secret.y * big_a
        big_d = ay * q
        ad = big_a + big_d
        if ad.is_infinity:  # needs Q = -(1/y)*G: negligible, but C must be finite
            continue
        cred = Credential(big_a, big_b, secret.x * ad, big_d)
        u = random_scalar()
        u1, u2 = u * G, u * q
        k = _cred_challenge(cred, u1, u2)
        z = (u + k * ay) % n
        if z:
            return cred, CredentialProof(u1, u2, z)


def verify_credential_proof(q: Point, cred: Credential, proof: CredentialProof) -> None:
    """Member: check z*G - k*B == U1 and z*Q - k*D == U2, i.e. D = (a*y)*Q for B = y*A.

    Without pairings the member cannot check C = x*(A + D) (that needs e(C, P2) = e(A+D, X)
    with X on G2, not implemented); a bad C would make every coin fail the bank's
    credential check, so the issuer gains nothing by it except denial of service.
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
    if secret.y * R != S:
        raise CredentialError(
            "credential check S == y*R failed (wrong epoch key or forged)", detail={"check": "S"}
        )
    if secret.x * (R + W) != T:
        raise CredentialError(
            "credential check T == x*(R + W) failed (W or T forged)", detail={"check": "T"}
        )


# --- coins and spend proofs ---------------------------------------------------------------


def coin_message(keyset_id: bytes, epoch: int, sigma: bytes, coin: RandomizedCredential) -> bytes:
    """m = Hash("ecash-tpm/v1/coin", keyset_id, u32be(epoch), sigma, R, S, T, W)."""
    if not isinstance(coin, RandomizedCredential):
        raise GroupsigEncodingError("coin must be a RandomizedCredential")
    return tagged_hash(
        TAG_COIN,
        _fixed(keyset_id, KEYSET_ID_LEN, "keyset_id"),
        _u32(epoch),
        _fixed(sigma, SIGMA_LEN, "sigma"),
        *(p.encode() for p in coin),
    )


@dataclass(frozen=True, slots=True)
class SpendProof:
    """(c', nonceK, s, c1, c2, st) of DESIGN §5."""

    c_prime: bytes
    nonce_k: bytes
    s: int
    c1: Point
    c2: Point
    st: int

    def __post_init__(self) -> None:
        _fixed(self.c_prime, DIGEST_LEN, "c_prime")
        _nonce_k(self.nonce_k)
        _scalar(self.s, "s")
        _point(self.c1, "c1")
        _point(self.c2, "c2")
        _scalar(self.st, "st")

    def to_bytes(self) -> bytes:
        """``c'(32) || u8(len nonceK) || nonceK || s(32) || c1(65) || c2(65) || st(32)``."""
        return (
            self.c_prime
            + bytes([len(self.nonce_k)])
            + self.nonce_k
            + encode_scalar(self.s)
            + self.c1.encode()
            + self.c2.encode()
            + encode_scalar(self.st)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SpendProof:
        r = _Reader(data, "spend proof")
        c_prime = r.take(32)
        nonce_k = _nonce_k(r.take(r.take(1)[0]))
        s = _sc(r.take(32), "s")
        c1, c2 = _pt(r.take(65), "c1"), _pt(r.take(65), "c2")
        st = _sc(r.take(32), "st")
        r.done()
        return cls(c_prime, nonce_k, s, c1, c2, st)

    def to_dict(self) -> dict[str, str]:
        return {
            "c_prime": b64u_encode(self.c_prime),
            "nonce_k": b64u_encode(self.nonce_k),
            "s": b64u_encode(encode_scalar(self.s)),
            "c1": b64u_encode(self.c1.encode()),
            "c2": b64u_encode(self.c2.encode()),
            "st": b64u_encode(encode_scalar(self.st)),
        }

    @classmethod
    def from_dict(cls, data: object) -> SpendProof:
        f = _dict_fields(data, ("c_prime", "nonce_k", "s", "c1", "c2", "st"), "spend proof")
        return cls(
            _fixed(f["c_prime"], DIGEST_LEN, "c_prime"),
            _nonce_k(f["nonce_k"]),
            _sc(f["s"], "s"),
            _pt(f["c1"], "c1"),
            _pt(f["c2"], "c2"),
            _sc(f["st"], "st"),
        )


def spend_challenge(
    *,
    preq: bytes,
    keyset_id: bytes,
    epoch: int,
    sigma: bytes,
    coin: RandomizedCredential,
    e: Point,
    c1: Point,
    c2: Point,
    r1: Point,
    r2: Point,
) -> bytes:
    """c' = Hash("ecash-tpm/v1/spend", preq, keyset_id, epoch, sigma, R, S, T, W, E, c1, c2,
    R1, R2) with epoch as u32be."""
    if not isinstance(coin, RandomizedCredential):
        raise GroupsigEncodingError("coin must be a RandomizedCredential")
    return tagged_hash(
        TAG_SPEND,
        _fixed(preq, PREQ_LEN, "preq"),
        _fixed(keyset_id, KEYSET_ID_LEN, "keyset_id"),
        _u32(epoch),
        _fixed(sigma, SIGMA_LEN, "sigma"),
        *(p.encode() for p in coin),
        e.encode(),
        c1.encode(),
        c2.encode(),
        r1.encode(),
        r2.encode(),
    )


def make_spend_proof(
    signer: DaaSigner,
    *,
    hop: Point,
    preq: bytes,
    keyset_id: bytes,
    epoch: int,
    sigma: bytes,
    coin: RandomizedCredential,
    expected_t0: Point | None = None,
    self_check: bool = True,
) -> SpendProof:
    """Wallet side of a payment: one Commit(P1=S, s2_0, y(J0)), one Sign, host math.

    T0 is taken from the commit's K (= sk*J0), compared with ``expected_t0`` when given.
    ``self_check`` runs :func:`verify_spend_proof` on the result (about 4 ms) so a coin
    that does not belong to this TPM is noticed before it reaches the merchant.
    """
    hop = _point(hop, "Hop")
    if not isinstance(coin, RandomizedCredential):
        raise GroupsigEncodingError("coin must be a RandomizedCredential")
    t0, l_pt, e, counter = _commit(signer, coin.S)
    if expected_t0 is not None and t0 != expected_t0:
        raise SignerOutputError(
            "TPM2_Commit K differs from the registered T0 (other TPM/key?)", detail={"field": "K"}
        )
    n = N
    while True:
        t, rt = random_scalar(), random_scalar()
        c1 = t * G
        c2 = t0 + t * hop
        r1 = rt * G
        r2 = l_pt + rt * hop
        if not (c2.is_infinity or r2.is_infinity):
            break
    c_prime = spend_challenge(
        preq=preq,
        keyset_id=keyset_id,
        epoch=epoch,
        sigma=sigma,
        coin=coin,
        e=e,
        c1=c1,
        c2=c2,
        r1=r1,
        r2=r2,
    )
    nonce_k, s = _sign(signer, c_prime, counter)
    c = tpm_challenge(nonce_k, c_prime)
    st = (rt + c * t) % n
    proof = SpendProof(c_prime, nonce_k, s, c1, c2, st)
    if self_check:
        verify_spend_proof(
            proof, hop=hop, preq=preq, keyset_id=keyset_id, epoch=epoch, sigma=sigma, coin=coin
        )
    return proof


def verify_spend_proof(
    proof: SpendProof,
    *,
    hop: Point,
    preq: bytes,
    keyset_id: bytes,
    epoch: int,
    sigma: bytes,
    coin: RandomizedCredential,
) -> None:
    """Public part of payment verification (merchant and bank).

    c = H'(nonceK, c'); E = s*S - c*W; R1 = st*G - c*c1; R2 = s*J0 + st*Hop - c*c2; c' must
    equal Hash(spend, ...). Passing proves: the responder knows sk with W = sk*S (the TPM the
    coin is bound to), and (c1, c2) encrypts T0 = sk*J0 under Hop. The credential check is
    separate (:func:`verify_credential`, needs the issuer secret), as is the RSA signature.
    """
    if not isinstance(proof, SpendProof):
        raise GroupsigEncodingError("proof must be a SpendProof")
    if not isinstance(coin, RandomizedCredential):
        raise GroupsigEncodingError("coin must be a RandomizedCredential")
    hop = _point(hop, "Hop")
    _, j0 = tracing_base()
    c = tpm_challenge(proof.nonce_k, proof.c_prime)
    e = multi_mult(((proof.s, coin.S), (-c, coin.W)))
    r1 = multi_mult(((proof.st, G), (-c, proof.c1)))
    r2 = multi_mult(((proof.s, j0), (proof.st, hop), (-c, proof.c2)))
    _finite_or(SpendProofError, "spend proof", e, r1, r2)
    expected = spend_challenge(
        preq=preq,
        keyset_id=keyset_id,
        epoch=epoch,
        sigma=sigma,
        coin=coin,
        e=e,
        c1=proof.c1,
        c2=proof.c2,
        r1=r1,
        r2=r2,
    )
    if not hmac.compare_digest(expected, proof.c_prime):
        raise SpendProofError(
            "spend proof does not verify (c' mismatch: wrong TPM key, tampered coin, "
            "request or ciphertext)",
            detail={"check": "challenge"},
        )


# --- opening -------------------------------------------------------------------------------------


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
    hop = h * G
    t0 = (c2 - h * c1).require_finite("T0")
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

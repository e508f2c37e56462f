"""G1 arithmetic on BN_P256 (= TPM_ECC_BN_P256, ISO/IEC 15946-5, FP256BN), DESIGN §3.

The TPM does the secret-key half of every DAA proof on this curve; the host does everything
else here: point validation, scalar multiplication, the TPM's challenge hash and the basename
points that TPM2_Commit uses. Pure Python on gmpy2 ``mpz``. The scalar multiplications behind
``Point`` are in :mod:`.bn256_glv` (GLV endomorphism, fixed-base tables for G, J0 and points
marked with :meth:`Point.fixed_base`, Straus multi-scalar multiplication for the verifiers'
``a*P + b*Q (+ c*R)`` equations, a regular-digit path for secret scalars); the first
implementation stays reachable as ``scalar_mult_reference`` / ``multi_mult_reference``
(:mod:`.bn256_reference`), the oracle of the differential tests.

When the C extension ``_bn256`` is built (docs/native.md, :mod:`.native`), the same functions
run on it instead: same API, same results; :mod:`.bn256_glv` stays the pure-Python path.

Side channels: Python integers are not constant time. Secret scalars of the issuer and the
opener go through :func:`scalar_mult_secret`, whose sequence of curve operations does not
depend on the scalar; on the Python path the field arithmetic underneath still does
(docs/threat-model.md, Limits); the C engine's is constant time. The member's DAA key never
leaves the TPM.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Iterable
from functools import lru_cache
from types import ModuleType
from typing import Any

import gmpy2
from gmpy2 import mpz

from ecash_tpm.crypto import bn256_glv, bn256_reference, native
from ecash_tpm.errors import InvalidPointError, InvalidScalarError

__all__ = [
    "A",
    "B",
    "COFACTOR",
    "CURVE_NAME",
    "G",
    "GX",
    "GY",
    "N",
    "P",
    "POINT_LEN",
    "SCALAR_LEN",
    "TPM_ECC_BN_P256",
    "TRACE_BASENAME_PREFIX",
    "Point",
    "PointAtInfinityError",
    "PointEncodingError",
    "PointNotOnCurveError",
    "ScalarEncodingError",
    "ScalarRangeError",
    "basename_point",
    "curve_parameters",
    "decode_scalar",
    "double_mult",
    "encode_scalar",
    "hash_to_scalar",
    "is_on_curve",
    "multi_mult",
    "multi_mult_reference",
    "native_engine",
    "random_scalar",
    "scalar_mult",
    "scalar_mult_reference",
    "scalar_mult_secret",
    "sqrt_mod_p",
    "tpm_challenge",
    "tracing_base",
]

# --- curve constants (compare with TPM2_ECC_Parameters(TPM_ECC_BN_P256)) ---------------------

CURVE_NAME = "BN_P256"
TPM_ECC_BN_P256 = 0x0010
"""TPM_ECC_CURVE identifier of BN_P256 (TPM 2.0 Part 2, TPM_ECC_CURVE table)."""

P: int = 0xFFFFFFFFFFFCF0CD46E5F25EEE71A49F0CDC65FB12980A82D3292DDBAED33013
N: int = 0xFFFFFFFFFFFCF0CD46E5F25EEE71A49E0CDC65FB1299921AF62D536CD10B500D
A: int = 0
B: int = 3
GX: int = 1
GY: int = 2
COFACTOR = 1
SCALAR_LEN = 32
POINT_LEN = 65
TRACE_BASENAME_PREFIX = b"ecash-tpm/v1/trace"

_P = mpz(P)
_N = mpz(N)
_B = mpz(B)
_MPZ = type(_P)
_SQRT_EXP = (_P + 1) // 4  # valid because p % 4 == 3 (checked in tests and in sqrt_mod_p)
_NATIVE = native.load()  # the C engine, or None: chosen once, at import (docs/native.md)


def native_engine() -> ModuleType | None:
    """The C extension the scalar multiplications use, or None on the pure-Python path."""
    return _NATIVE


def curve_parameters() -> dict[str, int]:
    """The curve as TPM2_ECC_Parameters reports it (fresh dict, safe to mutate)."""
    return {
        "curveID": TPM_ECC_BN_P256,
        "keySize": 256,
        "p": P,
        "a": A,
        "b": B,
        "gX": GX,
        "gY": GY,
        "n": N,
        "h": COFACTOR,
    }


# --- errors --------------------------------------------------------------------------------


class PointEncodingError(InvalidPointError):
    """Wrong length, prefix, type, or a coordinate >= p."""

    code = "crypto.point_encoding"


class PointNotOnCurveError(InvalidPointError):
    """The coordinates do not satisfy y^2 = x^3 + 3 (mod p)."""

    code = "crypto.point_not_on_curve"


class PointAtInfinityError(InvalidPointError):
    """The point at infinity appeared where the protocol requires a proper point."""

    code = "crypto.point_at_infinity"


class ScalarEncodingError(InvalidScalarError):
    """A scalar is not 32 bytes (or not an integer)."""

    code = "crypto.scalar_encoding"


class ScalarRangeError(InvalidScalarError):
    """A scalar is outside [1, n-1] (or [0, n-1] where zero is allowed)."""

    code = "crypto.scalar_out_of_range"


# --- field helpers -------------------------------------------------------------------------


def is_on_curve(x: int, y: int) -> bool:
    """True when 0 <= x, y < p and y^2 == x^3 + 3 (mod p)."""
    x, y = mpz(x), mpz(y)
    if not (0 <= x < _P and 0 <= y < _P):
        return False
    return bool((y * y - x * x * x - _B) % _P == 0)


def sqrt_mod_p(a: int) -> int | None:
    """A square root of ``a`` mod p, or None if ``a`` is not a square.

    p = 3 (mod 4), so a^((p+1)/4) is a root whenever one exists; the result is checked, so a
    non-residue gives None rather than a wrong answer.
    """
    a = mpz(a) % _P
    r = gmpy2.powmod(a, _SQRT_EXP, _P)
    if r * r % _P != a:
        return None
    return int(r)


# --- Jacobian helpers (the arithmetic is in bn256_glv; the first version in bn256_reference) ---
# A Jacobian triple (X, Y, Z) stands for (X/Z^2, Y/Z^3); Z == 0 is the point at infinity.

_JInf = tuple[Any, Any, Any]
_J_INF: _JInf = (mpz(1), mpz(1), mpz(0))


def _to_affine(j: _JInf) -> tuple[Any, Any] | None:
    X, Y, Z = j
    if not Z:
        return None
    zi = gmpy2.invert(Z, _P)
    zi2 = zi * zi % _P
    return X * zi2 % _P, Y * zi2 * zi % _P


# --- the Point type ------------------------------------------------------------------------


class Point:
    """An immutable point of BN_P256 G1 in affine coordinates.

    Constructing from coordinates validates them, so any ``Point`` obtained from outside is on
    the curve. The point at infinity exists only as an intermediate result
    (:meth:`infinity`); :meth:`encode`, :meth:`decode` and :meth:`require_finite` reject it.
    """

    __slots__ = ("_enc", "_fb", "_x", "_y")
    _x: Any
    _y: Any
    _enc: bytes | None  # the SEC1 encoding, kept once made or parsed (the point is immutable)
    _fb: Any  # fixed-base table (bn256_glv.FixedBase or _bn256.FixedBase), see fixed_base()

    def __init__(self, x: int, y: int) -> None:
        if not isinstance(x, int | _MPZ) or not isinstance(y, int | _MPZ):
            raise PointEncodingError("point coordinates must be integers")
        if not (0 <= x < _P and 0 <= y < _P):
            raise PointEncodingError("point coordinate out of range [0, p)")
        if not is_on_curve(x, y):
            raise PointNotOnCurveError("point is not on BN_P256")
        object.__setattr__(self, "_x", mpz(x))
        object.__setattr__(self, "_y", mpz(y))
        object.__setattr__(self, "_fb", None)
        object.__setattr__(self, "_enc", None)

    @classmethod
    def _raw(cls, xy: tuple[Any, Any] | None) -> Point:
        """Wrap an internally computed (already valid) affine pair; None is infinity."""
        pt = object.__new__(cls)
        object.__setattr__(pt, "_fb", None)
        object.__setattr__(pt, "_enc", None)
        if xy is None:
            object.__setattr__(pt, "_x", None)
            object.__setattr__(pt, "_y", None)
        else:
            object.__setattr__(pt, "_x", xy[0])
            object.__setattr__(pt, "_y", xy[1])
        return pt

    @classmethod
    def _from_jac(cls, j: _JInf) -> Point:
        return cls._raw(_to_affine(j))

    @classmethod
    def infinity(cls) -> Point:
        """The neutral element (only for intermediate results)."""
        return cls._raw(None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Point is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Point is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        if self._x is None:
            return (Point.infinity, ())
        return (Point, (int(self._x), int(self._y)))

    # -- accessors --

    @property
    def is_infinity(self) -> bool:
        return self._x is None

    @property
    def x(self) -> int:
        if self._x is None:
            raise PointAtInfinityError("the point at infinity has no coordinates")
        return int(self._x)

    @property
    def y(self) -> int:
        if self._y is None:
            raise PointAtInfinityError("the point at infinity has no coordinates")
        return int(self._y)

    def fixed_base(self) -> Point:
        """Mark this point object as a fixed base (G, J0, a configured Hop) and return it.

        Its precomputed table is built on the first multiplication and kept on this object,
        so later ``k*P`` and multi-scalar terms with it cost no doublings. Equality and the
        encoding are unaffected; call it on long-lived objects only.
        """
        if self._fb is None and self._x is not None:
            fb: Any
            if _NATIVE is not None:
                fb = _NATIVE.FixedBase(int(self._x), int(self._y))
            else:
                fb = bn256_glv.FixedBase(self._x, self._y)
            object.__setattr__(self, "_fb", fb)
        return self

    def require_finite(self, what: str = "point") -> Point:
        """Return self, or raise :class:`PointAtInfinityError` naming ``what``."""
        if self._x is None:
            raise PointAtInfinityError(f"{what} is the point at infinity", detail={"field": what})
        return self

    # -- encodings --

    def encode(self) -> bytes:
        """Uncompressed SEC1: ``04 || X(32) || Y(32)``."""
        enc = self._enc
        if enc is not None:
            return enc
        if self._x is None:
            raise PointAtInfinityError("the point at infinity has no encoding")
        enc = b"\x04" + int(self._x).to_bytes(32, "big") + int(self._y).to_bytes(32, "big")
        object.__setattr__(self, "_enc", enc)
        return enc

    @classmethod
    def decode(cls, data: bytes) -> Point:
        """Parse ``04 || X || Y``; reject infinity, wrong length/prefix and off-curve points."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise PointEncodingError("point encoding must be bytes")
        data = bytes(data)
        if data == b"\x00":
            raise PointAtInfinityError("the point at infinity is not accepted")
        if len(data) != POINT_LEN:
            raise PointEncodingError(
                f"point encoding must be {POINT_LEN} bytes, got {len(data)}",
                detail={"length": len(data)},
            )
        if data[0] != 4:
            raise PointEncodingError(f"point prefix must be 0x04, got 0x{data[0]:02x}")
        x, y = int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big")
        if _NATIVE is None:
            pt = cls(x, y)
        else:
            # the checks of __init__ (range, then the curve equation) in one native call
            if not _NATIVE.g1_is_on_curve(x, y):
                if not (x < P and y < P):
                    raise PointEncodingError("point coordinate out of range [0, p)")
                raise PointNotOnCurveError("point is not on BN_P256")
            pt = cls._raw((mpz(x), mpz(y)))
        object.__setattr__(pt, "_enc", data)  # canonical: 04 || X || Y with X, Y < p
        return pt

    @classmethod
    def from_xy_bytes(cls, x: bytes, y: bytes) -> Point:
        """Build from TPMS_ECC_POINT coordinates (big-endian, 1..32 bytes each)."""
        for name, c in (("x", x), ("y", y)):
            if not isinstance(c, bytes | bytearray | memoryview):
                raise PointEncodingError(f"coordinate {name} must be bytes")
            if not 1 <= len(c) <= 32:
                raise PointEncodingError(
                    f"coordinate {name} must be 1..32 bytes, got {len(c)}",
                    detail={"coordinate": name, "length": len(c)},
                )
        return cls(int.from_bytes(bytes(x), "big"), int.from_bytes(bytes(y), "big"))

    def x_bytes(self) -> bytes:
        """X as 32 bytes big-endian (TPM2B_ECC_PARAMETER form)."""
        return self.x.to_bytes(32, "big")

    def y_bytes(self) -> bytes:
        """Y as 32 bytes big-endian (TPM2B_ECC_PARAMETER form)."""
        return self.y.to_bytes(32, "big")

    # -- group law --

    def _jac(self) -> _JInf:
        if self._x is None:
            return _J_INF
        return self._x, self._y, mpz(1)

    def __add__(self, other: object) -> Point:
        if not isinstance(other, Point):
            return NotImplemented
        if other._x is None:
            return self
        return Point._from_jac(bn256_glv._jadd_aff(*self._jac(), other._x, other._y))

    def __neg__(self) -> Point:
        if self._x is None:
            return self
        return Point._raw((self._x, (_P - self._y) % _P))

    def __sub__(self, other: object) -> Point:
        if not isinstance(other, Point):
            return NotImplemented
        return self + (-other)

    def __mul__(self, k: object) -> Point:
        if not isinstance(k, int | _MPZ) or isinstance(k, bool):
            return NotImplemented
        return scalar_mult(int(k), self)

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        return bool(self._x == other._x and self._y == other._y)

    def __hash__(self) -> int:
        if self._x is None:
            return hash(("Point", None))
        return hash(("Point", int(self._x), int(self._y)))

    def __repr__(self) -> str:
        if self._x is None:
            return "Point(infinity)"
        return f"Point(0x{int(self._x):064x}, 0x{int(self._y):064x})"


G = Point(GX, GY).fixed_base()
"""The generator (1, 2), with its fixed-base table (built on first use)."""


# --- scalar multiplication -----------------------------------------------------------------


def _as_int(k: object, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int | _MPZ):
        raise ScalarEncodingError(f"{what} must be an integer")
    return int(k)


def _from_native(xy: tuple[int, int] | None) -> Point:
    return Point._raw(None if xy is None else (mpz(xy[0]), mpz(xy[1])))


def _table_of(pt: Point) -> Any:
    """The fixed-base table of ``pt``: its own, or G's for any object equal to G."""
    if pt._fb is not None:
        return pt._fb
    if pt._x == GX and pt._y == GY:
        return G._fb
    return None


def scalar_mult(k: int, point: Point) -> Point:
    """``k * point`` for a public k (reduced mod n): GLV + wNAF, or the point's fixed-base
    table (:meth:`Point.fixed_base`), see :mod:`ecash_tpm.crypto.bn256_glv`."""
    k = _as_int(k, "scalar") % _N
    if not isinstance(point, Point):
        raise PointEncodingError("scalar_mult needs a Point")
    if k == 0 or point.is_infinity:
        return Point.infinity()
    fb = _table_of(point)
    if _NATIVE is not None:
        if fb is not None:
            return _from_native(fb.mul(k))
        return _from_native(_NATIVE.g1_mul(k, point._x, point._y))
    return Point._from_jac(bn256_glv.mul_public(k, point._x, point._y, fb))


def scalar_mult_secret(k: int, point: Point) -> Point:
    """``k * point`` for a secret k (issuer x, y; opener h): GLV with regular digits, the same
    sequence of doublings and additions for every k (Python integers are not constant time)."""
    k = _as_int(k, "scalar") % _N
    if not isinstance(point, Point):
        raise PointEncodingError("scalar_mult_secret needs a Point")
    if k == 0 or point.is_infinity:
        return Point.infinity()
    if _NATIVE is not None:  # constant-time field and curve arithmetic in C
        return _from_native(_NATIVE.g1_mul_secret(k, point._x, point._y))
    return Point._from_jac(bn256_glv.mul_secret(k, point._x, point._y))


def scalar_mult_reference(k: int, point: Point) -> Point:
    """The first implementation (width-5 wNAF, 4-bit comb for G): the differential-test
    oracle and the benchmarks' "before"."""
    k = _as_int(k, "scalar") % _N
    if not isinstance(point, Point):
        raise PointEncodingError("scalar_mult needs a Point")
    if k == 0 or point.is_infinity:
        return Point.infinity()
    if point == G:
        return Point._from_jac(bn256_reference.mul_comb(k, GX, GY))
    return Point._from_jac(bn256_reference.multi_mult_jac([(k, point._x, point._y)]))


def multi_mult(terms: Iterable[tuple[int, Point]]) -> Point:
    """``sum k_i * P_i`` for public k_i: GLV-split Straus over one doubling chain, fixed-base
    tables for G and points marked with :meth:`Point.fixed_base`."""
    work: list[tuple[int, Any, Any, Any]] = []
    for k, pt in terms:
        if not isinstance(pt, Point):
            raise PointEncodingError("multi_mult needs Points")
        k = _as_int(k, "scalar") % _N
        if k and not pt.is_infinity:
            work.append((k, pt._x, pt._y, _table_of(pt)))
    if not work:
        return Point.infinity()
    if _NATIVE is not None:
        return _from_native(_NATIVE.g1_msm(work))
    return Point._from_jac(bn256_glv.msm(work))


def multi_mult_reference(terms: Iterable[tuple[int, Point]]) -> Point:
    """The first implementation of :func:`multi_mult` (Straus, width-5 wNAF, no GLV)."""
    work: list[tuple[int, Any, Any]] = []
    for k, pt in terms:
        if not isinstance(pt, Point):
            raise PointEncodingError("multi_mult needs Points")
        k = _as_int(k, "scalar") % _N
        if k and not pt.is_infinity:
            work.append((k, pt._x, pt._y))
    if not work:
        return Point.infinity()
    return Point._from_jac(bn256_reference.multi_mult_jac(work))


def double_mult(a: int, p1: Point, b: int, p2: Point) -> Point:
    """``a*p1 + b*p2`` (Shamir's trick): the shape of every Schnorr-type verification."""
    return multi_mult(((a, p1), (b, p2)))


# --- scalars ---------------------------------------------------------------------------------


def encode_scalar(k: int) -> bytes:
    """32-byte big-endian encoding of k in [0, n-1]."""
    k = _as_int(k, "scalar")
    if not 0 <= k < _N:
        raise ScalarRangeError("scalar out of range [0, n-1]")
    return k.to_bytes(SCALAR_LEN, "big")


def decode_scalar(data: bytes, allow_zero: bool = False) -> int:
    """Parse 32 bytes big-endian; require [1, n-1] (or [0, n-1] with ``allow_zero``)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ScalarEncodingError("scalar encoding must be bytes")
    if len(data) != SCALAR_LEN:
        raise ScalarEncodingError(
            f"scalar encoding must be {SCALAR_LEN} bytes, got {len(data)}",
            detail={"length": len(data)},
        )
    k = int.from_bytes(bytes(data), "big")
    if k >= _N:
        raise ScalarRangeError("scalar is not below the group order n")
    if k == 0 and not allow_zero:
        raise ScalarRangeError("scalar must not be zero")
    return k


def random_scalar() -> int:
    """Uniform in [1, n-1] from the OS CSPRNG."""
    return secrets.randbelow(N - 1) + 1


def hash_to_scalar(digest: bytes) -> int:
    """``int.from_bytes(digest, "big") mod n`` — how a hash becomes a challenge."""
    if not isinstance(digest, bytes | bytearray | memoryview):
        raise ScalarEncodingError("digest must be bytes")
    return int.from_bytes(bytes(digest), "big") % N


def tpm_challenge(nonce_k: bytes, c_prime: bytes) -> int:
    """The TPM's ECDAA challenge ``c = int(SHA-256(nonceK || c')) mod n``.

    ``nonce_k`` is hashed exactly as the TPM returned it (it drops leading zero bytes, so it is
    31 bytes or shorter now and then); re-padding it would change c and break verification.
    """
    if not isinstance(nonce_k, bytes | bytearray | memoryview) or not isinstance(
        c_prime, bytes | bytearray | memoryview
    ):
        raise ScalarEncodingError("nonceK and c' must be bytes")
    return hash_to_scalar(hashlib.sha256(bytes(nonce_k) + bytes(c_prime)).digest())


# --- basenames ---------------------------------------------------------------------------------


def basename_point(s2: bytes, y_even: bool = True) -> tuple[Point, bytes] | None:
    """The TPM2_Commit basename J for ``s2``: ``(J, y2)`` or None if x2 is not on the curve.

    x2 = int(SHA-256(s2)) mod p as the TPM computes it (SHA-256 = the DAA key's nameAlg);
    y2 is the root with the requested parity, returned as the 32 bytes to pass to the TPM.
    """
    if not isinstance(s2, bytes | bytearray | memoryview):
        raise PointEncodingError("basename s2 must be bytes")
    x2 = int.from_bytes(hashlib.sha256(bytes(s2)).digest(), "big") % P
    y = sqrt_mod_p(x2 * x2 * x2 + B)
    if y is None:
        return None
    if (y % 2 == 0) != y_even:
        y = P - y
    # y == 0 would need x^3 = -3, impossible for a curve with odd order.
    pt = Point(x2, y)
    return pt, pt.y_bytes()


@lru_cache(maxsize=1)
def tracing_base() -> tuple[bytes, Point]:
    """``(s2_0, J0)``: the first ``"ecash-tpm/v1/trace" || u32be(i)`` on the curve, even y.

    Nobody knows log_G(J0), which is what makes T0 = sk*J0 a binding member tag.
    """
    i = 0
    while True:
        s2 = TRACE_BASENAME_PREFIX + struct.pack(">I", i)
        found = basename_point(s2, y_even=True)
        if found is not None:
            return s2, found[0].fixed_base()
        i += 1

"""G1 arithmetic on BN_P256 (= TPM_ECC_BN_P256, ISO/IEC 15946-5, FP256BN), DESIGN §3.

The TPM does the secret-key half of every DAA proof on this curve; the host does everything
else here: point validation, scalar multiplication, the TPM's challenge hash and the basename
points that TPM2_Commit uses. Pure Python on gmpy2 ``mpz``: Jacobian coordinates, width-5 wNAF
for a variable base, a 4-bit fixed-base comb for G and multi-scalar multiplication (Straus /
Shamir's trick) for the verifiers' ``a*P + b*Q (+ c*R)`` equations.

Side channels: Python integers are not constant time. Host-side secrets here (issuer and
opener keys, per-proof blinding) are protected by running on trusted servers, not by
constant-time code; the member's DAA key never leaves the TPM.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import gmpy2
from gmpy2 import mpz

from ecash_tpm.crypto import bn256_glv
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
_WNAF_W = 5
_COMB_BITS = 4


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


# --- Jacobian arithmetic (internal) -----------------------------------------------------------
# A Jacobian triple (X, Y, Z) stands for (X/Z^2, Y/Z^3); Z == 0 is the point at infinity.

_JInf = tuple[Any, Any, Any]
_J_INF: _JInf = (mpz(1), mpz(1), mpz(0))


def _jdbl(X: Any, Y: Any, Z: Any) -> _JInf:
    """Doubling, dbl-2009-l for a = 0. No 2-torsion exists (odd order), so Y != 0."""
    if not Z:
        return _J_INF
    p = _P
    a = X * X % p
    b = Y * Y % p
    c = b * b % p
    t = X + b
    d = 2 * (t * t - a - c) % p
    e = 3 * a
    f = e * e % p
    x3 = (f - 2 * d) % p
    return x3, (e * (d - x3) - 8 * c) % p, 2 * Y * Z % p


def _jadd_affine(X1: Any, Y1: Any, Z1: Any, x2: Any, y2: Any) -> _JInf:
    """Mixed addition Jacobian + affine (x2, y2 is never infinity)."""
    if not Z1:
        return x2, y2, mpz(1)
    p = _P
    z1z1 = Z1 * Z1 % p
    h = (x2 * z1z1 - X1) % p
    r = (y2 * Z1 * z1z1 - Y1) % p
    if not h:
        if not r:
            return _jdbl(x2, y2, mpz(1))
        return _J_INF
    hh = h * h % p
    hhh = h * hh % p
    v = X1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - Y1 * hhh) % p, Z1 * h % p


def _jadd(X1: Any, Y1: Any, Z1: Any, X2: Any, Y2: Any, Z2: Any) -> _JInf:
    """General Jacobian addition (add-1998-cmo-2), used only for table building."""
    if not Z1:
        return X2, Y2, Z2
    if not Z2:
        return X1, Y1, Z1
    p = _P
    z1z1 = Z1 * Z1 % p
    z2z2 = Z2 * Z2 % p
    u1 = X1 * z2z2 % p
    u2 = X2 * z1z1 % p
    s1 = Y1 * Z2 * z2z2 % p
    s2 = Y2 * Z1 * z1z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if not h:
        if not r:
            return _jdbl(X1, Y1, Z1)
        return _J_INF
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - s1 * hhh) % p, Z1 * Z2 * h % p


def _to_affine(j: _JInf) -> tuple[Any, Any] | None:
    X, Y, Z = j
    if not Z:
        return None
    zi = gmpy2.invert(Z, _P)
    zi2 = zi * zi % _P
    return X * zi2 % _P, Y * zi2 * zi % _P


def _batch_to_affine(js: list[_JInf]) -> list[tuple[Any, Any] | None]:
    """Montgomery's trick: one inversion for a whole table."""
    out: list[tuple[Any, Any] | None] = [None] * len(js)
    idx = [i for i, j in enumerate(js) if j[2]]
    if not idx:
        return out
    prefix = []
    acc = mpz(1)
    for i in idx:
        acc = acc * js[i][2] % _P
        prefix.append(acc)
    inv = gmpy2.invert(acc, _P)
    for k in range(len(idx) - 1, -1, -1):
        i = idx[k]
        X, Y, Z = js[i]
        zi = inv * prefix[k - 1] % _P if k else inv
        inv = inv * Z % _P
        zi2 = zi * zi % _P
        out[i] = (X * zi2 % _P, Y * zi2 * zi % _P)
    return out


def _wnaf(k: int, w: int = _WNAF_W) -> list[int]:
    """Width-w non-adjacent form, least significant digit first."""
    k = int(k)
    digits: list[int] = []
    full = 1 << w
    half = 1 << (w - 1)
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        digits.append(d)
        k >>= 1
    return digits


def _odd_multiples(x: Any, y: Any, w: int = _WNAF_W) -> list[tuple[Any, Any]]:
    """Affine [1P, 3P, 5P, ..., (2^(w-1)-1)P]."""
    count = 1 << (w - 2)
    two = _jdbl(x, y, mpz(1))
    js: list[_JInf] = [(x, y, mpz(1))]
    for _ in range(count - 1):
        js.append(_jadd(*js[-1], *two))
    aff = _batch_to_affine(js)
    # Multiples of a point of prime order n below n are never infinity.
    return [a for a in aff if a is not None]


@lru_cache(maxsize=8)
def _comb_table(x: int, y: int) -> tuple[tuple[tuple[Any, Any] | None, ...], ...]:
    """Fixed-base table: row i holds d * 2^(4i) * P for d = 1..15 (affine)."""
    rows = (256 + _COMB_BITS - 1) // _COMB_BITS
    table = []
    base: _JInf = (mpz(x), mpz(y), mpz(1))
    for _ in range(rows):
        js: list[_JInf] = [base]
        for _d in range(2, 1 << _COMB_BITS):
            js.append(_jadd(*js[-1], *base))
        aff = _batch_to_affine(js)
        table.append(tuple(aff))
        nxt = js[-1]
        base = _jadd(*nxt, *js[0])  # 16 * base
    return tuple(table)


def _mul_comb(k: int, x: int, y: int) -> _JInf:
    table = _comb_table(x, y)
    acc = _J_INF
    mask = (1 << _COMB_BITS) - 1
    i = 0
    while k:
        d = k & mask
        if d:
            pt = table[i][d - 1]
            if pt is not None:
                acc = _jadd_affine(*acc, pt[0], pt[1])
        k >>= _COMB_BITS
        i += 1
    return acc


def _multi_mult_jac(terms: list[tuple[int, Any, Any]]) -> _JInf:
    """Straus interleaved wNAF for sum k_i * P_i; k_i already reduced to [1, n-1]."""
    tables = []
    nafs = []
    for k, x, y in terms:
        tables.append(_odd_multiples(x, y))
        nafs.append(_wnaf(k))
    length = max(len(d) for d in nafs)
    acc = _J_INF
    p = _P
    for i in range(length - 1, -1, -1):
        acc = _jdbl(*acc)
        for naf, tab in zip(nafs, tables, strict=True):
            if i < len(naf):
                d = naf[i]
                if d > 0:
                    ax, ay = tab[d >> 1]
                    acc = _jadd_affine(*acc, ax, ay)
                elif d < 0:
                    ax, ay = tab[(-d) >> 1]
                    acc = _jadd_affine(*acc, ax, p - ay)
    return acc


# --- the Point type ------------------------------------------------------------------------


class Point:
    """An immutable point of BN_P256 G1 in affine coordinates.

    Constructing from coordinates validates them, so any ``Point`` obtained from outside is on
    the curve. The point at infinity exists only as an intermediate result
    (:meth:`infinity`); :meth:`encode`, :meth:`decode` and :meth:`require_finite` reject it.
    """

    __slots__ = ("_fb", "_x", "_y")
    _x: Any
    _y: Any
    _fb: bn256_glv.FixedBase | None  # fixed-base table cache (G, J0, Hop), see fixed_base()

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

    @classmethod
    def _raw(cls, xy: tuple[Any, Any] | None) -> Point:
        """Wrap an internally computed (already valid) affine pair; None is infinity."""
        pt = object.__new__(cls)
        object.__setattr__(pt, "_fb", None)
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
            object.__setattr__(self, "_fb", bn256_glv.FixedBase(self._x, self._y))
        return self

    def require_finite(self, what: str = "point") -> Point:
        """Return self, or raise :class:`PointAtInfinityError` naming ``what``."""
        if self._x is None:
            raise PointAtInfinityError(f"{what} is the point at infinity", detail={"field": what})
        return self

    # -- encodings --

    def encode(self) -> bytes:
        """Uncompressed SEC1: ``04 || X(32) || Y(32)``."""
        if self._x is None:
            raise PointAtInfinityError("the point at infinity has no encoding")
        return b"\x04" + int(self._x).to_bytes(32, "big") + int(self._y).to_bytes(32, "big")

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
        return cls(int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big"))

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
        return Point._from_jac(_jadd_affine(*self._jac(), other._x, other._y))

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


def _table_of(pt: Point) -> bn256_glv.FixedBase | None:
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
    return Point._from_jac(bn256_glv.mul_public(k, point._x, point._y, _table_of(point)))


def scalar_mult_secret(k: int, point: Point) -> Point:
    """``k * point`` for a secret k (issuer x, y; opener h): GLV with regular digits, the same
    sequence of doublings and additions for every k (Python integers are not constant time)."""
    k = _as_int(k, "scalar") % _N
    if not isinstance(point, Point):
        raise PointEncodingError("scalar_mult_secret needs a Point")
    if k == 0 or point.is_infinity:
        return Point.infinity()
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
        return Point._from_jac(_mul_comb(k, GX, GY))
    return Point._from_jac(_multi_mult_jac([(k, point._x, point._y)]))


def multi_mult(terms: Iterable[tuple[int, Point]]) -> Point:
    """``sum k_i * P_i`` for public k_i: GLV-split Straus over one doubling chain, fixed-base
    tables for G and points marked with :meth:`Point.fixed_base`."""
    work: list[tuple[int, Any, Any, bn256_glv.FixedBase | None]] = []
    for k, pt in terms:
        if not isinstance(pt, Point):
            raise PointEncodingError("multi_mult needs Points")
        k = _as_int(k, "scalar") % _N
        if k and not pt.is_infinity:
            work.append((k, pt._x, pt._y, _table_of(pt)))
    if not work:
        return Point.infinity()
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
    return Point._from_jac(_multi_mult_jac(work))


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

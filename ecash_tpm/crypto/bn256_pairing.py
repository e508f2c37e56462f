"""Optimal ate pairing on BN_P256 in pure Python: the reference (docs/protocol.md §1.7).

Issue 14: public verification of coin credentials needs the issuer keys on G2 and a pairing.
No maintained Python library pairs on BN_P256 (py_ecc has alt_bn128/BLS12-381 only), so this
is hand-written on gmpy2 ``mpz``; :mod:`ecash_tpm.crypto.pairing` prefers the native module
when it is built and falls back to this one. Conventions (a native implementation must give
the same bytes):

* BN parameter u = -0x6882F5C030B0A801 (Milagro FP256BN ``CURVE_Bnx`` with ``SIGN_OF_X =
  NEGATIVEX``): p = 36u^4 + 36u^3 + 24u^2 + 6u + 1, n = 36u^4 + 36u^3 + 18u^2 + 6u + 1.
* F_p2 = F_p[i]/(i^2 + 1); F_p6 = F_p2[v]/(v^3 - xi), xi = 1 + i; F_p12 = F_p6[w]/(w^2 - v).
* G2 = the order-n subgroup of the M-type sextic twist E': y^2 = x^3 + 3*xi over F_p2,
  untwisted by psi(x, y) = (x * w^-2, y * w^-3) into E(F_p12).
* P2 = the G2 generator of FIDO ECDAA / ISO/IEC 15946-5 for TPM_ECC_BN_P256, i.e. Apache
  Milagro's FP256BN ROM constants CURVE_Pxa, CURVE_Pxb, CURVE_Pya, CURVE_Pyb (x = Pxa + Pxb*i,
  y = Pya + Pyb*i), as in milagro-crypto/amcl version3 ``go/amcl/FP256BN/ROM.go`` (vendored
  in hyperledger/fabric).
* e(P, Q) = (f_{6u+2,Q}(P) * l_{[6u+2]Q, pi(Q)}(P) * l_{[6u+2]Q + pi(Q), -pi^2(Q)}(P))
  ^ ((p^12 - 1) / n), exactly that exponent (the hard part is the Scott et al. 2009 chain
  for (p^4 - p^2 + 1)/n, checked against plain exponentiation in the tests). As 6u + 2 < 0,
  f_{|6u+2|,Q} is conjugated and [|6u+2|]Q negated (the vertical lines die in the final
  exponentiation).
* GT bytes: 12 big-endian 32-byte F_p coefficients, c0.c0.c0, c0.c0.c1, c0.c1.c0, ..., c1.c2.c1.

Not constant time: only public data (issuer public keys, coins) is paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gmpy2
from gmpy2 import mpz

from ecash_tpm.crypto.bn256 import N, P, Point
from ecash_tpm.errors import InvalidPointError

__all__ = [
    "G2_LEN",
    "GT_LEN",
    "P2",
    "U",
    "G2EncodingError",
    "G2NotInSubgroupError",
    "G2NotOnTwistError",
    "G2Point",
    "decode_g2",
    "encode_g2",
    "g2_is_valid",
    "g2_on_twist",
    "pairing",
    "pairing_product_is_one",
]

U: int = -0x6882F5C030B0A801
"""The BN parameter u of BN_P256 (negative)."""

G2_LEN = 129
GT_LEN = 384

_P = mpz(P)
_N = mpz(N)
_ATE = 6 * U + 2  # the optimal ate loop scalar, negative
_ATE_BITS = bin(abs(_ATE))[3:]  # bits after the leading one
_U_ABS_BITS = bin(abs(U))[3:]

Fp2 = tuple[Any, Any]
Fp6 = tuple[Fp2, Fp2, Fp2]
Fp12 = tuple[Fp6, Fp6]

# --- errors --------------------------------------------------------------------------------


class G2EncodingError(InvalidPointError):
    """A G2 encoding has the wrong length or prefix, or a coordinate >= p."""

    code = "crypto.g2_encoding"


class G2NotOnTwistError(InvalidPointError):
    """The coordinates do not satisfy y^2 = x^3 + 3*(1 + i) over F_p2."""

    code = "crypto.g2_not_on_twist"


class G2NotInSubgroupError(InvalidPointError):
    """The point is on the twist but not in its order-n subgroup (n*Q != O)."""

    code = "crypto.g2_not_in_subgroup"


# --- F_p2 ----------------------------------------------------------------------------------


def _f2_add(a: Fp2, b: Fp2) -> Fp2:
    return (a[0] + b[0]) % _P, (a[1] + b[1]) % _P


def _f2_sub(a: Fp2, b: Fp2) -> Fp2:
    return (a[0] - b[0]) % _P, (a[1] - b[1]) % _P


def _f2_neg(a: Fp2) -> Fp2:
    return -a[0] % _P, -a[1] % _P


def _f2_mul(a: Fp2, b: Fp2) -> Fp2:
    a0, a1 = a
    b0, b1 = b
    t0 = a0 * b0
    t1 = a1 * b1
    return (t0 - t1) % _P, ((a0 + a1) * (b0 + b1) - t0 - t1) % _P


def _f2_sqr(a: Fp2) -> Fp2:
    a0, a1 = a
    return (a0 + a1) * (a0 - a1) % _P, 2 * a0 * a1 % _P


def _f2_muls(a: Fp2, k: Any) -> Fp2:
    """a times an F_p element."""
    return a[0] * k % _P, a[1] * k % _P


def _f2_xi(a: Fp2) -> Fp2:
    """a * (1 + i)."""
    return (a[0] - a[1]) % _P, (a[0] + a[1]) % _P


def _f2_conj(a: Fp2) -> Fp2:
    return a[0], -a[1] % _P


def _f2_inv(a: Fp2) -> Fp2:
    d = gmpy2.invert((a[0] * a[0] + a[1] * a[1]) % _P, _P)
    return a[0] * d % _P, -a[1] * d % _P


def _f2_pow(a: Fp2, e: int) -> Fp2:
    r: Fp2 = (mpz(1), mpz(0))
    for bit in bin(e)[2:]:
        r = _f2_sqr(r)
        if bit == "1":
            r = _f2_mul(r, a)
    return r


_F2_ZERO: Fp2 = (mpz(0), mpz(0))
_F2_ONE: Fp2 = (mpz(1), mpz(0))
_XI: Fp2 = (mpz(1), mpz(1))
_B2: Fp2 = (mpz(3), mpz(3))  # 3 * xi: the twist's b

# --- F_p6 ----------------------------------------------------------------------------------


def _f6_add(a: Fp6, b: Fp6) -> Fp6:
    return _f2_add(a[0], b[0]), _f2_add(a[1], b[1]), _f2_add(a[2], b[2])


def _f6_sub(a: Fp6, b: Fp6) -> Fp6:
    return _f2_sub(a[0], b[0]), _f2_sub(a[1], b[1]), _f2_sub(a[2], b[2])


def _f6_neg(a: Fp6) -> Fp6:
    return _f2_neg(a[0]), _f2_neg(a[1]), _f2_neg(a[2])


def _f6_mul(a: Fp6, b: Fp6) -> Fp6:
    a0, a1, a2 = a
    b0, b1, b2 = b
    t0 = _f2_mul(a0, b0)
    t1 = _f2_mul(a1, b1)
    t2 = _f2_mul(a2, b2)
    c0 = _f2_add(t0, _f2_xi(_f2_sub(_f2_mul(_f2_add(a1, a2), _f2_add(b1, b2)), _f2_add(t1, t2))))
    c1 = _f2_add(_f2_sub(_f2_mul(_f2_add(a0, a1), _f2_add(b0, b1)), _f2_add(t0, t1)), _f2_xi(t2))
    c2 = _f2_add(_f2_sub(_f2_mul(_f2_add(a0, a2), _f2_add(b0, b2)), _f2_add(t0, t2)), t1)
    return c0, c1, c2


def _f6_mul_v(a: Fp6) -> Fp6:
    """a * v."""
    return _f2_xi(a[2]), a[0], a[1]


def _f6_mul_01(a: Fp6, b0: Fp2, b1: Fp2) -> Fp6:
    """a * (b0 + b1*v)."""
    a0, a1, a2 = a
    return (
        _f2_add(_f2_mul(a0, b0), _f2_xi(_f2_mul(a2, b1))),
        _f2_add(_f2_mul(a0, b1), _f2_mul(a1, b0)),
        _f2_add(_f2_mul(a1, b1), _f2_mul(a2, b0)),
    )


def _f6_mul_1(a: Fp6, b1: Fp2) -> Fp6:
    """a * (b1*v)."""
    return _f2_xi(_f2_mul(a[2], b1)), _f2_mul(a[0], b1), _f2_mul(a[1], b1)


def _f6_inv(a: Fp6) -> Fp6:
    a0, a1, a2 = a
    c0 = _f2_sub(_f2_sqr(a0), _f2_xi(_f2_mul(a1, a2)))
    c1 = _f2_sub(_f2_xi(_f2_sqr(a2)), _f2_mul(a0, a1))
    c2 = _f2_sub(_f2_sqr(a1), _f2_mul(a0, a2))
    t = _f2_add(_f2_mul(a0, c0), _f2_xi(_f2_add(_f2_mul(a2, c1), _f2_mul(a1, c2))))
    ti = _f2_inv(t)
    return _f2_mul(c0, ti), _f2_mul(c1, ti), _f2_mul(c2, ti)


_F6_ZERO: Fp6 = (_F2_ZERO, _F2_ZERO, _F2_ZERO)
_F6_ONE: Fp6 = (_F2_ONE, _F2_ZERO, _F2_ZERO)

# --- F_p12 ---------------------------------------------------------------------------------

_F12_ONE: Fp12 = (_F6_ONE, _F6_ZERO)


def _f12_mul(a: Fp12, b: Fp12) -> Fp12:
    a0, a1 = a
    b0, b1 = b
    t0 = _f6_mul(a0, b0)
    t1 = _f6_mul(a1, b1)
    c1 = _f6_sub(_f6_mul(_f6_add(a0, a1), _f6_add(b0, b1)), _f6_add(t0, t1))
    return _f6_add(t0, _f6_mul_v(t1)), c1


def _f12_sqr(a: Fp12) -> Fp12:
    a0, a1 = a
    ab = _f6_mul(a0, a1)
    t = _f6_mul(_f6_add(a0, a1), _f6_add(a0, _f6_mul_v(a1)))
    return _f6_sub(t, _f6_add(ab, _f6_mul_v(ab))), _f6_add(ab, ab)


def _f12_mul_line(f: Fp12, l0: Fp2, l2: Fp2, l3: Fp2) -> Fp12:
    """f * (l0 + l2*w^2 + l3*w^3), the shape of every Miller-loop line (sparse product)."""
    f0, f1 = f
    t0 = _f6_mul_01(f0, l0, l2)  # f0 * (l0 + l2 v)
    t1 = _f6_mul_1(f1, l3)  # f1 * (l3 v)
    c1 = _f6_sub(_f6_mul_01(_f6_add(f0, f1), l0, _f2_add(l2, l3)), _f6_add(t0, t1))
    return _f6_add(t0, _f6_mul_v(t1)), c1


def _f12_conj(a: Fp12) -> Fp12:
    """a^(p^6): the inverse on the cyclotomic subgroup."""
    return a[0], _f6_neg(a[1])


def _f12_inv(a: Fp12) -> Fp12:
    a0, a1 = a
    t = _f6_inv(_f6_sub(_f6_mul(a0, a0), _f6_mul_v(_f6_mul(a1, a1))))
    return _f6_mul(a0, t), _f6_neg(_f6_mul(a1, t))


def _frob_consts(power: int) -> tuple[Fp2, ...]:
    """gamma_k = xi^(k (p^power - 1) / 6) for k = 0..5: w^(k p^power) = gamma_k * w^k."""
    e = (P**power - 1) // 6
    g1 = _f2_pow(_XI, e)
    out = [_F2_ONE]
    for _ in range(5):
        out.append(_f2_mul(out[-1], g1))
    return tuple(out)


_FROB = {j: _frob_consts(j) for j in (1, 2, 3)}


def _f12_frob(a: Fp12, power: int) -> Fp12:
    """a^(p^power) for power 1, 2, 3: conjugate coefficients (odd powers), scale by gamma."""
    g = _FROB[power]
    (c00, c01, c02), (c10, c11, c12) = a
    # basis w^k: k = 0: c00, 1: c10, 2: c01, 3: c11, 4: c02, 5: c12
    if power % 2:
        c00, c01, c02 = _f2_conj(c00), _f2_conj(c01), _f2_conj(c02)
        c10, c11, c12 = _f2_conj(c10), _f2_conj(c11), _f2_conj(c12)
    return (
        (c00, _f2_mul(c01, g[2]), _f2_mul(c02, g[4])),
        (_f2_mul(c10, g[1]), _f2_mul(c11, g[3]), _f2_mul(c12, g[5])),
    )


def _f12_pow_u(a: Fp12) -> Fp12:
    """a^u for a in the cyclotomic subgroup (u < 0: conjugate of a^|u|)."""
    r = a
    for bit in _U_ABS_BITS:
        r = _f12_sqr(r)
        if bit == "1":
            r = _f12_mul(r, a)
    return _f12_conj(r)


def _final_exp(f: Fp12) -> Fp12:
    """f^((p^12 - 1)/n): easy part (p^6 - 1)(p^2 + 1), then the hard part
    (p^4 - p^2 + 1)/n = l0 + l1 p + l2 p^2 + l3 p^3 by the Scott et al. addition chain."""
    f = _f12_mul(_f12_conj(f), _f12_inv(f))
    return _final_exp_hard(_f12_mul(_f12_frob(f, 2), f))


def _final_exp_hard(f: Fp12) -> Fp12:
    """f^((p^4 - p^2 + 1)/n) for f in the cyclotomic subgroup."""
    fu = _f12_pow_u(f)
    fu2 = _f12_pow_u(fu)
    fu3 = _f12_pow_u(fu2)
    y0 = _f12_mul(_f12_mul(_f12_frob(f, 1), _f12_frob(f, 2)), _f12_frob(f, 3))
    y1 = _f12_conj(f)
    y2 = _f12_frob(fu2, 2)
    y3 = _f12_conj(_f12_frob(fu, 1))
    y4 = _f12_conj(_f12_mul(fu, _f12_frob(fu2, 1)))
    y5 = _f12_conj(fu2)
    y6 = _f12_conj(_f12_mul(fu3, _f12_frob(fu3, 1)))
    t0 = _f12_mul(_f12_mul(_f12_sqr(y6), y4), y5)
    t1 = _f12_mul(_f12_mul(y3, y5), t0)
    t0 = _f12_mul(t0, y2)
    t1 = _f12_sqr(_f12_mul(_f12_sqr(t1), t0))
    t0 = _f12_mul(t1, y1)
    t1 = _f12_mul(t1, y0)
    return _f12_mul(_f12_sqr(t0), t1)


def _hard_part_plain(f: Fp12) -> Fp12:
    """Oracle for the tests: f^((p^4 - p^2 + 1)/n) by square-and-multiply."""
    r = _F12_ONE
    for bit in bin((P**4 - P**2 + 1) // N)[2:]:
        r = _f12_sqr(r)
        if bit == "1":
            r = _f12_mul(r, f)
    return r


# --- the twist E'(F_p2) and G2 --------------------------------------------------------------

_Jac2 = tuple[Fp2, Fp2, Fp2]  # Jacobian (X, Y, Z): x = X/Z^2, y = Y/Z^3; Z == 0 is O


def g2_on_twist(x: Fp2, y: Fp2) -> bool:
    """y^2 == x^3 + 3*(1 + i) over F_p2."""
    return _f2_sqr(y) == _f2_add(_f2_mul(_f2_sqr(x), x), _B2)


def _j_double(t: _Jac2) -> _Jac2:
    X, Y, Z = t
    if Z == _F2_ZERO:
        return t
    a = _f2_sqr(X)
    b = _f2_sqr(Y)
    c = _f2_sqr(b)
    d = _f2_sub(_f2_sqr(_f2_add(X, b)), _f2_add(a, c))
    d = _f2_add(d, d)
    e = _f2_add(_f2_add(a, a), a)
    x3 = _f2_sub(_f2_sqr(e), _f2_add(d, d))
    c8 = _f2_muls(c, 8)
    y3 = _f2_sub(_f2_mul(e, _f2_sub(d, x3)), c8)
    z3 = _f2_mul(_f2_add(Y, Y), Z)
    return x3, y3, z3


def _j_add(t: _Jac2, s: _Jac2) -> _Jac2:
    X1, Y1, Z1 = t
    X2, Y2, Z2 = s
    if Z1 == _F2_ZERO:
        return s
    if Z2 == _F2_ZERO:
        return t
    z1z1 = _f2_sqr(Z1)
    z2z2 = _f2_sqr(Z2)
    u1 = _f2_mul(X1, z2z2)
    u2 = _f2_mul(X2, z1z1)
    s1 = _f2_mul(Y1, _f2_mul(Z2, z2z2))
    s2 = _f2_mul(Y2, _f2_mul(Z1, z1z1))
    h = _f2_sub(u2, u1)
    r = _f2_sub(s2, s1)
    if h == _F2_ZERO:
        return _j_double(t) if r == _F2_ZERO else (_F2_ONE, _F2_ONE, _F2_ZERO)
    hh = _f2_sqr(h)
    hhh = _f2_mul(h, hh)
    v = _f2_mul(u1, hh)
    x3 = _f2_sub(_f2_sub(_f2_sqr(r), hhh), _f2_add(v, v))
    y3 = _f2_sub(_f2_mul(r, _f2_sub(v, x3)), _f2_mul(s1, hhh))
    z3 = _f2_mul(_f2_mul(Z1, Z2), h)
    return x3, y3, z3


def _j_affine(t: _Jac2) -> tuple[Fp2, Fp2] | None:
    X, Y, Z = t
    if Z == _F2_ZERO:
        return None
    zi = _f2_inv(Z)
    zi2 = _f2_sqr(zi)
    return _f2_mul(X, zi2), _f2_mul(Y, _f2_mul(zi2, zi))


def _j_mul(k: int, t: _Jac2) -> _Jac2:
    r: _Jac2 = (_F2_ONE, _F2_ONE, _F2_ZERO)
    if k < 0:
        k, t = -k, (t[0], _f2_neg(t[1]), t[2])
    for bit in bin(k)[2:]:
        r = _j_double(r)
        if bit == "1":
            r = _j_add(r, t)
    return r


class G2Point:
    """An immutable point of the twist E'(F_p2) in affine coordinates (x0 + x1*i, y0 + y1*i).

    The constructor checks that the point is on the twist; :func:`decode_g2` also checks the
    order-n subgroup. The point at infinity is :meth:`infinity` (no encoding).
    """

    __slots__ = ("_xy",)
    _xy: tuple[Fp2, Fp2] | None

    def __init__(self, x0: int, x1: int, y0: int, y1: int) -> None:
        cs = (x0, x1, y0, y1)
        if not all(isinstance(c, int | type(_P)) and not isinstance(c, bool) for c in cs):
            raise G2EncodingError("G2 coordinates must be integers")
        if not all(0 <= c < P for c in cs):
            raise G2EncodingError("G2 coordinate out of range [0, p)")
        x, y = (mpz(x0), mpz(x1)), (mpz(y0), mpz(y1))
        if not g2_on_twist(x, y):
            raise G2NotOnTwistError("point is not on the twist y^2 = x^3 + 3(1 + i)")
        object.__setattr__(self, "_xy", (x, y))

    @classmethod
    def _raw(cls, xy: tuple[Fp2, Fp2] | None) -> G2Point:
        pt = object.__new__(cls)
        object.__setattr__(pt, "_xy", xy)
        return pt

    @classmethod
    def infinity(cls) -> G2Point:
        return cls._raw(None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("G2Point is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        if self._xy is None:
            return (G2Point.infinity, ())
        return (G2Point, self.coordinates)

    @property
    def is_infinity(self) -> bool:
        return self._xy is None

    @property
    def coordinates(self) -> tuple[int, int, int, int]:
        """(x0, x1, y0, y1) as ints."""
        if self._xy is None:
            raise G2EncodingError("the point at infinity has no coordinates")
        (x0, x1), (y0, y1) = self._xy
        return int(x0), int(x1), int(y0), int(y1)

    def _jac(self) -> _Jac2:
        if self._xy is None:
            return (_F2_ONE, _F2_ONE, _F2_ZERO)
        return self._xy[0], self._xy[1], _F2_ONE

    def __add__(self, other: object) -> G2Point:
        if not isinstance(other, G2Point):
            return NotImplemented
        return G2Point._raw(_j_affine(_j_add(self._jac(), other._jac())))

    def __neg__(self) -> G2Point:
        if self._xy is None:
            return self
        return G2Point._raw((self._xy[0], _f2_neg(self._xy[1])))

    def __sub__(self, other: object) -> G2Point:
        if not isinstance(other, G2Point):
            return NotImplemented
        return self + (-other)

    def __mul__(self, k: object) -> G2Point:
        if isinstance(k, bool) or not isinstance(k, int | type(_P)):
            return NotImplemented
        return G2Point._raw(_j_affine(_j_mul(int(k), self._jac())))

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, G2Point):
            return NotImplemented
        return self._xy == other._xy

    def __hash__(self) -> int:
        return hash(("G2Point", self._xy))

    def __repr__(self) -> str:
        if self._xy is None:
            return "G2Point.infinity()"
        return "G2Point(0x{:x}, 0x{:x}, 0x{:x}, 0x{:x})".format(*self.coordinates)

    def in_subgroup(self) -> bool:
        """n * self == O."""
        return _j_mul(N, self._jac())[2] == _F2_ZERO


P2 = G2Point(
    0xFE0C3350B4C96C2028560F577C28913ACE1C539A12BF843CD22616B689C09EFB,
    0x4EA66057738AC054DB5AE1C637D813B924DD78E287D03589D269ED34A37E6A2B,
    0x702046E7C542A3B376770D75124E3E51EFCB24758D615848E909B481BEDC27FF,
    0x0554E3BCD388C29042EEA649297EB29F8B4CBE80821A98B3E01281114AAD049B,
)
"""The G2 generator (FIDO ECDAA / ISO/IEC 15946-5; Milagro FP256BN CURVE_Px*, CURVE_Py*)."""


def encode_g2(q: G2Point) -> bytes:
    """``0x04 || x0 || x1 || y0 || y1``, 32 bytes big-endian each (129 bytes)."""
    if not isinstance(q, G2Point):
        raise G2EncodingError("expected a G2Point")
    return b"\x04" + b"".join(c.to_bytes(32, "big") for c in q.coordinates)


def g2_is_valid(x0: int, x1: int, y0: int, y1: int) -> bool:
    """Coordinates in range, on the twist and in the order-n subgroup."""
    try:
        return G2Point(x0, x1, y0, y1).in_subgroup()
    except InvalidPointError:
        return False


def decode_g2(data: bytes) -> G2Point:
    """Parse :func:`encode_g2`; refuse the wrong length or prefix, coordinates >= p,
    off-twist points and points outside the order-n subgroup (typed errors)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise G2EncodingError("G2 encoding must be bytes")
    data = bytes(data)
    if len(data) != G2_LEN:
        raise G2EncodingError(
            f"G2 encoding must be {G2_LEN} bytes, got {len(data)}", detail={"length": len(data)}
        )
    if data[0] != 4:
        raise G2EncodingError(f"G2 prefix must be 0x04, got 0x{data[0]:02x}")
    cs = [int.from_bytes(data[1 + 32 * k : 33 + 32 * k], "big") for k in range(4)]
    q = G2Point(*cs)
    if not q.in_subgroup():
        raise G2NotInSubgroupError("G2 point is not in the order-n subgroup")
    return q


# --- Miller loop ---------------------------------------------------------------------------

_PI_X = _f2_inv(_f2_pow(_XI, (P - 1) // 3))  # pi on the twist: x -> conj(x) * xi^-((p-1)/3)
_PI_Y = _f2_inv(_f2_pow(_XI, (P - 1) // 2))  # y -> conj(y) * xi^-((p-1)/2)


def _twist_frob(q: tuple[Fp2, Fp2]) -> tuple[Fp2, Fp2]:
    return _f2_mul(_f2_conj(q[0]), _PI_X), _f2_mul(_f2_conj(q[1]), _PI_Y)


def _dbl_step(t: _Jac2, xp: Any, yp: Any) -> tuple[_Jac2, Fp2, Fp2, Fp2]:
    """2T and the tangent at T evaluated at P, scaled by 2*Y*Z^3 (an F_p2 factor): with
    slope L, the line times w^3 is (L x_T - y_T) - L x_P w^2 + y_P w^3 (protocol §1.7)."""
    X, Y, Z = t
    zz = _f2_sqr(Z)
    a = _f2_sqr(X)
    b = _f2_sqr(Y)
    c = _f2_sqr(b)
    d = _f2_sub(_f2_sqr(_f2_add(X, b)), _f2_add(a, c))
    d = _f2_add(d, d)
    e = _f2_add(_f2_add(a, a), a)
    x3 = _f2_sub(_f2_sqr(e), _f2_add(d, d))
    y3 = _f2_sub(_f2_mul(e, _f2_sub(d, x3)), _f2_muls(c, 8))
    z3 = _f2_mul(_f2_add(Y, Y), Z)
    l0 = _f2_sub(_f2_mul(e, X), _f2_add(b, b))  # 3X^3 - 2Y^2
    l2 = _f2_muls(_f2_mul(e, zz), -xp)  # -3X^2 Z^2 x_P
    l3 = _f2_muls(_f2_mul(z3, zz), yp)  # 2Y Z^3 y_P
    return (x3, y3, z3), l0, l2, l3


def _add_step(t: _Jac2, q: tuple[Fp2, Fp2], xp: Any, yp: Any) -> tuple[_Jac2, Fp2, Fp2, Fp2]:
    """T + Q (Q affine, T != +-Q) and the chord through them at P, scaled by Z_{T+Q}."""
    X, Y, Z = t
    xq, yq = q
    zz = _f2_sqr(Z)
    h = _f2_sub(_f2_mul(xq, zz), X)
    r = _f2_sub(_f2_mul(yq, _f2_mul(Z, zz)), Y)
    hh = _f2_sqr(h)
    hhh = _f2_mul(h, hh)
    v = _f2_mul(X, hh)
    x3 = _f2_sub(_f2_sub(_f2_sqr(r), hhh), _f2_add(v, v))
    y3 = _f2_sub(_f2_mul(r, _f2_sub(v, x3)), _f2_mul(Y, hhh))
    z3 = _f2_mul(Z, h)
    l0 = _f2_sub(_f2_mul(r, xq), _f2_mul(yq, z3))
    l2 = _f2_muls(r, -xp)
    l3 = _f2_muls(z3, yp)
    return (x3, y3, z3), l0, l2, l3


def _miller(pairs: Sequence[tuple[tuple[Any, Any], tuple[Fp2, Fp2]]]) -> Fp12:
    """The product of the optimal ate Miller functions of all pairs (shared squarings)."""
    f = _F12_ONE
    ts: list[_Jac2] = [(q[0], q[1], _F2_ONE) for _, q in pairs]
    for bit in _ATE_BITS:  # |6u+2| has no signed digits here: plain double-and-add
        f = _f12_sqr(f)
        for k, ((xp, yp), q) in enumerate(pairs):
            ts[k], l0, l2, l3 = _dbl_step(ts[k], xp, yp)
            f = _f12_mul_line(f, l0, l2, l3)
            if bit == "1":
                ts[k], l0, l2, l3 = _add_step(ts[k], q, xp, yp)
                f = _f12_mul_line(f, l0, l2, l3)
    f = _f12_conj(f)  # 6u + 2 < 0
    for k, ((xp, yp), q) in enumerate(pairs):
        X, Y, Z = ts[k]
        t: _Jac2 = (X, _f2_neg(Y), Z)  # [6u+2]Q
        q1 = _twist_frob(q)
        q2 = _twist_frob(q1)
        q2 = (q2[0], _f2_neg(q2[1]))
        t, l0, l2, l3 = _add_step(t, q1, xp, yp)
        f = _f12_mul_line(f, l0, l2, l3)
        _, l0, l2, l3 = _add_step(t, q2, xp, yp)
        f = _f12_mul_line(f, l0, l2, l3)
    return f


def _prepare(
    terms: Sequence[tuple[Point, G2Point]],
) -> list[tuple[tuple[Any, Any], tuple[Fp2, Fp2]]]:
    out: list[tuple[tuple[Any, Any], tuple[Fp2, Fp2]]] = []
    for p, q in terms:
        if not isinstance(p, Point) or not isinstance(q, G2Point):
            raise InvalidPointError("pairing terms must be (Point, G2Point)")
        if p.is_infinity or q._xy is None:
            continue  # e(O, Q) = e(P, O) = 1
        out.append(((mpz(p.x), mpz(p.y)), q._xy))
    return out


def _gt_bytes(f: Fp12) -> bytes:
    return b"".join(int(c).to_bytes(32, "big") for c6 in f for c2 in c6 for c in c2)


def pairing(p: Point, q: G2Point) -> bytes:
    """e(P, Q) as 384 bytes (protocol §1.7). Q must be in G2 (decode_g2 or P2 multiples)."""
    pairs = _prepare([(p, q)])
    if not pairs:
        return _gt_bytes(_F12_ONE)
    return _gt_bytes(_final_exp(_miller(pairs)))


def pairing_product_is_one(terms: Sequence[tuple[Point, G2Point]]) -> bool:
    """prod e(P_k, Q_k) == 1, with one shared Miller loop and one final exponentiation."""
    pairs = _prepare(terms)
    if not pairs:
        return True
    return _final_exp(_miller(pairs)) == _F12_ONE

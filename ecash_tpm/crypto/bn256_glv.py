"""Fast G1 arithmetic for BN_P256: GLV endomorphism, fixed-base tables, multi-scalar mult.

docs/performance.md "Curve arithmetic"; issue 13 item 1. :mod:`ecash_tpm.crypto.bn256` keeps the
``Point`` type and its first implementation (``scalar_mult_reference`` / ``multi_mult_reference``,
the differential-test oracle); the scalar multiplications behind ``Point`` come from here.

Why it is faster, on the same gmpy2 integers:

- **GLV**: a = 0, so phi(x, y) = (beta*x, y) is an endomorphism with phi(P) = lambda*P, lambda a
  cube root of unity mod n. A 256-bit scalar k splits into k1 + k2*lambda with |k1|, |k2| about
  2^128 (lattice reduction with the short basis from the extended Euclid algorithm), so one
  variable-base multiplication needs 128 doublings instead of 256, and phi costs one field
  multiplication per table entry.
- **Multi-scalar multiplication** (Straus, interleaved width-5 wNAF): every verification
  equation ``sum k_i * P_i`` shares one doubling chain; all tables are made affine with one
  field inversion (Montgomery's trick).
- **Fixed-base tables** for G, J0 and the opener key Hop (:class:`FixedBase`, attached to the
  point object and built on first use): signed radix-256 digits, 33 rows of 128 affine multiples,
  so k*P costs at most 33 mixed additions and no doubling.
- **Secret scalars** (issuer x, y; opener h) go through :func:`mul_secret`: GLV halves recoded
  into regular signed odd digits (Joye-Tunstall), so the sequence of doublings and additions
  depends only on the curve, not on the scalar's value. Python integers themselves are not
  constant time (see docs/threat-model.md, Limits).

Internal representation: Jacobian triples ``(X, Y, Z)`` of gmpy2 ``mpz`` (Z == 0 is infinity)
and affine pairs ``(x, y)``. This module does not validate points; callers (``Point``) do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gmpy2
from gmpy2 import mpz

__all__ = [
    "BETA",
    "GLV_BASIS",
    "LAMBDA",
    "FixedBase",
    "glv_split",
    "mul_public",
    "mul_secret",
    "msm",
]

_P = mpz(0xFFFFFFFFFFFCF0CD46E5F25EEE71A49F0CDC65FB12980A82D3292DDBAED33013)
_N = mpz(0xFFFFFFFFFFFCF0CD46E5F25EEE71A49E0CDC65FB1299921AF62D536CD10B500D)
_ONE = mpz(1)
_ZERO = mpz(0)

Jac = tuple[Any, Any, Any]
Aff = tuple[Any, Any]
_INF: Jac = (_ONE, _ONE, _ZERO)


# --- the endomorphism constants (derived, checked in tests/unit/crypto/test_bn256_glv.py) -------


def _cube_root_of_unity(m: int) -> int:
    """The smaller nontrivial cube root of unity mod the prime m (m = 1 mod 3)."""
    for g in range(2, 100):
        r = pow(g, (m - 1) // 3, m)
        if r != 1:
            return min(r, r * r % m)
    raise ArithmeticError("no cube root of unity found")  # pragma: no cover


def _pair_constants() -> tuple[int, int]:
    """(beta, lambda) with lambda*(x, y) == (beta*x, y) on G1: match the two roots on G = (1, 2)."""
    beta0 = _cube_root_of_unity(int(_P))
    lam0 = _cube_root_of_unity(int(_N))
    lam_g = _jmul_plain(lam0, _ONE, mpz(2))
    aff = _to_affine(lam_g)
    if aff is not None and aff[0] == beta0 and aff[1] == 2:
        return beta0, lam0
    return beta0 * beta0 % int(_P), lam0


def _short_basis(n: int, lam: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """GLV short lattice basis of {(a, b): a + b*lambda = 0 mod n} (Guide to ECC, Alg. 3.74)."""
    r0, r1 = n, lam
    t0, t1 = 0, 1
    sqrt_n = int(gmpy2.isqrt(n))
    while r1 >= sqrt_n:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        t0, t1 = t1, t0 - q * t1
    # now r0 >= sqrt(n) > r1: (r1, -t1) is the first vector; the second is the shorter of
    # (r0, -t0) and the next remainder's vector.
    v1 = (r1, -t1)
    q = r0 // r1
    r2, t2 = r0 - q * r1, t0 - q * t1
    cand = [(r0, -t0), (r2, -t2)]
    v2 = min(cand, key=lambda v: v[0] * v[0] + v[1] * v[1])
    return v1, v2


# --- Jacobian formulas (a = 0) ----------------------------------------------------------------


def _jdbl(X: Any, Y: Any, Z: Any) -> Jac:
    """dbl-2009-l (2M + 5S). The group has odd order, so Y != 0 for a finite point."""
    if not Z:
        return _INF
    p = _P
    a = X * X % p
    b = Y * Y % p
    c = b * b % p
    t = X + b
    d = 2 * (t * t - a - c) % p
    e = 3 * a
    x3 = (e * e - 2 * d) % p
    return x3, (e * (d - x3) - 8 * c) % p, 2 * Y * Z % p


def _jadd_aff(X1: Any, Y1: Any, Z1: Any, x2: Any, y2: Any) -> Jac:
    """Mixed addition Jacobian + affine (madd-2007-bl without the 2-multiples)."""
    if not Z1:
        return x2, y2, _ONE
    p = _P
    z1z1 = Z1 * Z1 % p
    h = (x2 * z1z1 - X1) % p
    r = (y2 * Z1 * z1z1 - Y1) % p
    if not h:
        if not r:
            return _jdbl(x2, y2, _ONE)
        return _INF
    hh = h * h % p
    hhh = h * hh % p
    v = X1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - Y1 * hhh) % p, Z1 * h % p


def _jadd(X1: Any, Y1: Any, Z1: Any, X2: Any, Y2: Any, Z2: Any) -> Jac:
    """General Jacobian addition (add-1998-cmo-2)."""
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
        return _INF
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - s1 * hhh) % p, Z1 * Z2 * h % p


def _to_affine(j: Jac) -> Aff | None:
    X, Y, Z = j
    if not Z:
        return None
    zi = gmpy2.invert(Z, _P)
    zi2 = zi * zi % _P
    return X * zi2 % _P, Y * zi2 * zi % _P


def _batch_affine(js: Sequence[Jac]) -> list[Aff]:
    """Montgomery's trick: one inversion for many finite points (callers guarantee Z != 0)."""
    p = _P
    prefix = []
    acc = _ONE
    for j in js:
        acc = acc * j[2] % p
        prefix.append(acc)
    inv = gmpy2.invert(acc, p)
    out: list[Aff] = [(_ZERO, _ZERO)] * len(js)
    for k in range(len(js) - 1, -1, -1):
        X, Y, Z = js[k]
        zi = inv * prefix[k - 1] % p if k else inv
        inv = inv * Z % p
        zi2 = zi * zi % p
        out[k] = (X * zi2 % p, Y * zi2 * zi % p)
    return out


def _jmul_plain(k: int, x: Any, y: Any) -> Jac:
    """Double-and-add, only to derive the constants at import (k*(x, y))."""
    acc = _INF
    for bit in bin(k)[2:]:
        acc = _jdbl(*acc)
        if bit == "1":
            acc = _jadd_aff(*acc, x, y)
    return acc


BETA, LAMBDA = _pair_constants()
"""phi(x, y) = (BETA*x, y) equals LAMBDA*(x, y) for every point of G1."""
GLV_BASIS = _short_basis(int(_N), LAMBDA)
"""Two short vectors (a, b) with a + b*LAMBDA = 0 (mod n)."""

_BETA = mpz(BETA)
(_A1, _B1), (_A2, _B2) = GLV_BASIS
_HALF_BITS = max(abs(_A1) + abs(_A2), abs(_B1) + abs(_B2)).bit_length()
"""Bound on the bit length of |k1|, |k2| from :func:`glv_split` (checked in tests)."""


def _round_div(a: int, b: int) -> int:
    """round(a / b) for b > 0, exact on integers."""
    return (2 * a + b) // (2 * b)


def glv_split(k: int) -> tuple[int, int]:
    """(k1, k2) with k = k1 + k2*LAMBDA (mod n) and |k1|, |k2| < 2^_HALF_BITS (about 2^128)."""
    n = int(_N)
    k = int(k) % n
    c1 = _round_div(_B2 * k, n)
    c2 = _round_div(-_B1 * k, n)
    return k - c1 * _A1 - c2 * _A2, -c1 * _B1 - c2 * _B2


# --- variable base: wNAF tables and Straus ------------------------------------------------------

_W = 5
_TABLE = 1 << (_W - 2)  # odd multiples 1, 3, ..., 15


def _wnaf(k: int) -> list[tuple[int, int]]:
    """Nonzero digits of the width-5 NAF of k >= 0 as (position, digit), least significant
    first (runs of zeros are skipped with one shift: a sixth of the digits are nonzero)."""
    out: list[tuple[int, int]] = []
    i = 0
    while k:
        tz = (k & -k).bit_length() - 1
        k >>= tz
        i += tz
        d = k & 31
        if d >= 16:
            d -= 32
        out.append((i, d))
        k -= d
    return out


def _odd_multiples_jac(x: Any, y: Any) -> list[Jac]:
    """Jacobian [1P, 3P, ..., 15P] of a finite affine point (never infinity: P has order n)."""
    two = _jdbl(x, y, _ONE)
    out: list[Jac] = [(x, y, _ONE)]
    for _ in range(_TABLE - 1):
        out.append(_jadd(*out[-1], *two))
    return out


def _tables(terms: Sequence[Aff]) -> list[list[Aff]]:
    """Affine odd-multiple tables [1P, 3P, ..., 15P] of the points, one inversion for all."""
    jacs: list[Jac] = []
    for x, y in terms:
        jacs.extend(_odd_multiples_jac(x, y))
    flat = _batch_affine(jacs) if jacs else []
    return [flat[i : i + _TABLE] for i in range(0, len(flat), _TABLE)]


def _straus(plans: Sequence[tuple[int, list[Aff]]], last: Sequence[Aff] = ()) -> Jac:
    """Interleaved wNAF over ready tables: (k >= 0, [1P, 3P, ..., 15P]) per term; the points
    ``last`` are added after the final doubling (fixed-base table entries)."""
    p = _P
    nafs = [(_wnaf(k), pos) for k, pos in plans]
    adds: list[list[Aff] | None] = [None] * (max((n[-1][0] for n, _ in nafs if n), default=0) + 1)
    for naf, pos in nafs:
        for i, d in naf:
            if d > 0:
                pt = pos[d >> 1]
            else:
                x, y = pos[(-d) >> 1]
                pt = (x, p - y)
            row = adds[i]
            if row is None:
                adds[i] = [pt]
            else:
                row.append(pt)
    adds[0] = [*(adds[0] or ()), *last]
    return _run(adds)


def _run(adds: Sequence[Sequence[Aff] | None]) -> Jac:
    """Horner over digit positions, most significant last in ``adds``: double, then add the
    position's points. The formulas of :func:`_jdbl` and :func:`_jadd_aff` are inlined (the
    interpreter's call overhead was a sixth of the time); rare special cases go to them."""
    p = _P
    X, Y, Z = _INF
    for i in range(len(adds) - 1, -1, -1):
        if Z:
            a = X * X % p
            b = Y * Y % p
            c = b * b % p
            t = X + b
            d = 2 * (t * t - a - c) % p
            e = 3 * a
            Z = 2 * Y * Z % p
            X = (e * e - 2 * d) % p
            Y = (e * (d - X) - 8 * c) % p
        for x2, y2 in adds[i] or ():
            if not Z:
                X, Y, Z = x2, y2, _ONE
                continue
            z1z1 = Z * Z % p
            h = (x2 * z1z1 - X) % p
            r = (y2 * Z * z1z1 - Y) % p
            if not h:
                X, Y, Z = _jadd_aff(X, Y, Z, x2, y2)
                continue
            hh = h * h % p
            hhh = h * hh % p
            v = X * hh % p
            X = (r * r - hhh - 2 * v) % p
            Y = (r * (v - X) - Y * hhh) % p
            Z = Z * h % p
    return X, Y, Z


def _glv_plans(
    split: Sequence[tuple[int, int, Aff]], short: Sequence[tuple[int, Aff]]
) -> list[tuple[int, list[Aff]]]:
    """Straus plans for GLV-split terms (k1, k2, P) and short terms (k, P): one odd-multiple
    table per point; phi's table is (beta*x, y) of it, a negative half flips y."""
    p, beta = _P, _BETA
    tabs = _tables([pt for _, _, pt in split] + [pt for _, pt in short])
    plans: list[tuple[int, list[Aff]]] = []
    for (k1, k2, _), tab in zip(split, tabs, strict=False):
        if k1:
            plans.append((k1, tab) if k1 > 0 else (-k1, [(x, p - y) for x, y in tab]))
        if k2:
            if k2 > 0:
                plans.append((k2, [(beta * x % p, y) for x, y in tab]))
            else:
                plans.append((-k2, [(beta * x % p, p - y) for x, y in tab]))
    for (k, _), tab in zip(short, tabs[len(split) :], strict=True):
        plans.append((k, tab))
    return plans


# --- fixed base --------------------------------------------------------------------------------

_FB_BITS = 8
_FB_HALF = 1 << (_FB_BITS - 1)  # signed digits in [-128, 128]
_FB_ROWS = 33  # 256-bit scalar below n -> at most 33 signed radix-256 digits


class FixedBase:
    """Signed radix-256 table of one fixed point: row i holds d * 256^i * P for d = 1..128.

    Attached to a ``Point`` (G, J0, a configured Hop) and built on first use (about 4200 mixed
    additions, tens of milliseconds once); afterwards k*P costs at most 33 mixed additions.
    """

    __slots__ = ("_rows", "x", "y")

    def __init__(self, x: Any, y: Any) -> None:
        self.x = mpz(x)
        self.y = mpz(y)
        self._rows: list[list[Aff]] | None = None

    def _build(self) -> list[list[Aff]]:
        rows: list[list[Aff]] = []
        bx, by = self.x, self.y
        for _ in range(_FB_ROWS):
            js: list[Jac] = [(bx, by, _ONE)]
            for _d in range(2, _FB_HALF + 1):
                js.append(_jadd_aff(*js[-1], bx, by))
            row = _batch_affine(js)
            rows.append(row)
            nxt = _jdbl(*js[-1])  # 256 * base (2 * 128 * base)
            aff = _to_affine(nxt)
            if aff is None:  # pragma: no cover - 256^i * P is never infinity for i < 33
                break
            bx, by = aff
        return rows

    def rows(self) -> list[list[Aff]]:
        """The table, built on first call (the cache lives on this object)."""
        if self._rows is None:
            self._rows = self._build()
        return self._rows

    def points(self, k: int, out: list[Aff]) -> None:
        """Append the table entries whose sum is k*P (0 <= k < n, public: zero digits are
        skipped) to ``out``."""
        rows = self.rows()
        p = _P
        i = 0
        while k:
            d = k & 0xFF
            k >>= 8
            if d > _FB_HALF:
                d -= 256
                k += 1
            if d > 0:
                out.append(rows[i][d - 1])
            elif d < 0:
                x, y = rows[i][-d - 1]
                out.append((x, p - y))
            i += 1


# --- public entry points -------------------------------------------------------------------------


def msm(terms: Sequence[tuple[int, Any, Any, FixedBase | None]]) -> Jac:
    """sum k_i * (x_i, y_i) as a Jacobian triple; ``FixedBase`` terms use their table.

    k_i are any integers (reduced mod n here). Scalars below 2^130 (e.g. 128-bit batch weights)
    are used as they are; longer ones are split with GLV.
    """
    n = _N
    split: list[tuple[int, int, Aff]] = []
    short: list[tuple[int, Aff]] = []
    fixed: list[Aff] = []
    for k, x, y, fb in terms:
        k = int(k % n)
        if not k:
            continue
        if fb is not None:
            fb.points(k, fixed)
        elif k == 1:  # a commitment in a spend-proof equation: one addition, no table
            fixed.append((x, y))
        elif k == n - 1:
            fixed.append((x, _P - y))
        elif k.bit_length() <= _HALF_BITS:
            short.append((k, (x, y)))
        elif n - k < (1 << _HALF_BITS):
            short.append((int(n - k), (x, _P - y)))
        else:
            k1, k2 = glv_split(k)
            split.append((k1, k2, (x, y)))
    return _straus(_glv_plans(split, short), fixed)


def mul_public(k: int, x: Any, y: Any, fb: FixedBase | None = None) -> Jac:
    """k * (x, y) for a public scalar (variable time)."""
    return msm(((k, x, y, fb),))


# --- secret scalars: regular recoding ------------------------------------------------------------

_SW = 4  # window of the regular recoding: digits odd in [-15, 15]
_SDIGITS = (_HALF_BITS + 1 + _SW - 1) // _SW + 1


def _regular_digits(k: int) -> list[int]:
    """Joye-Tunstall: odd k >= 1 as _SDIGITS odd digits in [-(2^w - 1), 2^w - 1], most
    significant first; the count does not depend on k."""
    mask = (1 << (_SW + 1)) - 1
    half = 1 << _SW
    digits = []
    for _ in range(_SDIGITS - 1):
        d = (k & mask) - half
        digits.append(d)
        k = (k - d) >> _SW
    digits.append(k)
    digits.reverse()
    return digits


def _regular_half(k: int, pos: list[Aff], two: Aff) -> tuple[list[int], list[Aff], list[Aff], Aff]:
    """Digits, tables and end correction for one GLV half; k may be negative or even.

    |k| is made odd by adding 1 (even k) or 2 (odd k), corrected by subtracting P or 2P at
    the end, so every half costs the same additions whatever its sign and parity.
    """
    p = _P
    if k < 0:
        k = -k
        pos, two = [(x, p - y) for x, y in pos], (two[0], p - two[1])
    neg = [(x, p - y) for x, y in pos]
    plus = 1 + (k & 1)  # 1 for even k, 2 for odd k: k + plus is odd
    corr = pos[0] if plus == 1 else two
    return _regular_digits(k + plus), pos, neg, (corr[0], p - corr[1])


def mul_secret(k: int, x: Any, y: Any) -> Jac:
    """k * (x, y) for a secret k in [1, n-1]: GLV plus regular digits, a fixed sequence of
    doublings and additions independent of k's value (the field arithmetic is Python's, which
    is not constant time)."""
    p, beta = _P, _BETA
    k1, k2 = glv_split(k)
    aff = _batch_affine([*_odd_multiples_jac(x, y), _jdbl(x, y, _ONE)])
    tab, two = aff[:_TABLE], aff[_TABLE]
    d1, pos1, neg1, corr1 = _regular_half(k1, tab, two)
    phi_tab = [(beta * px % p, py) for px, py in tab]
    d2, pos2, neg2, corr2 = _regular_half(k2, phi_tab, (beta * two[0] % p, two[1]))
    # one position per bit, most significant last: two additions every _SW positions, the
    # parity corrections after the last doubling
    adds: list[list[Aff]] = [[] for _ in range(_SW * (len(d1) - 1) + 1)]
    for i, (a, b) in enumerate(zip(reversed(d1), reversed(d2), strict=True)):
        adds[_SW * i] = [
            pos1[a >> 1] if a > 0 else neg1[(-a) >> 1],
            pos2[b >> 1] if b > 0 else neg2[(-b) >> 1],
        ]
    adds[0] += [corr1, corr2]
    return _run(adds)

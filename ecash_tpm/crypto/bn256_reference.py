"""The first implementation of BN_P256 G1 scalar multiplication (kept as the reference).

Width-5 wNAF Straus for a variable base and a 4-bit fixed-base comb for G, no GLV: what
``bn256`` used before issue 13. ``bn256.scalar_mult_reference`` / ``multi_mult_reference``
wrap it; the differential tests (tests/unit/crypto/test_bn256_glv.py) and the benchmarks'
"before" (benchmarks/reference.py) call it. Production code uses :mod:`.bn256_glv`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gmpy2
from gmpy2 import mpz

from ecash_tpm.crypto.bn256_glv import _P

__all__ = ["mul_comb", "multi_mult_jac"]

_WNAF_W = 5
_COMB_BITS = 4

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


def mul_comb(k: int, x: int, y: int) -> _JInf:
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


def multi_mult_jac(terms: list[tuple[int, Any, Any]]) -> _JInf:
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

"""G2 and the optimal ate pairing of the C engine (docs/native.md): the FIDO ECDAA / Milagro
FP256BN generator, bilinearity, non-degeneracy, products with one final exponentiation, and
refusal of points off the twist or outside G2."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto import native
from ecash_tpm.crypto.bn256 import N, P

_NATIVE = native.load()
pytestmark = pytest.mark.skipif(
    _NATIVE is None or not hasattr(_NATIVE, "pairing"), reason="the C engine _bn256 is not built"
)
U = -0x6882F5C030B0A801  # Milagro CURVE_Bnx, SIGN_OF_X = NEGATIVEX
# Milagro FP256BN CURVE_Pxa, CURVE_Pxb, CURVE_Pya, CURVE_Pyb
P2 = (
    0xFE0C3350B4C96C2028560F577C28913ACE1C539A12BF843CD22616B689C09EFB,
    0x4EA66057738AC054DB5AE1C637D813B924DD78E287D03589D269ED34A37E6A2B,
    0x702046E7C542A3B376770D75124E3E51EFCB24758D615848E909B481BEDC27FF,
    0x0554E3BCD388C29042EEA649297EB29F8B4CBE80821A98B3E01281114AAD049B,
)
ONE = (1).to_bytes(32, "big") + bytes(352)

# --- a small F_p2 / F_p12 model (same tower as the C code) for the checks ----------------------
F2 = tuple[int, int]


def f2m(x: F2, y: F2) -> F2:
    return ((x[0] * y[0] - x[1] * y[1]) % P, (x[0] * y[1] + x[1] * y[0]) % P)


def f2a(x: F2, y: F2) -> F2:
    return ((x[0] + y[0]) % P, (x[1] + y[1]) % P)


def f2pow(x: F2, e: int) -> F2:
    r = (1, 0)
    while e:
        if e & 1:
            r = f2m(r, x)
        x, e = f2m(x, x), e >> 1
    return r


def xi(x: F2) -> F2:
    return ((x[0] - x[1]) % P, (x[0] + x[1]) % P)


def f6m(a: Any, b: Any) -> Any:
    c0 = f2a(f2m(a[0], b[0]), xi(f2a(f2m(a[1], b[2]), f2m(a[2], b[1]))))
    c1 = f2a(f2a(f2m(a[0], b[1]), f2m(a[1], b[0])), xi(f2m(a[2], b[2])))
    c2 = f2a(f2a(f2m(a[0], b[2]), f2m(a[1], b[1])), f2m(a[2], b[0]))
    return (c0, c1, c2)


def f12m(a: Any, b: Any) -> Any:
    def add6(x: Any, y: Any) -> Any:
        return tuple(f2a(s, t) for s, t in zip(x, y, strict=True))

    t1 = f6m(a[1], b[1])
    return (
        add6(f6m(a[0], b[0]), (xi(t1[2]), t1[0], t1[1])),
        add6(f6m(a[0], b[1]), f6m(a[1], b[0])),
    )


F12_ONE = (((1, 0), (0, 0), (0, 0)), ((0, 0), (0, 0), (0, 0)))


def f12pow(a: Any, e: int) -> Any:
    r = F12_ONE
    while e:
        if e & 1:
            r = f12m(r, a)
        a, e = f12m(a, a), e >> 1
    return r


def parse(bs: bytes) -> Any:
    v = [int.from_bytes(bs[32 * i : 32 * i + 32], "big") for i in range(12)]
    f2 = [(v[2 * k], v[2 * k + 1]) for k in range(6)]
    return ((f2[0], f2[1], f2[2]), (f2[3], f2[4], f2[5]))


def on_twist(q: tuple[int, int, int, int]) -> bool:
    x, y = (q[0], q[1]), (q[2], q[3])
    return f2m(y, y) == f2a(f2m(f2m(x, x), x), (3, 3))


def twist_point_outside_g2(seed: int) -> tuple[int, int, int, int]:
    """A point of E'(F_p2) whose order is not n (sqrt in F_p2 for p = 3 mod 4)."""
    rnd = random.Random(seed)
    while True:
        x = (rnd.randrange(P), rnd.randrange(P))
        a = f2a(f2m(f2m(x, x), x), (3, 3))
        a1 = f2pow(a, (P - 3) // 4)
        alpha = f2m(f2m(a1, a1), a)
        a0 = f2m(f2pow(alpha, P), alpha)
        if a0 == (P - 1, 0):
            continue
        x0 = f2m(a1, a)
        y = (
            ((P - x0[1]) % P, x0[0])
            if alpha == (P - 1, 0)
            else f2m(f2pow(f2a((1, 0), alpha), (P - 1) // 2), x0)
        )
        assert f2m(y, y) == a
        return (x[0], x[1], y[0], y[1])


def _nat() -> Any:
    assert _NATIVE is not None
    return _NATIVE


# --- tests ---------------------------------------------------------------------------------


def test_curve_parameters_and_generator() -> None:
    assert 36 * U**4 + 36 * U**3 + 24 * U**2 + 6 * U + 1 == P
    assert 36 * U**4 + 36 * U**3 + 18 * U**2 + 6 * U + 1 == N
    nat = _nat()
    assert nat.G2_GENERATOR == P2
    assert on_twist(P2)
    assert nat.g2_is_valid(*P2)
    assert nat.g2_mul(N, *P2) is None
    assert nat.g2_mul(N + 1, *P2) == P2


def test_g2_group_law() -> None:
    nat = _nat()
    two = nat.g2_mul(2, *P2)
    assert nat.g2_add(*P2, *P2) == two and on_twist(two)
    assert nat.g2_add(*two, *nat.g2_mul(N - 2, *P2)) is None
    assert nat.g2_add(None, None, None, None, *P2) == P2
    assert nat.g2_mul(5, *two) == nat.g2_mul(10, *P2)
    assert nat.g2_mul(0, *P2) is None


def test_pairing_is_nondegenerate_and_of_order_n() -> None:
    e = _nat().pairing(1, 2, *P2)
    assert len(e) == 384 and e != ONE
    assert f12pow(parse(e), N) == F12_ONE


def test_final_exponentiation_is_the_exact_exponent() -> None:
    """The C hard part equals f^((p^12 - 1)/n) computed naively from the Miller value."""
    nat = _nat()
    f = parse(nat._miller_loop(1, 2, *P2))
    assert f12pow(f, (P**12 - 1) // N) == parse(nat.pairing(1, 2, *P2))


@settings(max_examples=6, deadline=None)
@given(a=st.integers(min_value=1, max_value=N - 1), b=st.integers(min_value=1, max_value=N - 1))
def test_bilinearity(a: int, b: int) -> None:
    nat = _nat()
    pa = nat.g1_mul(a, 1, 2)
    qb = nat.g2_mul(b, *P2)
    neg = nat.g1_mul(-a * b, 1, 2)
    assert nat.pairing_product_is_one([(*pa, *qb), (*neg, *P2)])
    assert not nat.pairing_product_is_one([(*pa, *qb), (*nat.g1_mul(2 - a * b, 1, 2), *P2)])
    assert nat.pairing(*pa, *qb) == nat.pairing(*nat.g1_mul(a * b, 1, 2), *P2)


def test_products_and_infinity() -> None:
    nat = _nat()
    a, b = 0x1234567, 0xABCDEF01
    q = nat.g2_mul(7, *P2)
    terms = [
        (*nat.g1_mul(a, 1, 2), *q),
        (*nat.g1_mul(b, 1, 2), *q),
        (*nat.g1_mul(-(a + b), 1, 2), *q),
    ]
    assert nat.pairing_product_is_one(terms)
    assert nat.pairing_product_is_one(
        [*terms, None, (None, None, *P2), (1, 2, None, None, None, None)]
    )
    assert not nat.pairing_product_is_one(terms[:2])
    assert nat.pairing_product_is_one([])
    assert nat.pairing(None, None, *P2) == ONE
    e1 = parse(nat.pairing(*nat.g1_mul(a, 1, 2), *q))
    e2 = parse(nat.pairing(*nat.g1_mul(b, 1, 2), *q))
    assert f12m(e1, e2) == parse(nat.pairing(*nat.g1_mul(a + b, 1, 2), *q))


def test_invalid_g2_points_are_refused() -> None:
    nat = _nat()
    outside = twist_point_outside_g2(1)
    assert on_twist(outside)
    assert not nat.g2_is_valid(*outside)
    off = (P2[0], P2[1], P2[2], (P2[3] + 1) % P)
    assert not nat.g2_is_valid(*off)
    assert not nat.g2_is_valid(P, 0, 0, 0)
    assert not nat.g2_is_valid(None, None, None, None)
    for bad in (off, (P, *P2[1:]), (-1, *P2[1:]), (1.5, *P2[1:]), (None, *P2[1:])):
        with pytest.raises(ValueError):
            nat.pairing(1, 2, *bad)
        with pytest.raises(ValueError):
            nat.pairing_product_is_one([(1, 2, *bad)])
        with pytest.raises(ValueError):
            nat.g2_mul(3, *bad)
    with pytest.raises(ValueError):
        nat.pairing(1, 3, *P2)
    with pytest.raises(ValueError):
        nat.pairing_product_is_one([(1, 2, *P2[:3])])
    with pytest.raises(TypeError):
        nat.pairing(1, 2, *P2[:3])


# --- differential: the C engine against the pure-Python reference (crypto/bn256_pairing.py) ----


@settings(max_examples=6, deadline=None)
@given(st.integers(1, N - 1), st.integers(1, N - 1))
def test_native_pairing_equals_the_python_reference(a: int, b: int) -> None:
    from ecash_tpm.crypto import bn256_pairing as ref
    from ecash_tpm.crypto.bn256 import G

    p, q = G * a, ref.P2 * b
    assert _NATIVE.pairing(p.x, p.y, *q.coordinates) == ref.pairing(p, q)
    assert ref.P2.coordinates == _NATIVE.G2_GENERATOR
    good = [(p, q), (-(G * (a * b % N)), ref.P2)]
    bad = [(p, q), (-(G * ((a * b + 1) % N)), ref.P2)]
    for terms, want in ((good, True), (bad, False)):
        wire = [(t.x, t.y, *u.coordinates) for t, u in terms]
        assert _NATIVE.pairing_product_is_one(wire) is want
        assert ref.pairing_product_is_one(terms) is want

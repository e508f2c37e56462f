"""The pure-Python optimal ate pairing on BN_P256 (docs/protocol.md §1.7)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto import bn256_pairing as bp
from ecash_tpm.crypto import pairing
from ecash_tpm.crypto.bn256 import G, N, P, Point
from ecash_tpm.errors import InvalidPointError

VECTORS = Path(__file__).parents[2] / "vectors" / "bn256_pairing.json"


def test_curve_parameters_from_u() -> None:
    u = bp.U
    assert u < 0
    assert 36 * u**4 + 36 * u**3 + 24 * u**2 + 6 * u + 1 == P
    assert 36 * u**4 + 36 * u**3 + 18 * u**2 + 6 * u + 1 == N


def test_generator_on_twist_and_of_order_n() -> None:
    assert bp.g2_on_twist(*bp.P2._xy)  # type: ignore[misc]
    assert bp.P2.in_subgroup()
    assert (N * bp.P2).is_infinity
    assert not ((N - 1) * bp.P2).is_infinity
    assert (N - 1) * bp.P2 == -bp.P2


def test_twist_frobenius_is_multiplication_by_p() -> None:
    q = 12345 * bp.P2
    (x, y) = bp._twist_frob(q._xy)  # type: ignore[arg-type]
    assert bp.G2Point._raw((x, y)) == (P % N) * q


def test_hard_part_chain_matches_plain_exponent() -> None:
    f = bp._miller([((G.x, G.y), bp.P2._xy)])  # type: ignore[list-item]
    f = bp._f12_mul(bp._f12_conj(f), bp._f12_inv(f))
    f = bp._f12_mul(bp._f12_frob(f, 2), f)
    assert bp._final_exp_hard(f) == bp._hard_part_plain(f)


def test_bilinearity_and_non_degeneracy() -> None:
    a, b = 0x1234567890ABCDEF1234567890, 0xFEDCBA98765432100123456789
    e1 = bp.pairing(G, bp.P2)
    assert e1 != bp.pairing(Point.infinity(), bp.P2)  # non-degenerate (e(O, Q) = 1)
    eab = bp.pairing(a * G, b * bp.P2)
    assert eab == bp.pairing(a * b % N * G, bp.P2) == bp.pairing(G, a * b % N * bp.P2)
    assert bp.pairing_product_is_one([(a * G, b * bp.P2), (-(a * b % N) * G, bp.P2)])
    assert not bp.pairing_product_is_one([(a * G, b * bp.P2), (-(a * b + 1) * G, bp.P2)])


def test_linear_in_the_second_argument() -> None:
    q1, q2 = 7 * bp.P2, 11 * bp.P2
    pt = 5 * G
    assert bp.pairing_product_is_one([(pt, q1 + q2), (-pt, q1), (-pt, q2)])
    assert bp.pairing(pt, q1 + q2) == bp.pairing(pt, 18 * bp.P2)


def test_gt_encoding_and_order() -> None:
    e = bp.pairing(G, bp.P2)
    assert len(e) == bp.GT_LEN
    assert e[:32] != (1).to_bytes(32, "big") or any(e[32:])
    one = bp.pairing(G, bp.G2Point.infinity())
    assert one == (1).to_bytes(32, "big") + bytes(352)


def test_known_vector() -> None:
    """e(G, P2) and e(2G, 3P2): the values a native implementation must reproduce."""
    vec = json.loads(VECTORS.read_text())
    assert bp.encode_g2(bp.P2).hex() == vec["P2"]
    assert bp.pairing(G, bp.P2).hex() == vec["e(G,P2)"]
    assert bp.encode_g2(3 * bp.P2).hex() == vec["3*P2"]
    assert bp.pairing(2 * G, 3 * bp.P2).hex() == vec["e(2G,3P2)"]


def test_encode_decode_roundtrip() -> None:
    q = 99 * bp.P2
    data = bp.encode_g2(q)
    assert len(data) == 129 and data[0] == 4
    assert bp.decode_g2(data) == q
    assert pairing.decode_g2(data) == q


def _raw(x0: int, x1: int, y0: int, y1: int) -> bytes:
    return b"\x04" + b"".join(c.to_bytes(32, "big") for c in (x0, x1, y0, y1))


def test_decode_refusals() -> None:
    good = bp.encode_g2(bp.P2)
    with pytest.raises(bp.G2EncodingError):
        bp.decode_g2(good[:-1])
    with pytest.raises(bp.G2EncodingError):
        bp.decode_g2(b"\x02" + good[1:])
    with pytest.raises(bp.G2EncodingError):
        bp.decode_g2("not bytes")  # type: ignore[arg-type]
    x0, x1, y0, y1 = bp.P2.coordinates
    with pytest.raises(bp.G2EncodingError):
        bp.decode_g2(_raw(x0, P, y0, y1))
    with pytest.raises(bp.G2NotOnTwistError):
        bp.decode_g2(_raw(x0, x1, y0, (y1 + 1) % P))
    for err in (bp.G2EncodingError, bp.G2NotOnTwistError, bp.G2NotInSubgroupError):
        assert issubclass(err, InvalidPointError)


def _twist_point_outside_g2() -> bp.G2Point:
    """A point of E'(F_p2) of order not dividing n (the twist's group order is n(2p - n))."""
    x0 = 1
    while True:
        x = (x0, 0)
        rhs = bp._f2_add(bp._f2_mul(bp._f2_sqr(x), x), bp._B2)
        y = _f2_sqrt(rhs)
        if y is not None:
            q = bp.G2Point(x0, 0, int(y[0]), int(y[1]))
            if not q.in_subgroup():
                return q
        x0 += 1


def _f2_sqrt(a: tuple[int, int]) -> tuple[int, int] | None:
    """Square root in F_p2 (p = 3 mod 4), algorithm 9 of Adj and Rodriguez-Henriquez."""
    a1 = bp._f2_pow(a, (P - 3) // 4)
    alpha = bp._f2_mul(a1, bp._f2_mul(a1, a))
    x0 = bp._f2_mul(a1, a)
    if alpha == (P - 1, 0):
        cand = (-x0[1] % P, x0[0])
    else:
        b = bp._f2_pow(bp._f2_add((1, 0), alpha), (P - 1) // 2)
        cand = bp._f2_mul(b, x0)
    return cand if bp._f2_sqr(cand) == (a[0] % P, a[1] % P) else None


def test_decode_refuses_point_outside_subgroup() -> None:
    q = _twist_point_outside_g2()
    with pytest.raises(bp.G2NotInSubgroupError):
        bp.decode_g2(bp.encode_g2(q))
    assert not bp.g2_is_valid(*q.coordinates)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=140))
def test_decode_random_bytes_typed_errors(data: bytes) -> None:
    with contextlib.suppress(InvalidPointError):
        bp.decode_g2(data)


@settings(max_examples=5, deadline=None)
@given(st.integers(1, N - 1), st.integers(1, N - 1))
def test_group_law(a: int, b: int) -> None:
    qa, qb = a * bp.P2, b * bp.P2
    assert qa + qb == (a + b) % N * bp.P2
    assert qa - qa == bp.G2Point.infinity()
    assert pairing.g2_mul(a, qb) == b * qa


def test_facade_backend() -> None:
    assert pairing.backend() in ("native", "python")
    assert pairing.pairing_product_is_one([(G, bp.P2), (-G, bp.P2)])
    assert not pairing.pairing_product_is_one([(G, bp.P2), (G, bp.P2)])


def test_facade_uses_a_native_module_with_the_documented_signatures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shape ``ecash_tpm.crypto._bn256`` must have (here backed by the reference)."""
    import types

    calls: list[str] = []

    def product(items: list[tuple[int, ...]]) -> bool:
        calls.append("product")
        terms = [(Point(px, py), bp.G2Point(*q)) for px, py, *q in items]
        return bp.pairing_product_is_one(terms)

    def g2_mul(k: int, *q: int) -> tuple[int, ...] | None:
        calls.append("g2_mul")
        r = k * bp.G2Point(*q)
        return None if r.is_infinity else r.coordinates

    def g2_is_valid(*q: int) -> bool:
        calls.append("g2_is_valid")
        return bp.g2_is_valid(*q)

    before = pairing.backend()
    fake = types.SimpleNamespace(
        pairing_product_is_one=product, g2_mul=g2_mul, g2_is_valid=g2_is_valid
    )
    monkeypatch.setattr(pairing.native, "load", lambda: fake)
    pairing._native.cache_clear()
    try:
        assert pairing.backend() == "native"
        q = pairing.g2_mul(7, bp.P2)
        assert q == 7 * bp.P2 and pairing.g2_mul(N, bp.P2).is_infinity
        assert pairing.decode_g2(bp.encode_g2(q)) == q
        with pytest.raises(bp.G2NotInSubgroupError):
            pairing.decode_g2(bp.encode_g2(_twist_point_outside_g2()))
        assert pairing.pairing_product_is_one([(G, q), (-(7 * G), bp.P2)])
        assert pairing.pairing_product_is_one([(Point.infinity(), q)])
        assert calls.count("product") == 1  # the all-infinity product never reaches it
    finally:
        monkeypatch.undo()
        pairing._native.cache_clear()
    assert pairing.backend() == before

"""BN_P256 G1 arithmetic: group law, encodings, TPM helpers (DESIGN §3)."""

from __future__ import annotations

import contextlib
import hashlib
import struct

import gmpy2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto import bn256
from ecash_tpm.crypto.bn256 import (
    G,
    N,
    P,
    Point,
    PointAtInfinityError,
    PointEncodingError,
    PointNotOnCurveError,
    ScalarEncodingError,
    ScalarRangeError,
    basename_point,
    decode_scalar,
    double_mult,
    encode_scalar,
    multi_mult,
    random_scalar,
    scalar_mult,
    tpm_challenge,
    tracing_base,
)
from ecash_tpm.errors import EcashError, InvalidPointError, InvalidScalarError

scalars = st.integers(min_value=1, max_value=N - 1)
FAST = settings(max_examples=40, deadline=None)


# --- an independent, slow reference: textbook affine formulas --------------------------------


def _ref_add(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    p = P
    if a is None:
        return b
    if b is None:
        return a
    (x1, y1), (x2, y2) = a, b
    if x1 == x2:
        if (y1 + y2) % p == 0:
            return None
        lam = 3 * x1 * x1 * pow(2 * y1, -1, p) % p
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, p) % p
    x3 = (lam * lam - x1 - x2) % p
    return x3, (lam * (x1 - x3) - y1) % p


def _ref_mul(k: int, pt: tuple[int, int]) -> tuple[int, int] | None:
    acc: tuple[int, int] | None = None
    add: tuple[int, int] | None = pt
    while k:
        if k & 1:
            acc = _ref_add(acc, add)
        add = _ref_add(add, add)
        k >>= 1
    return acc


def _xy(pt: Point) -> tuple[int, int] | None:
    return None if pt.is_infinity else (pt.x, pt.y)


# --- constants ------------------------------------------------------------------------------------


def test_constants_match_design_and_tpm_parameters() -> None:
    params = bn256.curve_parameters()
    assert params["p"] == 0xFFFFFFFFFFFCF0CD46E5F25EEE71A49F0CDC65FB12980A82D3292DDBAED33013
    assert params["n"] == 0xFFFFFFFFFFFCF0CD46E5F25EEE71A49E0CDC65FB1299921AF62D536CD10B500D
    assert (params["a"], params["b"], params["gX"], params["gY"], params["h"]) == (0, 3, 1, 2, 1)
    assert params["curveID"] == bn256.TPM_ECC_BN_P256 == 0x0010
    params["p"] = 0  # a fresh dict each time: no shared mutable state
    assert bn256.curve_parameters()["p"] == P


def test_field_and_order_are_prime_and_sqrt_method_applies() -> None:
    assert gmpy2.is_prime(P) and gmpy2.is_prime(N)
    assert P % 4 == 3  # so a^((p+1)/4) is the square root
    assert bn256.is_on_curve(1, 2)


def test_generator_has_order_n() -> None:
    assert scalar_mult(N, G).is_infinity
    assert (N - 1) * G == -G
    assert (N + 5) * G == 5 * G
    assert (0 * G).is_infinity
    assert (-3) * G == -(3 * G)


def test_small_multiples_by_hand() -> None:
    p = P
    lam = 3 * pow(4, -1, p) % p  # tangent slope at (1, 2): 3x^2 / 2y
    x2 = (lam * lam - 2) % p
    y2 = (lam * (1 - x2) - 2) % p
    assert 2 * G == Point(x2, y2) == G + G
    lam3 = (y2 - 2) * pow(x2 - 1, -1, p) % p
    x3 = (lam3 * lam3 - 1 - x2) % p
    y3 = (lam3 * (1 - x3) - 2) % p
    assert 3 * G == Point(x3, y3) == 2 * G + G
    for k in (1, 2, 3, 4, 5, 15, 16, 17, 31, 255, 256, 2**128 + 1):
        assert _xy(k * G) == _ref_mul(k, (1, 2))


# --- group law ------------------------------------------------------------------------------------


@FAST
@given(scalars, scalars, scalars)
def test_associativity(a: int, b: int, c: int) -> None:
    pa, pb, pc = a * G, b * G, c * G
    assert (pa + pb) + pc == pa + (pb + pc)
    assert pa + pb == pb + pa


@FAST
@given(scalars, scalars)
def test_distributivity_and_composition(a: int, b: int) -> None:
    assert (a + b) * G == a * G + b * G
    assert (a * b) * G == a * (b * G)
    assert a * G - b * G == (a - b) * G
    assert a * G + (-(a * G)) == Point.infinity()


@settings(max_examples=15, deadline=None)
@given(scalars, scalars)
def test_against_reference_implementation(a: int, b: int) -> None:
    q = b * G
    assert _xy(a * G) == _ref_mul(a, (1, 2))  # fixed-base comb path
    assert _xy(a * q) == _ref_mul(a, (q.x, q.y))  # wNAF path


@FAST
@given(scalars, scalars, scalars, scalars)
def test_shamir_equals_separate_mults(a: int, b: int, c: int, d: int) -> None:
    p1, p2 = c * G, d * G
    assert double_mult(a, p1, b, p2) == a * p1 + b * p2
    assert double_mult(a, G, -b, p2) == a * G - b * p2
    assert multi_mult([(a, p1), (b, p2), (c, G)]) == a * p1 + b * p2 + c * G


def test_edge_cases_of_the_group_law() -> None:
    q = random_scalar() * G
    inf = Point.infinity()
    assert q + inf == q and inf + q == q and inf + inf == inf
    assert q - q == inf and -inf == inf
    assert q + q == 2 * q
    assert double_mult(1, q, -1, q).is_infinity
    assert multi_mult([]).is_infinity
    assert multi_mult([(0, q), (5, inf)]).is_infinity
    assert 7 * inf == inf


def test_point_is_immutable_and_hashable() -> None:
    q = 5 * G
    with pytest.raises(AttributeError):
        setattr(q, "_x", 1)  # noqa: B010
    with pytest.raises(AttributeError):
        setattr(q, "foo", 1)  # noqa: B010
    assert {q: 1}[Point(q.x, q.y)] == 1
    assert hash(Point.infinity()) == hash(Point.infinity())
    assert q != G and (q == "x") is False


# --- encodings ------------------------------------------------------------------------------------


@FAST
@given(scalars)
def test_point_roundtrip(k: int) -> None:
    q = k * G
    enc = q.encode()
    assert len(enc) == 65 and enc[0] == 4
    assert Point.decode(enc) == q
    assert Point.from_xy_bytes(q.x_bytes(), q.y_bytes()) == q


def test_decode_rejects_bad_points() -> None:
    good = (7 * G).encode()
    with pytest.raises(PointAtInfinityError):
        Point.decode(b"\x00")
    with pytest.raises(PointEncodingError):
        Point.decode(b"\x00" * 65)  # prefix 00
    for prefix in (2, 3, 5, 6, 7):
        with pytest.raises(PointEncodingError):
            Point.decode(bytes([prefix]) + good[1:])
    for bad in (b"", good[:-1], good + b"\x00", good[:33]):
        with pytest.raises(PointEncodingError):
            Point.decode(bad)
    off = bytearray(good)
    off[-1] ^= 1
    with pytest.raises(PointNotOnCurveError):
        Point.decode(bytes(off))
    big_x = b"\x04" + (P + 1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    with pytest.raises(PointEncodingError):
        Point.decode(big_x)  # x = p + 1 would alias (1, 2)
    with pytest.raises(PointEncodingError):
        Point.decode("04" * 65)  # type: ignore[arg-type]
    with pytest.raises(PointNotOnCurveError):
        Point(1, 3)
    with pytest.raises(PointAtInfinityError):
        Point.infinity().encode()
    with pytest.raises(PointAtInfinityError):
        _ = Point.infinity().x
    with pytest.raises(PointEncodingError):
        Point.from_xy_bytes(b"", b"\x02")


def test_scalar_encoding_and_ranges() -> None:
    assert decode_scalar(encode_scalar(1)) == 1
    assert decode_scalar(encode_scalar(N - 1)) == N - 1
    assert decode_scalar(b"\x00" * 32, allow_zero=True) == 0
    with pytest.raises(ScalarRangeError):
        decode_scalar(b"\x00" * 32)
    with pytest.raises(ScalarRangeError):
        decode_scalar(N.to_bytes(32, "big"))
    with pytest.raises(ScalarRangeError):
        decode_scalar(b"\xff" * 32, allow_zero=True)
    for bad in (b"", b"\x01" * 31, b"\x01" * 33):
        with pytest.raises(ScalarEncodingError):
            decode_scalar(bad)
    with pytest.raises(ScalarEncodingError):
        decode_scalar(5)  # type: ignore[arg-type]
    with pytest.raises(ScalarRangeError):
        encode_scalar(N)
    with pytest.raises(ScalarRangeError):
        encode_scalar(-1)
    assert all(1 <= random_scalar() < N for _ in range(100))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_point_decoder_raises_only_project_errors(data: bytes) -> None:
    with contextlib.suppress(InvalidPointError):
        Point.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=64, max_size=64))
def test_fuzz_point_decoder_with_right_prefix(body: bytes) -> None:
    try:
        pt = Point.decode(b"\x04" + body)
    except InvalidPointError:
        return
    assert bn256.is_on_curve(pt.x, pt.y)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_fuzz_scalar_decoder_raises_only_project_errors(data: bytes, allow_zero: bool) -> None:
    try:
        k = decode_scalar(data, allow_zero=allow_zero)
    except InvalidScalarError as exc:
        assert isinstance(exc, EcashError)
        return
    assert (0 if allow_zero else 1) <= k < N


# --- TPM helpers ----------------------------------------------------------------------------------


def test_tpm_challenge_hashes_nonce_exactly_as_given() -> None:
    c_prime = bytes(range(32))
    nonce = b"\x01" * 31
    expected = int.from_bytes(hashlib.sha256(nonce + c_prime).digest(), "big") % N
    assert tpm_challenge(nonce, c_prime) == expected
    assert tpm_challenge(b"\x00" + nonce, c_prime) != expected  # no re-padding
    with pytest.raises(ScalarEncodingError):
        tpm_challenge("ab", c_prime)  # type: ignore[arg-type]


def test_basename_point_convention_even_y() -> None:
    s2 = b"some basename"
    found = basename_point(s2)
    assert found is not None
    j, y2 = found
    assert j.x == int.from_bytes(hashlib.sha256(s2).digest(), "big") % P
    assert j.y % 2 == 0 and y2 == j.y.to_bytes(32, "big")
    odd = basename_point(s2, y_even=False)
    assert odd is not None and odd[0] == -j and odd[0].y % 2 == 1


def test_basename_point_none_when_not_on_curve() -> None:
    results = [basename_point(struct.pack(">I", i)) for i in range(40)]
    assert any(r is None for r in results)  # about half of all x have no point
    assert any(r is not None for r in results)


def test_tracing_base_is_deterministic_and_smallest() -> None:
    s2_0, j0 = tracing_base()
    assert tracing_base() == (s2_0, j0)
    assert s2_0.startswith(b"ecash-tpm/v1/trace") and len(s2_0) == len(b"ecash-tpm/v1/trace") + 4
    i = struct.unpack(">I", s2_0[-4:])[0]
    for earlier in range(i):
        assert basename_point(b"ecash-tpm/v1/trace" + struct.pack(">I", earlier)) is None
    assert bn256.is_on_curve(j0.x, j0.y) and j0.y % 2 == 0
    assert basename_point(s2_0) == (j0, j0.y_bytes())
    assert j0 != G


def test_decode_keeps_the_encoding_and_matches_arithmetic() -> None:
    """Point.decode keeps its (canonical) input as the encoding; made points encode alike."""
    made = 12345 * G
    enc = made.encode()
    assert made.encode() is enc  # kept after the first encode
    parsed = Point.decode(bytearray(enc))
    assert parsed == made
    assert type(parsed.encode()) is bytes and parsed.encode() == enc
    assert (parsed + G).encode() == (12346 * G).encode()

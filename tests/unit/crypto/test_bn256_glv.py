"""GLV, fixed-base tables and multi-scalar multiplication, differential-tested against the first
implementation (``scalar_mult_reference`` / ``multi_mult_reference``), issue 13 item 1."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto import bn256_glv
from ecash_tpm.crypto.bn256 import (
    G,
    N,
    P,
    Point,
    multi_mult,
    multi_mult_reference,
    scalar_mult,
    scalar_mult_reference,
    scalar_mult_secret,
    tracing_base,
)
from ecash_tpm.crypto.bn256_glv import BETA, GLV_BASIS, LAMBDA, glv_split

LAM = LAMBDA
EDGE = [
    0,
    1,
    2,
    3,
    N - 1,
    N - 2,
    N,
    N + 1,
    2 * N - 1,
    LAM,
    N - LAM,
    2 * LAM % N,
    LAM * LAM % N,
    (LAM + 1) % N,
    (LAM - 1) % N,
    2**128,
    2**128 - 1,
    2**129 + 1,
    2**255,
    -1,
    -LAM,
    -N - 1,
]
POINT = scalar_mult_reference(0xC0FFEE, G)
scalars = st.one_of(st.integers(min_value=-2 * N, max_value=2 * N), st.sampled_from(EDGE))
points = st.integers(min_value=1, max_value=N - 1).map(lambda k: scalar_mult_reference(k, G))


def test_endomorphism_constants() -> None:
    """lambda*P == (beta*x, y); both are nontrivial cube roots of unity."""
    assert pow(BETA, 3, P) == 1 and BETA != 1
    assert pow(LAMBDA, 3, N) == 1 and LAMBDA != 1
    for pt in (G, POINT, tracing_base()[1]):
        assert scalar_mult_reference(LAMBDA, pt) == Point(BETA * pt.x % P, pt.y)


def test_short_basis_is_in_the_lattice_and_short() -> None:
    for a, b in GLV_BASIS:
        assert (a + b * LAMBDA) % N == 0
        assert max(abs(a), abs(b)).bit_length() <= 129


@settings(max_examples=300, deadline=None)
@given(scalars)
def test_glv_split(k: int) -> None:
    k1, k2 = glv_split(k)
    assert (k1 + k2 * LAMBDA - k) % N == 0
    assert abs(k1).bit_length() <= 129 and abs(k2).bit_length() <= 129


@settings(max_examples=40, deadline=None)
@given(scalars, points)
def test_scalar_mult_matches_reference(k: int, pt: Point) -> None:
    assert scalar_mult(k, pt) == scalar_mult_reference(k, pt)
    assert scalar_mult_secret(k, pt) == scalar_mult_reference(k, pt)


@pytest.mark.parametrize("k", EDGE)
def test_edge_scalars(k: int) -> None:
    ref = scalar_mult_reference(k, POINT)
    assert scalar_mult(k, POINT) == ref
    assert scalar_mult_secret(k, POINT) == ref
    assert k * POINT == ref
    assert scalar_mult(k, G) == scalar_mult_reference(k, G)


@settings(max_examples=25, deadline=None)
@given(scalars)
def test_fixed_base_tables(k: int) -> None:
    """G, J0 and a Hop marked with fixed_base() use their tables; results are unchanged."""
    _, j0 = tracing_base()
    hop = scalar_mult_reference(77, G).fixed_base()
    for base in (G, j0, hop, Point(G.x, G.y)):
        assert scalar_mult(k, base) == scalar_mult_reference(k, base)


def test_fixed_base_table_is_cached_on_the_object() -> None:
    hop = scalar_mult_reference(99, G)
    assert hop.fixed_base() is hop
    assert hop._fb is not None and hop._fb is hop.fixed_base()._fb
    assert Point(hop.x, hop.y)._fb is None  # equal points do not share the cache
    assert hop == Point(hop.x, hop.y)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(scalars, points), min_size=1, max_size=6), st.booleans())
def test_multi_mult_matches_reference(terms: list[tuple[int, Point]], with_g: bool) -> None:
    if with_g:
        terms = [*terms, (terms[0][0] * 3 + 1, G), (terms[0][0], tracing_base()[1])]
    assert multi_mult(terms) == multi_mult_reference(terms)


def test_multi_mult_cancellation_and_infinity() -> None:
    k = 0x1234567890ABCDEF
    assert multi_mult([(k, POINT), (-k, POINT)]).is_infinity
    assert multi_mult([(LAMBDA, POINT), (-1, Point(BETA * POINT.x % P, POINT.y))]).is_infinity
    assert multi_mult([(1, POINT), (1, POINT)]) == scalar_mult_reference(2, POINT)
    assert multi_mult([(0, POINT), (5, Point.infinity())]).is_infinity
    assert multi_mult([(2**127 + 5, POINT), (N - 3, POINT)]) == scalar_mult_reference(
        2**127 + 2, POINT
    )


def test_regular_digits_have_fixed_length() -> None:
    """The secret path's digit count does not depend on the scalar."""
    lengths = {len(bn256_glv._regular_digits(k)) for k in (1, 3, 2**64 + 1, 2**129 + 1)}
    assert len(lengths) == 1
    for k in (1, 3, 15, 17, 2**129 + 1):
        digits = bn256_glv._regular_digits(k)
        assert all(d % 2 for d in digits)
        value = 0
        for d in digits:
            value = value * 16 + d
        assert value == k


def test_credentials_batch() -> None:
    """Issue 13 item 2: the random-weight batch accepts valid coins and refuses a batch with one
    coin under another key, or with a T forged for another W."""
    from ecash_tpm.crypto.groupsig import (
        Credential,
        IssuerSecret,
        RandomizedCredential,
        credentials_batch_ok,
        verify_credential,
    )

    secret = IssuerSecret.generate()
    other = IssuerSecret.generate()

    def cred(sec: IssuerSecret) -> Credential:
        a, sk = 11, 0xABCDEF
        big_a = scalar_mult_reference(a, G)
        d = scalar_mult_reference(a * sec.y * sk, G)
        return Credential(
            big_a, scalar_mult_reference(sec.y, big_a), scalar_mult_reference(sec.x, big_a + d), d
        )

    coins = [cred(secret).randomize() for _ in range(4)]
    for coin in coins:
        verify_credential(secret, *coin)
    assert credentials_batch_ok(secret, coins)
    assert credentials_batch_ok(secret, [])
    assert not credentials_batch_ok(secret, [*coins, cred(other).randomize()])
    c = coins[1]
    forged = RandomizedCredential(c.R, c.S, c.T, c.W + G)
    assert not credentials_batch_ok(secret, [coins[0], forged, coins[2]])

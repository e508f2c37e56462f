"""The C engine ``_bn256`` (docs/native.md) against the pure-Python G1 code: the same results
for every scalar and point, validation at the C boundary, and the fallback without it."""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto import bn256, bn256_glv, native
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
from ecash_tpm.crypto.bn256_glv import BETA, LAMBDA

_NATIVE = native.load()
pytestmark = pytest.mark.skipif(_NATIVE is None, reason="the C engine _bn256 is not built")

EDGE = [
    0,
    1,
    2,
    3,
    15,
    16,
    17,
    N - 1,
    N - 2,
    N,
    N + 1,
    2 * N - 1,
    LAMBDA,
    N - LAMBDA,
    LAMBDA * LAMBDA % N,
    (LAMBDA + 1) % N,
    (LAMBDA - 1) % N,
    2**128,
    2**128 - 1,
    2**129 + 1,
    2**255,
    2**256 - 1,
    2**300 + 5,
    -1,
    -LAMBDA,
    -N - 1,
]
POINT = scalar_mult_reference(0xC0FFEE, G)
scalars = st.one_of(st.integers(min_value=-(2**300), max_value=2**300), st.sampled_from(EDGE))
points = st.integers(min_value=1, max_value=N - 1).map(lambda k: scalar_mult_reference(k, G))


def _nat() -> ModuleType:
    assert _NATIVE is not None
    return _NATIVE


def _xy(pt: Point) -> tuple[int, int] | None:
    return None if pt.is_infinity else (pt.x, pt.y)


def test_bn256_uses_the_engine() -> None:
    assert bn256.native_engine() is not None
    assert native.backend_name() == "native (C, 4x64 Montgomery)"


def test_endomorphism_and_generator() -> None:
    """beta in the C code is the beta of bn256_glv: lambda*P == (beta*x, y)."""
    nat = _nat()
    for pt in (G, POINT, tracing_base()[1]):
        assert nat.g1_mul(LAMBDA, pt.x, pt.y) == (BETA * pt.x % P, pt.y)
    assert nat.g1_mul(N, 1, 2) is None
    assert nat.g1_mul(1, 1, 2) == (1, 2)


@settings(max_examples=150, deadline=None)
@given(k=scalars, pt=points)
def test_variable_base_and_secret_match_python(k: int, pt: Point) -> None:
    want = _xy(scalar_mult_reference(k, pt))
    nat = _nat()
    assert nat.g1_mul(k, pt.x, pt.y) == want
    assert nat.g1_mul_secret(k, pt.x, pt.y) == want
    assert _xy(scalar_mult(k, pt)) == want
    assert _xy(scalar_mult_secret(k, pt)) == want


@pytest.mark.parametrize("k", EDGE)
def test_edge_scalars(k: int) -> None:
    nat = _nat()
    for pt in (G, POINT):
        want = _xy(scalar_mult_reference(k, pt))
        assert nat.g1_mul(k, pt.x, pt.y) == want
        assert nat.g1_mul_secret(k, pt.x, pt.y) == want
        assert nat.g1_msm([(k, pt.x, pt.y)]) == want


@settings(max_examples=60, deadline=None)
@given(k=scalars)
def test_fixed_base_matches_variable_base(k: int) -> None:
    nat = _nat()
    fb = nat.FixedBase(POINT.x, POINT.y)
    want = nat.g1_mul(k, POINT.x, POINT.y)
    assert fb.mul(k) == want
    assert nat.g1_msm([(k, POINT.x, POINT.y, fb)]) == want
    assert _xy(scalar_mult(k, G)) == _xy(scalar_mult_reference(k, G))  # G's own table


def test_edge_points() -> None:
    nat = _nat()
    x, y = POINT.x, POINT.y
    two = _xy(scalar_mult_reference(2, POINT))
    assert nat.g1_add(x, y, x, y) == two
    assert nat.g1_add(x, y, x, P - y) is None
    assert nat.g1_add(None, None, x, y) == (x, y)
    assert nat.g1_add(None, None, None, None) is None
    assert nat.g1_mul(5, None, None) is None
    assert nat.g1_msm([]) is None
    assert nat.g1_msm([(3, x, y), (-3, x, y)]) is None
    assert nat.g1_msm([(3, x, y), (4, None, None), (1, x, P - y)]) == two
    assert nat.fp_sqrt(4) in (2, P - 2)
    assert nat.fp_sqrt(0) == 0


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=70),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_msm_matches_python(n: int, seed: int) -> None:
    """1..70 terms with repeated points, cancelling pairs, G (fixed base) and zero scalars."""
    import random

    rnd = random.Random(seed)
    pool = [G, POINT, -POINT, *(scalar_mult_reference(rnd.randrange(1, N), G) for _ in range(3))]
    terms: list[tuple[int, Point]] = []
    for _ in range(n):
        k = rnd.choice([rnd.randrange(N), rnd.randrange(2**128), 0, 1, N - 1, rnd.choice(EDGE)])
        terms.append((k, rnd.choice(pool)))
        if rnd.random() < 0.2:
            terms.append((-k, terms[-1][1]))
    want = multi_mult_reference(terms)
    assert multi_mult(terms) == want
    nat = _nat()
    assert nat.g1_msm([(k, pt.x, pt.y) for k, pt in terms]) == _xy(want)


@pytest.mark.parametrize(
    "args",
    [
        (5, 1, 3),  # not on the curve
        (5, P, 2),  # x >= p
        (5, -1, 2),  # negative coordinate
        (5, 2**300, 2),
        (5, 1.0, 2),  # not an integer
        (5, "1", 2),
        (5, None, 2),  # half infinity
        (1.5, 1, 2),  # scalar not an integer
        (True, 1, 2),
    ],
)
def test_bad_inputs_are_value_errors(args: tuple[object, object, object]) -> None:
    nat = _nat()
    for fn in (nat.g1_mul, nat.g1_mul_secret):
        with pytest.raises(ValueError):
            fn(*args)
    with pytest.raises(ValueError):
        nat.g1_msm([args])


def test_bad_msm_terms_and_fixed_bases() -> None:
    nat = _nat()
    fb = nat.FixedBase(1, 2)
    for bad in ([(1, 1)], [[1, 1, 2]], [(1, 1, 2, "fb")], [(1, POINT.x, POINT.y, fb)], 5):
        with pytest.raises((ValueError, TypeError)):
            nat.g1_msm(bad)
    with pytest.raises(ValueError):
        nat.FixedBase(1, 3)
    with pytest.raises(ValueError):
        nat.FixedBase(None, None)
    with pytest.raises(ValueError):
        fb.mul("7")
    assert (fb.x, fb.y) == (1, 2)


def test_python_path_still_works() -> None:
    """bn256_glv stays the pure-Python path and agrees with the engine."""
    k = 0x1234567890ABCDEF << 100
    jac = bn256_glv.mul_public(k, POINT.x, POINT.y)
    assert _xy(Point._from_jac(jac)) == _nat().g1_mul(k, POINT.x, POINT.y)


def test_fallback_without_the_engine() -> None:
    """ECASH_TPM_NATIVE=0: the same API on gmpy2, same results (smoke test in a subprocess)."""
    script = (
        "from ecash_tpm.crypto import bn256, native\n"
        "from ecash_tpm.crypto.bn256 import G, N, multi_mult, scalar_mult, scalar_mult_secret\n"
        "assert bn256.native_engine() is None\n"
        "assert native.backend_name() == 'python (gmpy2)'\n"
        "a = scalar_mult(N - 7, G)\n"
        "assert scalar_mult_secret(N - 7, G) == a == multi_mult([(N - 7, G)])\n"
        "print(a.x, a.y)\n"
    )
    env = {**os.environ, "ECASH_TPM_NATIVE": "0"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    x, y = (int(v) for v in out.stdout.split())
    assert _nat().g1_mul(N - 7, 1, 2) == (x, y)


def test_msm_survives_a_scalar_that_mutates_the_terms() -> None:
    """The engine copies the term list first, so Python code run by ``__index__`` cannot pull
    items out from under it."""
    terms: list[tuple[object, int, int]] = []

    class Evil:
        def __index__(self) -> int:
            terms.clear()
            return 5

    terms.extend([(Evil(), 1, 2), (3, POINT.x, POINT.y)])
    want = multi_mult_reference([(5, G), (3, POINT)])
    assert _nat().g1_msm(terms) == _xy(want)
    assert _nat().g1_msm(iter([(2, 1, 2)])) == _xy(scalar_mult_reference(2, G))


def test_threads_share_the_engine() -> None:
    """Long operations run without the GIL; results stay the same from several threads, and a
    FixedBase (whose table a running computation may be reading) cannot be re-initialised."""
    from concurrent.futures import ThreadPoolExecutor

    nat = _nat()
    fb = nat.FixedBase(POINT.x, POINT.y)
    with pytest.raises(TypeError):
        fb.__init__(1, 2)
    ks = [random_k * 7919 for random_k in range(1, 41)]
    want = [nat.g1_mul(k, POINT.x, POINT.y) for k in ks]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(fb.mul, ks))
        got_msm = list(pool.map(lambda k: nat.g1_msm([(k, POINT.x, POINT.y, fb)]), ks))
        got_sec = list(pool.map(lambda k: nat.g1_mul_secret(k, POINT.x, POINT.y), ks))
    assert got == want == got_msm == got_sec

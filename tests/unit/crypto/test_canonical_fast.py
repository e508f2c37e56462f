"""The fast path of canonical_encode (issue 13 item 3) spells every value exactly as the
reference encoder does, and refuses what it refuses with the same error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto.signing import (
    CanonicalEncodingError,
    canonical_encode,
    canonical_encode_reference,
)

MAX = 2**53 - 1
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX - 2, max_value=MAX + 2),
    st.text(),
    st.sampled_from(["\ud800", "a\udfffb", "\u2028", "\x00\x1f\x7f", '"\\/']),
)
keys = st.one_of(st.text(max_size=6), st.sampled_from(["\U0001f600", "\ue000", "a", "B", "é"]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=20,
)


def _outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(value)
    except CanonicalEncodingError as exc:
        return "error", exc.code


@settings(max_examples=400, deadline=None)
@given(values)
def test_fast_path_matches_reference(value: Any) -> None:
    assert _outcome(canonical_encode, value) == _outcome(canonical_encode_reference, value)


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        b"x",
        {1: 2},
        {"a": float("nan")},
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    ],
)
def test_refusals_match(value: Any) -> None:
    assert _outcome(canonical_encode, value) == _outcome(canonical_encode_reference, value)

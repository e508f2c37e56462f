"""base64url without padding (DESIGN §3): the binascii fast path against the standard library's
urlsafe codec, on random bytes and on arbitrary (mostly invalid) text."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.errors import EncodingError


def _reference_decode(text: str) -> bytes | None:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None
    return data if base64.urlsafe_b64encode(data).rstrip(b"=").decode() == text else None


@given(st.binary(max_size=300))
def test_encode_matches_the_standard_library(data: bytes) -> None:
    text = b64u_encode(data)
    assert text == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64u_decode(text) == data


@settings(max_examples=500)
@given(st.text(alphabet="ABCxyz019-_+/=. \n\u00e9", max_size=16))
def test_decode_accepts_exactly_the_canonical_strings(text: str) -> None:
    want = _reference_decode(text) if text.isascii() else None
    if want is None:
        with pytest.raises(EncodingError):
            b64u_decode(text)
    else:
        assert b64u_decode(text) == want

"""Party keys, canonical encoding and signed objects (ecash_tpm.crypto.signing)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.signing import (
    CANONICAL_MAX_INT,
    SIGNATURE_LEN,
    CanonicalEncodingError,
    KeyFileError,
    PartyKey,
    PublicKeyError,
    SignatureInvalidError,
    SignedObjectError,
    WrongKindError,
    canonical_decode,
    canonical_digest,
    canonical_encode,
    key_id,
    load_public_key,
    sign_object,
    verify_object,
    verify_object_encoded,
    verify_signature,
)
from ecash_tpm.errors import EcashError, EncodingError, InputError, SignatureError

TAG = "ecash-tpm/v1/test/receipt"
OTHER_TAG = "ecash-tpm/v1/test/payment-request"


@pytest.fixture(scope="module")
def key() -> PartyKey:
    return PartyKey.generate()


@pytest.fixture(scope="module")
def other_key() -> PartyKey:
    return PartyKey.generate()


# --- canonical encoding ----------------------------------------------------------------------


def test_canonical_encoding_is_compact_sorted_utf8() -> None:
    obj = {"b": [1, True, None, "x"], "a": {"z": -5, "y": "é\n"}, "": False}
    assert canonical_encode(obj) == (
        '{"":false,"a":{"y":"é\\n","z":-5},"b":[1,true,null,"x"]}'.encode()
    )


def test_canonical_encoding_key_order_independent() -> None:
    a = {"amount": 500, "currency": "EUR", "nested": {"k1": 1, "k2": [1, 2]}}
    b = {"nested": {"k2": [1, 2], "k1": 1}, "currency": "EUR", "amount": 500}
    assert canonical_encode(a) == canonical_encode(b)
    assert canonical_digest(a) == canonical_digest(b)
    assert len(canonical_digest(a)) == 32


def test_canonical_keys_sorted_by_utf16_like_jcs() -> None:
    # RFC 8785 sorts by UTF-16 code units: U+1F600 (surrogates D83D..) sorts before U+FB01.
    obj = {"\ufb01": 1, "\U0001f600": 2}
    assert canonical_encode(obj) == '{"\U0001f600":2,"\ufb01":1}'.encode()


def test_canonical_escapes_control_characters_only() -> None:
    assert canonical_encode('\x01"\\/\u2028\x7f') == '"\\u0001\\"\\\\/\u2028\x7f"'.encode()


@pytest.mark.parametrize(
    "bad",
    [
        1.5,
        {"a": 0.0},
        [float("nan")],
        b"raw bytes",
        {"a": bytearray(b"x")},
        {1: "int key"},
        {"s": {1, 2}},
        object(),
        CANONICAL_MAX_INT + 1,
        -CANONICAL_MAX_INT - 1,
        "\ud800",
        {"\udfff": 1},
    ],
)
def test_canonical_rejects_unsupported(bad: Any) -> None:
    with pytest.raises(CanonicalEncodingError) as info:
        canonical_encode(bad)
    assert info.value.code == "canonical.unsupported"
    assert isinstance(info.value, EncodingError)


def test_canonical_rejects_deep_and_cyclic() -> None:
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(CanonicalEncodingError):
        canonical_encode(deep)
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(CanonicalEncodingError):
        canonical_encode(cyclic)


def test_canonical_decode_round_trip_and_strictness() -> None:
    obj = {"a": [1, "two", None], "b": {"c": True}}
    assert canonical_decode(canonical_encode(obj)) == obj
    for bad in (
        b'{"b":1,"a":2}',  # unsorted
        b'{"a": 1}',  # whitespace
        b'{"a":1,"a":1}',  # duplicate key
        b'{"a":1.0}',  # float
        b'{"a":NaN}',
        b'"\\u00e9"',  # needless escape
        b"-0",
        b"\xff",
        b"[",
    ):
        with pytest.raises(CanonicalEncodingError):
            canonical_decode(bad)


# --- keys and raw signatures -----------------------------------------------------------------


def test_sign_verify_round_trip(key: PartyKey) -> None:
    sig = key.sign(TAG, b"payload")
    assert len(sig) == SIGNATURE_LEN
    verify_signature(key.public_key, TAG, b"payload", sig)
    verify_signature(key.public_key_bytes(), TAG, b"payload", sig)


def test_signature_is_domain_separated(key: PartyKey) -> None:
    sig = key.sign(TAG, b"payload")
    with pytest.raises(SignatureInvalidError) as info:
        verify_signature(key.public_key, OTHER_TAG, b"payload", sig)
    assert info.value.code == "signature.invalid"
    assert isinstance(info.value, SignatureError)


def test_signature_fails_on_wrong_payload_key_or_bytes(key: PartyKey, other_key: PartyKey) -> None:
    sig = key.sign(TAG, b"payload")
    with pytest.raises(SignatureInvalidError):
        verify_signature(key.public_key, TAG, b"payloaD", sig)
    with pytest.raises(SignatureInvalidError):
        verify_signature(other_key.public_key, TAG, b"payload", sig)
    for bad in (sig[:-1], sig + b"\0", b"\0" * 64, bytes([sig[0] ^ 1]) + sig[1:]):
        with pytest.raises(SignatureInvalidError):
            verify_signature(key.public_key, TAG, b"payload", bad)


def test_signatures_are_low_s_and_high_s_is_refused(key: PartyKey) -> None:
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for i in range(8):
        sig = key.sign(TAG, bytes([i]))
        s = int.from_bytes(sig[32:], "big")
        assert s <= n // 2
        flipped = sig[:32] + (n - s).to_bytes(32, "big")
        with pytest.raises(SignatureInvalidError):
            verify_signature(key.public_key, TAG, bytes([i]), flipped)


def test_bad_domain_tag_is_refused(key: PartyKey) -> None:
    with pytest.raises(EncodingError):
        key.sign("not-our-prefix", b"x")


def test_key_save_load_permissions(tmp_path: Path, key: PartyKey) -> None:
    path = tmp_path / "party.pem"
    key.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = PartyKey.load(path)
    assert loaded.public_key_bytes() == key.public_key_bytes()
    assert loaded.key_id() == key.key_id() == key_id(key.public_key_bytes())
    verify_signature(key.public_key, TAG, b"m", loaded.sign(TAG, b"m"))
    assert [p.name for p in tmp_path.iterdir()] == ["party.pem"]  # no temp files left


def test_key_save_refuses_overwrite(tmp_path: Path, key: PartyKey, other_key: PartyKey) -> None:
    path = tmp_path / "party.pem"
    key.save(path)
    with pytest.raises(KeyFileError) as info:
        other_key.save(path)
    assert info.value.code == "key.file_exists"
    other_key.save(path, overwrite=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert PartyKey.load(path).key_id() == other_key.key_id()


def test_key_load_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as info:
        PartyKey.load(tmp_path / "missing.pem")
    assert info.value.code == "key.file_missing"
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a key")
    with pytest.raises(KeyFileError) as info:
        PartyKey.load(junk)
    assert info.value.code == "key.file_invalid"


def test_public_key_must_be_p256() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(PublicKeyError):
        load_public_key(p384)
    with pytest.raises(PublicKeyError):
        load_public_key(b"\x30\x03garbage")


# --- signed objects --------------------------------------------------------------------------


def test_sign_object_round_trip(key: PartyKey) -> None:
    body = {"merchant": "shop-1", "amount": 250, "nonce": b64u_encode(b"\x01" * 16)}
    doc = sign_object(key, "payment-request", body)
    assert set(doc) == {"kind", "body", "signature", "signer"}
    assert doc["signer"] == key.key_id()
    assert len(b64u_decode(doc["signature"])) == SIGNATURE_LEN
    # Survives a JSON round trip with different key order.
    wire = json.loads(json.dumps(doc, sort_keys=False))
    wire["body"] = dict(reversed(list(wire["body"].items())))
    assert verify_object(wire, key.public_key, "payment-request") == body


def test_sign_object_custom_signer_hint(key: PartyKey) -> None:
    doc = sign_object(key, "receipt", {"a": 1}, signer="cert:abcd")
    assert doc["signer"] == "cert:abcd"
    assert verify_object(doc, key.public_key_bytes(), "receipt") == {"a": 1}


def test_verify_object_wrong_kind(key: PartyKey) -> None:
    doc = sign_object(key, "receipt", {"a": 1})
    with pytest.raises(WrongKindError) as info:
        verify_object(doc, key.public_key, "payment-request")
    assert info.value.code == "signed_object.wrong_kind"
    # Relabelling the kind does not help: the signature binds it.
    relabelled = {**doc, "kind": "payment-request"}
    with pytest.raises(SignatureInvalidError):
        verify_object(relabelled, key.public_key, "payment-request")


def test_object_signature_differs_from_raw_tag(key: PartyKey) -> None:
    body = {"a": 1}
    sig = b64u_encode(key.sign(OTHER_TAG, canonical_encode(body)))
    doc = {"kind": "receipt", "body": body, "signature": sig, "signer": key.key_id()}
    with pytest.raises(SignatureInvalidError):
        verify_object(doc, key.public_key, "receipt")


def test_verify_object_tampered_body(key: PartyKey, other_key: PartyKey) -> None:
    doc = sign_object(key, "receipt", {"amount": 100, "to": "shop"})
    tampered = {**doc, "body": {"amount": 101, "to": "shop"}}
    with pytest.raises(SignatureInvalidError):
        verify_object(tampered, key.public_key, "receipt")
    extra = {**doc, "body": {**doc["body"], "extra": 1}}
    with pytest.raises(SignatureInvalidError):
        verify_object(extra, key.public_key, "receipt")
    with pytest.raises(SignatureInvalidError):
        verify_object(doc, other_key.public_key, "receipt")


def test_verify_object_shape_errors(key: PartyKey) -> None:
    doc = sign_object(key, "receipt", {"a": 1})
    for bad in (
        None,
        [],
        "x",
        {**doc, "extra": 1},
        {k: v for k, v in doc.items() if k != "signer"},
        {**doc, "body": [1]},
        {**doc, "signer": 5},
        {**doc, "signature": "!!!"},
        {**doc, "signature": 12},
    ):
        with pytest.raises(SignedObjectError):
            verify_object(bad, key.public_key, "receipt")


def test_invalid_kind_names(key: PartyKey) -> None:
    for kind in ("", "Receipt", "a/b", "x" * 65, "ü"):
        with pytest.raises(SignedObjectError):
            sign_object(key, kind, {})


def test_sign_object_rejects_float_body(key: PartyKey) -> None:
    with pytest.raises(CanonicalEncodingError):
        sign_object(key, "receipt", {"amount": 1.5})


# --- property tests --------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-CANONICAL_MAX_INT, max_value=CANONICAL_MAX_INT)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_dicts = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@settings(max_examples=150, deadline=None)
@given(json_dicts)
def test_property_encoding_deterministic(obj: dict[str, Any]) -> None:
    encoded = canonical_encode(obj)
    shuffled = dict(reversed(list(obj.items())))
    assert canonical_encode(shuffled) == encoded
    assert canonical_encode(json.loads(encoded)) == encoded
    assert canonical_decode(encoded) == obj
    # Python's json with sorted keys agrees wherever code-point and UTF-16 order agree.
    if all(ord(c) < 0xD800 for k in _all_keys(obj) for c in k):
        assert encoded == json.dumps(
            obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode("utf-8")


def _all_keys(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return list(obj) + [k for v in obj.values() for k in _all_keys(v)]
    if isinstance(obj, list):
        return [k for v in obj for k in _all_keys(v)]
    return []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_dicts)
def test_property_sign_verify_round_trip(key: PartyKey, obj: dict[str, Any]) -> None:
    doc = sign_object(key, "prop", obj)
    assert verify_object(json.loads(json.dumps(doc)), key.public_key, "prop") == obj


garbage = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=70),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
doc_like = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["prop", "other"]) | st.text(max_size=5),
        "body": garbage,
        "signature": st.text(max_size=100) | st.binary(max_size=70).map(b64u_encode) | garbage,
        "signer": garbage,
    }
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage | doc_like)
def test_property_verify_object_garbage_raises_project_errors(key: PartyKey, doc: Any) -> None:
    with pytest.raises(EcashError) as info:
        verify_object(doc, key.public_key, "prop")
    assert isinstance(info.value, InputError | SignatureError)


def test_verify_object_encoded_returns_the_signed_canonical_bytes() -> None:
    """The deposit digest is taken from these bytes: they must be canonical_encode(body)."""
    key = PartyKey.generate()
    body = {"z": [1, "é", None], "a": {"b": True}, "n": -(2**53 - 1)}
    doc = sign_object(key, "deposit", body)
    got, encoded = verify_object_encoded(doc, key.public_key, "deposit")
    assert got == body
    assert encoded == canonical_encode(body)
    assert verify_object(doc, key.public_key, "deposit") == body
    with pytest.raises(SignatureInvalidError):
        verify_object_encoded({**doc, "body": {**body, "n": 1}}, key.public_key, "deposit")

"""RFC 9474 blind RSA: official vectors, round trips, and attack / negative cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gmpy2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.blindrsa import (
    BlindRsaError,
    BlindRsaInputError,
    InvalidKeyError,
    InvalidSignatureError,
    MessageTooLongError,
    SigningFailureError,
    UnknownVariantError,
    Variant,
)
from ecash_tpm.errors import CryptoError, EcashError, InputError, SignatureError

VECTORS_PATH = Path(__file__).parents[2] / "vectors" / "rfc9474.json"
VECTORS: list[dict[str, str]] = json.loads(VECTORS_PATH.read_text())
ALL_VARIANTS = list(blindrsa.VARIANTS.values())


def _hex_int(value: str) -> int:
    return int(value, 16)


def _vector_keys(v: dict[str, str]) -> tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]:
    p, q, n, e, d = (_hex_int(v[k]) for k in ("p", "q", "n", "e", "d"))
    assert p * q == n
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e=e, n=n),
    )
    sk = numbers.private_key()
    return sk, sk.public_key()


@pytest.fixture(scope="module")
def key2048() -> rsa.RSAPrivateKey:
    return blindrsa.generate_key(2048)


@pytest.fixture(scope="module")
def other2048() -> rsa.RSAPrivateKey:
    return blindrsa.generate_key(2048)


@pytest.fixture(scope="module")
def key3072() -> rsa.RSAPrivateKey:
    return blindrsa.generate_key(3072)


def _issue(
    sk: rsa.RSAPrivateKey, msg: bytes, variant: Variant = blindrsa.DEFAULT_VARIANT
) -> tuple[bytes, bytes]:
    """Full protocol run; returns (prepared, sig)."""
    pk = sk.public_key()
    prepared = blindrsa.prepare(msg, variant.randomized)
    blinded, inv = blindrsa.blind(pk, prepared, salt_length=variant.salt_length)
    blind_sig = blindrsa.blind_sign(sk, blinded)
    sig = blindrsa.finalize(pk, prepared, blind_sig, inv, salt_length=variant.salt_length)
    return prepared, sig


# --- official vectors --------------------------------------------------------------------------


def test_vector_file_covers_all_variants() -> None:
    assert {v["name"] for v in VECTORS} == set(blindrsa.VARIANTS)
    assert len(VECTORS) == 4


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_rfc9474_vector(v: dict[str, str]) -> None:
    sk, pk = _vector_keys(v)
    variant = blindrsa.get_variant(v["name"])
    assert variant.salt_length == _hex_int(v["sLen"])
    assert variant.randomized == bool(_hex_int(v["is_randomized"]))

    msg = bytes.fromhex(v["msg"])
    prepared = blindrsa.prepare(msg, variant.randomized, prefix=bytes.fromhex(v["msg_prefix"]))
    assert prepared.hex() == v["input_msg"]

    salt = bytes.fromhex(v["salt"])
    if "encoded_msg" in v:
        encoded = blindrsa._emsa_pss_encode(prepared, pk.key_size - 1, salt)
        assert encoded.hex() == v["encoded_msg"]

    n = pk.public_numbers().n
    inv_int = _hex_int(v["inv"])
    r = int(gmpy2.invert(inv_int, n))
    blinded, inv = blindrsa.blind(pk, prepared, salt_length=variant.salt_length, salt=salt, r=r)
    assert blinded.hex() == v["blinded_msg"]
    assert inv == inv_int.to_bytes(blindrsa.modulus_len(pk), "big")

    blind_sig = blindrsa.blind_sign(sk, blinded)
    assert blind_sig.hex() == v["blind_sig"]

    sig = blindrsa.finalize(pk, prepared, blind_sig, inv, salt_length=variant.salt_length)
    assert sig.hex() == v["sig"]
    blindrsa.verify(pk, prepared, sig, salt_length=variant.salt_length)
    # The vector signature also verifies as a plain RSASSA-PSS signature.
    pk.verify(
        bytes.fromhex(v["sig"]),
        prepared,
        padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=variant.salt_length),
        hashes.SHA384(),
    )


# --- variants and errors ------------------------------------------------------------------------


def test_variant_registry() -> None:
    assert blindrsa.DEFAULT_VARIANT.name == "RSABSSA-SHA384-PSS-Randomized"
    expected = {
        "RSABSSA-SHA384-PSS-Randomized": (True, 48),
        "RSABSSA-SHA384-PSSZERO-Randomized": (True, 0),
        "RSABSSA-SHA384-PSS-Deterministic": (False, 48),
        "RSABSSA-SHA384-PSSZERO-Deterministic": (False, 0),
    }
    got = {name: (v.randomized, v.salt_length) for name, v in blindrsa.VARIANTS.items()}
    assert got == expected
    for name in expected:
        assert blindrsa.get_variant(name).name == name
    with pytest.raises(TypeError):
        blindrsa.VARIANTS["x"] = blindrsa.DEFAULT_VARIANT  # type: ignore[index]
    with pytest.raises(UnknownVariantError) as exc:
        blindrsa.get_variant("RSABSSA-SHA256-PSS-Randomized")
    assert exc.value.code == "blindrsa.unknown_variant"
    with pytest.raises(UnknownVariantError):
        blindrsa.get_variant(None)  # type: ignore[arg-type]


def test_error_codes_and_hierarchy() -> None:
    cases: list[tuple[type[EcashError], str, type[EcashError]]] = [
        (BlindRsaInputError, "blindrsa.invalid_input", InputError),
        (MessageTooLongError, "blindrsa.message_too_long", InputError),
        (InvalidKeyError, "blindrsa.invalid_key", InputError),
        (UnknownVariantError, "blindrsa.unknown_variant", InputError),
        (InvalidSignatureError, "blindrsa.invalid_signature", SignatureError),
        (SigningFailureError, "blindrsa.signing_failure", CryptoError),
    ]
    for cls, code, base in cases:
        err = cls("x")
        assert err.code == code
        assert isinstance(err, base)
        assert isinstance(err, BlindRsaError)
        assert err.to_dict()["code"] == code
    assert InvalidSignatureError("x").http_status == 400
    assert SigningFailureError("x").http_status == 500


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=[v.name for v in ALL_VARIANTS])
@pytest.mark.parametrize("bits", [2048, 3072])
def test_round_trip(
    variant: Variant, bits: int, key2048: rsa.RSAPrivateKey, key3072: rsa.RSAPrivateKey
) -> None:
    sk = key2048 if bits == 2048 else key3072
    pk = sk.public_key()
    msg = b"coin message " + bytes(range(40))
    prepared, sig = _issue(sk, msg, variant)
    assert len(sig) == bits // 8
    blindrsa.verify(pk, prepared, sig, salt_length=variant.salt_length)
    if variant.randomized:
        assert len(prepared) == 32 + len(msg)
        assert prepared.endswith(msg)
    else:
        assert prepared == msg
    # The other salt length (variant confusion) is rejected.
    other_salt = 0 if variant.salt_length else 48
    with pytest.raises(InvalidSignatureError):
        blindrsa.verify(pk, prepared, sig, salt_length=other_salt)


def test_blinding_is_fresh(key2048: rsa.RSAPrivateKey) -> None:
    pk = key2048.public_key()
    prepared = blindrsa.prepare(b"m")
    b1, inv1 = blindrsa.blind(pk, prepared)
    b2, inv2 = blindrsa.blind(pk, prepared)
    assert b1 != b2 and inv1 != inv2
    assert len(b1) == len(inv1) == 256
    assert blindrsa.prepare(b"m") != prepared  # fresh prefix each time


def test_deterministic_pss_signatures_differ_by_salt(key2048: rsa.RSAPrivateKey) -> None:
    _, s1 = _issue(key2048, b"m", blindrsa.PSS_DETERMINISTIC)
    _, s2 = _issue(key2048, b"m", blindrsa.PSS_DETERMINISTIC)
    assert s1 != s2
    _, z1 = _issue(key2048, b"m", blindrsa.PSSZERO_DETERMINISTIC)
    _, z2 = _issue(key2048, b"m", blindrsa.PSSZERO_DETERMINISTIC)
    assert z1 == z2  # no salt, no prefix: the RFC's fully deterministic variant


# --- prepare / blind input validation -----------------------------------------------------------


def test_prepare_validation() -> None:
    assert blindrsa.prepare(b"abc", False) == b"abc"
    assert blindrsa.prepare(b"abc", False, prefix=b"") == b"abc"
    assert blindrsa.prepare(b"abc", True, prefix=b"\x01" * 32) == b"\x01" * 32 + b"abc"
    with pytest.raises(BlindRsaInputError):
        blindrsa.prepare(b"abc", True, prefix=b"\x01" * 31)
    with pytest.raises(BlindRsaInputError):
        blindrsa.prepare(b"abc", False, prefix=b"\x01" * 32)
    with pytest.raises(BlindRsaInputError):
        blindrsa.prepare("abc")  # type: ignore[arg-type]
    with pytest.raises(BlindRsaInputError):
        blindrsa.prepare(b"abc", randomized=1)  # type: ignore[arg-type]


def test_blind_validation(key2048: rsa.RSAPrivateKey) -> None:
    pk = key2048.public_key()
    n = pk.public_numbers().n
    p = key2048.private_numbers().p
    prepared = blindrsa.prepare(b"m")
    with pytest.raises(BlindRsaInputError):
        blindrsa.blind(pk, prepared, salt=b"\x00" * 47)
    with pytest.raises(BlindRsaInputError):
        blindrsa.blind(pk, prepared, salt_length=-1)
    with pytest.raises(BlindRsaInputError):
        blindrsa.blind(pk, prepared, salt_length=True)  # bool is not a length
    for bad_r in (0, n, n + 1, -5, p):
        with pytest.raises(BlindRsaInputError):
            blindrsa.blind(pk, prepared, r=bad_r)
    with pytest.raises(BlindRsaInputError):
        blindrsa.blind(pk, prepared, r="7")  # type: ignore[arg-type]
    with pytest.raises(BlindRsaInputError):
        blindrsa.blind(pk, 12345)  # type: ignore[arg-type]
    with pytest.raises(MessageTooLongError) as exc:
        blindrsa.blind(pk, prepared, salt_length=256)
    assert exc.value.code == "blindrsa.message_too_long"


def test_blind_rejects_representative_sharing_a_factor(
    key2048: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    pk = key2048.public_key()
    p = key2048.private_numbers().p
    monkeypatch.setattr(blindrsa, "_emsa_pss_encode", lambda *_: (3 * p).to_bytes(256, "big"))
    with pytest.raises(BlindRsaInputError, match="coprime"):
        blindrsa.blind(pk, b"m")


def test_key_validation(key2048: rsa.RSAPrivateKey) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidKeyError):
        blindrsa.blind(small.public_key(), b"m")
    with pytest.raises(InvalidKeyError):
        blindrsa.blind_sign(small, b"\x00" * 128)
    with pytest.raises(InvalidKeyError):
        blindrsa.verify(small.public_key(), b"m", b"\x00" * 128)
    with pytest.raises(InvalidKeyError):
        blindrsa.blind(key2048, b"m")  # type: ignore[arg-type]  # private where public expected
    with pytest.raises(InvalidKeyError):
        blindrsa.blind_sign(key2048.public_key(), b"\x00" * 256)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        blindrsa.finalize(None, b"m", b"", b"")  # type: ignore[arg-type]
    for bits in (1024, 2047, "2048", True):
        with pytest.raises(InvalidKeyError):
            blindrsa.generate_key(bits)  # type: ignore[arg-type]


# --- attacks and tampering ----------------------------------------------------------------------


def test_tampering_fails_verify(key2048: rsa.RSAPrivateKey) -> None:
    pk = key2048.public_key()
    prepared, sig = _issue(key2048, b"the coin")
    blindrsa.verify(pk, prepared, sig)

    flipped = bytearray(sig)
    flipped[-1] ^= 1
    with pytest.raises(InvalidSignatureError):
        blindrsa.verify(pk, prepared, bytes(flipped))
    with pytest.raises(InvalidSignatureError):  # tampered message
        blindrsa.verify(pk, prepared[:-1] + b"X", sig)
    prefix_flipped = bytes([prepared[0] ^ 0x80]) + prepared[1:]
    with pytest.raises(InvalidSignatureError):  # tampered prefix
        blindrsa.verify(pk, prefix_flipped, sig)
    with pytest.raises(InvalidSignatureError):  # prefix dropped
        blindrsa.verify(pk, prepared[32:], sig)
    with pytest.raises(InvalidSignatureError):  # truncated / padded encodings
        blindrsa.verify(pk, prepared, sig[1:])
    with pytest.raises(InvalidSignatureError):
        blindrsa.verify(pk, prepared, b"\x00" + sig)
    n = pk.public_numbers().n
    with pytest.raises(InvalidSignatureError):  # representative >= n
        blindrsa.verify(pk, prepared, n.to_bytes(256, "big"))
    s_plus_n = int.from_bytes(sig, "big") + n
    if s_plus_n < 1 << 2048:  # same value mod n, but not the canonical encoding
        with pytest.raises(InvalidSignatureError):
            blindrsa.verify(pk, prepared, s_plus_n.to_bytes(256, "big"))


def test_wrong_key_fails(key2048: rsa.RSAPrivateKey, other2048: rsa.RSAPrivateKey) -> None:
    prepared, sig = _issue(key2048, b"coin")
    with pytest.raises(InvalidSignatureError):
        blindrsa.verify(other2048.public_key(), prepared, sig)

    # The signer answers with another key: finalize refuses to return a signature.
    pk = key2048.public_key()
    n_other = other2048.public_key().public_numbers().n
    while True:  # the other key can only sign representatives below its own modulus
        blinded, inv = blindrsa.blind(pk, prepared)
        if int.from_bytes(blinded, "big") < n_other:
            break
    wrong_blind_sig = blindrsa.blind_sign(other2048, blinded)
    with pytest.raises(InvalidSignatureError):
        blindrsa.finalize(pk, prepared, wrong_blind_sig, inv)


def test_finalize_with_wrong_inverse_fails(key2048: rsa.RSAPrivateKey) -> None:
    pk = key2048.public_key()
    prepared = blindrsa.prepare(b"coin")
    blinded, inv = blindrsa.blind(pk, prepared)
    _, other_inv = blindrsa.blind(pk, prepared)
    blind_sig = blindrsa.blind_sign(key2048, blinded)
    with pytest.raises(InvalidSignatureError):
        blindrsa.finalize(pk, prepared, blind_sig, other_inv)
    with pytest.raises(BlindRsaInputError):
        blindrsa.finalize(pk, prepared, blind_sig, b"\x00" * 256)  # inv = 0
    with pytest.raises(BlindRsaInputError):
        blindrsa.finalize(pk, prepared, blind_sig[1:], inv)
    with pytest.raises(BlindRsaInputError):
        blindrsa.finalize(pk, prepared, blind_sig, inv[1:])
    with pytest.raises(InvalidSignatureError):
        blindrsa.finalize(pk, prepared, b"\xff" * 256, inv)  # >= n: a bad answer from the signer


def test_blind_sign_rejects_out_of_range(key2048: rsa.RSAPrivateKey) -> None:
    n = key2048.public_key().public_numbers().n
    for bad in (n.to_bytes(256, "big"), (n + 1).to_bytes(256, "big"), b"\xff" * 256):
        with pytest.raises(BlindRsaInputError, match="out of range"):
            blindrsa.blind_sign(key2048, bad)
    for bad in (b"", b"\x01" * 255, b"\x00" + (n - 1).to_bytes(256, "big")):
        with pytest.raises(BlindRsaInputError):
            blindrsa.blind_sign(key2048, bad)
    # n - 1 is in range and is signed normally.
    assert len(blindrsa.blind_sign(key2048, (n - 1).to_bytes(256, "big"))) == 256


def test_fault_in_crt_half_is_caught(
    key2048: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bellcore: a faulted half gives gcd(s^e - m, n) = a prime factor; nothing may leave."""
    priv = key2048.private_numbers()
    n, e, p, q = priv.public_numbers.n, priv.public_numbers.e, priv.p, priv.q
    blinded, _ = blindrsa.blind(key2048.public_key(), blindrsa.prepare(b"coin"))
    m = int.from_bytes(blinded, "big")

    real_half = blindrsa._crt_half
    faulty: list[int] = []

    def faulted_half(c: Any, d_half: Any, prime: Any) -> Any:
        out = real_half(c, d_half, prime)
        if prime == p:
            out = (out ^ 1) % prime  # single bit flip in the p half
            faulty.append(int(out))
        return out

    monkeypatch.setattr(blindrsa, "_crt_half", faulted_half)
    with pytest.raises(SigningFailureError) as exc:
        blindrsa.blind_sign(key2048, blinded)
    assert exc.value.code == "blindrsa.signing_failure"
    assert faulty, "fault was not injected"
    assert "0x" not in str(exc.value) and str(p) not in str(exc.value)

    # Demonstrate what the check prevents: the faulted signature would factor n.
    sq = pow(m, priv.dmq1, q)
    s_bad = sq + q * ((priv.iqmp * (faulty[0] - sq)) % p)
    assert gmpy2.gcd(pow(s_bad, e, n) - m, n) == q

    monkeypatch.setattr(blindrsa, "_crt_half", real_half)
    assert len(blindrsa.blind_sign(key2048, blinded)) == 256


def test_key_with_mismatched_public_exponent_is_detected(key2048: rsa.RSAPrivateKey) -> None:
    priv = key2048.private_numbers()
    forged = rsa.RSAPrivateNumbers(
        p=priv.p,
        q=priv.q,
        d=priv.d,
        dmp1=priv.dmp1,
        dmq1=priv.dmq1,
        iqmp=priv.iqmp,
        public_numbers=rsa.RSAPublicNumbers(e=65539, n=priv.public_numbers.n),
    ).private_key(unsafe_skip_rsa_key_validation=True)
    blinded, _ = blindrsa.blind(forged.public_key(), blindrsa.prepare(b"coin"))
    with pytest.raises(SigningFailureError):
        blindrsa.blind_sign(forged, blinded)


def test_key_with_mismatched_modulus_is_detected(
    key2048: rsa.RSAPrivateKey, other2048: rsa.RSAPrivateKey
) -> None:
    """pyca refuses p*q != n itself; a wrapper key that lies about n must still be refused."""
    real = key2048.private_numbers()
    lying_numbers = rsa.RSAPrivateNumbers(
        p=real.p,
        q=real.q,
        d=real.d,
        dmp1=real.dmp1,
        dmq1=real.dmq1,
        iqmp=real.iqmp,
        public_numbers=other2048.public_key().public_numbers(),
    )

    class LyingKey(rsa.RSAPrivateKey):
        def __getattribute__(self, name: str) -> Any:
            if name == "private_numbers":
                return lambda: lying_numbers
            if name == "public_key":
                return other2048.public_key
            return getattr(key2048, name)

    LyingKey.__abstractmethods__ = frozenset()
    with pytest.raises(InvalidKeyError):
        blindrsa.blind_sign(LyingKey(), b"\x01" * 256)  # type: ignore[abstract]


# --- fuzzing: only project errors escape --------------------------------------------------------

_FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_blobs = st.one_of(st.binary(max_size=300), st.binary(min_size=256, max_size=256))


@_FUZZ
@given(msg=st.binary(max_size=64), sig=_blobs, salt_length=st.sampled_from([0, 48, 300]))
def test_fuzz_verify(key2048: rsa.RSAPrivateKey, msg: bytes, sig: bytes, salt_length: int) -> None:
    with pytest.raises(EcashError) as exc:
        blindrsa.verify(key2048.public_key(), msg, sig, salt_length=salt_length)
    assert isinstance(exc.value, BlindRsaError)


@_FUZZ
@given(msg=st.binary(max_size=64), blind_sig=_blobs, inv=_blobs)
def test_fuzz_finalize(
    key2048: rsa.RSAPrivateKey, msg: bytes, blind_sig: bytes, inv: bytes
) -> None:
    with pytest.raises(EcashError) as exc:
        blindrsa.finalize(key2048.public_key(), msg, blind_sig, inv)
    assert isinstance(exc.value, BlindRsaError)


@_FUZZ
@given(blinded=_blobs)
def test_fuzz_blind_sign(key2048: rsa.RSAPrivateKey, blinded: bytes) -> None:
    n = key2048.public_key().public_numbers().n
    try:
        out = blindrsa.blind_sign(key2048, blinded)
    except BlindRsaInputError:
        return
    # Accepted inputs are exactly the in-range, full-length ones, and the result is correct.
    assert len(blinded) == 256 and int.from_bytes(blinded, "big") < n
    assert pow(int.from_bytes(out, "big"), 65537, n) == int.from_bytes(blinded, "big")


@pytest.mark.parametrize("junk", [None, 7, "text", 1.5, [1, 2], True])
def test_non_bytes_inputs_raise_project_errors(key2048: rsa.RSAPrivateKey, junk: Any) -> None:
    pk = key2048.public_key()
    good = b"\x00" * 256
    calls = [
        lambda: blindrsa.prepare(junk),
        lambda: blindrsa.blind(pk, junk),
        lambda: blindrsa.blind(pk, b"m", salt=junk if junk is not None else b"short"),
        lambda: blindrsa.blind_sign(key2048, junk),
        lambda: blindrsa.finalize(pk, junk, good, good),
        lambda: blindrsa.finalize(pk, b"m", junk, good),
        lambda: blindrsa.finalize(pk, b"m", good, junk),
        lambda: blindrsa.finalize(pk, b"m", good, good, salt_length=junk),
        lambda: blindrsa.verify(pk, junk, good),
        lambda: blindrsa.verify(pk, b"m", junk),
    ]
    for call in calls:
        with pytest.raises(BlindRsaError):
            call()

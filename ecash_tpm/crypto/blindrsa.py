"""RSA blind signatures exactly as RFC 9474 (RSABSSA), for blind-signed coins (DESIGN §5).

pyca/cryptography exposes no raw RSA operation, so EMSA-PSS-ENCODE (SHA-384, MGF1-SHA-384) and the
private operation are implemented here. The private operation uses CRT with gmpy2's constant-time
``powmod_sec`` for both halves and checks ``s^e == m mod n`` before releasing anything, because a
faulted CRT half would otherwise leak a factor of ``n`` (Bellcore attack). Verification is
delegated to cryptography's PSS verify, so our own encoder is cross-checked on every finalize.

The function names follow the RFC: :func:`prepare`, :func:`blind`, :func:`blind_sign`,
:func:`finalize`, :func:`verify`. The default variant is RSABSSA-SHA384-PSS-Randomized; all four
RFC variants are available through :data:`VARIANTS` / :func:`get_variant`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import gmpy2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ecash_tpm.errors import CryptoError, EcashError, InputError, SignatureError

__all__ = [
    "BlindRsaError",
    "BlindRsaInputError",
    "InvalidKeyError",
    "MessageTooLongError",
    "UnknownVariantError",
    "InvalidSignatureError",
    "SigningFailureError",
    "Variant",
    "VARIANTS",
    "DEFAULT_VARIANT",
    "PSS_RANDOMIZED",
    "PSSZERO_RANDOMIZED",
    "PSS_DETERMINISTIC",
    "PSSZERO_DETERMINISTIC",
    "get_variant",
    "generate_key",
    "modulus_len",
    "prepare",
    "blind",
    "blind_sign",
    "finalize",
    "verify",
]

HASH_LEN = 48  # SHA-384 output length; also the RFC's salt length for the PSS variants
PREFIX_LEN = 32  # RFC 9474 §4.1: PrepareRandomize prepends 32 random bytes
MIN_KEY_BITS = 2048  # DESIGN §5: nothing weaker is accepted for signing or verifying
KEYGEN_BITS = (2048, 3072, 4096)
PUBLIC_EXPONENT = 65537

_BytesLike = bytes | bytearray | memoryview


# --- errors ------------------------------------------------------------------------------------


class BlindRsaError(EcashError):
    """Common base so callers can catch everything this module raises on purpose."""

    code = "blindrsa.error"


class BlindRsaInputError(BlindRsaError, InputError):
    """A malformed or out-of-range argument (wrong type, wrong length, value >= n, ...)."""

    code = "blindrsa.invalid_input"


class MessageTooLongError(BlindRsaInputError):
    """EMSA-PSS-ENCODE failed: the modulus is too short for hash + salt (RFC 9474 §4.2 step 2)."""

    code = "blindrsa.message_too_long"


class InvalidKeyError(BlindRsaInputError):
    """The key is not an RSA key of the right kind, is too small, or is internally inconsistent."""

    code = "blindrsa.invalid_key"


class UnknownVariantError(BlindRsaInputError):
    """The requested variant name is not one of the four RFC 9474 variants."""

    code = "blindrsa.unknown_variant"


class InvalidSignatureError(BlindRsaError, SignatureError):
    """The (unblinded) signature does not verify under the public key."""

    code = "blindrsa.invalid_signature"


class SigningFailureError(BlindRsaError, CryptoError):
    """The private operation produced a wrong result (fault); nothing is released."""

    code = "blindrsa.signing_failure"
    http_status = 500


# --- variants ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    """One RFC 9474 §5 variant: whether messages get a random prefix, and the PSS salt length."""

    name: str
    randomized: bool
    salt_length: int


PSS_RANDOMIZED = Variant("RSABSSA-SHA384-PSS-Randomized", True, HASH_LEN)
PSSZERO_RANDOMIZED = Variant("RSABSSA-SHA384-PSSZERO-Randomized", True, 0)
PSS_DETERMINISTIC = Variant("RSABSSA-SHA384-PSS-Deterministic", False, HASH_LEN)
PSSZERO_DETERMINISTIC = Variant("RSABSSA-SHA384-PSSZERO-Deterministic", False, 0)
DEFAULT_VARIANT = PSS_RANDOMIZED

VARIANTS: Mapping[str, Variant] = MappingProxyType(
    {
        v.name: v
        for v in (PSS_RANDOMIZED, PSSZERO_RANDOMIZED, PSS_DETERMINISTIC, PSSZERO_DETERMINISTIC)
    }
)


def get_variant(name: str) -> Variant:
    """Look a variant up by its RFC name, so configuration can name it as the RFC does."""
    if not isinstance(name, str):
        raise UnknownVariantError("variant name must be a string")
    variant = VARIANTS.get(name)
    if variant is None:
        raise UnknownVariantError(
            f"unknown RSABSSA variant {name!r}", detail={"known": sorted(VARIANTS)}
        )
    return variant


# --- helpers -----------------------------------------------------------------------------------


def _as_bytes(value: Any, what: str) -> bytes:
    """Accept bytes-like input only; anything else is a caller error, not a TypeError."""
    if isinstance(value, bool) or not isinstance(value, _BytesLike):
        raise BlindRsaInputError(
            f"{what} must be bytes, not {type(value).__name__}", detail={"field": what}
        )
    return bytes(value)


def _check_public_key(public_key: Any) -> rsa.RSAPublicKey:
    """Reject non-RSA objects and keys weaker than the project minimum."""
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise InvalidKeyError(f"expected an RSA public key, not {type(public_key).__name__}")
    if public_key.key_size < MIN_KEY_BITS:
        raise InvalidKeyError(
            f"RSA key of {public_key.key_size} bits is below the {MIN_KEY_BITS}-bit minimum",
            detail={"key_size": public_key.key_size},
        )
    return public_key


def _check_salt_length(salt_length: Any) -> int:
    """The salt length is a small non-negative int (48 or 0 for the RFC variants)."""
    if isinstance(salt_length, bool) or not isinstance(salt_length, int) or salt_length < 0:
        raise BlindRsaInputError(
            "salt_length must be a non-negative int", detail={"salt_length": repr(salt_length)}
        )
    return salt_length


def modulus_len(public_key: rsa.RSAPublicKey) -> int:
    """``modulus_len`` of RFC 9474: the byte length of n, and of every wire value."""
    return (_check_public_key(public_key).key_size + 7) // 8


def _i2osp(x: int, length: int) -> bytes:
    return int(x).to_bytes(length, "big")


def _os2ip(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _mgf1_sha384(seed: bytes, length: int) -> bytes:
    """MGF1 with SHA-384 (RFC 8017 B.2.1)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha384(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:length])


def _emsa_pss_encode(msg: bytes, em_bits: int, salt: bytes) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-384 and MGF1-SHA-384; salt chosen by caller."""
    em_len = (em_bits + 7) // 8
    s_len = len(salt)
    if em_len < HASH_LEN + s_len + 2:
        raise MessageTooLongError(
            "modulus too short for SHA-384 PSS with this salt length",
            detail={"em_len": em_len, "salt_length": s_len},
        )
    m_hash = hashlib.sha384(msg).digest()
    h = hashlib.sha384(b"\x00" * 8 + m_hash + salt).digest()
    db = b"\x00" * (em_len - s_len - HASH_LEN - 2) + b"\x01" + salt
    db_mask = _mgf1_sha384(h, em_len - HASH_LEN - 1)
    masked = bytearray((_os2ip(db) ^ _os2ip(db_mask)).to_bytes(len(db), "big"))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    return bytes(masked) + h + b"\xbc"


def _pss(salt_length: int) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=salt_length)


# --- keys --------------------------------------------------------------------------------------


def generate_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """Fresh signing key (e = 65537) of 2048, 3072 or 4096 bits; one per keyset (DESIGN §5)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in KEYGEN_BITS:
        raise InvalidKeyError(f"key size must be one of {KEYGEN_BITS}", detail={"bits": repr(bits)})
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=bits)


# --- RFC 9474 operations ----------------------------------------------------------------------


def prepare(msg: bytes, randomized: bool = True, prefix: bytes | None = None) -> bytes:
    """RFC 9474 §4.1 Prepare: ``prefix(32 random bytes) || msg`` if randomized, else ``msg``.

    The random prefix keeps a signature from being bound to a message the signer could guess;
    ``prefix`` exists only so that the RFC test vectors can be replayed.
    """
    msg = _as_bytes(msg, "msg")
    if not isinstance(randomized, bool):
        raise BlindRsaInputError("randomized must be a bool")
    if not randomized:
        if prefix is not None and len(_as_bytes(prefix, "prefix")) != 0:
            raise BlindRsaInputError("a deterministic variant takes no message prefix")
        return msg
    if prefix is None:
        prefix = secrets.token_bytes(PREFIX_LEN)
    prefix = _as_bytes(prefix, "prefix")
    if len(prefix) != PREFIX_LEN:
        raise BlindRsaInputError(
            f"message prefix must be {PREFIX_LEN} bytes", detail={"length": len(prefix)}
        )
    return prefix + msg


def blind(
    public_key: rsa.RSAPublicKey,
    prepared: bytes,
    *,
    salt_length: int = HASH_LEN,
    salt: bytes | None = None,
    r: int | None = None,
) -> tuple[bytes, bytes]:
    """RFC 9474 §4.2 Blind: returns ``(blinded_msg, inv)``, both ``modulus_len`` bytes.

    ``salt`` and ``r`` exist only to replay test vectors; in use both are drawn fresh, since a
    reused ``r`` links the blinded message to the final signature.
    """
    pk = _check_public_key(public_key)
    prepared = _as_bytes(prepared, "prepared")
    s_len = _check_salt_length(salt_length)
    if salt is None:
        salt = secrets.token_bytes(s_len)
    salt = _as_bytes(salt, "salt")
    if len(salt) != s_len:
        raise BlindRsaInputError(
            "salt length does not match salt_length",
            detail={"length": len(salt), "salt_length": s_len},
        )
    numbers = pk.public_numbers()
    n, e = numbers.n, numbers.e
    k = (pk.key_size + 7) // 8

    encoded = _emsa_pss_encode(prepared, pk.key_size - 1, salt)
    m = _os2ip(encoded)
    if gmpy2.gcd(m, n) != 1:  # step 4: a shared factor would reveal the factorisation
        raise BlindRsaInputError("message representative is not coprime to n")

    if r is None:
        while True:
            r_mpz = gmpy2.mpz(secrets.randbelow(n - 1) + 1)  # uniform in [1, n)
            if gmpy2.gcd(r_mpz, n) == 1:
                break
    else:
        if isinstance(r, bool) or not isinstance(r, int):
            raise BlindRsaInputError("r must be an int")
        if not 1 <= r < n or gmpy2.gcd(r, n) != 1:
            raise BlindRsaInputError("r must be in [1, n) and invertible mod n (invalid blind)")
        r_mpz = gmpy2.mpz(r)

    inv = gmpy2.invert(r_mpz, n)
    z = (m * gmpy2.powmod(r_mpz, e, n)) % n
    return _i2osp(z, k), _i2osp(inv, k)


def _crt_half(c: Any, d_half: Any, prime: Any) -> Any:
    """One CRT half ``c^d_half mod prime`` in constant time (secret exponent and modulus)."""
    return gmpy2.powmod_sec(c % prime, d_half, prime)


def blind_sign(private_key: rsa.RSAPrivateKey, blinded_msg: bytes) -> bytes:
    """RFC 9474 §4.3 BlindSign: RSASP1 on the blinded message, checked before release.

    The result is recomputed as ``s^e mod n`` and compared to the input: a fault in one CRT
    half would otherwise hand the requester a value whose gcd with n factors the key.
    """
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise InvalidKeyError(f"expected an RSA private key, not {type(private_key).__name__}")
    blinded_msg = _as_bytes(blinded_msg, "blinded_msg")
    pub = private_key.public_key()
    _check_public_key(pub)
    k = (pub.key_size + 7) // 8
    if len(blinded_msg) != k:
        raise BlindRsaInputError(
            "blinded message has the wrong length", detail={"length": len(blinded_msg), "k": k}
        )

    priv = private_key.private_numbers()
    n = gmpy2.mpz(priv.public_numbers.n)
    e = gmpy2.mpz(priv.public_numbers.e)
    p, q = gmpy2.mpz(priv.p), gmpy2.mpz(priv.q)
    if p * q != n:
        raise InvalidKeyError("private key factors do not match its public modulus")

    m = gmpy2.mpz(_os2ip(blinded_msg))
    if m >= n:  # RSASP1 step 1: message representative out of range
        raise BlindRsaInputError("blinded message representative out of range (m >= n)")

    sp = _crt_half(m, gmpy2.mpz(priv.dmp1), p)
    sq = _crt_half(m, gmpy2.mpz(priv.dmq1), q)
    h = (gmpy2.mpz(priv.iqmp) * (sp - sq)) % p
    s = sq + q * h

    if not 0 <= s < n or gmpy2.powmod(s, e, n) != m:
        raise SigningFailureError("signature self-check s^e == m failed; result withheld")
    return _i2osp(s, k)


def finalize(
    public_key: rsa.RSAPublicKey,
    prepared: bytes,
    blind_sig: bytes,
    inv: bytes,
    *,
    salt_length: int = HASH_LEN,
) -> bytes:
    """RFC 9474 §4.4 Finalize: unblind with ``inv`` and verify before returning the signature.

    Verifying here catches a signer that answered with the wrong key or garbage.
    """
    pk = _check_public_key(public_key)
    prepared = _as_bytes(prepared, "prepared")
    blind_sig = _as_bytes(blind_sig, "blind_sig")
    inv = _as_bytes(inv, "inv")
    s_len = _check_salt_length(salt_length)
    n = pk.public_numbers().n
    k = (pk.key_size + 7) // 8
    if len(blind_sig) != k:
        raise BlindRsaInputError(
            "unexpected input size for blind_sig", detail={"length": len(blind_sig), "k": k}
        )
    if len(inv) != k:
        raise BlindRsaInputError(
            "unexpected input size for inv", detail={"length": len(inv), "k": k}
        )
    z = _os2ip(blind_sig)
    r_inv = _os2ip(inv)
    if z >= n:  # the signer's answer, not the caller's: reported like any other bad signature
        raise InvalidSignatureError("blind signature representative out of range (>= n)")
    if not 0 < r_inv < n:
        raise BlindRsaInputError("inverse out of range")
    sig = _i2osp((gmpy2.mpz(z) * r_inv) % n, k)
    verify(pk, prepared, sig, salt_length=s_len)
    return sig


def verify(
    public_key: rsa.RSAPublicKey,
    prepared: bytes,
    sig: bytes,
    *,
    salt_length: int = HASH_LEN,
) -> None:
    """RSASSA-PSS-VERIFY (SHA-384, MGF1-SHA-384) of a finalized signature; raises if invalid.

    Uses cryptography's PSS verify so that our encoder is checked against an independent one.
    """
    pk = _check_public_key(public_key)
    prepared = _as_bytes(prepared, "prepared")
    sig = _as_bytes(sig, "sig")
    s_len = _check_salt_length(salt_length)
    k = (pk.key_size + 7) // 8
    # RFC 8017 §8.1.2 step 1: exact length; OpenSSL alone would accept shorter encodings.
    if len(sig) != k:
        raise InvalidSignatureError("signature has the wrong length", detail={"length": len(sig)})
    try:
        pk.verify(sig, prepared, _pss(s_len), hashes.SHA384())
    except InvalidSignature:
        raise InvalidSignatureError("RSABSSA signature does not verify") from None
    except ValueError as exc:  # e.g. salt length too large for the modulus
        raise InvalidSignatureError(f"RSABSSA signature does not verify: {exc}") from None

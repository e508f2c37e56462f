"""TPM2_MakeCredential in pure Python (TPM 2.0 Library Part 1 §24, Part 3 §12.6).

The issuer encrypts a secret to the device's EK so that only a TPM that holds both the EK and an
object with the given Name (the AK) can recover it with TPM2_ActivateCredential. Doing this in
Python means the issuer needs no TPM of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ecash_tpm.attest.errors import (
    CredentialInputError,
    CredentialKeyError,
    CredentialUnsupportedError,
)
from ecash_tpm.attest.wire import (
    EccParameters,
    EccPoint,
    ObjectAttributes,
    PublicArea,
    RsaParameters,
    SymDef,
    TpmAlg,
    as_public_area,
    crypto_curve,
    crypto_hash,
    hash_size,
    parse_name,
    tpm2b,
    u32,
)
from ecash_tpm.errors import WireFormatError

IDENTITY_LABEL = b"IDENTITY"
STORAGE_LABEL = b"STORAGE"
INTEGRITY_LABEL = b"INTEGRITY"

_HASHLIB: Mapping[TpmAlg, str] = MappingProxyType(
    {
        TpmAlg.SHA1: "sha1",
        TpmAlg.SHA256: "sha256",
        TpmAlg.SHA384: "sha384",
        TpmAlg.SHA512: "sha512",
    }
)


def _hashlib_name(alg: TpmAlg) -> str:
    try:
        return _HASHLIB[alg]
    except KeyError:
        raise CredentialUnsupportedError(f"name algorithm {alg.name} is not supported") from None


def _with_nul(label: bytes) -> bytes:
    """Labels are used with their terminating NUL octet (Part 1 §11.4.10.1)."""
    return label if label.endswith(b"\0") else label + b"\0"


def kdfa(
    hash_alg: TpmAlg, key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int
) -> bytes:
    """KDFa (SP 800-108 counter mode with HMAC), Part 1 §11.4.10.2.

    K(i) = HMAC(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32).
    """
    if bits <= 0 or bits % 8:
        raise CredentialInputError("KDFa output must be a positive whole number of bytes")
    name = _hashlib_name(hash_alg)
    suffix = _with_nul(label) + context_u + context_v + u32(bits)
    out = b""
    counter = 1
    while len(out) * 8 < bits:
        out += hmac.new(key, u32(counter) + suffix, name).digest()
        counter += 1
    return out[: bits // 8]


def kdfe(
    hash_alg: TpmAlg, z: bytes, label: bytes, party_u: bytes, party_v: bytes, bits: int
) -> bytes:
    """KDFe (SP 800-56A concatenation KDF), Part 1 §11.4.10.3.

    K(i) = H([i]32 || Z || label || 0x00 || partyUInfo || partyVInfo).
    """
    if bits <= 0 or bits % 8:
        raise CredentialInputError("KDFe output must be a positive whole number of bytes")
    name = _hashlib_name(hash_alg)
    suffix = z + _with_nul(label) + party_u + party_v
    out = b""
    counter = 1
    while len(out) * 8 < bits:
        out += hashlib.new(name, u32(counter) + suffix).digest()
        counter += 1
    return out[: bits // 8]


def aes_cfb_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """AES-CFB128 with a zero IV, as the TPM uses for credentials (Part 1 §11.4.6.3).

    Built on the AES block function because ``cryptography`` moved CFB to its "decrepit"
    namespace; CFB with a full-block feedback is: C_i = P_i XOR E_K(C_{i-1}), C_0 = IV.
    """
    # ECB on single blocks is the raw AES block function; the CFB chaining is below.
    block = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    out = bytearray()
    feedback = bytes(16)
    for i in range(0, len(plaintext), 16):
        stream = block.update(feedback)
        chunk = bytes(a ^ b for a, b in zip(plaintext[i : i + 16], stream, strict=False))
        out += chunk
        feedback = chunk if len(chunk) == 16 else feedback
    return bytes(out)


def _check_ek(ek: PublicArea) -> SymDef:
    """The EK's symmetric definition, after checking the EK is a key MakeCredential can use."""
    attrs = ek.attributes
    needed = ObjectAttributes.RESTRICTED | ObjectAttributes.DECRYPT
    if (attrs & needed) != needed or attrs & ObjectAttributes.SIGN_ENCRYPT:
        raise CredentialKeyError(
            "MakeCredential needs a restricted decryption key (an EK or other storage key)",
            detail={"attributes": int(attrs)},
        )
    if ek.name_alg not in _HASHLIB:
        raise CredentialUnsupportedError(f"EK name algorithm {ek.name_alg.name} not supported")
    sym = (
        ek.parameters.symmetric
        if isinstance(ek.parameters, RsaParameters | EccParameters)
        else None
    )
    if sym is None or sym.algorithm != TpmAlg.AES or sym.mode != TpmAlg.CFB:
        raise CredentialUnsupportedError("EK symmetric definition must be AES in CFB mode")
    return sym


def _rsa_seed(ek: PublicArea, key: rsa.RSAPublicKey) -> tuple[bytes, bytes]:
    """Seed encrypted with RSA-OAEP(nameAlg) and label "IDENTITY\\0" (Part 1 Annex B.10.3)."""
    seed = os.urandom(hash_size(ek.name_alg))
    h = crypto_hash(ek.name_alg)
    try:
        encrypted = key.encrypt(
            seed,
            padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=_with_nul(IDENTITY_LABEL)),
        )
    except ValueError as exc:
        raise CredentialUnsupportedError(f"RSA EK cannot encrypt the seed: {exc}") from None
    return seed, encrypted


def _ecc_seed(ek: PublicArea, key: ec.EllipticCurvePublicKey) -> tuple[bytes, bytes]:
    """Seed from one-pass ECDH with an ephemeral key and KDFe "IDENTITY" (Part 1 Annex C.6.1).

    The encrypted secret is the ephemeral public point as a TPMS_ECC_POINT.
    """
    params = ek.ecc
    ek_point = ek.ecc_point()
    size = (key.curve.key_size + 7) // 8
    ephemeral = ec.generate_private_key(crypto_curve(params.curve))
    z = ephemeral.exchange(ec.ECDH(), key)  # x-coordinate of the shared point, field-size bytes
    pn = ephemeral.public_key().public_numbers()
    eph = EccPoint(pn.x.to_bytes(size, "big"), pn.y.to_bytes(size, "big"))
    seed = kdfe(ek.name_alg, z, IDENTITY_LABEL, eph.x, ek_point.x, 8 * hash_size(ek.name_alg))
    return seed, eph.marshal()


def make_credential(
    ek_public: bytes | PublicArea, ak_name: bytes, secret: bytes
) -> tuple[bytes, bytes]:
    """TPM2_MakeCredential: return marshalled ``(TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET)``.

    ``ek_public`` is the EK's TPM2B_PUBLIC (RSA with OAEP, or ECC P-256/P-384/P-521 with
    ECDH), ``ak_name`` the Name of the object the credential is bound to (nameAlg || digest),
    ``secret`` at most one EK-nameAlg digest long. The symmetric key size comes from the EK
    template (AES-128 for the low-range EKs, AES-256 for the high-range P-384 EK).
    """
    try:
        ek = as_public_area(ek_public)
    except WireFormatError as exc:
        raise CredentialUnsupportedError(f"EK public area does not parse: {exc.message}") from None
    if not isinstance(secret, bytes) or not isinstance(ak_name, bytes):
        raise CredentialInputError("secret and AK name must be bytes")
    try:
        parse_name(ak_name)
    except WireFormatError as exc:
        raise CredentialInputError(f"AK name is not a digest Name: {exc.message}") from None
    sym = _check_ek(ek)
    digest_size = hash_size(ek.name_alg)
    if not 0 < len(secret) <= digest_size:
        raise CredentialInputError(
            f"credential secret must be 1..{digest_size} bytes (EK nameAlg digest size)",
            detail={"length": len(secret), "max": digest_size},
        )
    try:
        key = ek.to_crypto_key()
    except WireFormatError as exc:
        raise CredentialUnsupportedError(f"EK key is not usable: {exc.message}") from None
    if isinstance(key, rsa.RSAPublicKey):
        seed, encrypted_secret = _rsa_seed(ek, key)
    else:
        seed, encrypted_secret = _ecc_seed(ek, key)

    sym_key = kdfa(ek.name_alg, seed, STORAGE_LABEL, ak_name, b"", sym.key_bits)
    enc_identity = aes_cfb_encrypt(sym_key, tpm2b(secret))
    hmac_key = kdfa(ek.name_alg, seed, INTEGRITY_LABEL, b"", b"", 8 * digest_size)
    outer_hmac = hmac.new(hmac_key, enc_identity + ak_name, _hashlib_name(ek.name_alg)).digest()
    id_object = tpm2b(tpm2b(outer_hmac) + enc_identity)
    return id_object, tpm2b(encrypted_secret)

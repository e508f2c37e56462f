"""TPM 2.0 constants (Part 2): algorithm, curve, attribute and attestation-type ids, size limits.

Kept apart from the parsers so every layer of the wire package reads the same numbers, and so a
reader of the spec can check them against the tables in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import IntEnum, IntFlag
from types import MappingProxyType

from cryptography.hazmat.primitives import hashes

from ecash_tpm.attest.errors import WireUnsupportedError


class TpmAlg(IntEnum):
    """TPM_ALG_ID values (Part 2, table 9) that this verifier knows."""

    RSA = 0x0001
    TDES = 0x0003
    SHA1 = 0x0004
    HMAC = 0x0005
    AES = 0x0006
    MGF1 = 0x0007
    KEYEDHASH = 0x0008
    XOR = 0x000A
    SHA256 = 0x000B
    SHA384 = 0x000C
    SHA512 = 0x000D
    NULL = 0x0010
    SM3_256 = 0x0012
    SM4 = 0x0013
    RSASSA = 0x0014
    RSAES = 0x0015
    RSAPSS = 0x0016
    OAEP = 0x0017
    ECDSA = 0x0018
    ECDH = 0x0019
    ECDAA = 0x001A
    SM2 = 0x001B
    ECSCHNORR = 0x001C
    ECMQV = 0x001D
    KDF1_SP800_56A = 0x0020
    KDF2 = 0x0021
    KDF1_SP800_108 = 0x0022
    ECC = 0x0023
    SYMCIPHER = 0x0025
    CAMELLIA = 0x0026
    SHA3_256 = 0x0027
    SHA3_384 = 0x0028
    SHA3_512 = 0x0029
    CTR = 0x0040
    OFB = 0x0041
    CBC = 0x0042
    CFB = 0x0043
    ECB = 0x0044


class EccCurve(IntEnum):
    """TPM_ECC_CURVE values (Part 2, table 10)."""

    NIST_P192 = 0x0001
    NIST_P224 = 0x0002
    NIST_P256 = 0x0003
    NIST_P384 = 0x0004
    NIST_P521 = 0x0005
    BN_P256 = 0x0010
    BN_P638 = 0x0011
    SM2_P256 = 0x0020


class ObjectAttributes(IntFlag):
    """TPMA_OBJECT bits (Part 2, table 31)."""

    FIXED_TPM = 1 << 1
    ST_CLEAR = 1 << 2
    FIXED_PARENT = 1 << 4
    SENSITIVE_DATA_ORIGIN = 1 << 5
    USER_WITH_AUTH = 1 << 6
    ADMIN_WITH_POLICY = 1 << 7
    NO_DA = 1 << 10
    ENCRYPTED_DUPLICATION = 1 << 11
    RESTRICTED = 1 << 16
    DECRYPT = 1 << 17
    SIGN_ENCRYPT = 1 << 18
    X509_SIGN = 1 << 19


class AttestType(IntEnum):
    """TPMI_ST_ATTEST values (Part 2, table 19)."""

    NV = 0x8014
    COMMAND_AUDIT = 0x8015
    SESSION_AUDIT = 0x8016
    CERTIFY = 0x8017
    QUOTE = 0x8018
    TIME = 0x8019
    CREATION = 0x801A
    NV_DIGEST = 0x801C


TPM_GENERATED_VALUE = 0xFF544347
"""Magic every TPM-made TPMS_ATTEST starts with; a restricted key signs nothing else."""

HASH_SIZES: Mapping[TpmAlg, int] = MappingProxyType(
    {
        TpmAlg.SHA1: 20,
        TpmAlg.SHA256: 32,
        TpmAlg.SHA384: 48,
        TpmAlg.SHA512: 64,
        TpmAlg.SM3_256: 32,
        TpmAlg.SHA3_256: 32,
        TpmAlg.SHA3_384: 48,
        TpmAlg.SHA3_512: 64,
    }
)

_HASHLIB_NAMES: Mapping[TpmAlg, str] = MappingProxyType(
    {
        TpmAlg.SHA1: "sha1",
        TpmAlg.SHA256: "sha256",
        TpmAlg.SHA384: "sha384",
        TpmAlg.SHA512: "sha512",
        TpmAlg.SM3_256: "sm3",
        TpmAlg.SHA3_256: "sha3_256",
        TpmAlg.SHA3_384: "sha3_384",
        TpmAlg.SHA3_512: "sha3_512",
    }
)

# Maximum sizes of TPM2B buffers (Part 2 with the reference implementation's limits, generous
# enough for every real TPM: 4096-bit RSA, BN_P638 coordinates, SHA-512 digests).
MAX_DIGEST = 64
MAX_NAME = 2 + MAX_DIGEST
MAX_DATA = 2 + MAX_DIGEST
MAX_RSA_BYTES = 512
MAX_ECC_BYTES = 128
MAX_NV_BUFFER = 2048
MAX_PCR_BANKS = 16
MAX_PCR_SELECT = 32

_CURVE_SIZES: Mapping[EccCurve, int] = MappingProxyType(
    {
        EccCurve.NIST_P192: 24,
        EccCurve.NIST_P224: 28,
        EccCurve.NIST_P256: 32,
        EccCurve.NIST_P384: 48,
        EccCurve.NIST_P521: 66,
        EccCurve.BN_P256: 32,
        EccCurve.BN_P638: 80,
        EccCurve.SM2_P256: 32,
    }
)


def hash_size(alg: TpmAlg | int) -> int:
    """Digest size in bytes of a TPM hash algorithm (refusing non-hash algorithms)."""
    try:
        return HASH_SIZES[TpmAlg(alg)]
    except (KeyError, ValueError):
        raise WireUnsupportedError(
            f"not a supported hash algorithm: {alg:#06x}", detail={"alg": int(alg)}
        ) from None


def curve_size(curve: EccCurve | int) -> int:
    """Coordinate size in bytes of a TPM curve."""
    try:
        return _CURVE_SIZES[EccCurve(curve)]
    except (KeyError, ValueError):
        raise WireUnsupportedError(
            f"unsupported curve {curve:#06x}", detail={"curve": int(curve)}
        ) from None


def tpm_hash(alg: TpmAlg | int, data: bytes) -> bytes:
    """Hash ``data`` with a TPM hash algorithm (hashlib: constant, well-tested, no state)."""
    hash_size(alg)
    try:
        h = hashlib.new(_HASHLIB_NAMES[TpmAlg(alg)])
    except ValueError:
        raise WireUnsupportedError(f"hash {TpmAlg(alg).name} not available here") from None
    h.update(data)
    return h.digest()


def crypto_hash(alg: TpmAlg | int) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash object for a TPM hash algorithm (for signatures, HMAC, OAEP)."""
    table: dict[TpmAlg, type[hashes.HashAlgorithm]] = {
        TpmAlg.SHA1: hashes.SHA1,
        TpmAlg.SHA256: hashes.SHA256,
        TpmAlg.SHA384: hashes.SHA384,
        TpmAlg.SHA512: hashes.SHA512,
        TpmAlg.SHA3_256: hashes.SHA3_256,
        TpmAlg.SHA3_384: hashes.SHA3_384,
        TpmAlg.SHA3_512: hashes.SHA3_512,
        TpmAlg.SM3_256: hashes.SM3,
    }
    hash_size(alg)
    return table[TpmAlg(alg)]()

"""TPM 2.0 wire structures (TCG TPM 2.0 Library, Part 2), parsed with explicit bounds checks.

The verifier sees these bytes from an untrusted host, so every read is bounds-checked, every
``TPM2B`` size is checked against the structure's maximum, unknown algorithms and tags are
refused, and parsers that take a whole buffer refuse trailing bytes. Only
:class:`~ecash_tpm.errors.WireFormatError` subclasses escape from here; nothing in this module
imports a TPM library.

Formats accepted (the ones tpm2-tools and tpm2-pytss write): ``TPM2B_PUBLIC`` (``tpm2_readpublic
-o``, ``tpm2_createak -u``, ``TPM2B_PUBLIC.marshal()``), ``TPMS_ATTEST`` (``tpm2_quote -m``,
``tpm2_certify -o``) and ``TPMT_SIGNATURE`` (``tpm2_quote -s`` in the default ``tss`` format).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from types import MappingProxyType

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ecash_tpm.attest.errors import (
    WireSizeError,
    WireTrailingDataError,
    WireTruncatedError,
    WireUnsupportedError,
    WireValueError,
)

# --- constants -------------------------------------------------------------------------------


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

_SYM_ALGS = frozenset({TpmAlg.AES, TpmAlg.SM4, TpmAlg.CAMELLIA})
_SYM_MODES = frozenset({TpmAlg.CTR, TpmAlg.OFB, TpmAlg.CBC, TpmAlg.CFB, TpmAlg.ECB, TpmAlg.NULL})
_RSA_SCHEMES = frozenset({TpmAlg.NULL, TpmAlg.RSASSA, TpmAlg.RSAPSS, TpmAlg.RSAES, TpmAlg.OAEP})
_ECC_SCHEMES = frozenset(
    {
        TpmAlg.NULL,
        TpmAlg.ECDSA,
        TpmAlg.ECDAA,
        TpmAlg.SM2,
        TpmAlg.ECSCHNORR,
        TpmAlg.ECDH,
        TpmAlg.ECMQV,
    }
)
_KDF_SCHEMES = frozenset(
    {TpmAlg.NULL, TpmAlg.MGF1, TpmAlg.KDF1_SP800_56A, TpmAlg.KDF2, TpmAlg.KDF1_SP800_108}
)
_ECC_SIG_ALGS = frozenset({TpmAlg.ECDSA, TpmAlg.ECDAA, TpmAlg.SM2, TpmAlg.ECSCHNORR})
_RSA_SIG_ALGS = frozenset({TpmAlg.RSASSA, TpmAlg.RSAPSS})

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


# --- reading and writing ---------------------------------------------------------------------


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise WireValueError(f"{what} must be bytes, not {type(data).__name__}")


class Reader:
    """A cursor over a byte string whose every read is bounds-checked.

    Errors name the structure being read (``what``) and the offset, so that a rejected blob can
    be diagnosed without a debugger.
    """

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = _as_bytes(data, what)
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self._data) - self._pos

    def take(self, n: int, field: str) -> bytes:
        """The next ``n`` bytes, or :class:`WireTruncatedError`."""
        if n < 0 or self._pos + n > len(self._data):
            raise WireTruncatedError(
                f"{self.what}: truncated reading {field} ({n} bytes at offset {self._pos},"
                f" {self.remaining} left)",
                detail={"structure": self.what, "field": field, "offset": self._pos},
            )
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u8(self, field: str) -> int:
        """An unsigned byte."""
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        """A big-endian UINT16."""
        return int(struct.unpack(">H", self.take(2, field))[0])

    def u32(self, field: str) -> int:
        """A big-endian UINT32."""
        return int(struct.unpack(">I", self.take(4, field))[0])

    def u64(self, field: str) -> int:
        """A big-endian UINT64."""
        return int(struct.unpack(">Q", self.take(8, field))[0])

    def tpm2b(self, max_size: int, field: str) -> bytes:
        """A TPM2B: UINT16 size then that many bytes, the size bounded by the type's maximum."""
        size = self.u16(field + ".size")
        if size > max_size:
            raise WireSizeError(
                f"{self.what}: {field} has size {size}, more than its maximum {max_size}",
                detail={"structure": self.what, "field": field, "size": size},
            )
        return self.take(size, field)

    def alg(self, field: str, allowed: Iterable[TpmAlg] | None = None) -> TpmAlg:
        """A TPM_ALG_ID, refused if unknown or not in ``allowed``."""
        value = self.u16(field)
        try:
            alg = TpmAlg(value)
        except ValueError:
            raise WireUnsupportedError(
                f"{self.what}: unknown algorithm {value:#06x} in {field}",
                detail={"structure": self.what, "field": field, "alg": value},
            ) from None
        if allowed is not None and alg not in frozenset(allowed):
            raise WireUnsupportedError(
                f"{self.what}: algorithm {alg.name} not allowed in {field}",
                detail={"structure": self.what, "field": field, "alg": value},
            )
        return alg

    def hash_alg(self, field: str, *, allow_null: bool = False) -> TpmAlg:
        """A TPMI_ALG_HASH (optionally +NULL)."""
        allowed = set(HASH_SIZES)
        if allow_null:
            allowed.add(TpmAlg.NULL)
        return self.alg(field, allowed)

    def done(self) -> None:
        """Refuse trailing bytes: a structure that must fill its buffer exactly."""
        if self.remaining:
            raise WireTrailingDataError(
                f"{self.what}: {self.remaining} trailing bytes after the structure",
                detail={"structure": self.what, "trailing": self.remaining},
            )


def u16(value: int) -> bytes:
    """Marshal a UINT16."""
    return struct.pack(">H", value)


def u32(value: int) -> bytes:
    """Marshal a UINT32."""
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    """Marshal a UINT64."""
    return struct.pack(">Q", value)


def tpm2b(data: bytes) -> bytes:
    """Marshal a TPM2B: UINT16 size || data."""
    if len(data) > 0xFFFF:
        raise WireSizeError(f"TPM2B payload of {len(data)} bytes does not fit a UINT16 size")
    return u16(len(data)) + data


# --- public areas ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SymDef:
    """TPMT_SYM_DEF_OBJECT: the symmetric algorithm of a storage/EK key (NULL for signing keys)."""

    algorithm: TpmAlg = TpmAlg.NULL
    key_bits: int = 0
    mode: TpmAlg = TpmAlg.NULL

    def marshal(self) -> bytes:
        """Wire form."""
        if self.algorithm == TpmAlg.NULL:
            return u16(TpmAlg.NULL)
        return u16(self.algorithm) + u16(self.key_bits) + u16(self.mode)


@dataclass(frozen=True)
class Scheme:
    """A TPMT_*_SCHEME / TPMT_KDF_SCHEME: scheme id, its hash (NULL if none) and ECDAA count."""

    scheme: TpmAlg = TpmAlg.NULL
    hash_alg: TpmAlg = TpmAlg.NULL
    count: int = 0
    kdf: TpmAlg = TpmAlg.NULL

    def marshal(self) -> bytes:
        """Wire form (details present only for schemes that have them)."""
        if self.scheme in (TpmAlg.NULL, TpmAlg.RSAES):
            return u16(self.scheme)
        out = u16(self.scheme) + u16(self.hash_alg)
        if self.scheme == TpmAlg.ECDAA:
            out += u16(self.count)
        elif self.scheme == TpmAlg.XOR:
            out += u16(self.kdf)
        return out


@dataclass(frozen=True)
class RsaParameters:
    """TPMS_RSA_PARMS."""

    symmetric: SymDef
    scheme: Scheme
    key_bits: int
    exponent: int

    def marshal(self) -> bytes:
        """Wire form."""
        return (
            self.symmetric.marshal()
            + self.scheme.marshal()
            + u16(self.key_bits)
            + u32(self.exponent)
        )


@dataclass(frozen=True)
class EccParameters:
    """TPMS_ECC_PARMS."""

    symmetric: SymDef
    scheme: Scheme
    curve: EccCurve
    kdf: Scheme

    def marshal(self) -> bytes:
        """Wire form."""
        return (
            self.symmetric.marshal()
            + self.scheme.marshal()
            + u16(self.curve)
            + (self.kdf.marshal())
        )


@dataclass(frozen=True)
class KeyedHashParameters:
    """TPMS_KEYEDHASH_PARMS."""

    scheme: Scheme

    def marshal(self) -> bytes:
        """Wire form."""
        return self.scheme.marshal()


@dataclass(frozen=True)
class SymCipherParameters:
    """TPMS_SYMCIPHER_PARMS."""

    symmetric: SymDef

    def marshal(self) -> bytes:
        """Wire form."""
        return self.symmetric.marshal()


PublicParameters = RsaParameters | EccParameters | KeyedHashParameters | SymCipherParameters


@dataclass(frozen=True)
class EccPoint:
    """TPMS_ECC_POINT: big-endian coordinates as the TPM sent them."""

    x: bytes
    y: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.x) + tpm2b(self.y)

    def as_ints(self) -> tuple[int, int]:
        """The coordinates as integers."""
        return int.from_bytes(self.x, "big"), int.from_bytes(self.y, "big")


PublicUnique = bytes | EccPoint


@dataclass(frozen=True)
class PublicArea:
    """A parsed TPMT_PUBLIC. ``raw`` is the exact marshalled TPMT_PUBLIC the Name is taken of."""

    type: TpmAlg
    name_alg: TpmAlg
    attributes: ObjectAttributes
    auth_policy: bytes
    parameters: PublicParameters
    unique: PublicUnique
    raw: bytes

    @property
    def name(self) -> bytes:
        """The object's Name: nameAlg || H_nameAlg(TPMT_PUBLIC)."""
        if self.name_alg == TpmAlg.NULL:
            raise WireUnsupportedError("an object with nameAlg NULL has no digest Name")
        return u16(self.name_alg) + tpm_hash(self.name_alg, self.raw)

    def marshal_tpm2b(self) -> bytes:
        """The TPM2B_PUBLIC wire form (what tpm2-tools writes with ``-u``/``-o``)."""
        return tpm2b(self.raw)

    @property
    def rsa(self) -> RsaParameters:
        """RSA parameters, or a wire error if this is not an RSA key."""
        if not isinstance(self.parameters, RsaParameters):
            raise WireUnsupportedError("not an RSA public area")
        return self.parameters

    @property
    def ecc(self) -> EccParameters:
        """ECC parameters, or a wire error if this is not an ECC key."""
        if not isinstance(self.parameters, EccParameters):
            raise WireUnsupportedError("not an ECC public area")
        return self.parameters

    def ecc_point(self) -> EccPoint:
        """The public point of an ECC key (any curve, including BN_P256)."""
        if not isinstance(self.unique, EccPoint):
            raise WireUnsupportedError("not an ECC public area")
        return self.unique

    def to_crypto_key(self) -> RSAPublicKey | EllipticCurvePublicKey:
        """A ``cryptography`` public key (RSA, NIST P-256/P-384/P-521), validated.

        BN_P256 keys are refused here: ``cryptography`` has no such curve; use
        :meth:`ecc_point` and the project's own BN arithmetic instead.
        """
        if isinstance(self.parameters, RsaParameters):
            return _rsa_key(self.parameters, self.unique)
        if isinstance(self.parameters, EccParameters):
            return _ecc_key(self.parameters, self.unique)
        raise WireUnsupportedError(f"{self.type.name} public area has no asymmetric key")


_RSA_KEY_BITS = frozenset({1024, 2048, 3072, 4096})


def _rsa_key(params: RsaParameters, unique: PublicUnique) -> rsa.RSAPublicKey:
    if not isinstance(unique, bytes):
        raise WireValueError("RSA public area without a modulus")
    if params.key_bits not in _RSA_KEY_BITS:
        raise WireUnsupportedError(f"unsupported RSA key size {params.key_bits}")
    if len(unique) != params.key_bits // 8:
        raise WireValueError(f"RSA modulus is {len(unique)} bytes but keyBits is {params.key_bits}")
    n = int.from_bytes(unique, "big")
    if n.bit_length() != params.key_bits:
        raise WireValueError("RSA modulus does not have keyBits bits")
    e = params.exponent or 65537
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise WireValueError(f"invalid RSA public key: {exc}") from None


_CRYPTO_CURVES: Mapping[EccCurve, type[ec.EllipticCurve]] = MappingProxyType(
    {
        EccCurve.NIST_P256: ec.SECP256R1,
        EccCurve.NIST_P384: ec.SECP384R1,
        EccCurve.NIST_P521: ec.SECP521R1,
    }
)


def crypto_curve(curve: EccCurve) -> ec.EllipticCurve:
    """The ``cryptography`` curve object for a NIST curve."""
    try:
        return _CRYPTO_CURVES[curve]()
    except KeyError:
        raise WireUnsupportedError(
            f"curve {curve.name} is not supported for this operation"
        ) from None


def ecc_point_bytes(point: EccPoint, curve: EccCurve) -> tuple[bytes, bytes]:
    """Both coordinates left-padded to the curve size (refusing oversized ones)."""
    size = curve_size(curve)
    if len(point.x) > size or len(point.y) > size:
        raise WireValueError(f"ECC coordinate longer than the {curve.name} field size")
    return point.x.rjust(size, b"\0"), point.y.rjust(size, b"\0")


def _ecc_key(params: EccParameters, unique: PublicUnique) -> ec.EllipticCurvePublicKey:
    if not isinstance(unique, EccPoint):
        raise WireValueError("ECC public area without a point")
    curve = crypto_curve(params.curve)
    x, y = ecc_point_bytes(unique, params.curve)
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + x + y)
    except ValueError:
        raise WireValueError(f"public point is not on {params.curve.name}") from None


def _read_symdef(r: Reader, field: str) -> SymDef:
    alg = r.alg(field + ".algorithm", _SYM_ALGS | {TpmAlg.NULL})
    if alg == TpmAlg.NULL:
        return SymDef()
    bits = r.u16(field + ".keyBits")
    if bits not in (128, 192, 256):
        raise WireValueError(f"{r.what}: symmetric key size {bits} is not 128, 192 or 256")
    mode = r.alg(field + ".mode", _SYM_MODES)
    return SymDef(alg, bits, mode)


def _read_scheme(r: Reader, field: str, allowed: frozenset[TpmAlg]) -> Scheme:
    scheme = r.alg(field + ".scheme", allowed)
    if scheme in (TpmAlg.NULL, TpmAlg.RSAES):
        return Scheme(scheme)
    hash_alg = r.hash_alg(field + ".hashAlg")
    if scheme == TpmAlg.ECDAA:
        return Scheme(scheme, hash_alg, count=r.u16(field + ".count"))
    if scheme == TpmAlg.XOR:
        return Scheme(scheme, hash_alg, kdf=r.alg(field + ".kdf", _KDF_SCHEMES))
    return Scheme(scheme, hash_alg)


def _read_curve(r: Reader, field: str) -> EccCurve:
    value = r.u16(field)
    try:
        return EccCurve(value)
    except ValueError:
        raise WireUnsupportedError(
            f"{r.what}: unknown curve {value:#06x}", detail={"curve": value}
        ) from None


def _read_public(
    r: Reader,
) -> tuple[TpmAlg, TpmAlg, ObjectAttributes, bytes, PublicParameters, PublicUnique]:
    obj_type = r.alg("type", (TpmAlg.RSA, TpmAlg.ECC, TpmAlg.KEYEDHASH, TpmAlg.SYMCIPHER))
    name_alg = r.hash_alg("nameAlg", allow_null=True)
    attributes = ObjectAttributes(r.u32("objectAttributes"))
    auth_policy = r.tpm2b(MAX_DIGEST, "authPolicy")
    params: PublicParameters
    unique: PublicUnique
    if obj_type == TpmAlg.RSA:
        symmetric = _read_symdef(r, "parameters.symmetric")
        scheme = _read_scheme(r, "parameters.scheme", _RSA_SCHEMES)
        key_bits = r.u16("parameters.keyBits")
        exponent = r.u32("parameters.exponent")
        params = RsaParameters(symmetric, scheme, key_bits, exponent)
        unique = r.tpm2b(MAX_RSA_BYTES, "unique.rsa")
    elif obj_type == TpmAlg.ECC:
        symmetric = _read_symdef(r, "parameters.symmetric")
        scheme = _read_scheme(r, "parameters.scheme", _ECC_SCHEMES)
        curve = _read_curve(r, "parameters.curveID")
        kdf = _read_scheme(r, "parameters.kdf", _KDF_SCHEMES)
        params = EccParameters(symmetric, scheme, curve, kdf)
        unique = EccPoint(r.tpm2b(MAX_ECC_BYTES, "unique.x"), r.tpm2b(MAX_ECC_BYTES, "unique.y"))
    elif obj_type == TpmAlg.KEYEDHASH:
        params = KeyedHashParameters(
            _read_scheme(r, "parameters.scheme", frozenset({TpmAlg.NULL, TpmAlg.HMAC, TpmAlg.XOR}))
        )
        unique = r.tpm2b(MAX_DIGEST, "unique.keyedHash")
    else:
        params = SymCipherParameters(_read_symdef(r, "parameters.sym"))
        unique = r.tpm2b(MAX_DIGEST, "unique.sym")
    return obj_type, name_alg, attributes, auth_policy, params, unique


def parse_tpmt_public(data: bytes) -> PublicArea:
    """Parse a marshalled TPMT_PUBLIC that fills ``data`` exactly."""
    raw = _as_bytes(data, "TPMT_PUBLIC")
    r = Reader(raw, "TPMT_PUBLIC")
    fields = _read_public(r)
    r.done()
    return PublicArea(*fields, raw=raw)


def parse_tpm2b_public(data: bytes) -> PublicArea:
    """Parse a marshalled TPM2B_PUBLIC (size || TPMT_PUBLIC) that fills ``data`` exactly."""
    r = Reader(data, "TPM2B_PUBLIC")
    inner = r.tpm2b(0xFFFF, "publicArea")
    r.done()
    if not inner:
        raise WireSizeError("TPM2B_PUBLIC is empty")
    return parse_tpmt_public(inner)


def as_public_area(public: bytes | PublicArea) -> PublicArea:
    """Accept a :class:`PublicArea` or TPM2B_PUBLIC bytes (the project's wire form)."""
    if isinstance(public, PublicArea):
        return public
    return parse_tpm2b_public(public)


def make_public(
    *,
    type: TpmAlg,
    name_alg: TpmAlg,
    attributes: ObjectAttributes | int,
    parameters: PublicParameters,
    unique: PublicUnique,
    auth_policy: bytes = b"",
) -> PublicArea:
    """Build a public area from fields (marshal, then parse, so it is always consistent).

    Used for templates and for tests that model software keys as TPM objects.
    """
    raw = u16(type) + u16(name_alg) + u32(int(attributes)) + tpm2b(auth_policy)
    raw += parameters.marshal()
    raw += unique.marshal() if isinstance(unique, EccPoint) else tpm2b(unique)
    return parse_tpmt_public(raw)


def public_area_from_key(
    key: RSAPublicKey | EllipticCurvePublicKey,
    *,
    attributes: ObjectAttributes | int,
    name_alg: TpmAlg = TpmAlg.SHA256,
    scheme: Scheme | None = None,
    symmetric: SymDef | None = None,
    auth_policy: bytes = b"",
) -> PublicArea:
    """Model a ``cryptography`` public key as a TPM public area (for software test keys)."""
    sym = symmetric or SymDef()
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        exponent = 0 if nums.e == 65537 else nums.e
        return make_public(
            type=TpmAlg.RSA,
            name_alg=name_alg,
            attributes=attributes,
            auth_policy=auth_policy,
            parameters=RsaParameters(sym, scheme or Scheme(), key.key_size, exponent),
            unique=nums.n.to_bytes(key.key_size // 8, "big"),
        )
    by_name = {
        "secp256r1": EccCurve.NIST_P256,
        "secp384r1": EccCurve.NIST_P384,
        "secp521r1": EccCurve.NIST_P521,
    }
    curve = by_name.get(key.curve.name)
    if curve is None:
        raise WireUnsupportedError(f"curve {key.curve.name} has no TPM equivalent here")
    size = curve_size(curve)
    pn = key.public_numbers()
    return make_public(
        type=TpmAlg.ECC,
        name_alg=name_alg,
        attributes=attributes,
        auth_policy=auth_policy,
        parameters=EccParameters(sym, scheme or Scheme(), curve, Scheme()),
        unique=EccPoint(pn.x.to_bytes(size, "big"), pn.y.to_bytes(size, "big")),
    )


# --- PCR selections --------------------------------------------------------------------------


@dataclass(frozen=True)
class PcrSelection:
    """TPMS_PCR_SELECTION: one bank and its bitmap (bit i of byte i//8 selects PCR i)."""

    hash_alg: TpmAlg
    select: bytes

    @property
    def indices(self) -> tuple[int, ...]:
        """The selected PCR indices, ascending."""
        return tuple(
            8 * i + bit for i, byte in enumerate(self.select) for bit in range(8) if byte >> bit & 1
        )

    @classmethod
    def of(cls, hash_alg: TpmAlg, indices: Iterable[int], size: int = 3) -> PcrSelection:
        """A selection of ``indices`` in a bitmap of at least ``size`` bytes."""
        idx = sorted(set(indices))
        if any(i < 0 or i >= 8 * MAX_PCR_SELECT for i in idx):
            raise WireValueError("PCR index out of range")
        nbytes = max(size, (idx[-1] // 8 + 1) if idx else 0)
        bitmap = bytearray(nbytes)
        for i in idx:
            bitmap[i // 8] |= 1 << (i % 8)
        return cls(hash_alg, bytes(bitmap))

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(self.hash_alg) + bytes([len(self.select)]) + self.select


def _read_pcr_selection_list(r: Reader, field: str) -> tuple[PcrSelection, ...]:
    count = r.u32(field + ".count")
    if count > MAX_PCR_BANKS:
        raise WireSizeError(f"{r.what}: {count} PCR banks in {field}, at most {MAX_PCR_BANKS}")
    out = []
    for i in range(count):
        hash_alg = r.hash_alg(f"{field}[{i}].hash")
        size = r.u8(f"{field}[{i}].sizeofSelect")
        if size > MAX_PCR_SELECT:
            raise WireSizeError(f"{r.what}: sizeofSelect {size} in {field}[{i}] is too large")
        out.append(PcrSelection(hash_alg, r.take(size, f"{field}[{i}].pcrSelect")))
    return tuple(out)


def marshal_pcr_selection_list(selections: Iterable[PcrSelection]) -> bytes:
    """Marshal a TPML_PCR_SELECTION."""
    items = list(selections)
    return u32(len(items)) + b"".join(s.marshal() for s in items)


def parse_pcr_selection_list(data: bytes) -> tuple[PcrSelection, ...]:
    """Parse a TPML_PCR_SELECTION that fills ``data`` exactly."""
    r = Reader(data, "TPML_PCR_SELECTION")
    out = _read_pcr_selection_list(r, "pcrSelections")
    r.done()
    return out


# --- TPMS_ATTEST -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockInfo:
    """TPMS_CLOCK_INFO."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool

    def marshal(self) -> bytes:
        """Wire form."""
        return (
            u64(self.clock)
            + u32(self.reset_count)
            + u32(self.restart_count)
            + bytes([int(self.safe)])
        )


@dataclass(frozen=True)
class TpmsQuoteInfo:
    """TPMS_QUOTE_INFO: which PCRs were quoted and the digest of their values."""

    pcr_select: tuple[PcrSelection, ...]
    pcr_digest: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return marshal_pcr_selection_list(self.pcr_select) + tpm2b(self.pcr_digest)


@dataclass(frozen=True)
class TpmsCertifyInfo:
    """TPMS_CERTIFY_INFO: the certified object's Name and qualified Name."""

    name: bytes
    qualified_name: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.name) + tpm2b(self.qualified_name)


@dataclass(frozen=True)
class TpmsCreationInfo:
    """TPMS_CREATION_INFO."""

    object_name: bytes
    creation_hash: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.object_name) + tpm2b(self.creation_hash)


@dataclass(frozen=True)
class TpmsTimeAttestInfo:
    """TPMS_TIME_ATTEST_INFO."""

    time: int
    clock_info: ClockInfo
    firmware_version: int

    def marshal(self) -> bytes:
        """Wire form."""
        return u64(self.time) + self.clock_info.marshal() + u64(self.firmware_version)


@dataclass(frozen=True)
class TpmsCommandAuditInfo:
    """TPMS_COMMAND_AUDIT_INFO."""

    audit_counter: int
    digest_alg: TpmAlg
    audit_digest: bytes
    command_digest: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return (
            u64(self.audit_counter)
            + u16(self.digest_alg)
            + tpm2b(self.audit_digest)
            + tpm2b(self.command_digest)
        )


@dataclass(frozen=True)
class TpmsSessionAuditInfo:
    """TPMS_SESSION_AUDIT_INFO."""

    exclusive_session: bool
    session_digest: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return bytes([int(self.exclusive_session)]) + tpm2b(self.session_digest)


@dataclass(frozen=True)
class TpmsNvCertifyInfo:
    """TPMS_NV_CERTIFY_INFO."""

    index_name: bytes
    offset: int
    nv_contents: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.index_name) + u16(self.offset) + tpm2b(self.nv_contents)


@dataclass(frozen=True)
class TpmsNvDigestCertifyInfo:
    """TPMS_NV_DIGEST_CERTIFY_INFO."""

    index_name: bytes
    nv_digest: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.index_name) + tpm2b(self.nv_digest)


Attested = (
    TpmsQuoteInfo
    | TpmsCertifyInfo
    | TpmsCreationInfo
    | TpmsTimeAttestInfo
    | TpmsCommandAuditInfo
    | TpmsSessionAuditInfo
    | TpmsNvCertifyInfo
    | TpmsNvDigestCertifyInfo
)


@dataclass(frozen=True)
class Attest:
    """A parsed TPMS_ATTEST. ``raw`` is the exact signed byte string."""

    magic: int
    type: AttestType
    qualified_signer: bytes
    extra_data: bytes
    clock_info: ClockInfo
    firmware_version: int
    attested: Attested
    raw: bytes = b""

    def marshal(self) -> bytes:
        """Marshal the fields (not ``raw``): how tests build attestation data to sign."""
        return (
            u32(self.magic)
            + u16(self.type)
            + tpm2b(self.qualified_signer)
            + tpm2b(self.extra_data)
            + self.clock_info.marshal()
            + u64(self.firmware_version)
            + self.attested.marshal()
        )


def _read_yes_no(r: Reader, field: str) -> bool:
    value = r.u8(field)
    if value > 1:
        raise WireValueError(f"{r.what}: {field} is {value}, not YES (1) or NO (0)")
    return value == 1


def _read_clock_info(r: Reader, field: str) -> ClockInfo:
    return ClockInfo(
        clock=r.u64(field + ".clock"),
        reset_count=r.u32(field + ".resetCount"),
        restart_count=r.u32(field + ".restartCount"),
        safe=_read_yes_no(r, field + ".safe"),
    )


def _read_attested(r: Reader, st: AttestType) -> Attested:
    if st == AttestType.QUOTE:
        return TpmsQuoteInfo(
            _read_pcr_selection_list(r, "quote.pcrSelect"), r.tpm2b(MAX_DIGEST, "quote.pcrDigest")
        )
    if st == AttestType.CERTIFY:
        return TpmsCertifyInfo(
            r.tpm2b(MAX_NAME, "certify.name"), r.tpm2b(MAX_NAME, "certify.qualifiedName")
        )
    if st == AttestType.CREATION:
        return TpmsCreationInfo(
            r.tpm2b(MAX_NAME, "creation.objectName"),
            r.tpm2b(MAX_DIGEST, "creation.creationHash"),
        )
    if st == AttestType.TIME:
        return TpmsTimeAttestInfo(
            r.u64("time.time"),
            _read_clock_info(r, "time.clockInfo"),
            r.u64("time.firmwareVersion"),
        )
    if st == AttestType.COMMAND_AUDIT:
        return TpmsCommandAuditInfo(
            r.u64("commandAudit.auditCounter"),
            r.hash_alg("commandAudit.digestAlg"),
            r.tpm2b(MAX_DIGEST, "commandAudit.auditDigest"),
            r.tpm2b(MAX_DIGEST, "commandAudit.commandDigest"),
        )
    if st == AttestType.SESSION_AUDIT:
        return TpmsSessionAuditInfo(
            _read_yes_no(r, "sessionAudit.exclusiveSession"),
            r.tpm2b(MAX_DIGEST, "sessionAudit.sessionDigest"),
        )
    if st == AttestType.NV:
        return TpmsNvCertifyInfo(
            r.tpm2b(MAX_NAME, "nv.indexName"),
            r.u16("nv.offset"),
            r.tpm2b(MAX_NV_BUFFER, "nv.nvContents"),
        )
    return TpmsNvDigestCertifyInfo(
        r.tpm2b(MAX_NAME, "nvDigest.indexName"), r.tpm2b(MAX_DIGEST, "nvDigest.nvDigest")
    )


def read_attest_header(data: bytes) -> tuple[int, int]:
    """``(magic, type)`` of a TPMS_ATTEST, read before the rest so errors can say which is wrong."""
    r = Reader(data, "TPMS_ATTEST")
    return r.u32("magic"), r.u16("type")


def parse_attest(data: bytes) -> Attest:
    """Parse a marshalled TPMS_ATTEST that fills ``data`` exactly (magic is not judged here)."""
    raw = _as_bytes(data, "TPMS_ATTEST")
    r = Reader(raw, "TPMS_ATTEST")
    magic = r.u32("magic")
    st_value = r.u16("type")
    try:
        st = AttestType(st_value)
    except ValueError:
        raise WireUnsupportedError(
            f"TPMS_ATTEST: unknown attestation type {st_value:#06x}", detail={"type": st_value}
        ) from None
    qualified_signer = r.tpm2b(MAX_NAME, "qualifiedSigner")
    extra_data = r.tpm2b(MAX_DATA, "extraData")
    clock_info = _read_clock_info(r, "clockInfo")
    firmware_version = r.u64("firmwareVersion")
    attested = _read_attested(r, st)
    r.done()
    return Attest(
        magic, st, qualified_signer, extra_data, clock_info, firmware_version, attested, raw
    )


def unwrap_attest(data: bytes) -> bytes:
    """The TPMS_ATTEST inside ``data``: accepted as is, or unwrapped from a TPM2B_ATTEST.

    tpm2-tools writes TPMS_ATTEST (``-m``); tpm2-pytss ``TPM2B_ATTEST.marshal()`` adds a size.
    The magic makes the two unambiguous: no TPM2B_ATTEST is 0xFF54 bytes long.
    """
    raw = _as_bytes(data, "TPMS_ATTEST")
    if (
        len(raw) >= 6
        and raw[:4] != u32(TPM_GENERATED_VALUE)
        and raw[2:6] == u32(TPM_GENERATED_VALUE)
    ):
        r = Reader(raw, "TPM2B_ATTEST")
        inner = r.tpm2b(0xFFFF, "attestationData")
        r.done()
        return inner
    return raw


# --- TPMT_SIGNATURE --------------------------------------------------------------------------


@dataclass(frozen=True)
class EccSignature:
    """TPMS_SIGNATURE_ECC (ECDSA, ECDAA, SM2, EC-Schnorr): r and s as the TPM sent them.

    For ECDAA ``r`` is the TPM's nonceK, of variable length: hash it exactly as received.
    """

    sig_alg: TpmAlg
    hash_alg: TpmAlg
    r: bytes
    s: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(self.sig_alg) + u16(self.hash_alg) + tpm2b(self.r) + tpm2b(self.s)


@dataclass(frozen=True)
class RsaSignature:
    """TPMS_SIGNATURE_RSA (RSASSA-PKCS1-v1_5 or RSA-PSS)."""

    sig_alg: TpmAlg
    hash_alg: TpmAlg
    sig: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(self.sig_alg) + u16(self.hash_alg) + tpm2b(self.sig)


@dataclass(frozen=True)
class HmacSignature:
    """TPMT_HA inside an HMAC signature."""

    hash_alg: TpmAlg
    digest: bytes

    sig_alg = TpmAlg.HMAC

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(TpmAlg.HMAC) + u16(self.hash_alg) + self.digest


@dataclass(frozen=True)
class NullSignature:
    """A TPMT_SIGNATURE with sigAlg TPM_ALG_NULL (what a TPM returns without a signing key)."""

    sig_alg = TpmAlg.NULL
    hash_alg = TpmAlg.NULL

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(TpmAlg.NULL)


Signature = EccSignature | RsaSignature | HmacSignature | NullSignature


def parse_signature(data: bytes) -> Signature:
    """Parse a marshalled TPMT_SIGNATURE that fills ``data`` exactly."""
    r = Reader(data, "TPMT_SIGNATURE")
    alg = r.alg("sigAlg", _ECC_SIG_ALGS | _RSA_SIG_ALGS | {TpmAlg.HMAC, TpmAlg.NULL})
    sig: Signature
    if alg == TpmAlg.NULL:
        sig = NullSignature()
    elif alg == TpmAlg.HMAC:
        hash_alg = r.hash_alg("hmac.hashAlg")
        sig = HmacSignature(hash_alg, r.take(hash_size(hash_alg), "hmac.digest"))
    elif alg in _RSA_SIG_ALGS:
        hash_alg = r.hash_alg("rsa.hash")
        sig = RsaSignature(alg, hash_alg, r.tpm2b(MAX_RSA_BYTES, "rsa.sig"))
    else:
        hash_alg = r.hash_alg("ecc.hash")
        sig = EccSignature(
            alg,
            hash_alg,
            r.tpm2b(MAX_ECC_BYTES, "ecc.signatureR"),
            r.tpm2b(MAX_ECC_BYTES, "ecc.signatureS"),
        )
    r.done()
    return sig


# --- small marshalled structures used by MakeCredential ------------------------------------


def parse_tpm2b(data: bytes, max_size: int, what: str) -> bytes:
    """Parse a TPM2B of at most ``max_size`` bytes that fills ``data`` exactly."""
    r = Reader(data, what)
    inner = r.tpm2b(max_size, "buffer")
    r.done()
    return inner


def parse_name(data: bytes) -> tuple[TpmAlg, bytes]:
    """Split a digest Name (nameAlg || digest) and check the digest length fits the alg."""
    r = Reader(data, "TPM2B_NAME")
    alg = r.hash_alg("nameAlg")
    digest = r.take(hash_size(alg), "digest")
    r.done()
    return alg, digest

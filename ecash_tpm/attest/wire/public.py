"""TPMT_PUBLIC / TPM2B_PUBLIC: parsing, building and converting TPM public areas.

A public area is what the verifier learns a key from (EK, AK, DAA key); its exact bytes are
kept in ``raw`` because the object's Name is a hash of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ecash_tpm.attest.errors import WireSizeError, WireUnsupportedError, WireValueError
from ecash_tpm.attest.wire.codec import Reader, as_bytes, tpm2b, u16, u32
from ecash_tpm.attest.wire.constants import (
    MAX_DIGEST,
    MAX_ECC_BYTES,
    MAX_RSA_BYTES,
    EccCurve,
    ObjectAttributes,
    TpmAlg,
    curve_size,
    tpm_hash,
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
    raw = as_bytes(data, "TPMT_PUBLIC")
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

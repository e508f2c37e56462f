"""Verification of TPM2_Quote and TPM2_Certify evidence, and key-attribute checks.

A quote or certification is only evidence if it was signed by a *restricted* signing key that
cannot leave the TPM: a restricted key refuses to sign anything that starts with
TPM_GENERATED_VALUE unless the TPM made it, so the signed TPMS_ATTEST really comes from the TPM.
An unrestricted "AK" signs whatever the host gives it, so it is refused before anything else.
Then: signature, magic, type, nonce (extraData), and the attested content itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from ecash_tpm.attest.errors import (
    AkAttributesError,
    AkNotRestrictedError,
    AkNotSigningKeyError,
    CertifyBadMagicError,
    CertifyBadSignatureError,
    CertifyNameMismatchError,
    CertifyNonceMismatchError,
    CertifyWrongTypeError,
    KeyAttributesForbiddenError,
    KeyAttributesMissingError,
    KeyTypeMismatchError,
    PcrValuesError,
    QuoteBadMagicError,
    QuoteBadSignatureError,
    QuoteNonceMismatchError,
    QuotePcrDigestMismatchError,
    QuotePcrSelectionMismatchError,
    QuoteWrongTypeError,
)
from ecash_tpm.attest.wire import (
    TPM_GENERATED_VALUE,
    Attest,
    AttestType,
    ClockInfo,
    EccCurve,
    EccParameters,
    EccSignature,
    ObjectAttributes,
    PcrSelection,
    PublicArea,
    RsaParameters,
    RsaSignature,
    Signature,
    TpmAlg,
    TpmsCertifyInfo,
    TpmsQuoteInfo,
    as_public_area,
    crypto_hash,
    marshal_pcr_selection_list,
    parse_attest,
    parse_signature,
    read_attest_header,
    tpm_hash,
    unwrap_attest,
)
from ecash_tpm.errors import AttestationError, WireFormatError

AK_REQUIRED_ATTRIBUTES = (
    ObjectAttributes.FIXED_TPM
    | ObjectAttributes.FIXED_PARENT
    | ObjectAttributes.SENSITIVE_DATA_ORIGIN
    | ObjectAttributes.RESTRICTED
    | ObjectAttributes.SIGN_ENCRYPT
)
"""An AK is a restricted signing key generated in, and bound to, this TPM."""

DAA_REQUIRED_ATTRIBUTES = (
    ObjectAttributes.FIXED_TPM
    | ObjectAttributes.FIXED_PARENT
    | ObjectAttributes.SENSITIVE_DATA_ORIGIN
    | ObjectAttributes.USER_WITH_AUTH
    | ObjectAttributes.SIGN_ENCRYPT
)
"""The DAA key of DESIGN §4: signing, generated in and bound to the TPM."""

DAA_FORBIDDEN_ATTRIBUTES = ObjectAttributes.DECRYPT | ObjectAttributes.RESTRICTED
"""ECDAA signs host-chosen digests, so it cannot be restricted; it must not decrypt."""

PCR_BANK = TpmAlg.SHA256
PCR_SIZE = 32
MAX_PCR_INDEX = 23


@dataclass(frozen=True)
class QuoteInfo:
    """What a verified quote says: which PCRs, their digest, and the TPM's clock."""

    attest: Attest
    pcr_selection: tuple[PcrSelection, ...]
    pcr_digest: bytes
    pcrs: Mapping[int, bytes]
    hash_alg: TpmAlg
    ak_name: bytes

    @property
    def clock_info(self) -> ClockInfo:
        """The TPM's clock, reset and restart counters at quote time."""
        return self.attest.clock_info

    @property
    def firmware_version(self) -> int:
        """The TPM firmware version as the TPM reported it."""
        return self.attest.firmware_version

    @property
    def qualified_signer(self) -> bytes:
        """The AK's qualified name as the TPM reported it."""
        return self.attest.qualified_signer


@dataclass(frozen=True)
class CertifyInfo:
    """What a verified certification says: the certified key's Name, certified by the AK."""

    attest: Attest
    certified_name: bytes
    certified_qualified_name: bytes
    certified_public: PublicArea
    ak_name: bytes

    @property
    def clock_info(self) -> ClockInfo:
        """The TPM's clock at certification time."""
        return self.attest.clock_info


# --- key attributes --------------------------------------------------------------------------


def _flag_names(flags: ObjectAttributes | int) -> list[str]:
    return [f.name or hex(f.value) for f in ObjectAttributes if f & flags]


def check_key_attributes(
    public: bytes | PublicArea,
    *,
    required: ObjectAttributes | int = 0,
    forbidden: ObjectAttributes | int = 0,
    key_type: TpmAlg | None = None,
    curve: EccCurve | None = None,
    scheme: TpmAlg | None = None,
    scheme_hash: TpmAlg | None = None,
    name_alg: TpmAlg | None = None,
) -> PublicArea:
    """Check a key's template (attributes, type, curve, scheme, nameAlg); return it parsed.

    Used for the DAA key at join (see :data:`DAA_REQUIRED_ATTRIBUTES`) and for AKs. Raises
    :class:`KeyAttributesMissingError`, :class:`KeyAttributesForbiddenError` or
    :class:`KeyTypeMismatchError` naming what differs.
    """
    area = as_public_area(public)
    attrs = area.attributes
    missing = ObjectAttributes(int(required)) & ~attrs
    if missing:
        raise KeyAttributesMissingError(
            f"key lacks required attributes: {', '.join(_flag_names(missing))}",
            detail={"missing": _flag_names(missing), "attributes": int(attrs)},
        )
    present = ObjectAttributes(int(forbidden)) & attrs
    if present:
        raise KeyAttributesForbiddenError(
            f"key has forbidden attributes: {', '.join(_flag_names(present))}",
            detail={"forbidden": _flag_names(present), "attributes": int(attrs)},
        )
    if key_type is not None and area.type != key_type:
        raise KeyTypeMismatchError(
            f"key type is {area.type.name}, expected {key_type.name}",
            detail={"field": "type", "found": area.type.name, "expected": key_type.name},
        )
    if curve is not None:
        found_curve = area.parameters.curve if isinstance(area.parameters, EccParameters) else None
        if found_curve != curve:
            found_name = found_curve.name if found_curve else "none"
            raise KeyTypeMismatchError(
                f"key curve is {found_name}, expected {curve.name}",
                detail={"field": "curve", "expected": curve.name},
            )
    if scheme is not None or scheme_hash is not None:
        params = area.parameters
        found = params.scheme if isinstance(params, RsaParameters | EccParameters) else None
        if (
            found is None
            or (scheme is not None and found.scheme != scheme)
            or (scheme_hash is not None and found.hash_alg != scheme_hash)
        ):
            raise KeyTypeMismatchError(
                "key signing scheme does not match the required one",
                detail={
                    "field": "scheme",
                    "found": [found.scheme.name, found.hash_alg.name] if found else None,
                },
            )
    if name_alg is not None and area.name_alg != name_alg:
        raise KeyTypeMismatchError(
            f"key nameAlg is {area.name_alg.name}, expected {name_alg.name}",
            detail={"field": "nameAlg", "found": area.name_alg.name},
        )
    return area


def check_ak_public(ak_public: bytes | PublicArea) -> PublicArea:
    """Check the AK is a restricted signing key bound to its TPM; return it parsed.

    Distinct codes for the dangerous case (not restricted: the host could have it sign a fake
    TPMS_ATTEST) and for a key that is not a signing key at all.
    """
    ak = as_public_area(ak_public)
    attrs = ak.attributes
    if not attrs & ObjectAttributes.SIGN_ENCRYPT or attrs & ObjectAttributes.DECRYPT:
        raise AkNotSigningKeyError(
            "AK must be a signing-only key (sign set, decrypt clear)",
            detail={"attributes": int(attrs)},
        )
    if not attrs & ObjectAttributes.RESTRICTED:
        raise AkNotRestrictedError(
            "AK is not a restricted key: its signatures do not prove the TPM made the data",
            detail={"attributes": int(attrs)},
        )
    missing = AK_REQUIRED_ATTRIBUTES & ~attrs
    if missing:
        raise AkAttributesError(
            f"AK lacks {', '.join(_flag_names(missing))}",
            detail={"missing": _flag_names(missing), "attributes": int(attrs)},
        )
    if ak.type not in (TpmAlg.RSA, TpmAlg.ECC):
        raise AkNotSigningKeyError(f"AK type {ak.type.name} cannot sign attestations")
    ak.to_crypto_key()  # an unusable key (bad point, odd size) is a wire error, not a bad quote
    return ak


# --- signatures ------------------------------------------------------------------------------


def _verify_signature(ak: PublicArea, signature: Signature, data: bytes) -> None:
    """Verify a TPMT_SIGNATURE over ``data`` with the AK; raise InvalidSignature if it fails.

    The signature's scheme must fit the key (and the key's fixed scheme, if it has one): a
    restricted key never signs with another scheme, so a different one means a forgery.
    """
    params = ak.parameters
    if not isinstance(params, RsaParameters | EccParameters):
        raise InvalidSignature
    fixed = params.scheme
    if fixed.scheme != TpmAlg.NULL and (
        fixed.scheme != signature.sig_alg or fixed.hash_alg != signature.hash_alg
    ):
        raise InvalidSignature
    key = ak.to_crypto_key()
    digest_alg = crypto_hash(signature.hash_alg)
    digest = tpm_hash(signature.hash_alg, data)
    if isinstance(signature, EccSignature) and isinstance(key, ec.EllipticCurvePublicKey):
        if signature.sig_alg != TpmAlg.ECDSA:
            raise InvalidSignature
        der = encode_dss_signature(
            int.from_bytes(signature.r, "big"), int.from_bytes(signature.s, "big")
        )
        key.verify(der, digest, ec.ECDSA(Prehashed(digest_alg)))
        return
    if isinstance(signature, RsaSignature) and isinstance(key, rsa.RSAPublicKey):
        if len(signature.sig) != key.key_size // 8:
            raise InvalidSignature
        pad: padding.AsymmetricPadding
        if signature.sig_alg == TpmAlg.RSASSA:
            pad = padding.PKCS1v15()
        else:
            pad = padding.PSS(mgf=padding.MGF1(digest_alg), salt_length=padding.PSS.AUTO)
        key.verify(signature.sig, digest, pad, Prehashed(digest_alg))
        return
    raise InvalidSignature


@dataclass(frozen=True)
class _Errors:
    bad_signature: type[AttestationError]
    bad_magic: type[AttestationError]
    wrong_type: type[AttestationError]
    nonce_mismatch: type[AttestationError]


_QUOTE_ERRORS = _Errors(
    QuoteBadSignatureError, QuoteBadMagicError, QuoteWrongTypeError, QuoteNonceMismatchError
)
_CERTIFY_ERRORS = _Errors(
    CertifyBadSignatureError,
    CertifyBadMagicError,
    CertifyWrongTypeError,
    CertifyNonceMismatchError,
)


def _verify_attestation(
    ak_public: bytes | PublicArea,
    attest: bytes,
    signature: bytes,
    nonce: bytes,
    expected_type: AttestType,
    errors: _Errors,
) -> tuple[PublicArea, Attest, Signature]:
    """The checks common to quote and certify, in an order where each step trusts the last."""
    ak = check_ak_public(ak_public)
    if not isinstance(nonce, bytes):
        raise errors.nonce_mismatch("nonce must be bytes")
    raw = unwrap_attest(attest)
    sig = parse_signature(signature)
    try:
        _verify_signature(ak, sig, raw)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, WireFormatError):
        raise errors.bad_signature(
            "attestation signature does not verify with the AK",
            detail={"sig_alg": sig.sig_alg.name, "hash_alg": sig.hash_alg.name},
        ) from None
    magic, st = read_attest_header(raw)
    if magic != TPM_GENERATED_VALUE:
        raise errors.bad_magic(
            f"attestation magic is {magic:#010x}, not TPM_GENERATED_VALUE",
            detail={"magic": magic},
        )
    if st != expected_type:
        raise errors.wrong_type(
            f"attestation type is {st:#06x}, expected {expected_type.name}",
            detail={"type": st, "expected": int(expected_type)},
        )
    parsed = parse_attest(raw)
    if not hmac.compare_digest(parsed.extra_data, nonce):
        raise errors.nonce_mismatch("attestation extraData is not the expected nonce")
    return ak, parsed, sig


def _check_pcr_values(pcrs: Mapping[int, bytes]) -> dict[int, bytes]:
    if not isinstance(pcrs, Mapping) or not pcrs:
        raise PcrValuesError("PCR values must be a non-empty mapping of index to value")
    out: dict[int, bytes] = {}
    for index, value in pcrs.items():
        if isinstance(index, bool) or not isinstance(index, int):
            raise PcrValuesError("PCR indices must be integers")
        if not 0 <= index <= MAX_PCR_INDEX:
            raise PcrValuesError(f"PCR index {index} out of range 0..{MAX_PCR_INDEX}")
        if not isinstance(value, bytes) or len(value) != PCR_SIZE:
            raise PcrValuesError(f"PCR {index} value must be {PCR_SIZE} bytes (SHA-256 bank)")
        out[index] = value
    return dict(sorted(out.items()))


def pcr_composite_digest(hash_alg: TpmAlg, pcrs: Mapping[int, bytes]) -> bytes:
    """The digest a TPM puts in a quote: H(PCR values concatenated in ascending index order)."""
    return tpm_hash(hash_alg, b"".join(v for _, v in sorted(pcrs.items())))


def verify_quote(
    ak_public: bytes | PublicArea,
    attest: bytes,
    signature: bytes,
    nonce: bytes,
    pcrs: Mapping[int, bytes],
) -> QuoteInfo:
    """Verify a TPM2_Quote over the SHA-256 PCR bank; return what it attests.

    ``ak_public`` is the AK's TPM2B_PUBLIC, ``attest`` the TPMS_ATTEST (``tpm2_quote -m``),
    ``signature`` the TPMT_SIGNATURE (``tpm2_quote -s``), ``nonce`` the qualifying data the
    verifier asked for, ``pcrs`` the reported SHA-256 PCR values by index. Checks, in order:
    AK is restricted signing (``attest.ak_not_restricted`` ...), signature, magic, type,
    nonce, that pcrSelect is *exactly* the SHA-256 bank with exactly ``pcrs``' indices (no
    other bank, no missing or extra index: go-attestation CVE-2022-0317), and that pcrDigest
    is the digest of the values. The TPM hashes the PCR composite with the signing scheme's
    hash, so a SHA-384 AK yields SHA-384(values).
    """
    values = _check_pcr_values(pcrs)
    ak, parsed, sig = _verify_attestation(
        ak_public, attest, signature, nonce, AttestType.QUOTE, _QUOTE_ERRORS
    )
    info = parsed.attested
    if not isinstance(info, TpmsQuoteInfo):  # pragma: no cover - type checked above
        raise QuoteWrongTypeError("attestation is not a quote")
    wanted = tuple(sorted(values))
    selected = [(s.hash_alg, s.indices) for s in info.pcr_select]
    if selected != [(PCR_BANK, wanted)]:
        raise QuotePcrSelectionMismatchError(
            "quoted PCR selection is not exactly the requested SHA-256 selection",
            detail={
                "requested": {"sha256": list(wanted)},
                "quoted": [[alg.name.lower(), list(idx)] for alg, idx in selected],
            },
        )
    expected = pcr_composite_digest(sig.hash_alg, values)
    if not hmac.compare_digest(expected, info.pcr_digest):
        raise QuotePcrDigestMismatchError(
            "quoted PCR digest does not match the reported PCR values",
            detail={"quoted": info.pcr_digest.hex(), "computed": expected.hex()},
        )
    return QuoteInfo(
        attest=parsed,
        pcr_selection=info.pcr_select,
        pcr_digest=info.pcr_digest,
        pcrs=MappingProxyType(values),
        hash_alg=sig.hash_alg,
        ak_name=ak.name,
    )


def verify_certify(
    ak_public: bytes | PublicArea,
    attest: bytes,
    signature: bytes,
    nonce: bytes,
    certified_public: bytes | PublicArea,
) -> CertifyInfo:
    """Verify a TPM2_Certify of ``certified_public`` by the AK; return what it attests.

    Same signature, magic and nonce checks as :func:`verify_quote`; the type must be
    TPM_ST_ATTEST_CERTIFY and the certified Name must equal Name(certified_public), which
    proves that key is loaded in the same TPM as the AK.
    """
    certified = as_public_area(certified_public)
    expected_name = certified.name
    ak, parsed, _ = _verify_attestation(
        ak_public, attest, signature, nonce, AttestType.CERTIFY, _CERTIFY_ERRORS
    )
    info = parsed.attested
    if not isinstance(info, TpmsCertifyInfo):  # pragma: no cover - type checked above
        raise CertifyWrongTypeError("attestation is not a certification")
    if not hmac.compare_digest(info.name, expected_name):
        raise CertifyNameMismatchError(
            "certified Name is not the Name of the presented public key",
            detail={"certified": info.name.hex(), "expected": expected_name.hex()},
        )
    return CertifyInfo(
        attest=parsed,
        certified_name=info.name,
        certified_qualified_name=info.qualified_name,
        certified_public=certified,
        ak_name=ak.name,
    )


def sha256_pcr_selection(indices: Mapping[int, bytes] | list[int] | tuple[int, ...]) -> bytes:
    """Marshalled TPML_PCR_SELECTION for the SHA-256 bank (what a verifier asks the device for)."""
    return marshal_pcr_selection_list([PcrSelection.of(PCR_BANK, list(indices))])


__all__ = [
    "AK_REQUIRED_ATTRIBUTES",
    "DAA_FORBIDDEN_ATTRIBUTES",
    "DAA_REQUIRED_ATTRIBUTES",
    "CertifyInfo",
    "QuoteInfo",
    "check_ak_public",
    "check_key_attributes",
    "pcr_composite_digest",
    "sha256_pcr_selection",
    "verify_certify",
    "verify_quote",
]

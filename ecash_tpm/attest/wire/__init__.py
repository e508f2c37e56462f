"""TPM 2.0 wire structures (TCG TPM 2.0 Library, Part 2), parsed with explicit bounds checks.

The verifier sees these bytes from an untrusted host, so every read is bounds-checked, every
``TPM2B`` size is checked against the structure's maximum, unknown algorithms and tags are
refused, and parsers that take a whole buffer refuse trailing bytes. Only
:class:`~ecash_tpm.errors.WireFormatError` subclasses escape from here; nothing in this package
imports a TPM library.

Formats accepted (the ones tpm2-tools and tpm2-pytss write): ``TPM2B_PUBLIC`` (``tpm2_readpublic
-o``, ``tpm2_createak -u``, ``TPM2B_PUBLIC.marshal()``), ``TPMS_ATTEST`` (``tpm2_quote -m``,
``tpm2_certify -o``) and ``TPMT_SIGNATURE`` (``tpm2_quote -s`` in the default ``tss`` format).

One module per layer of Part 2: :mod:`.constants` (ids and limits), :mod:`.codec` (the
bounds-checked :class:`Reader` and ``u16``/``u32``/``tpm2b`` writers), :mod:`.public` (public
areas), :mod:`.pcr` (PCR selections), :mod:`.attestation` (``TPMS_ATTEST``), :mod:`.signature`
(``TPMT_SIGNATURE``) and :mod:`.names` (``TPM2B`` / Name helpers for MakeCredential).

Example -- model a software key as a TPM object, and read back what a host would send::

    from cryptography.hazmat.primitives.asymmetric import ec

    from ecash_tpm.attest.wire import (
        ObjectAttributes, Scheme, TpmAlg, parse_tpm2b_public, public_area_from_key,
    )

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    area = public_area_from_key(
        key,
        attributes=ObjectAttributes.FIXED_TPM | ObjectAttributes.SIGN_ENCRYPT,
        scheme=Scheme(TpmAlg.ECDSA, TpmAlg.SHA256),
    )
    wire_bytes = area.marshal_tpm2b()            # what ``tpm2_readpublic -o`` writes
    parsed = parse_tpm2b_public(wire_bytes)      # WireFormatError if anything is off
    assert parsed.name == area.name              # nameAlg || SHA-256(TPMT_PUBLIC)
    assert parsed.to_crypto_key() == key
"""

from ecash_tpm.attest.wire.attestation import (
    Attest,
    Attested,
    ClockInfo,
    TpmsCertifyInfo,
    TpmsCommandAuditInfo,
    TpmsCreationInfo,
    TpmsNvCertifyInfo,
    TpmsNvDigestCertifyInfo,
    TpmsQuoteInfo,
    TpmsSessionAuditInfo,
    TpmsTimeAttestInfo,
    parse_attest,
    read_attest_header,
    unwrap_attest,
)
from ecash_tpm.attest.wire.codec import (
    Reader,
    tpm2b,
    u16,
    u32,
    u64,
)
from ecash_tpm.attest.wire.constants import (
    HASH_SIZES,
    MAX_DATA,
    MAX_DIGEST,
    MAX_ECC_BYTES,
    MAX_NAME,
    MAX_NV_BUFFER,
    MAX_PCR_BANKS,
    MAX_PCR_SELECT,
    MAX_RSA_BYTES,
    TPM_GENERATED_VALUE,
    AttestType,
    EccCurve,
    ObjectAttributes,
    TpmAlg,
    crypto_hash,
    curve_size,
    hash_size,
    tpm_hash,
)
from ecash_tpm.attest.wire.names import (
    parse_name,
    parse_tpm2b,
)
from ecash_tpm.attest.wire.pcr import (
    PcrSelection,
    marshal_pcr_selection_list,
    parse_pcr_selection_list,
)
from ecash_tpm.attest.wire.public import (
    EccParameters,
    EccPoint,
    KeyedHashParameters,
    PublicArea,
    PublicParameters,
    PublicUnique,
    RsaParameters,
    Scheme,
    SymCipherParameters,
    SymDef,
    as_public_area,
    crypto_curve,
    ecc_point_bytes,
    make_public,
    parse_tpm2b_public,
    parse_tpmt_public,
    public_area_from_key,
)
from ecash_tpm.attest.wire.signature import (
    EccSignature,
    HmacSignature,
    NullSignature,
    RsaSignature,
    Signature,
    parse_signature,
)

__all__ = [
    "Attest",
    "AttestType",
    "Attested",
    "ClockInfo",
    "EccCurve",
    "EccParameters",
    "EccPoint",
    "EccSignature",
    "HASH_SIZES",
    "HmacSignature",
    "KeyedHashParameters",
    "MAX_DATA",
    "MAX_DIGEST",
    "MAX_ECC_BYTES",
    "MAX_NAME",
    "MAX_NV_BUFFER",
    "MAX_PCR_BANKS",
    "MAX_PCR_SELECT",
    "MAX_RSA_BYTES",
    "NullSignature",
    "ObjectAttributes",
    "PcrSelection",
    "PublicArea",
    "PublicParameters",
    "PublicUnique",
    "Reader",
    "RsaParameters",
    "RsaSignature",
    "Scheme",
    "Signature",
    "SymCipherParameters",
    "SymDef",
    "TPM_GENERATED_VALUE",
    "TpmAlg",
    "TpmsCertifyInfo",
    "TpmsCommandAuditInfo",
    "TpmsCreationInfo",
    "TpmsNvCertifyInfo",
    "TpmsNvDigestCertifyInfo",
    "TpmsQuoteInfo",
    "TpmsSessionAuditInfo",
    "TpmsTimeAttestInfo",
    "as_public_area",
    "crypto_curve",
    "crypto_hash",
    "curve_size",
    "ecc_point_bytes",
    "hash_size",
    "make_public",
    "marshal_pcr_selection_list",
    "parse_attest",
    "parse_name",
    "parse_pcr_selection_list",
    "parse_signature",
    "parse_tpm2b",
    "parse_tpm2b_public",
    "parse_tpmt_public",
    "public_area_from_key",
    "read_attest_header",
    "tpm2b",
    "tpm_hash",
    "u16",
    "u32",
    "u64",
    "unwrap_attest",
]

"""Pure verifier for TPM 2.0 platform evidence: EK certificates, MakeCredential, quotes, certify.

Stdlib and ``cryptography`` only -- no TPM library is imported here, so the issuer and other
verifiers run without a TPM stack and cannot be confused by one (Keylime/go-attestation lesson).
Every refusal is a typed :class:`~ecash_tpm.errors.AttestationError` (or, for bytes that do not
parse, a :class:`~ecash_tpm.errors.WireFormatError`) with a stable dotted ``code``.

The inputs are the byte strings tpm2-tools writes: the EK certificate from NV, the AK's
``TPM2B_PUBLIC`` (``tpm2_createak -u``), and a quote's ``TPMS_ATTEST`` / ``TPMT_SIGNATURE``
(``tpm2_quote -m`` / ``-s``). A verifier checks them in this order::

    ek_cert = verify_ek_certificate(ek_cert_der, roots=[vendor_root_der])  # a real TPM's EK
    ek_public_matches_certificate(ek_cert, ek_public)                      # ... is this key
    id_object, enc_secret = make_credential(ek_public, ak_name, secret)    # AK in that TPM?
    info = verify_quote(ak_public, attest, signature, nonce, pcrs)         # PCRs, signed by AK

Example -- verify a quote (a software key modelled as a restricted AK plays the TPM)::

    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from ecash_tpm.attest import (
        AK_REQUIRED_ATTRIBUTES, TPM_GENERATED_VALUE, Attest, AttestType, EccSignature,
        PcrSelection, QuoteNonceMismatchError, TpmAlg, pcr_composite_digest,
        public_area_from_key, verify_quote,
    )
    from ecash_tpm.attest.wire import ClockInfo, Scheme, TpmsQuoteInfo

    key = ec.generate_private_key(ec.SECP256R1())
    ak = public_area_from_key(
        key.public_key(),
        attributes=AK_REQUIRED_ATTRIBUTES,
        scheme=Scheme(TpmAlg.ECDSA, TpmAlg.SHA256),
    )
    nonce, pcrs = os.urandom(32), {0: bytes(32), 7: bytes(32)}
    attest = Attest(
        TPM_GENERATED_VALUE, AttestType.QUOTE, ak.name, nonce, ClockInfo(1, 0, 0, True), 1,
        TpmsQuoteInfo(
            (PcrSelection.of(TpmAlg.SHA256, pcrs),), pcr_composite_digest(TpmAlg.SHA256, pcrs)
        ),
    ).marshal()
    r, s = decode_dss_signature(key.sign(attest, ec.ECDSA(hashes.SHA256())))
    signature = EccSignature(
        TpmAlg.ECDSA, TpmAlg.SHA256, r.to_bytes(32, "big"), s.to_bytes(32, "big")
    ).marshal()

    info = verify_quote(ak.marshal_tpm2b(), attest, signature, nonce, pcrs)
    assert info.ak_name == ak.name and info.pcr_selection[0].indices == (0, 7)
    try:
        verify_quote(ak.marshal_tpm2b(), attest, signature, os.urandom(32), pcrs)
    except QuoteNonceMismatchError as exc:
        assert exc.code == "quote.nonce_mismatch"

The wire structures themselves live in :mod:`ecash_tpm.attest.wire`.
"""

from ecash_tpm.attest.certparse import ParsedCertificate
from ecash_tpm.attest.credential import kdfa, kdfe, make_credential
from ecash_tpm.attest.ek import (
    EkChain,
    ek_public_matches_certificate,
    load_ek_certificate,
    parse_ek_certificate,
    verify_ek_certificate,
    verify_ek_chain,
)
from ecash_tpm.attest.errors import (
    AkAttributesError,
    AkNotRestrictedError,
    AkNotSigningKeyError,
    CertifyBadMagicError,
    CertifyBadSignatureError,
    CertifyNameMismatchError,
    CertifyNonceMismatchError,
    CertifyWrongTypeError,
    CredentialInputError,
    CredentialKeyError,
    CredentialUnsupportedError,
    EkBadSignatureError,
    EkCertificateExpiredError,
    EkCertificateMalformedError,
    EkCertificateNotYetValidError,
    EkChainTooLongError,
    EkIssuerNotCaError,
    EkPathLengthError,
    EkPublicMismatchError,
    EkTrustStoreError,
    EkUnknownRootError,
    EkUnsupportedAlgorithmError,
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
    WireSizeError,
    WireTrailingDataError,
    WireTruncatedError,
    WireUnsupportedError,
    WireValueError,
)
from ecash_tpm.attest.eventlog import (
    MAX_EVENT_LOG_SIZE,
    Event,
    EventLog,
    EventLogAlgorithmError,
    EventLogBankError,
    EventLogMalformedError,
    EventLogReplayMismatchError,
    EventLogTooLargeError,
    EventType,
    parse_event_log,
    replay_event_log,
    verify_replay,
)
from ecash_tpm.attest.quote import (
    AK_REQUIRED_ATTRIBUTES,
    DAA_FORBIDDEN_ATTRIBUTES,
    DAA_REQUIRED_ATTRIBUTES,
    CertifyInfo,
    QuoteInfo,
    check_ak_public,
    check_key_attributes,
    pcr_composite_digest,
    sha256_pcr_selection,
    verify_certify,
    verify_quote,
)
from ecash_tpm.attest.wire import (
    TPM_GENERATED_VALUE,
    Attest,
    AttestType,
    EccCurve,
    EccPoint,
    EccSignature,
    ObjectAttributes,
    PcrSelection,
    PublicArea,
    RsaSignature,
    Signature,
    TpmAlg,
    as_public_area,
    parse_attest,
    parse_name,
    parse_pcr_selection_list,
    parse_signature,
    parse_tpm2b_public,
    parse_tpmt_public,
    public_area_from_key,
    unwrap_attest,
)

__all__ = [
    "AK_REQUIRED_ATTRIBUTES",
    "DAA_FORBIDDEN_ATTRIBUTES",
    "DAA_REQUIRED_ATTRIBUTES",
    "MAX_EVENT_LOG_SIZE",
    "TPM_GENERATED_VALUE",
    "AkAttributesError",
    "AkNotRestrictedError",
    "AkNotSigningKeyError",
    "Attest",
    "AttestType",
    "CertifyBadMagicError",
    "CertifyBadSignatureError",
    "CertifyInfo",
    "CertifyNameMismatchError",
    "CertifyNonceMismatchError",
    "CertifyWrongTypeError",
    "CredentialInputError",
    "CredentialKeyError",
    "CredentialUnsupportedError",
    "EccCurve",
    "EccPoint",
    "EccSignature",
    "EkBadSignatureError",
    "EkCertificateExpiredError",
    "EkCertificateMalformedError",
    "EkCertificateNotYetValidError",
    "EkChain",
    "EkChainTooLongError",
    "EkIssuerNotCaError",
    "EkPathLengthError",
    "EkPublicMismatchError",
    "EkTrustStoreError",
    "EkUnknownRootError",
    "EkUnsupportedAlgorithmError",
    "Event",
    "EventLog",
    "EventLogAlgorithmError",
    "EventLogBankError",
    "EventLogMalformedError",
    "EventLogReplayMismatchError",
    "EventLogTooLargeError",
    "EventType",
    "KeyAttributesForbiddenError",
    "KeyAttributesMissingError",
    "KeyTypeMismatchError",
    "ObjectAttributes",
    "ParsedCertificate",
    "PcrSelection",
    "PcrValuesError",
    "PublicArea",
    "QuoteBadMagicError",
    "QuoteBadSignatureError",
    "QuoteInfo",
    "QuoteNonceMismatchError",
    "QuotePcrDigestMismatchError",
    "QuotePcrSelectionMismatchError",
    "QuoteWrongTypeError",
    "RsaSignature",
    "Signature",
    "TpmAlg",
    "WireSizeError",
    "WireTrailingDataError",
    "WireTruncatedError",
    "WireUnsupportedError",
    "WireValueError",
    "as_public_area",
    "check_ak_public",
    "check_key_attributes",
    "ek_public_matches_certificate",
    "kdfa",
    "kdfe",
    "load_ek_certificate",
    "make_credential",
    "parse_attest",
    "parse_ek_certificate",
    "parse_event_log",
    "parse_name",
    "parse_pcr_selection_list",
    "parse_signature",
    "parse_tpm2b_public",
    "parse_tpmt_public",
    "pcr_composite_digest",
    "public_area_from_key",
    "replay_event_log",
    "sha256_pcr_selection",
    "unwrap_attest",
    "verify_certify",
    "verify_ek_certificate",
    "verify_ek_chain",
    "verify_quote",
    "verify_replay",
]

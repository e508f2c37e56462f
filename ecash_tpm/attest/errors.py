"""Leaf errors of the pure attestation verifier, each with its own stable ``code``.

They subclass the areas in :mod:`ecash_tpm.errors` so that services map them to HTTP answers
without knowing this package, and callers can branch on the precise failure (an unknown EK root
is an operator problem, a nonce mismatch a replay, a non-restricted AK an attack).
"""

from __future__ import annotations

from ecash_tpm.errors import (
    CertifyError,
    ConfigError,
    EkCertificateError,
    InputError,
    KeyAttributesError,
    QuoteError,
    WireFormatError,
)

# --- wire format -----------------------------------------------------------------------------


class WireTruncatedError(WireFormatError):
    """The structure ends before a field it announces."""

    code = "wire.truncated"


class WireTrailingDataError(WireFormatError):
    """Bytes follow a structure that must fill its buffer exactly."""

    code = "wire.trailing_data"


class WireSizeError(WireFormatError):
    """A size field exceeds the structure's maximum or disagrees with its content."""

    code = "wire.bad_size"


class WireUnsupportedError(WireFormatError):
    """An algorithm, curve, type or tag this verifier does not handle."""

    code = "wire.unsupported"


class WireValueError(WireFormatError):
    """A field holds a value the TPM specification does not allow (e.g. an off-curve point)."""

    code = "wire.invalid_value"


# --- EK certificates -------------------------------------------------------------------------


class EkCertificateMalformedError(EkCertificateError):
    """The EK certificate bytes are not a parseable X.509 certificate."""

    code = "ek.cert_malformed"


class EkUnknownRootError(EkCertificateError):
    """No trusted root (or given intermediate) issued a certificate of the chain."""

    code = "ek.unknown_root"


class EkCertificateExpiredError(EkCertificateError):
    """A certificate of the chain is past its notAfter."""

    code = "ek.cert_expired"


class EkCertificateNotYetValidError(EkCertificateError):
    """A certificate of the chain is before its notBefore."""

    code = "ek.cert_not_yet_valid"


class EkBadSignatureError(EkCertificateError):
    """A certificate's signature does not verify under its (named and key-identified) issuer."""

    code = "ek.bad_signature"


class EkIssuerNotCaError(EkCertificateError):
    """An issuing certificate lacks basicConstraints cA=TRUE or the keyCertSign key usage."""

    code = "ek.issuer_not_ca"


class EkPathLengthError(EkCertificateError):
    """An issuer's pathLenConstraint forbids the intermediates below it."""

    code = "ek.path_length_exceeded"


class EkChainTooLongError(EkCertificateError):
    """The chain is longer than any sane EK chain (or loops)."""

    code = "ek.chain_too_long"


class EkUnsupportedAlgorithmError(EkCertificateError):
    """A certificate is signed with an algorithm this verifier does not accept."""

    code = "ek.unsupported_algorithm"


class EkPublicMismatchError(EkCertificateError):
    """The certificate's subject key is not the EK public area the device presented."""

    code = "ek.public_mismatch"


class EkTrustStoreError(ConfigError):
    """The verifier's own roots/intermediates could not be loaded: a configuration problem."""

    code = "ek.trust_store_invalid"


# --- MakeCredential --------------------------------------------------------------------------


class CredentialKeyError(KeyAttributesError):
    """The EK is not a restricted decryption (storage) key, so the TPM would refuse to activate."""

    code = "credential.ek_not_storage_key"


class CredentialUnsupportedError(KeyAttributesError):
    """The EK's algorithm, curve or symmetric definition is not one MakeCredential supports."""

    code = "credential.unsupported_ek"


class CredentialInputError(InputError):
    """The secret or the object name given to MakeCredential is out of range."""

    code = "credential.invalid_input"


# --- key attributes --------------------------------------------------------------------------


class AkNotRestrictedError(KeyAttributesError):
    """The AK is not restricted: it could sign host-made data that looks like a quote."""

    code = "attest.ak_not_restricted"


class AkNotSigningKeyError(KeyAttributesError):
    """The AK is not a signing-only key."""

    code = "attest.ak_not_signing"


class AkAttributesError(KeyAttributesError):
    """The AK lacks fixedTPM, fixedParent or sensitiveDataOrigin."""

    code = "attest.ak_attributes"


class KeyAttributesMissingError(KeyAttributesError):
    """A key lacks an object attribute the protocol requires."""

    code = "attest.key_attributes_missing"


class KeyAttributesForbiddenError(KeyAttributesError):
    """A key has an object attribute the protocol forbids."""

    code = "attest.key_attributes_forbidden"


class KeyTypeMismatchError(KeyAttributesError):
    """A key has the wrong type, curve, scheme or name algorithm."""

    code = "attest.key_type_mismatch"


# --- quote -----------------------------------------------------------------------------------


class QuoteBadSignatureError(QuoteError):
    """The quote's signature does not verify with the AK (or does not fit the AK's scheme)."""

    code = "quote.bad_signature"


class QuoteBadMagicError(QuoteError):
    """The attestation does not start with TPM_GENERATED_VALUE: not made by a TPM."""

    code = "quote.bad_magic"


class QuoteWrongTypeError(QuoteError):
    """The attestation is not a TPM_ST_ATTEST_QUOTE."""

    code = "quote.wrong_type"


class QuoteNonceMismatchError(QuoteError):
    """extraData is not the verifier's nonce: a replay or a quote for someone else."""

    code = "quote.nonce_mismatch"


class QuotePcrSelectionMismatchError(QuoteError):
    """The quoted pcrSelect is not exactly the requested SHA-256 selection (CVE-2022-0317)."""

    code = "quote.pcr_selection_mismatch"


class QuotePcrDigestMismatchError(QuoteError):
    """The quoted pcrDigest is not the digest of the reported PCR values."""

    code = "quote.pcr_digest_mismatch"


class PcrValuesError(InputError):
    """The reported PCR values are not a non-empty map of index to 32-byte SHA-256 value."""

    code = "quote.pcr_values_invalid"


# --- certify ---------------------------------------------------------------------------------


class CertifyBadSignatureError(CertifyError):
    """The certification's signature does not verify with the AK."""

    code = "certify.bad_signature"


class CertifyBadMagicError(CertifyError):
    """The attestation does not start with TPM_GENERATED_VALUE."""

    code = "certify.bad_magic"


class CertifyWrongTypeError(CertifyError):
    """The attestation is not a TPM_ST_ATTEST_CERTIFY."""

    code = "certify.wrong_type"


class CertifyNonceMismatchError(CertifyError):
    """extraData is not the verifier's nonce."""

    code = "certify.nonce_mismatch"


class CertifyNameMismatchError(CertifyError):
    """The certified Name is not the Name of the public area the device presented."""

    code = "certify.name_mismatch"

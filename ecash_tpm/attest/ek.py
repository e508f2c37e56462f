"""EK certificates: lenient loading, strict chain verification, EK-public binding.

EK certificates read from TPM NV may carry padding after the DER or a TCG prefix, so loading is
lenient. Verification is strict and done hop by hop here instead of with
``cryptography.x509.verification``: that API applies WebPKI rules that EK certificates (empty or
placeholder subjects, critical SAN with TPM attributes, no server EKU) do not follow, and what
matters for an EK is exactly: every hop signed by its issuer, every certificate in its validity
period, every issuer a CA allowed to sign certificates, path lengths honoured, and the chain
ending at a root the verifier trusts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ecash_tpm.attest.errors import (
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
)
from ecash_tpm.attest.wire import PublicArea, as_public_area

MAX_CHAIN_DEPTH = 8
"""Longest chain (EK + intermediates) accepted; real EK chains have 2-4 certificates."""

TCG_NV_CERT_TAG = b"\x10\x01"
"""TCG PC Client prefix some TPM vendors put before the DER in NV: 0x1001 || UINT16 length."""

CertificateInput = x509.Certificate | bytes

# What cryptography may raise on malformed certificates: it parses some fields lazily, so these
# can surface long after loading.
_X509_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def _parse_eagerly(cert: x509.Certificate) -> x509.Certificate:
    """Touch every lazily parsed field the chain walk uses, so malformed ones fail at load."""
    _ = (cert.subject, cert.issuer, cert.not_valid_before_utc, cert.not_valid_after_utc)
    _ = [ext.value for ext in cert.extensions]
    cert.public_bytes(Encoding.DER)
    return cert


def _der_sequence_length(data: bytes) -> int:
    """Total length (header + content) of the DER SEQUENCE at the start of ``data``."""
    if len(data) < 2 or data[0] != 0x30:
        raise EkCertificateMalformedError("EK certificate is not a DER SEQUENCE")
    first = data[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        raise EkCertificateMalformedError("EK certificate has an invalid DER length")
    length = int.from_bytes(data[2 : 2 + n], "big")
    return 2 + n + length


def _strip_nv_framing(data: bytes) -> bytes:
    """The DER certificate inside NV contents: drop a TCG prefix and any trailing bytes."""
    if data[:2] == TCG_NV_CERT_TAG and len(data) >= 4:
        declared = int.from_bytes(data[2:4], "big")
        body = data[4:]
        if declared > len(body):
            raise EkCertificateMalformedError("TCG-prefixed EK certificate is truncated")
        data = body[:declared]
    total = _der_sequence_length(data)
    if total > len(data):
        raise EkCertificateMalformedError("EK certificate DER is truncated")
    return data[:total]


def load_ek_certificate(data: bytes | x509.Certificate) -> x509.Certificate:
    """Parse an EK certificate from DER (possibly NV-framed or padded), PEM, or pass it through.

    Lenient on framing only: what is inside the outer SEQUENCE must be a valid certificate.
    """
    if not isinstance(data, x509.Certificate | bytes | bytearray | memoryview):
        raise EkCertificateMalformedError(
            f"EK certificate must be bytes, not {type(data).__name__}"
        )
    try:
        if isinstance(data, x509.Certificate):
            return _parse_eagerly(data)
        raw = bytes(data)
        if raw.lstrip().startswith(b"-----BEGIN"):
            return _parse_eagerly(x509.load_pem_x509_certificate(raw))
        return _parse_eagerly(x509.load_der_x509_certificate(_strip_nv_framing(raw)))
    except EkCertificateMalformedError:
        raise
    except _X509_ERRORS as exc:
        raise EkCertificateMalformedError(f"EK certificate does not parse: {exc}") from None


def _load_trusted(items: Iterable[CertificateInput], what: str) -> list[x509.Certificate]:
    """The verifier's own certificates: any failure is a configuration error, not the device's."""
    out: list[x509.Certificate] = []
    for item in items:
        if isinstance(item, x509.Certificate):
            out.append(item)
            continue
        if not isinstance(item, bytes | bytearray | memoryview):
            raise EkTrustStoreError(f"{what} entries must be certificates or DER/PEM bytes")
        raw = bytes(item)
        try:
            if raw.lstrip().startswith(b"-----BEGIN"):
                out.extend(_parse_eagerly(c) for c in x509.load_pem_x509_certificates(raw))
            else:
                out.append(_parse_eagerly(x509.load_der_x509_certificate(raw)))
        except _X509_ERRORS as exc:
            raise EkTrustStoreError(f"a {what} certificate does not parse: {exc}") from None
    return out


def _ext(cert: x509.Certificate, ext_type: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(ext_type).value
    except x509.ExtensionNotFound:
        return None
    except _X509_ERRORS as exc:  # duplicate or undecodable extension
        raise EkCertificateMalformedError(f"certificate extensions do not parse: {exc}") from None


def _subject_str(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or "<empty subject>"
    except _X509_ERRORS:
        return "<unprintable subject>"


def _check_validity(cert: x509.Certificate, now: dt.datetime) -> None:
    who = _subject_str(cert)
    if now < cert.not_valid_before_utc:
        raise EkCertificateNotYetValidError(
            f"certificate {who} is not valid before {cert.not_valid_before_utc.isoformat()}",
            detail={"subject": who, "not_before": cert.not_valid_before_utc.isoformat()},
        )
    if now > cert.not_valid_after_utc:
        raise EkCertificateExpiredError(
            f"certificate {who} expired at {cert.not_valid_after_utc.isoformat()}",
            detail={"subject": who, "not_after": cert.not_valid_after_utc.isoformat()},
        )


def _check_issuer_is_ca(issuer: x509.Certificate, cas_below: int) -> None:
    """The issuer may sign certificates, and its pathLen allows ``cas_below`` CAs under it."""
    who = _subject_str(issuer)
    bc = _ext(issuer, x509.BasicConstraints)
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise EkIssuerNotCaError(
            f"issuer {who} is not a CA (basicConstraints cA is not TRUE)",
            detail={"issuer": who},
        )
    ku = _ext(issuer, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
        raise EkIssuerNotCaError(
            f"issuer {who} key usage does not allow keyCertSign", detail={"issuer": who}
        )
    if bc.path_length is not None and cas_below > bc.path_length:
        raise EkPathLengthError(
            f"issuer {who} allows {bc.path_length} intermediate CAs below it, found {cas_below}",
            detail={"issuer": who, "path_length": bc.path_length, "found": cas_below},
        )


def _key_ids_compatible(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """False only when both key identifiers are present and differ (a different issuer key)."""
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    ski = _ext(issuer, x509.SubjectKeyIdentifier)
    if not isinstance(aki, x509.AuthorityKeyIdentifier) or aki.key_identifier is None:
        return True
    if not isinstance(ski, x509.SubjectKeyIdentifier):
        return True
    return aki.key_identifier == ski.digest


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key verifies ``cert``'s signature (RSA PKCS#1/PSS, ECDSA)."""
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise EkUnsupportedAlgorithmError(
            f"issuer {_subject_str(issuer)} has an unsupported key type {type(key).__name__}"
        )
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return False
    except ValueError:  # issuer name mismatch or malformed signature parameters
        return False
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise EkUnsupportedAlgorithmError(
            f"certificate {_subject_str(cert)} uses an unsupported signature algorithm: {exc}"
        ) from None
    return True


def verify_ek_certificate(
    cert_der: bytes | x509.Certificate,
    roots: Sequence[CertificateInput],
    intermediates: Sequence[CertificateInput] = (),
    *,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Verify an EK certificate chains to one of ``roots``; return the parsed EK certificate.

    The chain is built from the EK upwards through ``intermediates`` (which are *not* trusted
    by themselves). Each hop needs a matching issuer name, compatible key identifiers and a
    valid signature; every certificate, the root included, must be valid at ``now`` (default:
    the current time); every issuer must be a CA with keyCertSign (if it has a KeyUsage) and
    honour its pathLenConstraint.

    Raises :class:`EkUnknownRootError` when no trusted issuer is found,
    :class:`EkBadSignatureError` when the named issuer's key does not verify a signature,
    :class:`EkCertificateExpiredError` / :class:`EkCertificateNotYetValidError`,
    :class:`EkIssuerNotCaError`, :class:`EkPathLengthError`, :class:`EkChainTooLongError`.
    """
    leaf = load_ek_certificate(cert_der)
    trusted = _load_trusted(roots, "root")
    pool = _load_trusted(intermediates, "intermediate")
    if not trusted:
        raise EkTrustStoreError("no trusted EK roots are configured")
    when = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        _walk_chain(leaf, trusted, pool, when)
    except _X509_ERRORS as exc:  # e.g. a malformed field met while walking
        raise EkCertificateMalformedError(f"certificate chain does not parse: {exc}") from None
    return leaf


def _find_issuer(
    cert: x509.Certificate, trusted: list[x509.Certificate], pool: list[x509.Certificate]
) -> tuple[x509.Certificate, bool]:
    """The trusted root (preferred) or intermediate that signed ``cert``, and whether it is a root.

    Candidates must carry the issuer's name and, when both key identifiers are present, the
    matching key identifier; among those, the first whose key verifies the signature wins.
    """
    bad_signature_from: str | None = None
    for is_root, candidates in ((True, trusted), (False, pool)):
        for issuer in candidates:
            if issuer == cert:  # a self-signed certificate that is not trusted ends the chain
                continue
            if issuer.subject != cert.issuer or not _key_ids_compatible(cert, issuer):
                continue
            if _signed_by(cert, issuer):
                return issuer, is_root
            bad_signature_from = _subject_str(issuer)
    who = _subject_str(cert)
    if bad_signature_from is not None:
        raise EkBadSignatureError(
            f"signature of {who} does not verify with issuer {bad_signature_from}",
            detail={"subject": who, "issuer": bad_signature_from},
        )
    try:
        issuer_name = cert.issuer.rfc4514_string()
    except _X509_ERRORS:
        issuer_name = "<unprintable issuer>"
    raise EkUnknownRootError(
        f"no trusted root or known intermediate issued {who} (issuer {issuer_name})",
        detail={"subject": who, "issuer": issuer_name},
    )


def _walk_chain(
    leaf: x509.Certificate,
    trusted: list[x509.Certificate],
    pool: list[x509.Certificate],
    now: dt.datetime,
) -> None:
    trusted_der = {c.public_bytes(Encoding.DER) for c in trusted}
    current = leaf
    seen: set[bytes] = set()
    # cas_below: CA certificates between the current certificate's issuer and the leaf
    for cas_below in range(MAX_CHAIN_DEPTH):
        _check_validity(current, now)
        current_der = current.public_bytes(Encoding.DER)
        if current_der in trusted_der:  # reached a trust anchor (or the EK itself is pinned)
            return
        if current_der in seen:
            raise EkChainTooLongError("certificate chain loops")
        seen.add(current_der)
        issuer, is_root = _find_issuer(current, trusted, pool)
        _check_issuer_is_ca(issuer, cas_below)
        if is_root:
            _check_validity(issuer, now)
            return
        current = issuer
    raise EkChainTooLongError(f"certificate chain is longer than {MAX_CHAIN_DEPTH}")


def ek_public_matches_certificate(
    cert: bytes | x509.Certificate, ek_public: bytes | PublicArea
) -> PublicArea:
    """Check the certificate's subject key is the EK public area; return the parsed EK public.

    The EK public (TPM2B_PUBLIC) is what MakeCredential encrypts to, the certificate is what
    the manufacturer vouches for: unless they are the same key, the credential could go to a
    TPM the certificate says nothing about. Raises :class:`EkPublicMismatchError`.
    """
    certificate = load_ek_certificate(cert)
    area = as_public_area(ek_public)
    ek_key = area.to_crypto_key()
    try:
        cert_key = certificate.public_key()
    except _X509_ERRORS as exc:
        raise EkCertificateMalformedError(f"EK certificate key does not parse: {exc}") from None
    same = False
    if isinstance(ek_key, rsa.RSAPublicKey) and isinstance(cert_key, rsa.RSAPublicKey):
        same = ek_key.public_numbers() == cert_key.public_numbers()
    elif isinstance(ek_key, ec.EllipticCurvePublicKey) and isinstance(
        cert_key, ec.EllipticCurvePublicKey
    ):
        same = (
            ek_key.curve.name == cert_key.curve.name
            and ek_key.public_numbers() == cert_key.public_numbers()
        )
    if not same:
        raise EkPublicMismatchError(
            "the EK certificate's public key is not the EK public area presented",
            detail={"ek_type": area.type.name},
        )
    return area

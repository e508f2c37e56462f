"""EK certificates: lenient loading, strict chain verification, EK-public binding.

EK certificates read from TPM NV may carry padding after the DER or a TCG prefix, so loading is
lenient; certificates whose Names are not DER-canonical are read through a canonical copy and
their signatures checked over the original bytes (:mod:`ecash_tpm.attest.certparse`).
Verification is strict and done hop by hop here instead of with
``cryptography.x509.verification``: that API applies WebPKI rules that EK certificates (empty or
placeholder subjects, critical SAN with TPM attributes, no server EKU) do not follow, and what
matters for an EK is exactly: every hop signed by its issuer, every certificate in its validity
period, every issuer a CA allowed to sign certificates, path lengths honoured, and the chain
ending at a certificate the verifier trusts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ecash_tpm.attest.certparse import (
    X509_ERRORS,
    ParsedCertificate,
    is_pem,
    parse_der,
    parse_input,
    pem_blocks,
    signature_verifies,
)
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

CertificateInput = x509.Certificate | ParsedCertificate | bytes
"""A trust-store entry: a parsed certificate or its DER/PEM bytes (PEM may hold several)."""


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


def parse_ek_certificate(data: bytes | x509.Certificate | ParsedCertificate) -> ParsedCertificate:
    """Like :func:`load_ek_certificate`, keeping the original bytes the signature covers.

    EK certificates issued by a CA whose Name is not DER-canonical carry that Name as their
    issuer, so they are read tolerantly too (see :mod:`ecash_tpm.attest.certparse`).
    """
    if isinstance(data, ParsedCertificate):
        return data
    if not isinstance(data, x509.Certificate | bytes | bytearray | memoryview):
        raise EkCertificateMalformedError(
            f"EK certificate must be bytes, not {type(data).__name__}"
        )
    if isinstance(data, x509.Certificate):
        return parse_input(data)[0]
    raw = bytes(data)
    if is_pem(raw):
        blocks = pem_blocks(raw)
        if not blocks:
            raise EkCertificateMalformedError("EK certificate PEM has no CERTIFICATE block")
        return parse_der(blocks[0])
    return parse_der(_strip_nv_framing(raw))


def load_ek_certificate(data: bytes | x509.Certificate | ParsedCertificate) -> x509.Certificate:
    """Parse an EK certificate from DER (possibly NV-framed or padded), PEM, or pass it through.

    Lenient on framing only (and on unsorted Name SETs): what is inside the outer SEQUENCE
    must be a valid certificate.
    """
    return parse_ek_certificate(data).certificate


def _load_trusted(
    items: Iterable[CertificateInput], what: str
) -> tuple[list[ParsedCertificate], list[str]]:
    """The verifier's own certificates, and why the ones that do not parse were left out.

    One unusable entry never disables the others; a verifier left with no root at all is a
    configuration error (:class:`EkTrustStoreError`), raised by the caller.
    """
    out: list[ParsedCertificate] = []
    skipped: list[str] = []
    for n, item in enumerate(items):
        if not isinstance(item, x509.Certificate | ParsedCertificate | bytes | bytearray):
            raise EkTrustStoreError(f"{what} entries must be certificates or DER/PEM bytes")
        try:
            out.extend(parse_input(bytes(item) if isinstance(item, bytearray) else item))
        except EkCertificateMalformedError as exc:
            skipped.append(f"{what} #{n}: {exc.message}")
    return out, skipped


def _ext(cert: x509.Certificate, ext_type: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(ext_type).value
    except x509.ExtensionNotFound:
        return None
    except X509_ERRORS as exc:  # duplicate or undecodable extension
        raise EkCertificateMalformedError(f"certificate extensions do not parse: {exc}") from None


def _check_validity(cert: ParsedCertificate, now: dt.datetime) -> None:
    who, c = cert.subject_text, cert.certificate
    if now < c.not_valid_before_utc:
        raise EkCertificateNotYetValidError(
            f"certificate {who} is not valid before {c.not_valid_before_utc.isoformat()}",
            detail={"subject": who, "not_before": c.not_valid_before_utc.isoformat()},
        )
    if now > c.not_valid_after_utc:
        raise EkCertificateExpiredError(
            f"certificate {who} expired at {c.not_valid_after_utc.isoformat()}",
            detail={"subject": who, "not_after": c.not_valid_after_utc.isoformat()},
        )


def _check_issuer_is_ca(issuer: ParsedCertificate, cas_below: int) -> None:
    """The issuer may sign certificates, and its pathLen allows ``cas_below`` CAs under it."""
    who = issuer.subject_text
    bc = _ext(issuer.certificate, x509.BasicConstraints)
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise EkIssuerNotCaError(
            f"issuer {who} is not a CA (basicConstraints cA is not TRUE)",
            detail={"issuer": who},
        )
    ku = _ext(issuer.certificate, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
        raise EkIssuerNotCaError(
            f"issuer {who} key usage does not allow keyCertSign", detail={"issuer": who}
        )
    if bc.path_length is not None and cas_below > bc.path_length:
        raise EkPathLengthError(
            f"issuer {who} allows {bc.path_length} intermediate CAs below it, found {cas_below}",
            detail={"issuer": who, "path_length": bc.path_length, "found": cas_below},
        )


def _key_ids_compatible(cert: ParsedCertificate, issuer: ParsedCertificate) -> bool:
    """False only when both key identifiers are present and differ (a different issuer key)."""
    aki = _ext(cert.certificate, x509.AuthorityKeyIdentifier)
    ski = _ext(issuer.certificate, x509.SubjectKeyIdentifier)
    if not isinstance(aki, x509.AuthorityKeyIdentifier) or aki.key_identifier is None:
        return True
    if not isinstance(ski, x509.SubjectKeyIdentifier):
        return True
    return aki.key_identifier == ski.digest


def _signed_by(cert: ParsedCertificate, issuer: ParsedCertificate) -> bool:
    """Whether ``issuer``'s key verifies ``cert``'s signature over the original TBS bytes."""
    try:
        key = issuer.certificate.public_key()
    except X509_ERRORS as exc:
        raise EkUnsupportedAlgorithmError(
            f"issuer {issuer.subject_text} has an unsupported key: {exc}"
        ) from None
    return signature_verifies(cert, key)


@dataclass(frozen=True)
class EkChain:
    """A verified EK chain: the EK certificate, the CAs above it, the trusted anchor it reached.

    ``path`` runs from the EK's issuer upwards and ends with ``anchor`` (empty when the EK
    certificate itself is in the trust store).
    """

    leaf: ParsedCertificate
    path: tuple[ParsedCertificate, ...]
    anchor: ParsedCertificate


def verify_ek_certificate(
    cert_der: bytes | x509.Certificate | ParsedCertificate,
    roots: Sequence[CertificateInput],
    intermediates: Sequence[CertificateInput] = (),
    *,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Verify an EK certificate chains to one of ``roots``; return the parsed EK certificate.

    The chain is built from the EK upwards through ``intermediates`` (which are *not* trusted
    by themselves). Each hop needs a matching issuer name, compatible key identifiers and a
    valid signature over the original to-be-signed bytes; every certificate, the root
    included, must be valid at ``now`` (default: the current time); every issuer must be a CA
    with keyCertSign (if it has a KeyUsage) and honour its pathLenConstraint. A ``roots`` entry
    need not be self-signed: the chain ends at the first trusted certificate it reaches.
    Entries that do not parse are left out (and named in the error detail); none left is
    :class:`EkTrustStoreError`.

    Raises :class:`EkUnknownRootError` when no trusted issuer is found,
    :class:`EkBadSignatureError` when the named issuer's key does not verify a signature,
    :class:`EkCertificateExpiredError` / :class:`EkCertificateNotYetValidError`,
    :class:`EkIssuerNotCaError`, :class:`EkPathLengthError`, :class:`EkChainTooLongError`.
    """
    return verify_ek_chain(cert_der, roots, intermediates, now=now).leaf.certificate


def verify_ek_chain(
    cert_der: bytes | x509.Certificate | ParsedCertificate,
    roots: Sequence[CertificateInput],
    intermediates: Sequence[CertificateInput] = (),
    *,
    now: dt.datetime | None = None,
) -> EkChain:
    """:func:`verify_ek_certificate`, returning the whole chain and the anchor it reached."""
    leaf = parse_ek_certificate(cert_der)
    trusted, skipped = _load_trusted(roots, "root")
    pool, skipped_pool = _load_trusted(intermediates, "intermediate")
    skipped += skipped_pool
    if not trusted:
        raise EkTrustStoreError(
            "no usable trusted EK roots are configured", detail={"unusable": skipped}
        )
    when = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        path = _walk_chain(leaf, trusted, pool, when)
    except EkUnknownRootError as exc:
        if skipped:
            exc.detail["unusable_trust_entries"] = skipped
        raise
    except X509_ERRORS as exc:  # e.g. a malformed field met while walking
        raise EkCertificateMalformedError(f"certificate chain does not parse: {exc}") from None
    return EkChain(leaf, tuple(path), path[-1] if path else leaf)


def _find_issuer(
    cert: ParsedCertificate, trusted: list[ParsedCertificate], pool: list[ParsedCertificate]
) -> tuple[ParsedCertificate, bool]:
    """The trusted root (preferred) or intermediate that signed ``cert``, and whether it is a root.

    Candidates must carry the issuer's name and, when both key identifiers are present, the
    matching key identifier; among those, the first whose key verifies the signature wins.
    """
    bad_signature_from: str | None = None
    for is_root, candidates in ((True, trusted), (False, pool)):
        for issuer in candidates:
            if issuer == cert:  # a self-signed certificate that is not trusted ends the chain
                continue
            if issuer.certificate.subject != cert.certificate.issuer:
                continue
            if not _key_ids_compatible(cert, issuer):
                continue
            if _signed_by(cert, issuer):
                return issuer, is_root
            bad_signature_from = issuer.subject_text
    who = cert.subject_text
    if bad_signature_from is not None:
        raise EkBadSignatureError(
            f"signature of {who} does not verify with issuer {bad_signature_from}",
            detail={"subject": who, "issuer": bad_signature_from},
        )
    issuer_name = cert.issuer_text
    raise EkUnknownRootError(
        f"no trusted root or known intermediate issued {who} (issuer {issuer_name})",
        detail={"subject": who, "issuer": issuer_name},
    )


def _walk_chain(
    leaf: ParsedCertificate,
    trusted: list[ParsedCertificate],
    pool: list[ParsedCertificate],
    now: dt.datetime,
) -> list[ParsedCertificate]:
    """The CAs from the leaf's issuer up to the trust anchor reached (empty: leaf pinned)."""
    trusted_set = set(trusted)
    current = leaf
    path: list[ParsedCertificate] = []
    seen: set[ParsedCertificate] = set()
    # cas_below: CA certificates between the current certificate's issuer and the leaf
    for cas_below in range(MAX_CHAIN_DEPTH):
        _check_validity(current, now)
        if current in trusted_set:  # reached a trust anchor (or the EK itself is pinned)
            return path
        if current in seen:
            raise EkChainTooLongError("certificate chain loops")
        seen.add(current)
        issuer, is_root = _find_issuer(current, trusted, pool)
        _check_issuer_is_ca(issuer, cas_below)
        path.append(issuer)
        if is_root:
            _check_validity(issuer, now)
            return path
        current = issuer
    raise EkChainTooLongError(f"certificate chain is longer than {MAX_CHAIN_DEPTH}")


def ek_public_matches_certificate(
    cert: bytes | x509.Certificate | ParsedCertificate, ek_public: bytes | PublicArea
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
    except X509_ERRORS as exc:
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

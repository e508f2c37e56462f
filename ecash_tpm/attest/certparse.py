"""Tolerant X.509 reading: certificates as signed, read through pyca/cryptography.

Some TPM manufacturer CAs (Nuvoton, Nationz) are not DER-canonical: the attributes of a
multi-valued RDN (one SET OF) are not sorted as X.690 section 11.6 demands, and
``cryptography`` refuses them (``InvalidSetOrdering``). Their content is fine, and so are their
signatures -- over the bytes as they were signed. So a certificate here has two faces:

- ``certificate``: a :class:`cryptography.x509.Certificate` to read fields and the public key
  from; for a non-canonical certificate it is parsed from a copy whose issuer and subject Names
  were re-encoded canonically by ``asn1crypto`` (nothing else is touched);
- ``der`` / ``tbs``: the original encoding and its ``tbsCertificate``; fingerprints are taken
  over ``der`` and signatures are verified over ``tbs`` (RFC 5280 section 4.1.1.3), never over
  the re-encoded copy.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from ecash_tpm.attest.errors import EkCertificateMalformedError, EkUnsupportedAlgorithmError

# What cryptography may raise on malformed certificates: it parses some fields lazily, so these
# can surface long after loading.
X509_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True, eq=False)
class ParsedCertificate:
    """A certificate as signed (``der``, ``tbs``) and as read (``certificate``).

    Equality and hashing follow ``der``: two encodings of the same content are different
    certificates (their fingerprints differ).
    """

    certificate: x509.Certificate
    der: bytes
    tbs: bytes
    reencoded: bool = False
    """True when ``certificate`` was read from a canonically re-encoded copy."""

    @classmethod
    def of(cls, cert: x509.Certificate) -> ParsedCertificate:
        """Wrap a certificate cryptography already parsed (its bytes are the original)."""
        eager(cert)
        return cls(cert, cert.public_bytes(Encoding.DER), cert.tbs_certificate_bytes)

    @property
    def fingerprint(self) -> str:
        """Lower-case hex SHA-256 of the original DER (what manufacturers publish)."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def subject_text(self) -> str:
        """RFC 4514 subject, or a placeholder for EK certificates with an empty subject."""
        return name_text(self.certificate, "subject")

    @property
    def issuer_text(self) -> str:
        return name_text(self.certificate, "issuer")

    @property
    def self_issued(self) -> bool:
        return bool(self.certificate.subject == self.certificate.issuer)

    def pem(self) -> bytes:
        """The original DER as PEM (never the re-encoded copy, whose signature would break)."""
        return asn1_pem.armor("CERTIFICATE", self.der)  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParsedCertificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)


def name_text(cert: x509.Certificate, which: str) -> str:
    """RFC 4514 form of the certificate's ``subject`` or ``issuer``, never raising."""
    try:
        name = cert.subject if which == "subject" else cert.issuer
        return name.rfc4514_string() or f"<empty {which}>"
    except X509_ERRORS:
        return f"<unprintable {which}>"


def eager(cert: x509.Certificate) -> x509.Certificate:
    """Touch every lazily parsed field the chain walk uses, so malformed ones fail at load."""
    _ = (cert.subject, cert.issuer, cert.not_valid_before_utc, cert.not_valid_after_utc)
    _ = [ext.value for ext in cert.extensions]
    cert.public_bytes(Encoding.DER)
    return cert


def _canonical_copy(der: bytes) -> tuple[bytes, bytes]:
    """(copy with canonically encoded issuer/subject Names, original tbsCertificate bytes)."""
    try:
        loaded = asn1_x509.Certificate.load(der, strict=True)
        tbs_field = loaded["tbs_certificate"]
        tbs = bytes(tbs_field.dump())
        header = len(der) - len(loaded.contents)
        if der[header : header + len(tbs)] != tbs:  # asn1crypto must hand back what was signed
            raise ValueError("tbsCertificate is not the first element of the certificate")
        for field in ("issuer", "subject"):
            # force=True re-serialises the Name; asn1crypto sorts each SET OF it encodes
            tbs_field[field] = asn1_x509.Name.load(tbs_field[field].dump(force=True))
        return bytes(loaded.dump()), tbs
    except (ValueError, TypeError, KeyError) as exc:
        raise EkCertificateMalformedError(f"certificate does not parse: {exc}") from None


def parse_der(der: bytes) -> ParsedCertificate:
    """Parse one DER certificate (exactly, no trailing bytes), tolerating unsorted Name SETs.

    Raises :class:`EkCertificateMalformedError` with the parser's reason otherwise.
    """
    try:
        return ParsedCertificate.of(x509.load_der_x509_certificate(der))
    except X509_ERRORS as exc:
        first = exc
    canonical, tbs = _canonical_copy(der)
    if canonical == der:  # nothing to repair: the certificate is broken in another way
        raise EkCertificateMalformedError(f"certificate does not parse: {first}") from None
    try:
        cert = eager(x509.load_der_x509_certificate(canonical))
    except X509_ERRORS as exc:
        raise EkCertificateMalformedError(f"certificate does not parse: {exc}") from None
    return ParsedCertificate(cert, der, tbs, reencoded=True)


def pem_blocks(data: bytes) -> list[bytes]:
    """The DER inside each ``CERTIFICATE`` PEM block, in order (a bad block raises)."""
    out: list[bytes] = []
    for block in _PEM_BLOCK.findall(data):
        try:
            _, _, der = asn1_pem.unarmor(block)
        except (ValueError, TypeError) as exc:
            raise EkCertificateMalformedError(f"PEM block does not decode: {exc}") from None
        out.append(bytes(der))
    return out


def is_pem(data: bytes) -> bool:
    return b"-----BEGIN CERTIFICATE-----" in data


def parse_input(item: x509.Certificate | ParsedCertificate | bytes) -> list[ParsedCertificate]:
    """Certificates from a parsed object, PEM (one or several) or DER bytes."""
    if isinstance(item, ParsedCertificate):
        return [item]
    if isinstance(item, x509.Certificate):
        try:
            return [ParsedCertificate.of(item)]
        except X509_ERRORS as exc:
            raise EkCertificateMalformedError(f"certificate does not parse: {exc}") from None
    raw = bytes(item)
    if is_pem(raw):  # PEM files may carry text (openssl x509 -text) around the blocks
        blocks = pem_blocks(raw)
        if not blocks:
            raise EkCertificateMalformedError("no CERTIFICATE block in PEM input")
        return [parse_der(der) for der in blocks]
    return [parse_der(raw)]


def signature_verifies(cert: ParsedCertificate, issuer_key: CertificatePublicKeyTypes) -> bool:
    """Whether ``issuer_key`` verifies ``cert``'s signature over its *original* TBS bytes.

    RSA PKCS#1 v1.5 and PSS, ECDSA. A key that does not fit the signature algorithm (an ECDSA
    signature and an RSA key) simply does not verify; an algorithm outside these raises
    :class:`EkUnsupportedAlgorithmError`.
    """
    c = cert.certificate
    try:
        params = c.signature_algorithm_parameters
        hash_alg = c.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise EkUnsupportedAlgorithmError(
            f"certificate {cert.subject_text} uses an unsupported signature algorithm: {exc}"
        ) from None
    if not isinstance(issuer_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise EkUnsupportedAlgorithmError(
            f"issuer of {cert.subject_text} has an unsupported key type {type(issuer_key).__name__}"
        )
    if not isinstance(params, padding.PKCS1v15 | padding.PSS | ec.ECDSA):
        raise EkUnsupportedAlgorithmError(
            f"certificate {cert.subject_text} uses an unsupported signature algorithm "
            f"{c.signature_algorithm_oid.dotted_string}"
        )
    try:
        if isinstance(issuer_key, rsa.RSAPublicKey):
            if isinstance(params, ec.ECDSA) or hash_alg is None:
                return False
            issuer_key.verify(c.signature, cert.tbs, params, hash_alg)
        else:
            if not isinstance(params, ec.ECDSA):
                return False
            issuer_key.verify(c.signature, cert.tbs, params)
    except (InvalidSignature, ValueError):
        return False
    return True

"""EK trust anchors: which CA certificates a verifier can use, and why not the others.

A trust store is read certificate by certificate: one that cannot be used (bad encoding, not a
CA, outside its validity, an unsupported key, a self-signature that does not verify) is
reported with its reason and left out, and never disables the others (issue 16: one
non-canonical Nuvoton root used to make every EK fail with ``ek.trust_store_invalid``).

The manufacturers' CA certificates ship with the package (``ek_ca_store/``, listed with their
fingerprints in docs/real-tpm.md); :func:`shipped_ek_anchors` reads them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ecash_tpm.attest.certparse import (
    X509_ERRORS,
    ParsedCertificate,
    is_pem,
    parse_der,
    pem_blocks,
    signature_verifies,
)
from ecash_tpm.errors import EcashError

SHIPPED_STORE = "ek_ca_store"
"""Folder of :mod:`ecash_tpm.attest` holding the manufacturers' EK CA certificates."""

CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")

MIN_RSA_BITS = 2048
SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")


@dataclass(frozen=True)
class AnchorStatus:
    """One certificate of a trust store: usable (``reason is None``) or why not.

    ``source`` names the file (and ``index`` the certificate inside a PEM bundle); ``cert`` is
    ``None`` when the bytes do not parse at all.
    """

    source: str
    index: int
    cert: ParsedCertificate | None
    reason: str | None

    @property
    def usable(self) -> bool:
        return self.reason is None and self.cert is not None

    @property
    def subject(self) -> str:
        return self.cert.subject_text if self.cert is not None else "<unparsable>"

    @property
    def fingerprint(self) -> str | None:
        return self.cert.fingerprint if self.cert is not None else None

    def to_dict(self) -> dict[str, object]:
        c = self.cert
        return {
            "source": self.source,
            "index": self.index,
            "subject": self.subject,
            "issuer": c.issuer_text if c is not None else None,
            "sha256": self.fingerprint,
            "not_after": c.certificate.not_valid_after_utc.isoformat() if c else None,
            "canonical_der": (not c.reencoded) if c is not None else None,
            "usable": self.usable,
            "reason": self.reason,
        }


def _key_problem(cert: x509.Certificate) -> str | None:
    try:
        key = cert.public_key()
    except X509_ERRORS as exc:
        return f"public key does not parse: {exc}"
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS} required)"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in SUPPORTED_CURVES:
            return f"unsupported curve {key.curve.name}"
        return None
    return f"unsupported key type {type(key).__name__}"


def _ca_problem(cert: x509.Certificate) -> str | None:
    """RFC 5280 section 4.2.1.9 / 4.2.1.3: a CA that may sign certificates."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "not a CA (no basicConstraints)"
    if not bc.ca:
        return "not a CA (basicConstraints cA is not TRUE)"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return None if ku.key_cert_sign else "key usage does not allow keyCertSign"


def assess_anchor(cert: ParsedCertificate, now: dt.datetime) -> str | None:
    """Why ``cert`` cannot serve as an EK trust anchor at ``now``, or ``None`` if it can."""
    c = cert.certificate
    try:
        problem = _ca_problem(c) or _key_problem(c)
        if problem:
            return problem
        if now < c.not_valid_before_utc:
            return f"not valid before {c.not_valid_before_utc.isoformat()}"
        if now > c.not_valid_after_utc:
            return f"expired at {c.not_valid_after_utc.isoformat()}"
        # a self-issued CA (a root) must carry a signature its own key verifies, over the
        # original to-be-signed bytes (non-canonical roots included)
        if cert.self_issued and not signature_verifies(cert, c.public_key()):
            return "self-signature does not verify"
    except EcashError as exc:
        return exc.message
    except X509_ERRORS as exc:
        return f"certificate fields do not parse: {exc}"
    return None


def read_anchor_file(data: bytes, source: str, now: dt.datetime) -> list[AnchorStatus]:
    """Every certificate of one file (PEM bundle or DER), each assessed on its own."""
    if is_pem(data):
        try:
            blocks = pem_blocks(data)
        except EcashError as exc:
            return [AnchorStatus(source, 0, None, exc.message)]
    else:
        blocks = [data]
    out: list[AnchorStatus] = []
    for index, der in enumerate(blocks):
        try:
            cert = parse_der(der)
        except EcashError as exc:
            out.append(AnchorStatus(source, index, None, exc.message))
            continue
        out.append(AnchorStatus(source, index, cert, assess_anchor(cert, now)))
    if not out:
        out.append(AnchorStatus(source, 0, None, "no certificate in file"))
    return out


def shipped_ek_ca_files() -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of every certificate file shipped in ``ek_ca_store/``, sorted."""
    folder = resources.files("ecash_tpm.attest").joinpath(SHIPPED_STORE)
    entries = sorted(
        (f for f in folder.iterdir() if f.name.lower().endswith(CERT_SUFFIXES)),
        key=lambda f: f.name,
    )
    for entry in entries:
        yield entry.name, entry.read_bytes()


def shipped_ek_anchors(now: dt.datetime | None = None) -> list[AnchorStatus]:
    """The shipped manufacturer CA certificates, each assessed as an anchor at ``now``."""
    when = now or dt.datetime.now(dt.UTC)
    out: list[AnchorStatus] = []
    for name, data in shipped_ek_ca_files():
        out.extend(read_anchor_file(data, name, when))
    return out

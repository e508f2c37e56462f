"""The system PKI as every party sees it: roles, OIDs, errors, and party-certificate checks.

This module is pure verification (no keys, no files) so that banks, merchants, the TTP and
wallets can check certificates without importing the CA itself.

Roles. A party certificate names exactly one role twice, and both must agree:

* in the subject, as ``OU=<role>`` (with ``O=ecash-tpm``, ``CN=<name>``), for humans and logs;
* as the only purpose in a **critical** extended-key-usage extension, ``ROLE_OIDS[role]``, so that
  no generic stack (TLS, code signing) accepts the certificate either.

A certificate whose OU says "merchant" but whose EKU says "bank" (or that lists two roles) is
refused: role confusion needs both fields to be forged, and only the root can sign either.

OIDs live under ``1.3.6.1.4.1.55555.1`` — a **placeholder, unregistered** private-enterprise arc.
Replace 55555 with a registered IANA PEN before any deployment outside tests and demos; the
numbers below the arc stay the same.

``bank-keyset`` is deliberately *not* a certificate role: a keyset descriptor (DESIGN §5) is a
signed object ``sign_object(bank_key, "bank-keyset", descriptor)`` made with the bank's certified
key, so its trust chain is root -> bank certificate -> descriptor. Likewise the issuer's and the
opener's BN_P256 public keys, which X.509 cannot carry, are published as signed objects under the
P-256 key certified for role ``issuer`` / ``opener``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ecash_tpm.errors import ForbiddenError, InputError

__all__ = [
    "CERT_ORGANIZATION",
    "OID_ARC",
    "OID_ROLE_ARC",
    "ROLES",
    "ROLE_OIDS",
    "CertificateExpiredError",
    "CertificateMalformedError",
    "CertificateRevokedError",
    "CertificateUntrustedError",
    "CertificateWrongNameError",
    "CertificateWrongRoleError",
    "CrlInput",
    "CrlInvalidError",
    "CrlProvider",
    "CrlStaleError",
    "PkiError",
    "UnknownRoleError",
    "cert_pem",
    "certificate_fingerprint",
    "certificate_role",
    "common_name",
    "check_name",
    "check_role",
    "load_certificate",
    "load_crl",
    "verify_party_certificate",
]

#: Project private arc. PLACEHOLDER: 55555 is not a registered PEN; see the module docstring.
OID_ARC = "1.3.6.1.4.1.55555.1"
#: Arc of the role purposes (extended key usages).
OID_ROLE_ARC = OID_ARC + ".1"

#: Certified party roles -> EKU purpose OID. Numbers are stable: never reuse one.
ROLE_OIDS: dict[str, x509.ObjectIdentifier] = {
    "bank": x509.ObjectIdentifier(OID_ROLE_ARC + ".1"),
    "issuer": x509.ObjectIdentifier(OID_ROLE_ARC + ".2"),
    "opener": x509.ObjectIdentifier(OID_ROLE_ARC + ".3"),
    "merchant": x509.ObjectIdentifier(OID_ROLE_ARC + ".4"),
    "ttp": x509.ObjectIdentifier(OID_ROLE_ARC + ".5"),
    "supervision": x509.ObjectIdentifier(OID_ROLE_ARC + ".6"),
    "centralbank": x509.ObjectIdentifier(OID_ROLE_ARC + ".7"),  # its TLS certificate only
}
ROLES: frozenset[str] = frozenset(ROLE_OIDS)
_OID_ROLES = {oid: role for role, oid in ROLE_OIDS.items()}

#: The signed-object kind of keyset descriptors (ecash_tpm.protocol.keysets, signed by the bank
#: key, not certified): never a role.
_KEYSET_DESCRIPTOR_KIND = "bank-keyset"

#: Subject O= of every certificate the central bank issues.
CERT_ORGANIZATION = "ecash-tpm"
#: Longest party name (X.520 ub-common-name).
MAX_NAME_LEN = 64


# --- errors ----------------------------------------------------------------------------------


class PkiError(ForbiddenError):
    """A certificate or CRL was not accepted; the presenting party is refused (403)."""

    code = "pki.invalid"


class CertificateUntrustedError(PkiError):
    """Not signed by the root (another CA, a leaf acting as CA, a forged signature)."""

    code = "cert.untrusted"


class CertificateExpiredError(PkiError):
    """Outside its validity period (``cert.expired``; ``cert.not_yet_valid`` before it starts)."""

    code = "cert.expired"


class CertificateWrongRoleError(PkiError):
    """Certified for another role, for no role, inconsistently, or as a CA."""

    code = "cert.wrong_role"


class CertificateWrongNameError(PkiError):
    """Right role, but certified for another party name."""

    code = "cert.wrong_name"


class CertificateRevokedError(PkiError):
    """Listed on the root's CRL."""

    code = "cert.revoked"


class CertificateMalformedError(PkiError):
    """Cannot be parsed, or lacks a field every party certificate must have."""

    code = "cert.malformed"
    http_status = 400


class CrlInvalidError(PkiError):
    """The CRL cannot be parsed, is not signed by the root, or is stale."""

    code = "crl.invalid"


class CrlStaleError(CrlInvalidError):
    """The revocation list is past its ``next_update``: revocation status unknown, so the
    verifier refuses to act (HTTP 503) rather than accept a possibly revoked certificate."""

    code = "crl.stale"
    http_status = 503


@runtime_checkable
class CrlProvider(Protocol):
    """Hands out the current verified CRL (:class:`ecash_tpm.pki.revocation.CrlSource`)."""

    def current_crl(self, now: dt.datetime) -> x509.CertificateRevocationList: ...


#: What ``crl=`` accepts: a provider (the verifier's current list), a CRL, PEM or DER.
CrlInput = CrlProvider | x509.CertificateRevocationList | bytes | str


class UnknownRoleError(InputError):
    """A role name that the PKI does not know (including ``bank-keyset``, which is no cert)."""

    code = "cert.unknown_role"


# --- parsing helpers ---------------------------------------------------------------------------


def check_role(role: str) -> x509.ObjectIdentifier:
    """Return the EKU OID of ``role`` or raise :class:`UnknownRoleError`."""
    if role == _KEYSET_DESCRIPTOR_KIND:
        raise UnknownRoleError(
            "bank keysets are not certified: sign the descriptor with the bank key "
            f"(signed object kind {_KEYSET_DESCRIPTOR_KIND!r})",
            detail={"role": role},
        )
    oid = ROLE_OIDS.get(role) if isinstance(role, str) else None
    if oid is None:
        raise UnknownRoleError(
            f"unknown role {role!r}", detail={"role": repr(role)[:80], "known": sorted(ROLES)}
        )
    return oid


def check_name(name: str) -> str:
    """Validate a party name for ``CN=``: 1..64 printable characters, no surrounding spaces."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MAX_NAME_LEN
        or not name.isprintable()
        or name != name.strip()
    ):
        raise InputError(
            f"party name must be 1..{MAX_NAME_LEN} printable characters without surrounding spaces",
            code="cert.invalid_name",
            detail={"name": repr(name)[:80]},
        )
    return name


def load_certificate(cert: x509.Certificate | bytes | str) -> x509.Certificate:
    """Accept a certificate object, PEM (bytes or str) or DER."""
    if isinstance(cert, x509.Certificate):
        return cert
    if isinstance(cert, str):
        cert = cert.encode("ascii", "replace")
    if not isinstance(cert, bytes | bytearray | memoryview):
        raise CertificateMalformedError(f"expected a certificate, not {type(cert).__name__}")
    data = bytes(cert)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateMalformedError("certificate cannot be parsed") from exc


def load_crl(
    crl: x509.CertificateRevocationList | bytes | str,
) -> x509.CertificateRevocationList:
    """Accept a CRL object, PEM (bytes or str) or DER."""
    if isinstance(crl, x509.CertificateRevocationList):
        return crl
    if isinstance(crl, str):
        crl = crl.encode("ascii", "replace")
    if not isinstance(crl, bytes | bytearray | memoryview):
        raise CrlInvalidError(f"expected a CRL, not {type(crl).__name__}")
    data = bytes(crl)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CrlInvalidError("CRL cannot be parsed") from exc


def certificate_fingerprint(cert: x509.Certificate | bytes | str) -> str:
    """Lower-case hex SHA-256 of the DER certificate: the ``signer`` hint of signed objects."""
    der = load_certificate(cert).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def common_name(cert: x509.Certificate | bytes | str) -> str:
    """The single CN of a party certificate: the party's name ("" when it has none; a certificate
    that passed :func:`verify_party_certificate` always has exactly one)."""
    values = load_certificate(cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if len(values) == 1 else ""


def cert_pem(cert: x509.Certificate | bytes | str) -> str:
    """A certificate as PEM text (the ``cert`` field of API bodies)."""
    return load_certificate(cert).public_bytes(serialization.Encoding.PEM).decode("ascii")


def _aware_now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise InputError("now must be a timezone-aware datetime")
    return now


def _name_values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attr.value) for attr in name.get_attributes_for_oid(oid)]


def certificate_role(cert: x509.Certificate) -> str:
    """The role a certificate claims, after checking that subject OU and EKU agree.

    Raises :class:`CertificateWrongRoleError` when they disagree, name several roles or none.
    """
    try:
        ous = _name_values(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
        eku_ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise CertificateWrongRoleError("certificate has no role (no extended key usage)") from exc
    except ValueError as exc:
        raise CertificateMalformedError("certificate extensions cannot be parsed") from exc
    purposes = list(eku_ext.value)
    eku_roles = [_OID_ROLES.get(oid) for oid in purposes]
    if (
        len(purposes) != 1
        or eku_roles[0] is None
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in purposes
    ):
        raise CertificateWrongRoleError(
            "extended key usage must name exactly one ecash-tpm role",
            detail={"eku": [oid.dotted_string for oid in purposes]},
        )
    if not eku_ext.critical:
        raise CertificateWrongRoleError("role extension (extended key usage) must be critical")
    role = eku_roles[0]
    if ous != [role]:
        raise CertificateWrongRoleError(
            "subject OU does not match the certified role", detail={"ou": ous, "eku_role": role}
        )
    return role


# --- verification ------------------------------------------------------------------------------


def verify_party_certificate(
    cert: x509.Certificate | bytes | str,
    root_cert: x509.Certificate | bytes | str,
    *,
    role: str,
    name: str | None = None,
    crl: CrlInput | None = None,
    now: dt.datetime | None = None,
) -> ec.EllipticCurvePublicKey:
    """Check a party certificate against the central bank root and return its P-256 key.

    Checks, each with its own error code: the CRL (if given) is signed by the root and not
    stale (``crl.invalid``); the certificate parses and has a P-256 key (``cert.malformed``);
    it is directly signed by the root, which is a valid CA (``cert.untrusted``); it is within its
    validity period (``cert.expired`` / ``cert.not_yet_valid``); it is a leaf (CA:false) for
    digital signatures whose subject OU and critical EKU both name ``role`` (``cert.wrong_role``);
    its CN equals ``name`` if given (``cert.wrong_name``); its serial is not on the CRL
    (``cert.revoked``). Without a CRL, revocation is not checked: callers that can fetch one
    should always pass it.
    """
    wanted_oid = check_role(role)
    now = _aware_now(now)
    root = load_certificate(root_cert)
    revocations = _verified_crl(crl, root, now) if crl is not None else None
    leaf = load_certificate(cert)
    detail: dict[str, Any] = {"serial": format(leaf.serial_number, "x")}

    check_issued_and_current(leaf, root, now, detail, what="certificate")

    _check_leaf_usage(leaf, detail)
    got_role = certificate_role(leaf)
    if got_role != role or ROLE_OIDS[got_role] != wanted_oid:
        raise CertificateWrongRoleError(
            f"certificate is for role {got_role!r}, not {role!r}",
            detail={**detail, "role": got_role, "expected": role},
        )
    if name is not None:
        cns = _name_values(leaf.subject, NameOID.COMMON_NAME)
        if cns != [name]:
            raise CertificateWrongNameError(
                "certificate is for another party", detail={**detail, "cn": cns, "expected": name}
            )

    if revocations is not None:
        entry = revocations.get_revoked_certificate_by_serial_number(leaf.serial_number)
        if entry is not None:
            raise CertificateRevokedError("certificate has been revoked", detail=detail)

    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CertificateMalformedError("party certificates must carry a P-256 key", detail=detail)
    return key


def check_issued_and_current(
    leaf: x509.Certificate,
    root: x509.Certificate,
    now: dt.datetime,
    detail: dict[str, Any],
    *,
    what: str,
) -> None:
    """What every party certificate (signing or TLS) must be: a valid root, a leaf directly
    signed by it (``cert.untrusted``), inside its validity (``cert.not_yet_valid`` /
    ``cert.expired``)."""
    _check_root(root, now)
    try:
        leaf.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise CertificateUntrustedError(
            f"{what} is not signed by the central bank root", detail=detail
        ) from exc
    if now < leaf.not_valid_before_utc:
        raise CertificateExpiredError(
            f"{what} is not valid yet", code="cert.not_yet_valid", detail=detail
        )
    if now > leaf.not_valid_after_utc:
        raise CertificateExpiredError(f"{what} has expired", detail=detail)


def _check_root(root: x509.Certificate, now: dt.datetime) -> None:
    """The trust anchor must itself be a CA and currently valid, or nothing under it is."""
    try:
        bc = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError) as exc:
        raise CertificateUntrustedError("root certificate is not a CA") from exc
    if not bc.ca:
        raise CertificateUntrustedError("root certificate is not a CA")
    if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
        raise CertificateExpiredError("root certificate is outside its validity period")


def _check_leaf_usage(leaf: x509.Certificate, detail: dict[str, Any]) -> None:
    """CA:false and digitalSignature without certificate/CRL signing."""
    try:
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CertificateMalformedError(
            "party certificate lacks basic constraints or key usage", detail=detail
        ) from exc
    except ValueError as exc:
        raise CertificateMalformedError(
            "certificate extensions cannot be parsed", detail=detail
        ) from exc
    if bc.ca or ku.key_cert_sign or ku.crl_sign:
        raise CertificateWrongRoleError(
            "a CA certificate is not a party certificate", detail=detail
        )
    if not ku.digital_signature:
        raise CertificateWrongRoleError("certificate is not for digital signatures", detail=detail)


def _verified_crl(
    crl: CrlInput,
    root: x509.Certificate,
    now: dt.datetime,
    *,
    allow_stale: bool = False,
) -> x509.CertificateRevocationList:
    """The CRL, checked to be the root's (``crl.invalid``) and current (``crl.stale``); a
    :class:`CrlProvider` does both itself (docs/protocol.md, "Revocation")."""
    if isinstance(crl, CrlProvider):
        return crl.current_crl(now)
    parsed = load_crl(crl)
    root_key = root.public_key()
    if parsed.issuer != root.subject:
        raise CrlInvalidError("CRL is not issued by the central bank root")
    if not isinstance(root_key, ec.EllipticCurvePublicKey):
        raise CertificateUntrustedError("root certificate must carry an EC key")
    try:
        valid = parsed.is_signature_valid(root_key)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CrlInvalidError("CRL signature cannot be checked") from exc
    if not valid:
        raise CrlInvalidError("CRL is not signed by the central bank root")
    if parsed.last_update_utc > now:
        raise CrlInvalidError("CRL is from the future")
    next_update = parsed.next_update_utc
    if not allow_stale and (next_update is None or next_update < now):
        raise CrlStaleError(
            "CRL is stale: revocation status unknown",
            detail={"next_update": None if next_update is None else next_update.isoformat()},
        )
    return parsed

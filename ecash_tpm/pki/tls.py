"""TLS identities of the parties: the DNS name a TLS certificate must carry, and the check of a
peer's TLS certificate (docs/protocol.md, "Certificates"; docs/operations.md, TLS).

A party's TLS certificate is separate from its signing certificate. Signing certificates have a
*critical* EKU naming only the role, so no TLS stack accepts them; TLS certificates have a
*non-critical* EKU with ``serverAuth``, ``clientAuth`` and the role OID (TLS stacks only check
their own purposes), the role again in ``OU=`` and the party in ``CN=``. Their SAN holds the
party's identity ``<name>.<role>.parties.ecash-tpm.internal`` (:func:`tls_identity`): a client
that expects bank ``bank-1`` verifies the server's certificate against that host name, so a
certificate for another role or another party fails hostname verification in the handshake,
before a single byte of the request is sent. The domain is not resolvable; the name is only
ever used for verification (SNI and the certificate check), never to look up an address.

Conversely, :func:`certificate_role` refuses a TLS certificate as a signing certificate (its EKU
is not critical and names several purposes), so neither kind can stand in for the other.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ecash_tpm.errors import InputError
from ecash_tpm.pki.certificates import (
    CertificateRevokedError,
    CertificateWrongRoleError,
    CrlInput,
    _aware_now,
    _name_values,
    _verified_crl,
    check_issued_and_current,
    check_role,
    load_certificate,
)

__all__ = ["TLS_DOMAIN", "TLS_PURPOSES", "tls_identity", "verify_tls_peer"]

#: Parent domain of every party's TLS identity (never resolved; ``.internal`` is reserved for
#: private use, so it cannot collide with a public name).
TLS_DOMAIN = "parties.ecash-tpm.internal"
#: The generic TLS purposes every party TLS certificate carries next to its role OID.
TLS_PURPOSES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def tls_identity(role: str, name: str) -> str:
    """``<name>.<role>.parties.ecash-tpm.internal``: the host name a client verifies.

    ``name`` must be one lower-case DNS label (``pki.name_not_dns``): anything else could not
    appear in a certificate's SAN, or (with dots) could impersonate another identity.
    """
    check_role(role)
    if not isinstance(name, str) or _DNS_LABEL.fullmatch(name) is None:
        raise InputError(
            "a party with a TLS certificate needs a name that is one lower-case DNS label "
            "(a-z, 0-9 and '-', 1..63 characters, no leading or trailing '-')",
            code="pki.name_not_dns",
            detail={"name": repr(name)[:80]},
        )
    return f"{name}.{role}.{TLS_DOMAIN}"


def verify_tls_peer(
    cert_der: bytes | str | x509.Certificate,
    root: x509.Certificate | bytes | str,
    *,
    role: str,
    now: dt.datetime | None = None,
    crl: CrlInput | None = None,
) -> str:
    """The party name (CN) of a TLS peer certificate for ``role``, after checking it.

    The TLS stack has already checked the chain when this runs for a client certificate; it is
    checked again here so the function stands on its own (a test, an audit of a stored
    certificate). Checks: signed by ``root`` (``cert.untrusted``), within validity
    (``cert.expired`` / ``cert.not_yet_valid``), a leaf whose subject ``OU`` is ``role`` and whose
    EKU holds the role OID and both TLS purposes (``cert.wrong_role``: a signing certificate
    is no TLS certificate), exactly one CN that is a DNS label; with
    ``crl``: the CRL is the root's and current (``crl.invalid``) and does not list the
    certificate (``cert.revoked``).
    """
    wanted = check_role(role)
    moment = _aware_now(now)
    anchor = load_certificate(root)
    revocations = _verified_crl(crl, anchor, moment) if crl is not None else None
    leaf = load_certificate(cert_der)
    detail: dict[str, Any] = {"serial": format(leaf.serial_number, "x")}
    check_issued_and_current(leaf, anchor, moment, detail, what="TLS certificate")
    try:
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        purposes = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except (x509.ExtensionNotFound, ValueError) as exc:
        raise CertificateWrongRoleError(
            "TLS certificate has no role (no extended key usage)", detail=detail
        ) from exc
    ous = _name_values(leaf.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    tls_purposes = all(purpose in purposes for purpose in TLS_PURPOSES)
    if bc.ca or not tls_purposes or wanted not in purposes or ous != [role]:
        raise CertificateWrongRoleError(
            f"TLS certificate is not for role {role!r}",
            detail={**detail, "ou": ous, "expected": role},
        )
    cns = _name_values(leaf.subject, NameOID.COMMON_NAME)
    if len(cns) != 1 or _DNS_LABEL.fullmatch(cns[0]) is None:
        raise CertificateWrongRoleError(
            "TLS certificate must name exactly one party", detail={**detail, "cn": cns}
        )
    serial = leaf.serial_number
    if revocations is not None and revocations.get_revoked_certificate_by_serial_number(serial):
        raise CertificateRevokedError("TLS certificate has been revoked", detail=detail)
    return cns[0]

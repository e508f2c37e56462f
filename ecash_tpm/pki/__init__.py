"""The system PKI as every party sees it: certificate roles, OIDs, and the checks of party
certificates against the central bank's root (docs/protocol.md, "Certificates").

Pure verification, no keys and no files: the CA that issues these lives in
``ecash_tpm.centralbank``. Example::

    from ecash_tpm.pki import common_name, verify_party_certificate

    key = verify_party_certificate(cert_pem, root_pem, role="merchant", name="shop-1")
    assert common_name(cert_pem) == "shop-1"
"""

from ecash_tpm.pki.certificates import (
    CERT_ORGANIZATION,
    OID_ARC,
    OID_ROLE_ARC,
    ROLE_OIDS,
    ROLES,
    CertificateExpiredError,
    CertificateMalformedError,
    CertificateRevokedError,
    CertificateUntrustedError,
    CertificateWrongNameError,
    CertificateWrongRoleError,
    CrlInput,
    CrlInvalidError,
    CrlProvider,
    CrlStaleError,
    PkiError,
    UnknownRoleError,
    cert_pem,
    certificate_fingerprint,
    certificate_role,
    check_name,
    check_role,
    common_name,
    load_certificate,
    load_crl,
    verify_party_certificate,
)
from ecash_tpm.pki.revocation import CrlSource, CrlUnavailableError
from ecash_tpm.pki.tls import TLS_DOMAIN, TLS_PURPOSES, tls_identity, verify_tls_peer

__all__ = [
    "CERT_ORGANIZATION",
    "OID_ARC",
    "OID_ROLE_ARC",
    "ROLES",
    "ROLE_OIDS",
    "TLS_DOMAIN",
    "TLS_PURPOSES",
    "CertificateExpiredError",
    "CertificateMalformedError",
    "CertificateRevokedError",
    "CertificateUntrustedError",
    "CertificateWrongNameError",
    "CertificateWrongRoleError",
    "CrlInput",
    "CrlInvalidError",
    "CrlProvider",
    "CrlSource",
    "CrlStaleError",
    "CrlUnavailableError",
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
    "tls_identity",
    "verify_party_certificate",
    "verify_tls_peer",
]

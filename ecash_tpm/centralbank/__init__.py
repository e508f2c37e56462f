"""The central bank: the system's root CA (DESIGN §1).

``pki`` holds what every party needs to *check* certificates (roles, OIDs, errors,
:func:`verify_party_certificate`); ``ca`` holds what only the central bank does (issue, revoke,
publish CRLs), with its state in the data layer (``store``). Importing the package gives both.

The service lives in submodules that are imported on demand (they pull in FastAPI):
``settings`` / ``routes`` / ``service`` (the HTTP API), ``client`` (for the other parties),
``supply`` (money-supply reports and :func:`~ecash_tpm.centralbank.supply.check_supply_report`).
"""

from ecash_tpm.centralbank.ca import (
    CaExistsError,
    CaNotFoundError,
    CaStateError,
    CentralBankCA,
    IssuedCertificate,
    UnknownSerialError,
)
from ecash_tpm.centralbank.pki import (
    KEYSET_DESCRIPTOR_KIND,
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
    CrlInvalidError,
    PkiError,
    UnknownRoleError,
    certificate_fingerprint,
    certificate_role,
    load_certificate,
    load_crl,
    verify_party_certificate,
)

__all__ = [
    "KEYSET_DESCRIPTOR_KIND",
    "OID_ARC",
    "OID_ROLE_ARC",
    "ROLES",
    "ROLE_OIDS",
    "CaExistsError",
    "CaNotFoundError",
    "CaStateError",
    "CentralBankCA",
    "CertificateExpiredError",
    "CertificateMalformedError",
    "CertificateRevokedError",
    "CertificateUntrustedError",
    "CertificateWrongNameError",
    "CertificateWrongRoleError",
    "CrlInvalidError",
    "IssuedCertificate",
    "PkiError",
    "UnknownRoleError",
    "UnknownSerialError",
    "certificate_fingerprint",
    "certificate_role",
    "load_certificate",
    "load_crl",
    "verify_party_certificate",
]

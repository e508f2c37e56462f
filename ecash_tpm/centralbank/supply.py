"""The central bank's intake of money-supply reports: verify the bank's signature and certificate
against the central bank's own issuance log, refuse self-contradicting reports, store them
(docs/protocol.md, "Money-supply reports"). The report format is ``ecash_tpm.protocol.supply``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography.hazmat.primitives import serialization

from ecash_tpm.centralbank.ca import CentralBankCA, UnknownSerialError
from ecash_tpm.crypto.signing import canonical_digest, canonical_encode
from ecash_tpm.crypto.signing import verify_object as _verify_object
from ecash_tpm.pki import (
    CertificateRevokedError,
    CertificateUntrustedError,
    CertificateWrongNameError,
    check_name,
    load_certificate,
    verify_party_certificate,
)
from ecash_tpm.protocol.api.base import validate_model
from ecash_tpm.protocol.supply import (
    SUPPLY_REPORT_KIND,
    SupplyReportBody,
    SupplyReportConflictError,
    SupplyReportInvalidError,
    check_supply_report,
)
from ecash_tpm.storage import Row

__all__ = ["accept_supply_report"]


def _self_check(body: SupplyReportBody) -> None:
    """Refuse a report that contradicts itself: the bank's software must fix it, not us."""
    problems = [d.to_dict() for d in check_supply_report(body, {}) if d.kind != "not_audited"]
    if problems:
        raise SupplyReportInvalidError(
            "supply report is inconsistent", detail={"discrepancies": problems}
        )


def accept_supply_report(
    ca: CentralBankCA,
    report: Any,
    cert: str | bytes,
    *,
    now: dt.datetime | None = None,
    max_skew_s: int = 300,
) -> tuple[Row, bool]:
    """Verify a signed report and its bank certificate, then store it.

    Returns ``(stored row, created)``; ``created`` is False for an identical resubmission.
    Raises the PKI errors (403: not our certificate, wrong role/name, revoked, expired), 400
    for a bad signature or body, 409 :class:`SupplyReportConflictError`.
    """
    moment = now or dt.datetime.now(dt.UTC)
    leaf = load_certificate(cert)
    key = verify_party_certificate(leaf, ca.root_certificate, role="bank", now=moment)
    serial = leaf.serial_number
    detail = {"serial": format(serial, "x")}
    try:
        record = ca.get(serial)
    except UnknownSerialError as exc:  # signed by our key but not in our log: state problem
        raise CertificateUntrustedError(
            "certificate is not in the central bank's issuance log", detail=detail
        ) from exc
    if record.certificate != leaf:
        raise CertificateUntrustedError(
            "certificate differs from the one the central bank issued", detail=detail
        )
    if record.revoked_at is not None:
        raise CertificateRevokedError("certificate has been revoked", detail=detail)

    body_dict = _verify_object(report, key, SUPPLY_REPORT_KIND)
    body = validate_model(SupplyReportBody, body_dict)
    check_name(body.bank_id)
    if record.name != body.bank_id:
        raise CertificateWrongNameError(
            "report is for another bank than the certificate names",
            detail={**detail, "cn": record.name, "bank_id": body.bank_id},
        )
    if body.as_of > int(moment.timestamp()) + max_skew_s:
        raise SupplyReportInvalidError(
            "supply report is dated in the future",
            code="supply_report.from_future",
            detail={"as_of": body.as_of, "now": int(moment.timestamp())},
        )
    _self_check(body)

    digest = canonical_digest(body_dict)
    row, created = ca.store.insert_supply_report(
        bank_id=body.bank_id,
        as_of=body.as_of,
        body_digest=digest,
        report_json=canonical_encode(dict(report)).decode("utf-8"),
        cert_pem=leaf.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        signer_serial=format(serial, "x"),
        received_at=int(moment.timestamp()),
    )
    if not created and bytes(row["body_digest"]) != digest:
        raise SupplyReportConflictError(
            "this bank already reported a different body for this as_of",
            detail={"report_id": int(row["id"]), "bank_id": body.bank_id, "as_of": body.as_of},
        )
    return row, created

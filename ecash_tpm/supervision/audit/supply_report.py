"""The bank's latest money-supply report at the central bank (optional): signature and
certificate, and :func:`~ecash_tpm.protocol.supply.check_supply_report` against the audit's
own outstanding values *as of the report's time*.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecash_tpm.crypto.signing import verify_object
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import common_name, load_certificate, verify_party_certificate
from ecash_tpm.protocol.api.base import validate_model
from ecash_tpm.protocol.supply import SUPPLY_REPORT_KIND, SupplyReportBody
from ecash_tpm.protocol.supply import check_supply_report as compare_supply_report
from ecash_tpm.supervision.audit.context import AuditContext, utc
from ecash_tpm.supervision.audit.supply import outstanding_as_of
from ecash_tpm.supervision.audit_report import AuditInputError

__all__ = ["check_supply_report"]


def check_supply_report(ctx: AuditContext, stored: Mapping[str, Any]) -> dict[str, Any]:
    """Compare the stored report (``{report_id, report, cert, ...}``) with the audit's counts;
    returns the report's ``supply_report`` summary. Another bank's report is an input error."""
    report = stored.get("report")
    cert = stored.get("cert")
    report_id = stored.get("report_id")
    summary: dict[str, Any] = {"report_id": report_id, "as_of": None, "discrepancies": []}
    raw_body = report.get("body") if isinstance(report, Mapping) else None
    as_of = raw_body.get("as_of") if isinstance(raw_body, Mapping) else None
    at = as_of if isinstance(as_of, int) and not isinstance(as_of, bool) else ctx.now
    try:
        if not isinstance(cert, str | bytes):
            raise AuditInputError("the stored report has no certificate")
        key = verify_party_certificate(cert, ctx.root, role="bank", now=utc(at))
        body = validate_model(SupplyReportBody, verify_object(report, key, SUPPLY_REPORT_KIND))
    except EcashError as exc:
        ctx.flag(
            "supply_report.bad_signature",
            f"supply report: {exc.message}",
            table="supply_report",
            row_id=report_id,
            found=exc.code,
        )
        return summary
    if body.bank_id != ctx.bank_id or common_name(load_certificate(cert)) != ctx.bank_id:
        raise AuditInputError(
            "the supply report is another bank's",
            detail={"bank_id": body.bank_id, "audited": ctx.bank_id},
        )
    counts = outstanding_as_of(ctx, body.as_of)
    audited = {k.b64: k.value * (counts[kid][0] - counts[kid][1]) for kid, k in ctx.keysets.items()}
    fees = sum(fee for at, fee in ctx.fee_events if at <= body.as_of)  # 4.2
    found = compare_supply_report(body, audited, fees)
    for d in found:
        ctx.flag(
            "supply_report." + d.kind,
            f"supply report as of {body.as_of}: {d.kind.replace('_', ' ')}",
            table="supply_report",
            row_id=report_id,
            expected=d.expected,
            found=d.reported,
            keyset_id=d.keyset_id,
        )
    summary.update(
        as_of=body.as_of,
        bank_id=body.bank_id,
        reported_total=sum(k.outstanding_value for k in body.keysets),
        audited_total=sum(audited.values()),
        reported_fees=body.fees,
        audited_fees=fees,
        discrepancies=[d.to_dict() for d in found],
    )
    return summary

"""Double-spend reports: the refused attempt and the first transcript are two valid spends of
one serial for different requests (else the bank accused a customer wrongly).

Runs after the deposits area, whose parsed transcripts (``ctx.parsed``) it reuses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.evidence import parse_transcript
from ecash_tpm.supervision.audit.context import AuditContext, blob
from ecash_tpm.supervision.audit.store import BankTables

__all__ = ["check_double_spend_reports"]


def check_double_spend_reports(ctx: AuditContext, tables: BankTables) -> None:
    """Each recorded report, whatever its status, must show a real double spend."""
    rows = tables.double_spend_reports()
    ctx.counts["double_spend_reports"] = len(rows)
    for r in rows:
        ctx.counts["double_spend_reports_" + str(r["status"])] += 1
        problem = _report_problem(ctx, r)
        if problem is not None:
            ctx.flag(
                "double_spend_report.invalid",
                f"double-spend report is not a double spend: {problem}",
                table="double_spend_report",
                row_id=int(r["report_id"]),
                serial=blob(r["sigma"]),
            )


def _report_problem(ctx: AuditContext, r: Mapping[str, Any]) -> str | None:
    sigma = blob(r["sigma"])
    first = ctx.parsed.get(int(r["first_transcript_id"]))
    if first is None:
        return "the first transcript is missing or unreadable"
    try:
        second = parse_transcript(
            {**json.loads(r["second_transcript"]), "transcript_id": f"attempt-{r['report_id']}"}
        )
    except (EcashError, ValueError, TypeError) as exc:
        return f"the refused attempt cannot be parsed ({exc})"
    if first.sigma != sigma or second.sigma != sigma:
        return "the transcripts are of another serial"
    if second.preq != blob(r["second_preq"]):
        return "the attempt's preq differs from the recorded one"
    if first.preq == second.preq:
        return "both spends are for the same payment request"
    try:
        second.verify_spend(ctx.hop)
    except EcashError:
        return "the attempt's spend proof does not verify"
    return None

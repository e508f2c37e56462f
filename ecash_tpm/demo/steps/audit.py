"""Step 11, ``audit``: the bank reports its money supply to the central bank; the supervision
department audits the bank's database against that report."""

from __future__ import annotations

from typing import Any

from ecash_tpm.demo.context import DemoCheckError, StoryContext
from ecash_tpm.deploy.bootstrap import admin_bank


def audit(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Send the supply report, then run the auditor over the bank's database."""
    from ecash_tpm.bank.supply import send_supply_report
    from ecash_tpm.clients.centralbank import CentralBankClient
    from ecash_tpm.issuer.keys import IssuerKeyStore
    from ecash_tpm.issuer.settings import IssuerSettings
    from ecash_tpm.supervision.audit import run_audit

    dep = ctx.dep
    bank = dep.bank_settings()
    issuer = dep.settings("bank", IssuerSettings)
    published = ctx.bank_session.keysets().signed
    with CentralBankClient(
        dep.url("centralbank"), **dep.client_kwargs("centralbank")
    ) as central_bank:
        with admin_bank(bank) as books:  # the bank reports its money supply
            sent = send_supply_report(books, central_bank)
        supply = central_bank.latest_supply_report(sent["report"]["body"]["bank_id"])
    ctx.fact(
        "supply report",
        f"the bank's signed report #{sent['receipt']['report_id']} accepted by the "
        "central bank; the audit compares it with the bank's books",
    )
    report = run_audit(
        bank.database_url,
        bank_cert=bank.path("cert_file").read_bytes(),
        central_bank_root=dep.root_pem(),
        opener_public=ctx.member.opener_public,
        issuer_secrets=IssuerKeyStore.open(issuer.resolved_key_dir()),
        keyset_descriptors=published,
        supply_report=supply.model_dump(mode="json"),
    )
    for line in report.summary().splitlines():
        ctx.say(f"      {line}")
    detail.update(
        ok=report.ok,
        violations=[v.to_dict() for v in report.violations],
        counts=report.counts,
        skipped=report.skipped,
        outstanding_total=report.outstanding_total(),
        supply_report=report.supply_report,
    )
    if not report.ok:
        raise DemoCheckError(
            f"the audit found {len(report.violations)} violation(s)",
            detail={"kinds": sorted(report.kinds())},
        )

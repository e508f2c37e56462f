"""One audit run: open the snapshot, run the areas in order over one context, build the report.

The order matters: keysets first (every area needs them), the ledger loaded before withdrawals
and deposits check their bookings and checked after them (orphans), serials after deposits
(transcripts), the money supply after withdrawals and serials (issued and spent coins), the
double-spend reports after deposits (parsed transcripts).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.groupsig import IssuerPublic, IssuerSecret
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol.certified import IssuerEpochCertificate
from ecash_tpm.storage import Database
from ecash_tpm.supervision.audit.blacklist import check_blacklist
from ecash_tpm.supervision.audit.context import AuditContext, EpochSecrets, MappingSecrets
from ecash_tpm.supervision.audit.deposits import check_deposits
from ecash_tpm.supervision.audit.double_spends import check_double_spend_reports
from ecash_tpm.supervision.audit.keysets import check_published, load_keysets
from ecash_tpm.supervision.audit.ledger import check_ledger, load_ledger
from ecash_tpm.supervision.audit.redeems import check_redeems
from ecash_tpm.supervision.audit.refunds import check_refunds
from ecash_tpm.supervision.audit.serials import check_serials
from ecash_tpm.supervision.audit.store import BankTables, open_bank_database, schema_version
from ecash_tpm.supervision.audit.supply import check_supply
from ecash_tpm.supervision.audit.supply_report import check_supply_report
from ecash_tpm.supervision.audit.swaps import check_swaps
from ecash_tpm.supervision.audit.withdrawals import check_withdrawals
from ecash_tpm.supervision.audit_report import AuditInputError, AuditReport

__all__ = ["run_audit"]


def run_audit(
    bank_db: Database | str,
    *,
    bank_cert: x509.Certificate | str | bytes,
    central_bank_root: x509.Certificate | str | bytes,
    opener_public: Point,
    issuer_secrets: EpochSecrets | Mapping[int, IssuerSecret] | None = None,
    issuer_public: Mapping[int, IssuerPublic] | None = None,
    issuer_epoch_certificates: Sequence[Mapping[str, Any]] | None = None,
    keyset_descriptors: Sequence[Mapping[str, Any]] | None = None,
    supply_report: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> AuditReport:
    """Audit a bank's database; never raises for what it finds (see the package docstring).

    ``bank_db``: an open :class:`Database` (left open) or its URL (opened read-only, closed).
    ``bank_cert`` / ``central_bank_root``: the bank's certificate and the auditor's own copy of
    the central-bank root (the trust anchor). ``opener_public``: Hop. ``issuer_secrets``: an
    ``IssuerKeyStore`` or ``{epoch: IssuerSecret}``; without them the credential check is
    skipped and listed in ``report.skipped``. ``issuer_public``: ``{epoch: IssuerPublic}`` to
    check the secrets against; with X2, Y2 (issue 14) coin credentials are checked publicly with
    pairings (docs/protocol.md §7.4) instead of with the secrets. ``issuer_epoch_certificates``:
    the central bank's ``issuer-epoch-key`` documents (checked against the root), the same
    public data as ``issuer_public``. ``keyset_descriptors``: signed descriptors the bank published,
    which must be in its database. ``supply_report``: the central bank's stored report
    (``{report_id, report, cert, ...}`` as ``GET /v1/supply-reports/latest`` returns it).
    Raises only for unusable inputs (:class:`AuditInputError`, :class:`BankDatabaseError`).
    """
    try:
        cert = load_certificate(bank_cert)
        root = load_certificate(central_bank_root)
    except EcashError as exc:
        raise AuditInputError(f"bank certificate or root: {exc.message}") from exc
    if not isinstance(opener_public, Point) or opener_public.is_infinity:
        raise AuditInputError("opener_public must be a finite BN_P256 point")
    secrets: EpochSecrets | None = (
        MappingSecrets(issuer_secrets) if isinstance(issuer_secrets, Mapping) else issuer_secrets
    )
    moment = int(time.time()) if now is None else now
    if issuer_epoch_certificates is not None:
        issuer_public = {
            **(issuer_public or {}),
            **_certified_keys(issuer_epoch_certificates, root),
        }

    owned = isinstance(bank_db, str)
    db = open_bank_database(bank_db) if isinstance(bank_db, str) else bank_db
    try:
        version = schema_version(db)
        ctx = AuditContext(
            bank_cert=cert,
            root=root,
            hop=opener_public,
            secrets=secrets,
            issuer_public=issuer_public,
            now=moment,
        )
        with db.read() as tx:
            tables = BankTables(tx)
            load_keysets(ctx, tables)
            if keyset_descriptors is not None:
                check_published(ctx, keyset_descriptors)
            load_ledger(ctx, tables)
            check_withdrawals(ctx, tables)
            check_deposits(ctx, tables)
            check_refunds(ctx, tables)
            check_serials(ctx, tables)
            check_swaps(ctx, tables)  # issue 12: after serials (duplicates), before the ledger
            check_redeems(ctx, tables)  # 9.4: after swaps (duplicates), before the ledger
            check_ledger(ctx, tables)
            keysets = check_supply(ctx)
            check_blacklist(ctx, tables)
            check_double_spend_reports(ctx, tables)
        supply = None if supply_report is None else check_supply_report(ctx, supply_report)
        database = db.url
    finally:
        if owned:
            db.close()
    violations = sorted(
        ctx.violations, key=lambda v: (v.kind, v.table or "", str(v.row_id), v.serial or "")
    )
    return AuditReport(
        bank_id=ctx.bank_id,
        database=database,
        schema_version=version,
        audited_at=moment,
        counts=dict(sorted(ctx.counts.items())),
        skipped=ctx.skipped,
        violations=violations,
        keysets=keysets,
        supply_report=supply,
        fees=dict(ctx.fees),
    )


def _certified_keys(
    docs: Sequence[Mapping[str, Any]], root: x509.Certificate
) -> dict[int, IssuerPublic]:
    """``{epoch: key}`` from root-signed ``issuer-epoch-key`` documents (§3.6)."""
    out: dict[int, IssuerPublic] = {}
    for doc in docs:
        try:
            cert = IssuerEpochCertificate.from_signed(doc, root)
        except EcashError as exc:
            raise AuditInputError(f"issuer epoch certificate: {exc.message}") from exc
        out[cert.epoch] = cert.public
    return out

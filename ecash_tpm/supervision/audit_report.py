"""What a supervision audit of a bank finds: violations, counts, outstanding money per keyset.

Kept apart from :mod:`ecash_tpm.supervision.audit` (which does the checking) so that callers
that only read or forward reports (the CLI, the demo, a future HTTP endpoint) need none of the
cryptography. Everything here is JSON-serialisable through ``to_dict()``.

Violation kinds are stable strings, grouped by what they are about (``area.reason``, like the
project's error codes); :data:`VIOLATION_KINDS` lists them all and the tests pin them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ecash_tpm.errors import ConfigError, InputError

__all__ = [
    "VIOLATION_KINDS",
    "AuditInputError",
    "AuditReport",
    "BankDatabaseError",
    "KeysetSupplyAudit",
    "Violation",
]

#: Every violation kind the audit can report, with what it means.
VIOLATION_KINDS: dict[str, str] = {
    # identity and keysets
    "bank.certificate_invalid": "the bank certificate does not chain to the central-bank root",
    "keyset.descriptor_invalid": "a keyset's signed descriptor is missing, forged or does not "
    "commit to its key and windows",
    "keyset.row_mismatch": "a keyset row's columns differ from its signed descriptor",
    "keyset.not_in_database": "a descriptor the bank published has no keyset row",
    "issuer.secret_mismatch": "the issuer secret of an epoch does not match its public key",
    # withdrawals (issued signatures)
    "withdrawal.unknown_keyset": "a withdrawal item names a keyset the bank does not have",
    "withdrawal.keyset_not_withdrawable": "a coin was signed outside its keyset's withdraw window",
    "withdrawal.bad_blind_signature": "a stored blind signature is not s^e = blinded (mod n)",
    "withdrawal.amount_mismatch": "a withdrawal's amount differs from the value of its items",
    "withdrawal.ledger_mismatch": "a withdrawal's ledger transaction is missing or books other "
    "amounts than its items",
    "withdrawal.orphan_item": "a signed item belongs to no withdrawal",
    # deposits and their transcripts
    "transcript.malformed": "a stored transcript cannot be parsed",
    "transcript.row_mismatch": "a transcript's columns, body and deposit disagree",
    "coin.unknown_keyset": "a deposited coin names a keyset the bank does not have",
    "coin.keyset_not_depositable": "a coin was accepted outside its keyset's deposit window",
    "coin.bad_signature": "a deposited coin's RSA signature does not verify under its keyset",
    "coin.unknown_epoch": "no issuer key (secret or certified G2 key) for a deposited coin's epoch",
    "coin.bad_credential": "a deposited coin's credential fails S = y*R, T = x*(R + W)",
    "spend.bad_proof": "a spend proof does not verify for the recorded payment request",
    "merchant.certificate_invalid": "a depositing merchant's certificate is missing or invalid",
    "request.bad_signature": "a payment request is not signed by the depositing merchant",
    "request.preq_mismatch": "the recorded preq is not the digest of the payment request",
    "request.mismatch": "a payment request names another merchant, bank, currency or amount",
    "deposit.no_transcripts": "a deposit has no transcript",
    "deposit.amount_mismatch": "a deposit's amount differs from the value of its coins",
    "deposit.ledger_mismatch": "a deposit's ledger transaction is missing or books other amounts",
    "receipt.bad_signature": "a deposit receipt is not signed by the bank",
    "receipt.mismatch": "a signed receipt says something else than the deposit records",
    # serials
    "serial.duplicate": "one serial is recorded as spent (or transcribed) more than once",
    "serial.not_marked_spent": "a transcribed serial is missing from the spent-coin table",
    "serial.spent_row_mismatch": "a spent-coin row disagrees with its transcript",
    # swaps (docs/protocol.md 9.3)
    "swap.malformed": "a swapped coin's transcript cannot be parsed",
    "swap.row_mismatch": "a swap row disagrees with its transcript, request or keyset",
    "swap.unknown_keyset": "a swap input or output names a keyset the bank does not have",
    "swap.amount_mismatch": "a swap's amounts differ from its coins, or outputs != inputs - fee",
    "swap.ledger_mismatch": "a swap's ledger transaction is missing or books other amounts",
    "swap.bad_blind_signature": "a swap output's blind signature is not s^e = blinded (mod n)",
    "swap.keyset_not_withdrawable": "a swap output was signed outside its withdraw window",
    "swap_report.unknown_coin": "a swap double-spend report names a serial never swapped",
    "swap_report.invalid": "a swap double-spend report's refused attempt is no second spend of "
    "the swapped serial for another request",
    # redeems (docs/protocol.md 9.4)
    "redeem.unknown_request": "a redeem names a redeem request the bank never issued",
    "redeem.request_invalid": "a stored redeem request is not signed by the bank",
    "redeem.malformed": "a redeemed coin's transcript cannot be parsed",
    "redeem.row_mismatch": "a redeem row disagrees with its request, transcript or keyset",
    "redeem.unknown_keyset": "a redeemed coin names a keyset the bank does not have",
    "redeem.amount_mismatch": "a redeem's amount differs from the value of its coins",
    "redeem.ledger_mismatch": "a redeem's ledger transaction is missing or books other amounts",
    "redeem_report.unknown_coin": "a redeem double-spend report names a serial never redeemed",
    # ledger
    "ledger.txn_unbalanced": "a ledger transaction's entries do not sum to zero (or < 2)",
    "ledger.txn_empty": "a ledger transaction has no entries",
    "ledger.total_nonzero": "all ledger entries together do not sum to zero",
    "ledger.orphan_txn": "a withdraw/deposit transaction (or a coin movement) has no record",
    "ledger.negative_balance": "a customer's balance is negative",
    "ledger.merchant_balance_mismatch": "a merchant's balance differs from its deposits",
    "ledger.unknown_keyset_account": "coins are booked to a keyset the bank does not have",
    # money supply
    "supply.withdrawn_mismatch": "ledger value withdrawn != value x signatures issued",
    "supply.deposited_mismatch": "ledger value deposited != value x serials spent",
    "supply.outstanding_mismatch": "ledger outstanding != value x (issued - spent)",
    "supply.negative_outstanding": "more serials spent than signatures issued",
    # fees (docs/protocol.md 4.2)
    "fees.account_mismatch": "the fee account differs from the fees the coin tables imply",
    "fees.refresh_mismatch": "a swap's fee differs from its inputs' refresh fees",
    # blacklist
    "blacklist.unjustified": "an entry is not backed by N recorded failures within the window",
    "blacklist.lift_unexplained": "a lifted entry does not say who lifted it and why",
    # double-spend reports
    "double_spend_report.invalid": "a recorded double-spend report is not two valid spends of "
    "one serial for different requests",
    # refunds (issue 12, item 3)
    "refund.bad_permission": "a refund's permission is not the merchant's signature on what the "
    "refund row records",
    "refund.unknown_coin": "a refund names coins not booked in its deposit, merchant and request",
    "refund.bad_proof": "a refund's ownership proof does not verify over its claim digest",
    "refund.after_deadline": "a refund was booked without or after its request's refund deadline",
    "refund.amount_mismatch": "a refund's amount differs from its fresh coins or exceeds the "
    "deposit",
    "refund.bad_blind_signature": "a refund's stored blind signature does not verify",
    "refund.ledger_mismatch": "a refund's ledger transaction is missing or books other amounts",
    # the bank's money-supply report at the central bank
    "supply_report.bad_signature": "the supply report or its certificate does not verify",
    "supply_report.outstanding_mismatch": "the report's outstanding value differs from the audit",
    "supply_report.not_reported": "the report omits a keyset with money outstanding",
    "supply_report.not_audited": "the report claims money in a keyset the audit does not know",
    "supply_report.inconsistent": "a report line's value x count != outstanding value",
    "supply_report.duplicate_keyset": "the report lists a keyset twice",
    "supply_report.fees_mismatch": "the report's fee total differs from the audit's",
}


class AuditInputError(InputError):
    """The audit was given unusable inputs (certificate, opener key, report)."""

    code = "audit.input_invalid"


class BankDatabaseError(ConfigError):
    """The bank database is missing or has no bank schema: nothing to audit."""

    code = "audit.bank_db_unusable"


@dataclass(frozen=True, slots=True)
class Violation:
    """One finding: what (``kind``), where (table, row, serial) and expected vs found."""

    kind: str
    message: str
    table: str | None = None
    row_id: int | str | None = None
    serial: str | None = None
    expected: Any = None
    found: Any = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "table": self.table,
            "row_id": self.row_id,
            "serial": self.serial,
            "expected": self.expected,
            "found": self.found,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True)
class KeysetSupplyAudit:
    """One keyset's coins as the audit counted them, and what the ledger says.

    ``outstanding_*`` come from the coin tables (signatures issued minus serials spent), which
    is what a supply report is compared with; ``ledger_*`` are the sums of the keyset's
    ``coins-outstanding`` account.
    """

    keyset_id: str  # base64url of the 16 bytes, as in supply reports
    value: int
    currency: str
    issued_count: int
    spent_count: int
    outstanding_count: int
    outstanding_value: int
    ledger_withdrawn: int
    ledger_deposited: int
    ledger_outstanding: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyset_id": self.keyset_id,
            "value": self.value,
            "currency": self.currency,
            "issued_count": self.issued_count,
            "spent_count": self.spent_count,
            "outstanding_count": self.outstanding_count,
            "outstanding_value": self.outstanding_value,
            "ledger_withdrawn": self.ledger_withdrawn,
            "ledger_deposited": self.ledger_deposited,
            "ledger_outstanding": self.ledger_outstanding,
        }


@dataclass
class AuditReport:
    """Result of :func:`ecash_tpm.supervision.audit.run_audit`.

    ``skipped`` lists checks that could not run and why (e.g. the credential check without the
    issuer secrets); a clean report with skipped checks is clean only for what was checked.
    ``supply_report`` summarises the comparison with the bank's latest report, if one was given.
    """

    bank_id: str
    database: str
    schema_version: int
    audited_at: int
    counts: dict[str, int]
    skipped: list[dict[str, str]]
    violations: list[Violation]
    keysets: list[KeysetSupplyAudit]
    supply_report: dict[str, Any] | None = None
    #: fees recomputed from the coin tables and descriptors, per kind (docs/protocol.md 4.2)
    fees: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def kinds(self) -> set[str]:
        """The distinct violation kinds found."""
        return {v.kind for v in self.violations}

    def of_kind(self, kind: str) -> list[Violation]:
        return [v for v in self.violations if v.kind == kind]

    def outstanding(self) -> dict[str, int]:
        """Outstanding value per keyset id (base64url), for ``check_supply_report``."""
        return {k.keyset_id: k.outstanding_value for k in self.keysets}

    def outstanding_total(self) -> int:
        return sum(k.outstanding_value for k in self.keysets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "bank_id": self.bank_id,
            "database": self.database,
            "schema_version": self.schema_version,
            "audited_at": self.audited_at,
            "counts": dict(self.counts),
            "skipped": [dict(s) for s in self.skipped],
            "violations": [v.to_dict() for v in self.violations],
            "keysets": [k.to_dict() for k in self.keysets],
            "outstanding_total": self.outstanding_total(),
            "fees": dict(self.fees),
            "fees_total": sum(self.fees.values()),
            "supply_report": self.supply_report,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def summary(self) -> str:
        """A few human-readable lines (the CLI's text output)."""
        c = self.counts
        lines = [
            f"audit of bank {self.bank_id} ({self.database}, schema v{self.schema_version}): "
            + ("OK" if self.ok else f"{len(self.violations)} VIOLATION(S)"),
            f"checked {c.get('deposits', 0)} deposits / {c.get('transcripts', 0)} transcripts, "
            f"{c.get('withdrawals', 0)} withdrawals / {c.get('withdrawal_items', 0)} signatures, "
            f"{c.get('ledger_txns', 0)} ledger transactions, "
            f"{c.get('blacklist_entries', 0)} blacklist entries, "
            f"{c.get('double_spend_reports', 0)} double-spend reports",
            f"outstanding: {self.outstanding_total()} in {len(self.keysets)} keysets; "
            f"fees earned: {sum(self.fees.values())}",
        ]
        for k in self.keysets:
            if k.issued_count or k.ledger_withdrawn:
                lines.append(
                    f"  {k.keyset_id} value {k.value} {k.currency}: issued {k.issued_count} - "
                    f"spent {k.spent_count} = {k.outstanding_count} coins "
                    f"({k.outstanding_value}; ledger {k.ledger_outstanding})"
                )
        for s in self.skipped:
            lines.append(f"skipped {s['check']}: {s['reason']}")
        if self.supply_report is not None:
            sr = self.supply_report
            lines.append(
                f"supply report #{sr.get('report_id')} as of {sr.get('as_of')}: "
                + (
                    "agrees with the audit"
                    if not sr.get("discrepancies")
                    else f"{len(sr['discrepancies'])} discrepancy(ies)"
                )
            )
        for v in self.violations:
            where = ", ".join(
                f"{k} {val}"
                for k, val in (("table", v.table), ("row", v.row_id), ("serial", v.serial))
                if val is not None
            )
            lines.append(f"  [{v.kind}] {v.message}" + (f" ({where})" if where else ""))
            if v.expected is not None or v.found is not None:
                lines.append(f"      expected {v.expected!r}, found {v.found!r}")
        return "\n".join(lines)

"""Money-supply reports: what the bank says is outstanding, and how it is checked (DESIGN §1).

The bank periodically signs a report (signed object kind ``supply-report``) with its key
certified for role ``bank``::

    {bank_id, as_of, keysets: [{keyset_id, value, currency, outstanding_count, outstanding_value}],
     fees}

``fees`` (docs/protocol.md 4.2; 0 when absent) is the bank's fee account as of ``as_of``: with
the outstanding value and the merchants' and customers' balances it reconciles with the money
that entered the system.

``keyset_id`` is the 16-byte keyset id in base64url; amounts are integers in minor units;
``as_of`` is Unix seconds. The central bank accepts a report only when the certificate is one it
issued for role ``bank``, is not revoked, names ``bank_id`` as its CN, and the signature covers
the body; one report per ``(bank_id, as_of)`` is kept (an identical resubmission is a no-op, a
different one a 409), because a report is evidence and evidence is never overwritten.

:func:`check_supply_report` is pure: it compares a report with the outstanding amounts the
supervision department's audit of the bank's ledger found, for the central bank's reconciliation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import CANONICAL_MAX_INT
from ecash_tpm.errors import ConflictError, InputError
from ecash_tpm.protocol.api.base import B64Bytes, validate_model
from ecash_tpm.protocol.money import CURRENCY_PATTERN

__all__ = [
    "MAX_KEYSETS",
    "SUPPLY_REPORT_KIND",
    "Discrepancy",
    "KeysetSupply",
    "SupplyReportBody",
    "SupplyReportConflictError",
    "SupplyReportInvalidError",
    "check_supply_report",
]

SUPPLY_REPORT_KIND = "supply-report"
#: More keysets than any bank rotates through; bounds the work per report.
MAX_KEYSETS = 4096

Amount = Annotated[int, Field(ge=0, le=CANONICAL_MAX_INT, strict=True)]


class SupplyReportInvalidError(InputError):
    """A supply report is malformed or contradicts itself (value x count != outstanding)."""

    code = "supply_report.invalid"


class SupplyReportConflictError(ConflictError):
    """The bank already reported a *different* body for the same ``as_of``."""

    code = "supply_report.conflict"


class KeysetSupply(BaseModel):
    """One denomination's outstanding coins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keyset_id: Annotated[B64Bytes, Field(min_length=16, max_length=16)]
    value: Annotated[int, Field(ge=1, le=CANONICAL_MAX_INT, strict=True)]
    currency: Annotated[str, Field(pattern=CURRENCY_PATTERN)]
    outstanding_count: Amount
    outstanding_value: Amount


class SupplyReportBody(BaseModel):
    """The signed body of a ``supply-report``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bank_id: Annotated[str, Field(min_length=1, max_length=64)]
    as_of: Annotated[int, Field(ge=0, le=CANONICAL_MAX_INT, strict=True)]
    keysets: Annotated[list[KeysetSupply], Field(max_length=MAX_KEYSETS)]
    fees: Amount = 0


@dataclass(frozen=True)
class Discrepancy:
    """One disagreement between a report and the audit (or within the report).

    ``kind``: ``outstanding_mismatch`` (both know the keyset, amounts differ),
    ``not_reported`` (audit finds money outstanding in a keyset the report omits),
    ``not_audited`` (report claims money outstanding in a keyset the audit does not know),
    ``inconsistent`` (value x count != outstanding_value; ``expected`` is the product),
    ``duplicate_keyset`` (the report lists a keyset twice), ``fees_mismatch`` (the reported fee
    total differs from the audit's; ``keyset_id`` is empty).
    """

    kind: str
    keyset_id: str
    reported: int | None
    expected: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _keyset_key(keyset_id: str | bytes) -> str:
    if isinstance(keyset_id, bytes | bytearray):
        return b64u_encode(bytes(keyset_id))
    if isinstance(keyset_id, str):
        return keyset_id
    raise InputError("audit keyset ids must be base64url strings or bytes")


def check_supply_report(
    report_body: Mapping[str, Any] | SupplyReportBody,
    audit_outstanding: Mapping[str, int] | Mapping[bytes, int] | Mapping[str | bytes, int],
    audit_fees: int | None = None,
) -> list[Discrepancy]:
    """Compare a report body with audited outstanding values per keyset (pure, no I/O).

    ``audit_outstanding`` maps keyset id (base64url string or the 16 raw bytes) to the
    outstanding value the audit computed. A keyset absent on one side counts as zero there, so
    fully redeemed keysets need not be listed. ``audit_fees``: the fee total the audit found as
    of the report's time (None: not compared). Returns the discrepancies sorted by keyset id and
    kind; an empty list means the report agrees with the audit.
    """
    body = (
        report_body
        if isinstance(report_body, SupplyReportBody)
        else validate_model(SupplyReportBody, dict(report_body))
    )
    audit: dict[str, int] = {}
    for raw_id, amount in audit_outstanding.items():
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise InputError(
                "audited outstanding values must be non-negative integers",
                detail={"keyset_id": _keyset_key(raw_id)},
            )
        audit[_keyset_key(raw_id)] = amount

    found: list[Discrepancy] = []
    reported: dict[str, int] = {}
    for entry in body.keysets:
        kid = b64u_encode(entry.keyset_id)
        if kid in reported:
            found.append(Discrepancy("duplicate_keyset", kid, entry.outstanding_value, None))
            continue
        reported[kid] = entry.outstanding_value
        product = entry.value * entry.outstanding_count
        if product != entry.outstanding_value:
            found.append(Discrepancy("inconsistent", kid, entry.outstanding_value, product))
    for kid in sorted(set(reported) | set(audit)):
        got, want = reported.get(kid), audit.get(kid)
        if got is None:
            if want:
                found.append(Discrepancy("not_reported", kid, None, want))
        elif want is None:
            if got:
                found.append(Discrepancy("not_audited", kid, got, None))
        elif got != want:
            found.append(Discrepancy("outstanding_mismatch", kid, got, want))
    if audit_fees is not None and audit_fees != body.fees:
        found.append(Discrepancy("fees_mismatch", "", body.fees, audit_fees))
    return sorted(found, key=lambda d: (d.keyset_id, d.kind))

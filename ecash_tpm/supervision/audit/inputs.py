"""The checks every spent-input row shares, whether a swap's or a redeem's (docs/protocol.md
§9.3, §9.4): the serial is spent nowhere else, its keyset is the bank's, its value is the
keyset's, and the keyset's outstanding account loses that value. The callers name their own
violation kinds, so each kind stays a literal in the audit source."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.supervision.audit.context import AuditContext, AuditKeyset, blob

__all__ = ["SpentInput", "spent_input"]

#: ``(table, row_id, serial, field, expected, found)`` -> a row-mismatch flag of the caller's kind
Mismatch = Callable[[str, str, bytes | None, str, Any, Any], None]


@dataclass(frozen=True)
class SpentInput:
    """One input row, read and checked; the caller goes on with its transcript."""

    sigma: bytes
    keyset_id: bytes
    spent_at: int
    where: str
    value: int
    keyset: AuditKeyset | None


def spent_input(
    ctx: AuditContext,
    row: Mapping[str, Any],
    *,
    rid: str,
    table: str,
    taken: set[bytes],
    expected: dict[str, int],
    duplicate: str,
    unknown_kind: str,
    unknown: str,
    mismatch: Mismatch,
) -> SpentInput:
    """Record the spend in ``ctx``, flag ``serial.duplicate`` (message ``duplicate``) when the
    serial is in ``taken``, ``unknown_kind`` when the keyset is not the bank's, and a value
    that is not the keyset's; debit ``expected`` for the keyset's outstanding account."""
    sigma, at, kid = blob(row["sigma"]), int(row["spent_at"]), blob(row["keyset_id"])
    where = f"{rid}/{b64u_encode(sigma)}"
    ctx.spent.append((kid, sigma, at))
    if sigma in taken:
        ctx.flag("serial.duplicate", duplicate, table=table, row_id=where, serial=sigma)
    keyset = ctx.keysets.get(kid)
    value = int(row["value"])
    if keyset is None:
        ctx.flag(unknown_kind, unknown, table=table, row_id=where, found=kid.hex())
    else:
        expected[keyset.account] -= keyset.value
        if value != keyset.value:
            mismatch(table, where, sigma, "value", keyset.value, value)
    ctx.counts["coins_verified"] += 1
    return SpentInput(sigma, kid, at, where, value, keyset)

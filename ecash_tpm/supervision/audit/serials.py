"""Serials: none spent or transcribed twice, spent rows agree with their transcripts. Each
serial counts once as spent for the money supply, at the time of its first spent row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.supervision.audit.context import AuditContext, blob
from ecash_tpm.supervision.audit.store import BankTables

__all__ = ["check_serials"]


def check_serials(ctx: AuditContext, tables: BankTables) -> None:
    """Duplicates among transcripts and spent rows; transcribed serials not marked spent."""
    spent_rows = tables.spent_coins()
    ctx.counts["spent_coins"] = len(spent_rows)
    by_sigma: dict[bytes, list[int]] = defaultdict(list)
    for tid, t in sorted(ctx.transcripts.items()):
        by_sigma[blob(t["sigma"])].append(tid)
    for sigma, ids in by_sigma.items():
        if len(ids) > 1:
            ctx.flag(
                "serial.duplicate",
                "one serial is transcribed as spent more than once",
                table="spend_transcript",
                row_id=ids[1],
                serial=sigma,
                expected=1,
                found=len(ids),
                transcript_ids=ids,
            )
    spent_by_sigma: dict[bytes, list[dict[str, Any]]] = defaultdict(list)
    for r in spent_rows:
        spent_by_sigma[blob(r["sigma"])].append(r)
    seen: set[bytes] = set()
    for sigma, rows in spent_by_sigma.items():
        if len(rows) > 1:
            ctx.flag(
                "serial.duplicate",
                "one serial is in the spent-coin table more than once",
                table="spent_coin",
                row_id=int(rows[1]["transcript_id"]),
                serial=sigma,
                expected=1,
                found=len(rows),
                transcript_ids=[int(r["transcript_id"]) for r in rows],
            )
        for r in rows:
            _check_spent_row(ctx, sigma, r)
        if sigma not in seen:
            seen.add(sigma)
            first = rows[0]
            ctx.spent.append((blob(first["keyset_id"]), sigma, int(first["spent_at"])))
    for sigma, ids in by_sigma.items():
        if sigma not in spent_by_sigma:
            ctx.flag(
                "serial.not_marked_spent",
                "a transcribed serial is missing from the spent-coin table",
                table="spend_transcript",
                row_id=ids[0],
                serial=sigma,
            )


def _check_spent_row(ctx: AuditContext, sigma: bytes, r: Mapping[str, Any]) -> None:
    tid = int(r["transcript_id"])
    t = ctx.transcripts.get(tid)
    if t is None:
        ctx.flag(
            "serial.spent_row_mismatch",
            "spent coin points to a transcript that does not exist",
            table="spent_coin",
            row_id=tid,
            serial=sigma,
        )
        return
    pairs = [
        ("sigma", b64u_encode(blob(t["sigma"])), b64u_encode(sigma)),
        ("keyset_id", blob(t["keyset_id"]).hex(), blob(r["keyset_id"]).hex()),
        ("deposit_id", str(t["deposit_id"]), str(r["deposit_id"])),
        ("spent_at", int(t["created_at"]), int(r["spent_at"])),
    ]
    for name, expected, found in pairs:
        if expected != found:
            ctx.flag(
                "serial.spent_row_mismatch",
                f"spent coin {name} differs from its transcript",
                table="spent_coin",
                row_id=tid,
                serial=sigma,
                expected=expected,
                found=found,
                field=name,
            )

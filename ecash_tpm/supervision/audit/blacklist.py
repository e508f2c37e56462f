"""Blacklist: every entry names at least ``threshold`` recorded failures of that subject within
``window_s`` before ``listed_at`` (the policy recorded with the entry), none used up by an
earlier lifted entry; every lifted entry says who lifted it and why.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ecash_tpm.supervision.audit.context import AuditContext
from ecash_tpm.supervision.audit.store import BankTables

__all__ = ["check_blacklist"]


def check_blacklist(ctx: AuditContext, tables: BankTables) -> None:
    """Each entry, in order: later entries may not reuse failures an earlier lift used up."""
    failures = {int(r["failure_id"]): r for r in tables.verification_failures()}
    entries = tables.blacklist()
    ctx.counts["blacklist_entries"] = len(entries)
    ctx.counts["verification_failures"] = len(failures)
    used_up: dict[str, int] = defaultdict(int)  # subject -> last failure used by a lift
    for e in entries:
        entry_id = int(e["entry_id"])
        subject = str(e["subject"])
        problems = _entry_problems(e, failures, used_up.get(subject, 0))
        for reason, expected, found in problems:
            ctx.flag(
                "blacklist.unjustified",
                f"blacklist entry not justified: {reason}",
                table="blacklist",
                row_id=entry_id,
                expected=expected,
                found=found,
                subject=subject,
            )
        if e["lifted_at"] is not None:
            ctx.counts["blacklist_lifted"] += 1
            missing = [
                name
                for name in ("lifted_by", "lift_reason")
                if not isinstance(e[name], str) or not e[name].strip()
            ]
            if missing or int(e["lifted_at"]) < int(e["listed_at"]):
                ctx.flag(
                    "blacklist.lift_unexplained",
                    "lifted entry lacks "
                    + (", ".join(missing) if missing else "a lift time after its listing"),
                    table="blacklist",
                    row_id=entry_id,
                    expected="who and why",
                    found={"lifted_by": e["lifted_by"], "lift_reason": e["lift_reason"]},
                    subject=subject,
                )
            if e["lift_failure_id"] is not None:
                used_up[subject] = max(used_up[subject], int(e["lift_failure_id"]))


def _entry_problems(
    e: Mapping[str, Any], failures: Mapping[int, Mapping[str, Any]], used_up: int
) -> list[tuple[str, Any, Any]]:
    """Why an entry is not justified, as ``(reason, expected, found)``; empty if it is."""
    try:
        ids = json.loads(e["failure_ids"])
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise ValueError("not a list of integers")
    except (ValueError, TypeError):
        return [("failure_ids is not a list of failure ids", "list", e["failure_ids"])]
    threshold, window = int(e["threshold"]), int(e["window_s"])
    listed = int(e["listed_at"])
    subject = str(e["subject"])
    problems: list[tuple[str, Any, Any]] = []
    if threshold < 1 or window < 1:
        problems.append(("recorded policy is not positive", ">= 1", [threshold, window]))
    if len(set(ids)) != len(ids):
        problems.append(("a failure is named twice", len(set(ids)), len(ids)))
    justified = 0
    for fid in sorted(set(ids)):
        f = failures.get(fid)
        if f is None:
            problems.append(("names a failure that is not recorded", "recorded", fid))
        elif f["subject"] != subject:
            problems.append((f"failure {fid} is another subject's", subject, f["subject"]))
        elif not listed - window < int(f["at"]) <= listed:
            problems.append(
                (f"failure {fid} is outside the window", [listed - window, listed], f["at"])
            )
        elif fid <= used_up:
            problems.append((f"failure {fid} was used up by an earlier lift", f"> {used_up}", fid))
        else:
            justified += 1
    if justified < threshold:
        problems.append(
            (
                "fewer recorded failures within the window than the threshold",
                threshold,
                justified,
            )
        )
    return problems

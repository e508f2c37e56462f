"""Queries on ``verification_failure`` and ``blacklist``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ecash_tpm.bank.models import BlacklistEntry, VerificationFailure
from ecash_tpm.storage import Transaction

__all__ = [
    "active_entry",
    "all_entries",
    "entry",
    "failure_subject_at",
    "failures",
    "failures_since",
    "insert_entry",
    "insert_failure",
    "last_failure_id",
    "lift_entry",
    "unordered_entries",
    "used_up_failure_id",
]


def _entry(row: Mapping[str, Any]) -> BlacklistEntry:
    return BlacklistEntry(
        entry_id=int(row["entry_id"]),
        subject=str(row["subject"]),
        listed_at=int(row["listed_at"]),
        reason=str(row["reason"]),
        failure_ids=tuple(int(i) for i in json.loads(row["failure_ids"])),
        threshold=int(row["threshold"]),
        window_s=int(row["window_s"]),
        lifted_at=None if row["lifted_at"] is None else int(row["lifted_at"]),
        lifted_by=row["lifted_by"],
        lift_reason=row["lift_reason"],
    )


# --- verification_failure ----------------------------------------------------------------------


def insert_failure(
    tx: Transaction, *, subject: str, reason: str, code: str, detail_json: str, at: int
) -> None:
    tx.execute(
        "INSERT INTO verification_failure (subject, reason, code, detail, at)"
        " VALUES (:s, :r, :c, :d, :at)",
        {"s": subject, "r": reason, "c": code, "d": detail_json, "at": at},
    )


def failures_since(
    tx: Transaction, subject: str, since: int, after_id: int
) -> list[tuple[int, str]]:
    """``(failure_id, reason)`` of the subject's failures after ``since`` and ``after_id``."""
    rows = tx.fetchall(
        "SELECT failure_id, reason FROM verification_failure"
        " WHERE subject = :s AND at > :since AND failure_id > :used"
        " ORDER BY failure_id",
        {"s": subject, "since": since, "used": after_id},
    )
    return [(int(r["failure_id"]), str(r["reason"])) for r in rows]


def last_failure_id(tx: Transaction, subject: str) -> int:
    value = tx.fetchval(
        "SELECT COALESCE(MAX(failure_id), 0) AS m FROM verification_failure WHERE subject = :s",
        {"s": subject},
    )
    return int(value or 0)


def failures(tx: Transaction, subject: str) -> list[VerificationFailure]:
    rows = tx.fetchall(
        "SELECT failure_id, subject, reason, code, detail, at FROM verification_failure"
        " WHERE subject = :s ORDER BY failure_id",
        {"s": subject},
    )
    return [
        VerificationFailure(
            failure_id=int(r["failure_id"]),
            subject=str(r["subject"]),
            reason=str(r["reason"]),
            code=str(r["code"]),
            detail=json.loads(r["detail"]),
            at=int(r["at"]),
        )
        for r in rows
    ]


def failure_subject_at(tx: Transaction, failure_id: int) -> tuple[str, int] | None:
    """``(subject, at)`` of one failure, if it exists."""
    row = tx.fetchone(
        "SELECT subject, at FROM verification_failure WHERE failure_id = :i", {"i": failure_id}
    )
    return None if row is None else (str(row["subject"]), int(row["at"]))


# --- blacklist ---------------------------------------------------------------------------------


def active_entry(tx: Transaction, subject: str) -> BlacklistEntry | None:
    row = tx.fetchone(
        "SELECT * FROM blacklist WHERE subject = :s AND lifted_at IS NULL", {"s": subject}
    )
    return None if row is None else _entry(row)


def used_up_failure_id(tx: Transaction, subject: str) -> int:
    """The last failure consumed by a lift of this subject (0 if never lifted)."""
    value = tx.fetchval(
        "SELECT COALESCE(MAX(lift_failure_id), 0) AS m FROM blacklist WHERE subject = :s",
        {"s": subject},
    )
    return int(value or 0)


def insert_entry(
    tx: Transaction,
    *,
    subject: str,
    now: int,
    reason: str,
    failure_ids: list[int],
    threshold: int,
    window_s: int,
) -> None:
    tx.execute(
        "INSERT INTO blacklist (subject, listed_at, reason, failure_ids, threshold,"
        " window_s) VALUES (:s, :now, :reason, :ids, :threshold, :window)",
        {
            "s": subject,
            "now": now,
            "reason": reason,
            "ids": json.dumps(failure_ids),
            "threshold": threshold,
            "window": window_s,
        },
    )


def lift_entry(
    tx: Transaction, entry_id: int, *, now: int, lifted_by: str, reason: str, last_failure: int
) -> None:
    tx.execute(
        "UPDATE blacklist SET lifted_at = :now, lifted_by = :by, lift_reason = :why,"
        " lift_failure_id = :last WHERE entry_id = :id",
        {"now": now, "by": lifted_by, "why": reason, "last": last_failure, "id": entry_id},
    )


def entry(tx: Transaction, entry_id: int) -> BlacklistEntry | None:
    row = tx.fetchone("SELECT * FROM blacklist WHERE entry_id = :id", {"id": entry_id})
    return None if row is None else _entry(row)


def all_entries(tx: Transaction, subject: str | None = None) -> list[BlacklistEntry]:
    """All entries (active and lifted; of one subject if given), oldest first."""
    if subject is None:
        rows = tx.fetchall("SELECT * FROM blacklist ORDER BY entry_id")
    else:
        rows = tx.fetchall(
            "SELECT * FROM blacklist WHERE subject = :s ORDER BY entry_id", {"s": subject}
        )
    return [_entry(r) for r in rows]


def unordered_entries(tx: Transaction) -> list[BlacklistEntry]:
    """All entries in storage order (what the audit walks)."""
    return [_entry(r) for r in tx.fetchall("SELECT * FROM blacklist")]

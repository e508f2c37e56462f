"""Blacklisting after repeated failed verifications (DESIGN §5, first paper's abnormal cases).

One rule for merchants and customer logins: ``threshold`` failures of one subject within
``window_s`` seconds put the subject on the blacklist until someone lifts it explicitly (the
supervision department, or an operator with the CLI), recording who and why. Subjects are
``merchant:<id>`` and ``login:<account id>``.

Every failure is recorded with its reason and error code before the request is answered, and a
blacklist entry names the failures that justified it together with the threshold and window in
force, so an auditor can re-check each entry (:meth:`Blacklist.audit`). Failures up to a lift are
"used up": they never count towards the next entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ecash_tpm.bank.errors import NotBlacklistedError
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.service.logs import json_default
from ecash_tpm.storage import Database, Transaction

__all__ = ["Blacklist", "login_subject", "merchant_subject"]


def merchant_subject(merchant_id: str) -> str:
    return "merchant:" + merchant_id


def login_subject(account_id: str) -> str:
    return "login:" + account_id


def _entry(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "entry_id": int(row["entry_id"]),
        "subject": row["subject"],
        "listed_at": int(row["listed_at"]),
        "reason": row["reason"],
        "failure_ids": json.loads(row["failure_ids"]),
        "threshold": int(row["threshold"]),
        "window_s": int(row["window_s"]),
        "lifted_at": None if row["lifted_at"] is None else int(row["lifted_at"]),
        "lifted_by": row["lifted_by"],
        "lift_reason": row["lift_reason"],
    }


class Blacklist:
    """Failure log and blacklist for one rule (threshold within a window)."""

    def __init__(
        self, db: Database, *, threshold: int, window_s: int, clock: Callable[[], int]
    ) -> None:
        if threshold < 1 or window_s < 1:
            raise InputError("blacklist threshold and window must be positive")
        self._db = db
        self.threshold = threshold
        self.window_s = window_s
        self._clock = clock

    def active_entry(self, subject: str, tx: Transaction | None = None) -> dict[str, Any] | None:
        """The subject's active entry, if it is blacklisted."""
        sql = "SELECT * FROM blacklist WHERE subject = :s AND lifted_at IS NULL"
        if tx is not None:
            row = tx.fetchone(sql, {"s": subject})
        else:
            with self._db.read() as rtx:
                row = rtx.fetchone(sql, {"s": subject})
        return None if row is None else _entry(row)

    def check(self, subject: str, error: type[EcashError]) -> None:
        """Raise ``error`` (a 403 class) if the subject is blacklisted."""
        entry = self.active_entry(subject)
        if entry is not None:
            raise error(
                "blacklisted after repeated failed verifications; ask the supervision "
                "department to lift it",
                detail={"subject": subject, "listed_at": entry["listed_at"]},
            )

    def record_failure(
        self, subject: str, reason: str, code: str, detail: Mapping[str, Any] | None = None
    ) -> bool:
        """Record one failure (committed on its own) and blacklist the subject if the rule
        fires; returns True when this failure put the subject on the list."""
        now = self._clock()
        detail_json = json.dumps(dict(detail or {}), default=json_default, sort_keys=True)

        def run(tx: Transaction) -> bool:
            tx.execute(
                "INSERT INTO verification_failure (subject, reason, code, detail, at)"
                " VALUES (:s, :r, :c, :d, :at)",
                {"s": subject, "r": reason, "c": code, "d": detail_json[:4000], "at": now},
            )
            if self.active_entry(subject, tx) is not None:
                return False
            used_up = tx.fetchval(
                "SELECT COALESCE(MAX(lift_failure_id), 0) AS m FROM blacklist WHERE subject = :s",
                {"s": subject},
            )
            rows = tx.fetchall(
                "SELECT failure_id, reason FROM verification_failure"
                " WHERE subject = :s AND at > :since AND failure_id > :used"
                " ORDER BY failure_id",
                {"s": subject, "since": now - self.window_s, "used": int(used_up or 0)},
            )
            if len(rows) < self.threshold:
                return False
            reasons = sorted({str(r["reason"]) for r in rows})
            tx.execute(
                "INSERT INTO blacklist (subject, listed_at, reason, failure_ids, threshold,"
                " window_s) VALUES (:s, :now, :reason, :ids, :threshold, :window)",
                {
                    "s": subject,
                    "now": now,
                    "reason": f"{len(rows)} failed verifications within {self.window_s} s: "
                    + ", ".join(reasons),
                    "ids": json.dumps([int(r["failure_id"]) for r in rows]),
                    "threshold": self.threshold,
                    "window": self.window_s,
                },
            )
            return True

        return self._db.run_in_transaction(run)

    def lift(
        self, subject: str, *, lifted_by: str, reason: str, entry_id: int | None = None
    ) -> dict[str, Any]:
        """End the subject's active entry, recording who lifted it and why.

        ``entry_id`` pins the entry: a replayed lift order for an older entry cannot lift a
        newer one.
        """
        if not isinstance(lifted_by, str) or not lifted_by.strip():
            raise InputError("lifted_by must name who lifts the entry")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError("a reason for lifting is required")
        now = self._clock()

        def run(tx: Transaction) -> dict[str, Any]:
            entry = self.active_entry(subject, tx)
            if entry is None or (entry_id is not None and entry["entry_id"] != entry_id):
                raise NotBlacklistedError("subject is not blacklisted", detail={"subject": subject})
            last_failure = tx.fetchval(
                "SELECT COALESCE(MAX(failure_id), 0) AS m FROM verification_failure"
                " WHERE subject = :s",
                {"s": subject},
            )
            tx.execute(
                "UPDATE blacklist SET lifted_at = :now, lifted_by = :by, lift_reason = :why,"
                " lift_failure_id = :last WHERE entry_id = :id",
                {
                    "now": now,
                    "by": lifted_by[:200],
                    "why": reason[:1000],
                    "last": int(last_failure or 0),
                    "id": entry["entry_id"],
                },
            )
            row = tx.fetchone(
                "SELECT * FROM blacklist WHERE entry_id = :id", {"id": entry["entry_id"]}
            )
            if row is None:
                raise NotBlacklistedError("blacklist entry vanished", detail={"subject": subject})
            return _entry(row)

        return self._db.run_in_transaction(run)

    def entries(self, *, subject: str | None = None) -> list[dict[str, Any]]:
        """All entries (active and lifted), oldest first."""
        with self._db.read() as tx:
            if subject is None:
                rows = tx.fetchall("SELECT * FROM blacklist ORDER BY entry_id")
            else:
                rows = tx.fetchall(
                    "SELECT * FROM blacklist WHERE subject = :s ORDER BY entry_id", {"s": subject}
                )
        return [_entry(r) for r in rows]

    def failures(self, subject: str) -> list[dict[str, Any]]:
        """The recorded failures of a subject, oldest first."""
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT failure_id, subject, reason, code, detail, at FROM verification_failure"
                " WHERE subject = :s ORDER BY failure_id",
                {"s": subject},
            )
        return [
            {
                "failure_id": int(r["failure_id"]),
                "subject": r["subject"],
                "reason": r["reason"],
                "code": r["code"],
                "detail": json.loads(r["detail"]),
                "at": int(r["at"]),
            }
            for r in rows
        ]

    def audit(self) -> list[dict[str, Any]]:
        """Entries that are *not* justified by their recorded failures (empty = all good)."""
        problems = []
        with self._db.read() as tx:
            entries = [_entry(r) for r in tx.fetchall("SELECT * FROM blacklist")]
            for entry in entries:
                ids = entry["failure_ids"]
                rows = []
                for failure_id in ids:
                    row = tx.fetchone(
                        "SELECT subject, at FROM verification_failure WHERE failure_id = :i",
                        {"i": failure_id},
                    )
                    if row is not None:
                        rows.append(row)
                ok = (
                    len(ids) >= entry["threshold"]
                    and len(rows) == len(ids)
                    and all(r["subject"] == entry["subject"] for r in rows)
                    and all(
                        entry["listed_at"] - entry["window_s"] < int(r["at"]) <= entry["listed_at"]
                        for r in rows
                    )
                )
                if not ok:
                    problems.append(entry)
        return problems

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
from ecash_tpm.bank.models import BlacklistEntry, VerificationFailure
from ecash_tpm.bank.store import blacklist as rows
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.service.logs import json_default
from ecash_tpm.storage import Database, Transaction

__all__ = ["Blacklist", "login_subject", "merchant_subject"]


def merchant_subject(merchant_id: str) -> str:
    return "merchant:" + merchant_id


def login_subject(account_id: str) -> str:
    return "login:" + account_id


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

    def active_entry(self, subject: str, tx: Transaction | None = None) -> BlacklistEntry | None:
        """The subject's active entry, if it is blacklisted."""
        if tx is not None:
            return rows.active_entry(tx, subject)
        with self._db.read() as rtx:
            return rows.active_entry(rtx, subject)

    def check(self, subject: str, error: type[EcashError]) -> None:
        """Raise ``error`` (a 403 class) if the subject is blacklisted."""
        entry = self.active_entry(subject)
        if entry is not None:
            raise error(
                "blacklisted after repeated failed verifications; ask the supervision "
                "department to lift it",
                detail={"subject": subject, "listed_at": entry.listed_at},
            )

    def log_failure(self, subject: str, reason: str, code: str) -> None:
        """Record one failure for the audit only (no rule applied): failed logins, whose
        lock-out is the expiring per-account guard in :mod:`ecash_tpm.bank.accounts`."""
        now = self._clock()

        def run(tx: Transaction) -> None:
            rows.insert_failure(
                tx, subject=subject, reason=reason, code=code, detail_json="{}", at=now
            )

        self._db.run_in_transaction(run)

    def record_failure(
        self, subject: str, reason: str, code: str, detail: Mapping[str, Any] | None = None
    ) -> bool:
        """Record one failure (committed on its own) and blacklist the subject if the rule
        fires; returns True when this failure put the subject on the list."""
        now = self._clock()
        detail_json = json.dumps(dict(detail or {}), default=json_default, sort_keys=True)

        def run(tx: Transaction) -> bool:
            rows.insert_failure(
                tx,
                subject=subject,
                reason=reason,
                code=code,
                detail_json=detail_json[:4000],
                at=now,
            )
            if self.active_entry(subject, tx) is not None:
                return False
            used_up = rows.used_up_failure_id(tx, subject)
            counted = rows.failures_since(tx, subject, now - self.window_s, used_up)
            if len(counted) < self.threshold:
                return False
            reasons = sorted({r for _, r in counted})
            rows.insert_entry(
                tx,
                subject=subject,
                now=now,
                reason=f"{len(counted)} failed verifications within {self.window_s} s: "
                + ", ".join(reasons),
                failure_ids=[i for i, _ in counted],
                threshold=self.threshold,
                window_s=self.window_s,
            )
            return True

        return self._db.run_in_transaction(run)

    def lift(
        self, subject: str, *, lifted_by: str, reason: str, entry_id: int | None = None
    ) -> BlacklistEntry:
        """End the subject's active entry, recording who lifted it and why.

        ``entry_id`` pins the entry: a replayed lift order for an older entry cannot lift a
        newer one.
        """
        if not isinstance(lifted_by, str) or not lifted_by.strip():
            raise InputError("lifted_by must name who lifts the entry")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError("a reason for lifting is required")
        now = self._clock()

        def run(tx: Transaction) -> BlacklistEntry:
            entry = self.active_entry(subject, tx)
            if entry is None or (entry_id is not None and entry.entry_id != entry_id):
                raise NotBlacklistedError("subject is not blacklisted", detail={"subject": subject})
            rows.lift_entry(
                tx,
                entry.entry_id,
                now=now,
                lifted_by=lifted_by[:200],
                reason=reason[:1000],
                last_failure=rows.last_failure_id(tx, subject),
            )
            lifted = rows.entry(tx, entry.entry_id)
            if lifted is None:
                raise NotBlacklistedError("blacklist entry vanished", detail={"subject": subject})
            return lifted

        return self._db.run_in_transaction(run)

    def entries(self, *, subject: str | None = None) -> list[BlacklistEntry]:
        """All entries (active and lifted), oldest first."""
        with self._db.read() as tx:
            return rows.all_entries(tx, subject)

    def failures(self, subject: str) -> list[VerificationFailure]:
        """The recorded failures of a subject, oldest first."""
        with self._db.read() as tx:
            return rows.failures(tx, subject)

    def audit(self) -> list[BlacklistEntry]:
        """Entries that are *not* justified by their recorded failures (empty = all good)."""
        problems = []
        with self._db.read() as tx:
            for entry in rows.unordered_entries(tx):
                ids = entry.failure_ids
                found = []
                for failure_id in ids:
                    failure = rows.failure_subject_at(tx, failure_id)
                    if failure is not None:
                        found.append(failure)
                ok = (
                    len(ids) >= entry.threshold
                    and len(found) == len(ids)
                    and all(subject == entry.subject for subject, _ in found)
                    and all(
                        entry.listed_at - entry.window_s < at <= entry.listed_at for _, at in found
                    )
                )
                if not ok:
                    problems.append(entry)
        return problems

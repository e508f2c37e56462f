"""Double-spend reports: the two bank-signed transcripts of one serial, sent to supervision.

A double spend is *reported* (outside the money transaction, at most once per serial and
request) only when the second attempt carries a valid spend proof over a *different* payment
request: then the customer's TPM answered two challenges with one coin, and opening both
transcripts names the member (DESIGN §5). The same request deposited twice is a merchant's
duplicate, not evidence against the customer.

Reports are queued in the database first and sent afterwards; a reporter that fails leaves the
report ``failed`` for :meth:`DoubleSpendReports.retry`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ecash_tpm.bank.errors import DoubleSpendError
from ecash_tpm.bank.models import DoubleSpendReport
from ecash_tpm.bank.protocols import DoubleSpendReporter
from ecash_tpm.bank.store import deposits as deposit_rows
from ecash_tpm.bank.store import reports as rows
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.errors import NotFoundError
from ecash_tpm.protocol.coins import TRANSCRIPT_KIND
from ecash_tpm.service.logs import json_default
from ecash_tpm.storage import Database, Transaction

__all__ = ["DoubleSpendReports", "DoubleSpendSeen"]

logger = logging.getLogger("ecash_tpm.bank")


class DoubleSpendSeen(DoubleSpendError):
    """DoubleSpendError that also carries what the reporter needs (never sent on the wire)."""

    def __init__(self, sigma: bytes, transcript_id: int, first_preq: bytes) -> None:
        super().__init__(
            "coin already spent",
            detail={"serial": b64u_encode(sigma), "transcript_id": transcript_id},
        )
        self.sigma = sigma
        self.transcript_id = transcript_id
        self.first_preq = first_preq


class DoubleSpendReports:
    """Signs spend transcripts, queues double-spend reports and sends them to the reporter."""

    def __init__(
        self,
        db: Database,
        *,
        reporter: DoubleSpendReporter,
        bank_key: PartyKey,
        bank_signer: str,
        clock: Callable[[], int],
        descriptor: Callable[[bytes], dict[str, Any] | None] | None = None,
    ) -> None:
        self._db = db
        self._reporter = reporter
        self._bank_key = bank_key
        self._bank_signer = bank_signer
        self._clock = clock
        #: the bank-signed descriptor of a keyset, added to signed transcripts (12.1)
        self._descriptor = descriptor

    def sign_transcript(self, body: Mapping[str, Any], transcript_id: int | str) -> dict[str, Any]:
        """Sign a transcript; with the coin's keyset descriptor as signed now, so the
        supervision department can check the coin's blind signature (protocol.md 12.1)."""
        extra: dict[str, Any] = {}
        keyset_id = body.get("keyset_id")
        if self._descriptor is not None and isinstance(keyset_id, str):
            doc = self._descriptor(b64u_decode(keyset_id))
            if doc is not None:
                extra["keyset"] = doc
        return sign_object(
            self._bank_key,
            TRANSCRIPT_KIND,
            {**body, **extra, "transcript_id": transcript_id},
            signer=self._bank_signer,
        )

    def signed_transcript(self, transcript_id: int) -> dict[str, Any]:
        """The bank-signed transcript (kind ``spend-transcript``) of a recorded spend."""
        with self._db.read() as tx:
            body = deposit_rows.transcript_body(tx, transcript_id)
        if body is None:
            raise NotFoundError("no such transcript", detail={"transcript_id": transcript_id})
        return self.sign_transcript(json.loads(body), transcript_id)

    def after_double_spend(
        self, exc: DoubleSpendSeen, attempt: Mapping[str, Any], preq: bytes
    ) -> None:
        """Queue and send a report if the refused attempt was for another payment request."""
        if exc.first_preq == preq:
            return  # the same request again: a duplicate deposit, not a customer double spend
        now = self._clock()

        def record(tx: Transaction) -> int | None:
            inserted = rows.insert_report(
                tx,
                sigma=exc.sigma,
                first_transcript_id=exc.transcript_id,
                second_preq=preq,
                second_transcript_json=json.dumps(dict(attempt), sort_keys=True),
                now=now,
            )
            if not inserted:
                return None
            return rows.report_id(tx, exc.sigma, preq)

        report_id = self._db.run_in_transaction(record)
        if report_id is not None:
            self._send(report_id)

    def _send(self, report_id: int) -> bool:
        with self._db.read() as tx:
            found = rows.report_to_send(tx, report_id)
        if found is None:
            raise NotFoundError("no such double-spend report", detail={"report_id": report_id})
        first_transcript_id, second_transcript = found
        first = self.signed_transcript(first_transcript_id)
        # The refused attempt has no transcript row; it is named after its report.
        second = self.sign_transcript(json.loads(second_transcript), f"attempt-{report_id}")
        return self.deliver(
            first,
            second,
            label=f"double-spend report {report_id}",
            failed=lambda tx, error: rows.mark_failed(tx, report_id, error),
            sent=lambda tx, result: rows.mark_sent(tx, report_id, result),
        )

    def deliver(
        self,
        first: dict[str, Any],
        second: dict[str, Any],
        *,
        label: str,
        failed: Callable[[Transaction, str], None],
        sent: Callable[[Transaction, str], None],
    ) -> bool:
        """Hand one report to the reporter and record the outcome with ``sent``/``failed``
        (whichever queue it came from); a failing reporter is another party: retry later."""
        try:
            result = self._reporter.report(first, second)
        except Exception as exc:  # the reporter is another party: record any failure, retry later
            logger.warning("%s failed: %s", label, exc)
            error = f"{type(exc).__name__}: {exc}"[:1000]
            self._db.run_in_transaction(lambda tx: failed(tx, error))
            return False
        try:
            result_json = json.dumps(result, default=json_default, sort_keys=True)
        except (TypeError, ValueError):
            result_json = json.dumps(repr(result))
        self._db.run_in_transaction(lambda tx: sent(tx, result_json[:100_000]))
        return True

    def retry(self) -> dict[str, int]:
        """Send every pending or failed double-spend report again: ``{sent, failed}``."""
        with self._db.read() as tx:
            ids = rows.unsent_report_ids(tx)
        sent = sum(1 for report_id in ids if self._send(report_id))
        return {"sent": sent, "failed": len(ids) - sent}

    def all(self) -> list[DoubleSpendReport]:
        """All double-spend reports (for the audit and the CLI), with the supervision
        department's answer to each one sent (its case: member, evidence, revocation)."""
        with self._db.read() as tx:
            stored = rows.all_reports(tx)
        return [
            DoubleSpendReport(
                report_id=r.report_id,
                sigma=b64u_encode(r.sigma),
                first_transcript_id=r.first_transcript_id,
                second_preq=b64u_encode(r.second_preq),
                created_at=r.created_at,
                status=r.status,
                attempts=r.attempts,
                error=r.error,
                result=None if r.result is None else json.loads(r.result),
            )
            for r in stored
        ]

"""Double spends whose first spend was a redeem (docs/protocol.md §9.4, §9.1, §12.1).

When a deposit, reservation or another redeem hits a serial that an account holder redeemed,
the refusal is the same 409 ``bank.double_spend`` (with the bank-signed refusal) and, when the
second attempt answered another request, the same report goes to supervision: the redeem's
bank-signed transcript first, the refused attempt second. Only the queue differs from
:class:`~ecash_tpm.bank.reports.DoubleSpendReports` (``redeem_report``: the first transcript
lives in ``redeem_input``, not in ``spend_transcript``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ecash_tpm.bank.errors import DoubleSpendError
from ecash_tpm.bank.reports import DoubleSpendReports
from ecash_tpm.bank.store import redeems as rows
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.errors import NotFoundError
from ecash_tpm.storage import Database, Transaction

__all__ = ["RedeemReports", "RedeemedSeen", "redeem_transcript_id"]

logger = logging.getLogger("ecash_tpm.bank")


def redeem_transcript_id(request_id: str) -> str:
    """The transcript id a redeemed coin's signed transcript carries (one coin per serial)."""
    return f"redeem:{request_id}"


class RedeemedSeen(DoubleSpendError):
    """§9.4: the serial was redeemed into an account; ``detail`` names the redeem."""

    def __init__(self, sigma: bytes, request_id: str, first_preq: bytes) -> None:
        super().__init__(
            "coin already spent (redeemed)",
            detail={"serial": b64u_encode(sigma), "redeem_request_id": request_id},
        )
        self.sigma = sigma
        self.request_id = request_id
        self.first_preq = first_preq


class RedeemReports:
    """Queues and sends the reports of double spends of redeemed coins."""

    def __init__(
        self,
        db: Database,
        *,
        reports: DoubleSpendReports,
        clock: Callable[[], int],
    ) -> None:
        db.migrate(rows.MIGRATIONS, component=rows.COMPONENT)
        self._db = db
        self._reports = reports  # signs (§12.1) and delivers, to the same reporter
        self._clock = clock

    def after_double_spend(
        self, exc: RedeemedSeen, attempt: Mapping[str, Any], preq: bytes
    ) -> None:
        """Queue and send a report if the refused attempt answered another request."""
        if exc.first_preq == preq:
            return  # the same redeem request again: a retry, not a second spend
        now = self._clock()

        def record(tx: Transaction) -> int | None:
            if not rows.insert_report(
                tx,
                sigma=exc.sigma,
                second_preq=preq,
                second_transcript_json=json.dumps(dict(attempt), sort_keys=True),
                now=now,
            ):
                return None
            return rows.report_id(tx, exc.sigma, preq)

        report_id = self._db.run_in_transaction(record)
        if report_id is not None:
            self._send(report_id)

    def _send(self, report_id: int) -> bool:
        with self._db.read() as tx:
            found = rows.report_to_send(tx, report_id)
        if found is None:
            raise NotFoundError("no such redeem double-spend report", detail={"id": report_id})
        first_body, second_body = (json.loads(b) for b in found)
        first = self._reports.sign_transcript(
            first_body, redeem_transcript_id(str(first_body.get("deposit_id")))
        )
        second = self._reports.sign_transcript(second_body, f"attempt-redeem-{report_id}")
        return self._reports.deliver(
            first,
            second,
            label=f"redeem double-spend report {report_id}",
            failed=lambda tx, error: rows.mark_report(
                tx, report_id, sent=False, result=None, error=error
            ),
            sent=lambda tx, result: rows.mark_report(
                tx, report_id, sent=True, result=result, error=None
            ),
        )

    def retry(self) -> dict[str, int]:
        """Send every pending or failed report again: ``{sent, failed}``."""
        with self._db.read() as tx:
            ids = rows.unsent_report_ids(tx)
        sent = sum(1 for report_id in ids if self._send(report_id))
        return {"sent": sent, "failed": len(ids) - sent}

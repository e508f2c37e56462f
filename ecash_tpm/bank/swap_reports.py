"""Double spends whose first spend was a swap (docs/protocol.md §9.3, §9.1, §12.1).

When a deposit, reservation, redeem or another swap hits a serial that a swap spent, the refusal
is the same 409 ``bank.double_spend`` and, when the second attempt answered another request
(another ``preq``: an identical retry of the swap is answered from the stored swap and never
gets here), the same report goes to supervision: the swap's bank-signed transcript first (its
``kind`` is ``swap``; transcript id ``swap:<request id>``), the refused attempt second. Only the
queue differs from :class:`~ecash_tpm.bank.reports.DoubleSpendReports` (``swap_report``: the
first transcript lives in ``swap_input``). A coin deposited or redeemed first and then swapped
goes to the first spend's queue, with the refused swap's transcript second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ecash_tpm.bank.errors import DoubleSpendError
from ecash_tpm.bank.reports import DoubleSpendReports
from ecash_tpm.bank.store import swap_reports as rows
from ecash_tpm.bank.store import swaps as swap_rows
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.errors import NotFoundError
from ecash_tpm.storage import Database, Transaction

__all__ = ["SwapReports", "SwappedSeen", "swap_transcript_id"]


def swap_transcript_id(request_id: str) -> str:
    """The transcript id a swapped coin's signed transcript carries (one coin per serial)."""
    return f"swap:{request_id}"


class SwappedSeen(DoubleSpendError):
    """§9.3: the serial was spent by a swap; ``detail`` names the swap's request id."""

    def __init__(self, sigma: bytes, request_id: str, first_preq: bytes) -> None:
        super().__init__(
            "coin already spent (swapped)",
            detail={"serial": b64u_encode(sigma), "swap_request_id": request_id},
        )
        self.sigma = sigma
        self.request_id = request_id
        self.first_preq = first_preq


class SwapReports:
    """Queues and sends the reports of double spends of swapped coins."""

    def __init__(
        self,
        db: Database,
        *,
        reports: DoubleSpendReports,
        clock: Callable[[], int],
    ) -> None:
        # the queue references swap_input: the swap tables first (idempotent)
        db.migrate(swap_rows.MIGRATIONS, component=swap_rows.COMPONENT)
        db.migrate(rows.MIGRATIONS, component=rows.COMPONENT)
        self._db = db
        self._reports = reports  # signs (§12.1) and delivers, to the same reporter
        self._clock = clock

    def after_double_spend(self, exc: SwappedSeen, attempt: Mapping[str, Any], preq: bytes) -> None:
        """Queue (in its own transaction, after the refusal) and send a report if the refused
        attempt answered another request than the swap (§9.3)."""
        if exc.first_preq == preq:
            return  # the same swap request again: a retry, not a second spend
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
            raise NotFoundError("no such swap double-spend report", detail={"id": report_id})
        first_body, second_body = (json.loads(b) for b in found)
        first = self._reports.sign_transcript(
            first_body, swap_transcript_id(str(first_body.get("request_id")))
        )
        second = self._reports.sign_transcript(second_body, f"attempt-swap-{report_id}")
        return self._reports.deliver(
            first,
            second,
            label=f"swap double-spend report {report_id}",
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

    def all(self) -> list[rows.SwapReportRow]:
        """Every queued report with its delivery state (tests, operators)."""
        with self._db.read() as tx:
            return rows.all_reports(tx)

"""Queries on ``double_spend_report`` (evidence queued for the supervision department)."""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.storage import Transaction

__all__ = [
    "ReportRow",
    "all_reports",
    "insert_report",
    "mark_failed",
    "mark_sent",
    "report_id",
    "report_to_send",
    "unsent_report_ids",
]


@dataclass(frozen=True, slots=True)
class ReportRow:
    report_id: int
    sigma: bytes
    first_transcript_id: int
    second_preq: bytes
    created_at: int
    status: str
    attempts: int
    error: str | None
    result: str | None


def insert_report(
    tx: Transaction,
    *,
    sigma: bytes,
    first_transcript_id: int,
    second_preq: bytes,
    second_transcript_json: str,
    now: int,
) -> bool:
    """Queue a report (status ``pending``); False if one for ``(sigma, preq)`` exists."""
    inserted = tx.execute(
        "INSERT INTO double_spend_report (sigma, first_transcript_id, second_preq,"
        " second_transcript, created_at, status) VALUES (:s, :t, :p, :body, :now,"
        " 'pending') ON CONFLICT (sigma, second_preq) DO NOTHING",
        {
            "s": sigma,
            "t": first_transcript_id,
            "p": second_preq,
            "body": second_transcript_json,
            "now": now,
        },
    )
    return inserted == 1


def report_id(tx: Transaction, sigma: bytes, second_preq: bytes) -> int | None:
    value = tx.fetchval(
        "SELECT report_id FROM double_spend_report WHERE sigma = :s AND second_preq = :p",
        {"s": sigma, "p": second_preq},
    )
    return None if value is None else int(value)


def report_to_send(tx: Transaction, report_id: int) -> tuple[int, str] | None:
    """``(first_transcript_id, second_transcript JSON)`` of a report."""
    row = tx.fetchone(
        "SELECT first_transcript_id, second_transcript FROM double_spend_report"
        " WHERE report_id = :r",
        {"r": report_id},
    )
    if row is None:
        return None
    return int(row["first_transcript_id"]), str(row["second_transcript"])


def mark_failed(tx: Transaction, report_id: int, error: str) -> None:
    tx.execute(
        "UPDATE double_spend_report SET status = 'failed', attempts = attempts + 1,"
        " error = :e WHERE report_id = :r",
        {"e": error, "r": report_id},
    )


def mark_sent(tx: Transaction, report_id: int, result_json: str) -> None:
    tx.execute(
        "UPDATE double_spend_report SET status = 'sent', attempts = attempts + 1,"
        " result = :res, error = NULL WHERE report_id = :r",
        {"res": result_json, "r": report_id},
    )


def unsent_report_ids(tx: Transaction) -> list[int]:
    rows = tx.fetchall(
        "SELECT report_id FROM double_spend_report WHERE status <> 'sent' ORDER BY report_id"
    )
    return [int(r["report_id"]) for r in rows]


def all_reports(tx: Transaction) -> list[ReportRow]:
    rows = tx.fetchall(
        "SELECT report_id, sigma, first_transcript_id, second_preq, created_at, status,"
        " attempts, error, result FROM double_spend_report ORDER BY report_id"
    )
    return [
        ReportRow(
            report_id=int(r["report_id"]),
            sigma=bytes(r["sigma"]),
            first_transcript_id=int(r["first_transcript_id"]),
            second_preq=bytes(r["second_preq"]),
            created_at=int(r["created_at"]),
            status=str(r["status"]),
            attempts=int(r["attempts"]),
            error=r["error"],
            result=r["result"],
        )
        for r in rows
    ]

"""Queries on ``swap_report`` (docs/protocol.md §9.3); schema component ``bank_swap_reports``.

A double spend whose *first* spend was a swap is queued here: the first transcript lives in
``swap_input`` (``double_spend_report`` references ``spend_transcript``, ``redeem_report``
``redeem_input``). Kept as its own component, after ``bank_swap`` (its foreign key), so its
migration never collides with another branch's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.storage import Migration, Transaction

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "SwapReportRow",
    "all_reports",
    "insert_report",
    "mark_report",
    "report_id",
    "report_to_send",
    "unsent_report_ids",
]

COMPONENT = "bank_swap_reports"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "swap_report",
        """
        CREATE TABLE swap_report (
            report_id {pk},
            sigma {blob} NOT NULL REFERENCES swap_input (sigma),
            second_preq {blob} NOT NULL,
            second_transcript TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            error TEXT,
            UNIQUE (sigma, second_preq)
        );
        """,
    ),
]


@dataclass(frozen=True, slots=True)
class SwapReportRow:
    """One queued report: the swapped serial, the refused request, and its delivery state."""

    report_id: int
    sigma: bytes
    second_preq: bytes
    created_at: int
    status: str
    attempts: int
    error: str | None
    result: str | None


def insert_report(
    tx: Transaction, *, sigma: bytes, second_preq: bytes, second_transcript_json: str, now: int
) -> bool:
    """Queue a report (status ``pending``); False if one for ``(sigma, preq)`` exists."""
    inserted = tx.execute(
        "INSERT INTO swap_report (sigma, second_preq, second_transcript, created_at, status)"
        " VALUES (:s, :p, :body, :now, 'pending') ON CONFLICT (sigma, second_preq) DO NOTHING",
        {"s": sigma, "p": second_preq, "body": second_transcript_json, "now": now},
    )
    return inserted == 1


def report_id(tx: Transaction, sigma: bytes, second_preq: bytes) -> int | None:
    value = tx.fetchval(
        "SELECT report_id FROM swap_report WHERE sigma = :s AND second_preq = :p",
        {"s": sigma, "p": second_preq},
    )
    return None if value is None else int(value)


def report_to_send(tx: Transaction, report_id: int) -> tuple[str, str] | None:
    """``(first transcript JSON, second transcript JSON)`` of a report."""
    row = tx.fetchone(
        "SELECT i.body, r.second_transcript FROM swap_report r"
        " JOIN swap_input i ON i.sigma = r.sigma WHERE r.report_id = :r",
        {"r": report_id},
    )
    if row is None:
        return None
    return str(row["body"]), str(row["second_transcript"])


def mark_report(
    tx: Transaction, report_id: int, *, sent: bool, result: str | None, error: str | None
) -> None:
    tx.execute(
        "UPDATE swap_report SET status = :st, attempts = attempts + 1, result = :res,"
        " error = :e WHERE report_id = :r",
        {"st": "sent" if sent else "failed", "res": result, "e": error, "r": report_id},
    )


def unsent_report_ids(tx: Transaction) -> list[int]:
    rows = tx.fetchall(
        "SELECT report_id FROM swap_report WHERE status <> 'sent' ORDER BY report_id"
    )
    return [int(r["report_id"]) for r in rows]


def all_reports(tx: Transaction) -> list[SwapReportRow]:
    rows = tx.fetchall(
        "SELECT report_id, sigma, second_preq, created_at, status, attempts, error, result"
        " FROM swap_report ORDER BY report_id"
    )
    return [
        SwapReportRow(
            report_id=int(r["report_id"]),
            sigma=bytes(r["sigma"]),
            second_preq=bytes(r["second_preq"]),
            created_at=int(r["created_at"]),
            status=str(r["status"]),
            attempts=int(r["attempts"]),
            error=r["error"],
            result=r["result"],
        )
        for r in rows
    ]

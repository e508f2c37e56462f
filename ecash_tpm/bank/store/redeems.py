"""Queries on ``redeem_request``, ``redeem``, ``redeem_input`` and ``redeem_report``
(docs/protocol.md §9.4); schema component ``bank_redeem``.

A redeemed coin is spent: its serial is the primary key of ``redeem_input`` (with the transcript
of its spend), and every spent check reads ``spent_coin``, ``swap_input`` and ``redeem_input``
(the same serial locks order them). ``spent_coin`` and ``spend_transcript`` cannot hold a
redeem: their rows reference a merchant's ``deposit``. A double spend whose *first* spend was a
redeem is queued in ``redeem_report`` (``double_spend_report`` references ``spend_transcript``).
Kept as its own component so its migration never collides with another branch's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.storage import Migration, Transaction

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "RedeemRow",
    "RedeemedCoin",
    "RequestRow",
    "count_inputs",
    "count_open_requests",
    "insert_input",
    "insert_redeem",
    "insert_report",
    "insert_request",
    "migrated",
    "mark_report",
    "redeem",
    "redeemed",
    "report_id",
    "report_to_send",
    "request",
    "set_receipt",
    "unsent_report_ids",
]

COMPONENT = "bank_redeem"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "redeem",
        """
        CREATE TABLE redeem_request (
            request_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES bank_account (account_id),
            preq {blob} NOT NULL UNIQUE,
            amount BIGINT NOT NULL CHECK (amount > 0),
            currency TEXT NOT NULL,
            deadline BIGINT NOT NULL,
            doc TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE INDEX redeem_request_account ON redeem_request (account_id);
        CREATE TABLE redeem (
            request_id TEXT PRIMARY KEY REFERENCES redeem_request (request_id),
            account_id TEXT NOT NULL REFERENCES bank_account (account_id),
            content_digest {blob} NOT NULL,
            preq {blob} NOT NULL UNIQUE,
            amount BIGINT NOT NULL CHECK (amount > 0),
            currency TEXT NOT NULL,
            receipt TEXT NOT NULL,
            txn_id BIGINT NOT NULL REFERENCES ledger_txn (txn_id),
            created_at BIGINT NOT NULL
        );
        CREATE TABLE redeem_input (
            sigma {blob} PRIMARY KEY,
            request_id TEXT NOT NULL REFERENCES redeem (request_id),
            keyset_id {blob} NOT NULL REFERENCES keyset (keyset_id),
            value BIGINT NOT NULL CHECK (value > 0),
            body TEXT NOT NULL,
            spent_at BIGINT NOT NULL
        );
        CREATE INDEX redeem_input_keyset ON redeem_input (keyset_id);
        CREATE INDEX redeem_input_request ON redeem_input (request_id);
        CREATE TABLE redeem_report (
            report_id {pk},
            sigma {blob} NOT NULL REFERENCES redeem_input (sigma),
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
class RequestRow:
    """A redeem request the bank issued (single use: at most one ``redeem`` row names it)."""

    request_id: str
    account_id: str
    preq: bytes
    doc: str


@dataclass(frozen=True, slots=True)
class RedeemRow:
    """What an idempotent retry is compared with."""

    request_id: str
    account_id: str
    content_digest: bytes
    receipt: str


@dataclass(frozen=True, slots=True)
class RedeemedCoin:
    """A serial spent by a redeem: the redeem, its ``preq``, when, and the stored transcript."""

    request_id: str
    preq: bytes
    spent_at: int
    body: str


# --- requests ----------------------------------------------------------------------------------


def insert_request(
    tx: Transaction,
    *,
    request_id: str,
    account_id: str,
    preq: bytes,
    amount: int,
    currency: str,
    deadline: int,
    doc_json: str,
    now: int,
) -> None:
    tx.execute(
        "INSERT INTO redeem_request (request_id, account_id, preq, amount, currency, deadline,"
        " doc, created_at) VALUES (:r, :a, :p, :amount, :c, :d, :doc, :now)",
        {
            "r": request_id,
            "a": account_id,
            "p": preq,
            "amount": amount,
            "c": currency,
            "d": deadline,
            "doc": doc_json,
            "now": now,
        },
    )


def count_open_requests(tx: Transaction, account_id: str, now: int) -> int:
    """Live requests of ``account_id`` that no redeem has used yet."""
    return int(
        tx.fetchval(
            "SELECT COUNT(*) AS n FROM redeem_request q WHERE q.account_id = :a"
            " AND q.deadline >= :now"
            " AND NOT EXISTS (SELECT 1 FROM redeem r WHERE r.request_id = q.request_id)",
            {"a": account_id, "now": now},
        )
        or 0
    )


def request(tx: Transaction, request_id: str) -> RequestRow | None:
    row = tx.fetchone(
        "SELECT request_id, account_id, preq, doc FROM redeem_request WHERE request_id = :r",
        {"r": request_id},
    )
    if row is None:
        return None
    return RequestRow(
        str(row["request_id"]), str(row["account_id"]), bytes(row["preq"]), str(row["doc"])
    )


# --- redeems and their coins -------------------------------------------------------------------


def redeem(tx: Transaction, request_id: str) -> RedeemRow | None:
    row = tx.fetchone(
        "SELECT request_id, account_id, content_digest, receipt FROM redeem WHERE request_id = :r",
        {"r": request_id},
    )
    if row is None:
        return None
    return RedeemRow(
        str(row["request_id"]),
        str(row["account_id"]),
        bytes(row["content_digest"]),
        str(row["receipt"]),
    )


def insert_redeem(
    tx: Transaction,
    *,
    request_id: str,
    account_id: str,
    digest: bytes,
    preq: bytes,
    amount: int,
    currency: str,
    txn_id: int,
    now: int,
) -> None:
    """The redeem row with an empty receipt (set by :func:`set_receipt` in the same txn)."""
    tx.execute(
        "INSERT INTO redeem (request_id, account_id, content_digest, preq, amount, currency,"
        " receipt, txn_id, created_at) VALUES (:r, :a, :d, :p, :amount, :c, '', :t, :now)",
        {
            "r": request_id,
            "a": account_id,
            "d": digest,
            "p": preq,
            "amount": amount,
            "c": currency,
            "t": txn_id,
            "now": now,
        },
    )


def set_receipt(tx: Transaction, request_id: str, receipt_json: str) -> None:
    tx.execute(
        "UPDATE redeem SET receipt = :rc WHERE request_id = :r",
        {"rc": receipt_json, "r": request_id},
    )


def insert_input(
    tx: Transaction,
    *,
    sigma: bytes,
    request_id: str,
    keyset_id: bytes,
    value: int,
    body_json: str,
    now: int,
) -> bool:
    """Mark a serial spent by a redeem; False if it already is (the caller rolls back)."""
    inserted = tx.execute(
        "INSERT INTO redeem_input (sigma, request_id, keyset_id, value, body, spent_at)"
        " VALUES (:s, :r, :k, :v, :b, :now) ON CONFLICT (sigma) DO NOTHING",
        {"s": sigma, "r": request_id, "k": keyset_id, "v": value, "b": body_json, "now": now},
    )
    return inserted == 1


def redeemed(tx: Transaction, sigma: bytes) -> RedeemedCoin | None:
    """The redeem that spent ``sigma``, if any."""
    row = tx.fetchone(
        "SELECT i.request_id, r.preq, i.spent_at, i.body FROM redeem_input i"
        " JOIN redeem r ON r.request_id = i.request_id WHERE i.sigma = :s",
        {"s": sigma},
    )
    if row is None:
        return None
    return RedeemedCoin(
        str(row["request_id"]), bytes(row["preq"]), int(row["spent_at"]), str(row["body"])
    )


def count_inputs(tx: Transaction, keyset_id: bytes) -> int:
    """How many serials of a keyset were redeemed."""
    return int(
        tx.fetchval("SELECT COUNT(*) AS n FROM redeem_input WHERE keyset_id = :k", {"k": keyset_id})
        or 0
    )


# --- reports of double spends whose first spend was a redeem ----------------------------------


def insert_report(
    tx: Transaction, *, sigma: bytes, second_preq: bytes, second_transcript_json: str, now: int
) -> bool:
    """Queue a report (status ``pending``); False if one for ``(sigma, preq)`` exists."""
    inserted = tx.execute(
        "INSERT INTO redeem_report (sigma, second_preq, second_transcript, created_at, status)"
        " VALUES (:s, :p, :body, :now, 'pending') ON CONFLICT (sigma, second_preq) DO NOTHING",
        {"s": sigma, "p": second_preq, "body": second_transcript_json, "now": now},
    )
    return inserted == 1


def report_id(tx: Transaction, sigma: bytes, second_preq: bytes) -> int | None:
    value = tx.fetchval(
        "SELECT report_id FROM redeem_report WHERE sigma = :s AND second_preq = :p",
        {"s": sigma, "p": second_preq},
    )
    return None if value is None else int(value)


def report_to_send(tx: Transaction, report_id: int) -> tuple[str, str] | None:
    """``(first transcript JSON, second transcript JSON)`` of a report."""
    row = tx.fetchone(
        "SELECT i.body, r.second_transcript FROM redeem_report r"
        " JOIN redeem_input i ON i.sigma = r.sigma WHERE r.report_id = :r",
        {"r": report_id},
    )
    if row is None:
        return None
    return str(row["body"]), str(row["second_transcript"])


def mark_report(
    tx: Transaction, report_id: int, *, sent: bool, result: str | None, error: str | None
) -> None:
    tx.execute(
        "UPDATE redeem_report SET status = :st, attempts = attempts + 1, result = :res,"
        " error = :e WHERE report_id = :r",
        {"st": "sent" if sent else "failed", "res": result, "e": error, "r": report_id},
    )


def unsent_report_ids(tx: Transaction) -> list[int]:
    rows = tx.fetchall(
        "SELECT report_id FROM redeem_report WHERE status <> 'sent' ORDER BY report_id"
    )
    return [int(r["report_id"]) for r in rows]


def migrated(tx: Transaction) -> bool:
    """Whether this database holds the redeem tables (an older database checked by an operator
    tool without a bank domain may not)."""
    return (
        tx.fetchval(
            "SELECT MAX(version) AS v FROM schema_migrations WHERE component = :c",
            {"c": COMPONENT},
        )
        is not None
    )

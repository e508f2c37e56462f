"""The supervision department's SQL: member registry, opening log, double-spend cases.

- ``registry``: T0 -> member, fed by the issuer. T0 and member_id are both unique; member ids
  are derived from T0, so a repeated registration is recognised as the same entry.
- ``opening``: every opening, with its reason (court order, double spend) and proof: openings
  de-anonymise and must be auditable.
- ``double_spend``: one case per serial with the signed evidence bundle and the state of the
  revocation request to the issuer (``pending``, ``revoked``, ``failed``).
"""

from __future__ import annotations

import json
from typing import Any

from ecash_tpm.storage import Transaction

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "registry_openings_cases",
        """
CREATE TABLE registry (
    t0 {blob} PRIMARY KEY,
    member_id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    registration TEXT,
    registered_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE opening (
    opening_id {pk},
    c1 {blob} NOT NULL,
    c2 {blob} NOT NULL,
    t0 {blob} NOT NULL,
    member_id TEXT,
    reason TEXT NOT NULL,
    proof {blob} NOT NULL,
    opened_at BIGINT NOT NULL
);

CREATE TABLE double_spend (
    case_id {pk},
    sigma {blob} NOT NULL UNIQUE,
    member_id TEXT NOT NULL,
    evidence TEXT NOT NULL,
    revocation_status TEXT NOT NULL CHECK (revocation_status IN ('pending', 'revoked', 'failed')),
    revocation_detail TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
""",
    ),
]


def _b(row: dict[str, Any] | None, *keys: str) -> dict[str, Any] | None:
    if row is None:
        return None
    for k in keys:
        if row.get(k) is not None:
            row[k] = bytes(row[k])
    return row


def registry_by_t0(tx: Transaction, t0: bytes) -> dict[str, Any] | None:
    return _b(tx.fetchone("SELECT * FROM registry WHERE t0 = :t", {"t": t0}), "t0")


def registry_by_member(tx: Transaction, member_id: str) -> dict[str, Any] | None:
    return _b(tx.fetchone("SELECT * FROM registry WHERE member_id = :m", {"m": member_id}), "t0")


def insert_registration(tx: Transaction, row: dict[str, Any]) -> bool:
    """Insert unless T0 is known; False when a row for this T0 already exists."""
    n = tx.execute(
        "INSERT INTO registry (t0, member_id, account_id, epoch, registration, registered_at, "
        "updated_at) VALUES (:t0, :member_id, :account_id, :epoch, :registration, :now, :now) "
        "ON CONFLICT (t0) DO NOTHING",
        row,
    )
    return n == 1


def update_registration(tx: Transaction, row: dict[str, Any]) -> None:
    tx.execute(
        "UPDATE registry SET account_id = :account_id, epoch = :epoch, "
        "registration = :registration, updated_at = :now WHERE t0 = :t0",
        {k: row[k] for k in ("account_id", "epoch", "registration", "now", "t0")},
    )


def list_registry(tx: Transaction) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        "SELECT t0, member_id, account_id, epoch, registered_at, updated_at FROM registry "
        "ORDER BY registered_at, member_id"
    )
    return [r for r in (_b(r, "t0") for r in rows) if r is not None]


def insert_opening(tx: Transaction, row: dict[str, Any]) -> int:
    return tx.insert_returning_id(
        "INSERT INTO opening (c1, c2, t0, member_id, reason, proof, opened_at) "
        "VALUES (:c1, :c2, :t0, :member_id, :reason, :proof, :now)",
        row,
        id_column="opening_id",
    )


def list_openings(tx: Transaction) -> list[dict[str, Any]]:
    rows = tx.fetchall(
        "SELECT opening_id, member_id, reason, opened_at FROM opening ORDER BY opening_id"
    )
    return list(rows)


def case_for_sigma(tx: Transaction, sigma: bytes) -> dict[str, Any] | None:
    row = _b(tx.fetchone("SELECT * FROM double_spend WHERE sigma = :s", {"s": sigma}), "sigma")
    if row is not None:
        row["evidence"] = json.loads(row["evidence"])
    return row


def insert_case(
    tx: Transaction, sigma: bytes, member_id: str, evidence: dict[str, Any], now: int
) -> int:
    return tx.insert_returning_id(
        "INSERT INTO double_spend (sigma, member_id, evidence, revocation_status, created_at, "
        "updated_at) VALUES (:s, :m, :e, 'pending', :now, :now)",
        {"s": sigma, "m": member_id, "e": json.dumps(evidence, sort_keys=True), "now": now},
        id_column="case_id",
    )


def set_case_status(
    tx: Transaction, case_id: int, status: str, detail: dict[str, Any] | None, now: int
) -> None:
    tx.execute(
        "UPDATE double_spend SET revocation_status = :st, revocation_detail = :d, "
        "updated_at = :now WHERE case_id = :c",
        {
            "st": status,
            "d": None if detail is None else json.dumps(detail, sort_keys=True, default=str),
            "now": now,
            "c": case_id,
        },
    )

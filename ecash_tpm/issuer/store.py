"""The issuer's SQL: migrations and the statements the domain layer runs (SQLite and PostgreSQL).

Tables:

- ``join_session``: one started join (nonce, credential secret, expiry, the presented publics).
  ``consumed_at`` makes it single use: join/finish consumes it in the same transaction that
  creates the member, and a failed attempt burns it (``outcome`` = the error code). The secret
  is wiped when the session is consumed.
- ``member``: the member record. ``t0`` is UNIQUE; a partial UNIQUE index allows one *active*
  membership per EK certificate fingerprint, so the database itself refuses duplicates even if
  two joins race.
- ``member_credential``: which credential was issued to whom for which epoch.
- ``revocation``: revocation reason and evidence (JSON) per member.

All functions take an open :class:`~ecash_tpm.storage.Transaction`; the domain layer decides
the transaction boundaries.
"""

from __future__ import annotations

import json
from typing import Any

from ecash_tpm.storage import Transaction

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "join_and_members",
        """
CREATE TABLE join_session (
    join_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    nonce {blob} NOT NULL,
    secret {blob},
    ek_fingerprint TEXT NOT NULL,
    ek_cert {blob} NOT NULL,
    ek_public {blob} NOT NULL,
    ak_public {blob} NOT NULL,
    daa_public {blob} NOT NULL,
    pcr_selection TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT,
    outcome TEXT
);
CREATE INDEX join_session_expires ON join_session (expires_at);

CREATE TABLE member (
    member_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    ek_fingerprint TEXT NOT NULL,
    ek_cert {blob} NOT NULL,
    ak_name {blob} NOT NULL,
    daa_q {blob} NOT NULL,
    t0 {blob} NOT NULL UNIQUE,
    pcr_values TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    join_id TEXT NOT NULL UNIQUE,
    joined_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX member_one_active_per_ek ON member (ek_fingerprint) WHERE status = 'active';
CREATE INDEX member_account ON member (account_id);

CREATE TABLE member_credential (
    member_id TEXT NOT NULL REFERENCES member (member_id),
    epoch BIGINT NOT NULL,
    credential {blob} NOT NULL,
    issued_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, epoch)
);

CREATE TABLE revocation (
    member_id TEXT PRIMARY KEY REFERENCES member (member_id),
    revoked_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT
);
""",
    ),
]

_SELECT_MEMBER = (
    "SELECT m.member_id, m.account_id, m.ek_fingerprint, m.ak_name, m.daa_q, m.t0, "
    "m.pcr_values, m.epoch, m.status, m.joined_at, m.updated_at, r.revoked_at, "
    "r.reason AS revocation_reason "
    "FROM member m LEFT JOIN revocation r ON r.member_id = m.member_id "
)


def _bytes(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    """psycopg returns memoryview/bytes, sqlite bytes: normalise to bytes."""
    for k in keys:
        if row.get(k) is not None:
            row[k] = bytes(row[k])
    return row


# --- join sessions ---------------------------------------------------------------------------


def insert_join(tx: Transaction, row: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO join_session (join_id, account_id, nonce, secret, ek_fingerprint, ek_cert, "
        "ek_public, ak_public, daa_public, pcr_selection, created_at, expires_at) VALUES "
        "(:join_id, :account_id, :nonce, :secret, :ek_fingerprint, :ek_cert, :ek_public, "
        ":ak_public, :daa_public, :pcr_selection, :created_at, :expires_at)",
        {**row, "pcr_selection": json.dumps(list(row["pcr_selection"]))},
    )


def get_join(tx: Transaction, join_id: str) -> dict[str, Any] | None:
    row = tx.fetchone("SELECT * FROM join_session WHERE join_id = :j", {"j": join_id})
    if row is None:
        return None
    row["pcr_selection"] = json.loads(row["pcr_selection"])
    return _bytes(row, "nonce", "secret", "ek_cert", "ek_public", "ak_public", "daa_public")


def consume_join(tx: Transaction, join_id: str, now: int, outcome: str) -> bool:
    """Mark the join used (wiping its secret); False if it was already used."""
    n = tx.execute(
        "UPDATE join_session SET consumed_at = :now, outcome = :outcome, secret = NULL "
        "WHERE join_id = :j AND consumed_at IS NULL",
        {"now": now, "outcome": outcome[:64], "j": join_id},
    )
    return n == 1


def purge_joins(tx: Transaction, before: int) -> int:
    """Forget joins that expired before ``before`` (their replay then reads join.unknown)."""
    return tx.execute("DELETE FROM join_session WHERE expires_at < :b", {"b": before})


# --- members ---------------------------------------------------------------------------------


def members_for_ek(tx: Transaction, ek_fingerprint: str) -> list[dict[str, Any]]:
    return [
        _member(r)
        for r in tx.fetchall(
            _SELECT_MEMBER + "WHERE m.ek_fingerprint = :f ORDER BY m.joined_at",
            {"f": ek_fingerprint},
        )
    ]


def member_for_t0(tx: Transaction, t0: bytes) -> str | None:
    value = tx.fetchval("SELECT member_id FROM member WHERE t0 = :t", {"t": t0})
    return None if value is None else str(value)


def insert_member(tx: Transaction, row: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO member (member_id, account_id, ek_fingerprint, ek_cert, ak_name, daa_q, t0, "
        "pcr_values, epoch, status, join_id, joined_at, updated_at) VALUES (:member_id, "
        ":account_id, :ek_fingerprint, :ek_cert, :ak_name, :daa_q, :t0, :pcr_values, :epoch, "
        "'active', :join_id, :now, :now)",
        {
            **row,
            "pcr_values": json.dumps(
                {str(k): v.hex() for k, v in sorted(row["pcr_values"].items())}
            ),
        },
    )


def insert_credential(
    tx: Transaction, member_id: str, epoch: int, credential: bytes, now: int
) -> None:
    tx.execute(
        "INSERT INTO member_credential (member_id, epoch, credential, issued_at) "
        "VALUES (:m, :e, :c, :now)",
        {"m": member_id, "e": epoch, "c": credential, "now": now},
    )


def _member(row: dict[str, Any]) -> dict[str, Any]:
    row = _bytes(row, "ak_name", "daa_q", "t0")
    row["pcr_values"] = {k: bytes.fromhex(v) for k, v in json.loads(row["pcr_values"]).items()}
    return row


def get_member(tx: Transaction, member_id: str) -> dict[str, Any] | None:
    row = tx.fetchone(
        _SELECT_MEMBER + "WHERE m.member_id = :m",
        {"m": member_id},
    )
    return None if row is None else _member(row)


def list_members(
    tx: Transaction, *, status: str | None = None, account_id: str | None = None
) -> list[dict[str, Any]]:
    # Fixed clauses chosen by which filters are given (values are always bound parameters).
    clauses = []
    params: dict[str, Any] = {}
    if status is not None:
        clauses.append("m.status = :status")
        params["status"] = status
    if account_id is not None:
        clauses.append("m.account_id = :account")
        params["account"] = account_id
    where = ("WHERE " + " AND ".join(clauses) + " ") if clauses else ""
    rows = tx.fetchall(_SELECT_MEMBER + where + "ORDER BY m.joined_at, m.member_id", params)
    return [_member(r) for r in rows]


def count_members(tx: Transaction) -> int:
    return int(tx.fetchval("SELECT COUNT(*) AS n FROM member") or 0)


def revoke_member(
    tx: Transaction, member_id: str, now: int, reason: str, evidence: dict[str, Any] | None
) -> bool:
    """Set status revoked and record why; False if the member was already revoked."""
    n = tx.execute(
        "UPDATE member SET status = 'revoked', updated_at = :now "
        "WHERE member_id = :m AND status = 'active'",
        {"now": now, "m": member_id},
    )
    if n != 1:
        return False
    tx.execute(
        "INSERT INTO revocation (member_id, revoked_at, reason, evidence) "
        "VALUES (:m, :now, :reason, :evidence)",
        {
            "m": member_id,
            "now": now,
            "reason": reason,
            "evidence": None if evidence is None else json.dumps(evidence, sort_keys=True),
        },
    )
    return True

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
- ``join_session_ek`` / ``member_ek`` (migration 2): every further EK a join presented (and its
  credential secret until the join is used) and every EK of a member's TPM, so a revoked TPM is
  recognised through any of its EKs; ``revocation_lift``: the supervision department's lift of a
  revocation's bar on new joins; ``join_authorisation_used``: the bank-authorisation nonces
  spent (single use); and at most one *active* membership per account (partial UNIQUE index).

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
    (
        2,
        "platform_and_account_bars",
        """
CREATE TABLE join_session_ek (
    join_id TEXT NOT NULL REFERENCES join_session (join_id),
    ek_fingerprint TEXT NOT NULL,
    ek_key_id TEXT NOT NULL,
    secret {blob},
    position INTEGER NOT NULL,
    PRIMARY KEY (join_id, ek_fingerprint)
);

CREATE TABLE member_ek (
    member_id TEXT NOT NULL REFERENCES member (member_id),
    ek_fingerprint TEXT NOT NULL,
    ek_key_id TEXT NOT NULL,
    PRIMARY KEY (member_id, ek_fingerprint)
);
CREATE INDEX member_ek_fingerprint ON member_ek (ek_fingerprint);
CREATE INDEX member_ek_key ON member_ek (ek_key_id);

CREATE TABLE revocation_lift (
    member_id TEXT PRIMARY KEY REFERENCES member (member_id),
    lifted_at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    lift_order TEXT NOT NULL
);

CREATE TABLE join_authorisation_used (
    nonce {blob} PRIMARY KEY,
    account_id TEXT NOT NULL,
    used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX member_one_active_per_account ON member (account_id) WHERE status = 'active';
""",
    ),
]

_SELECT_MEMBER = (
    "SELECT m.member_id, m.account_id, m.ek_fingerprint, m.ak_name, m.daa_q, m.t0, "
    "m.pcr_values, m.epoch, m.status, m.joined_at, m.updated_at, r.revoked_at, "
    "r.reason AS revocation_reason, l.lifted_at AS revocation_lifted_at "
    "FROM member m LEFT JOIN revocation r ON r.member_id = m.member_id "
    "LEFT JOIN revocation_lift l ON l.member_id = m.member_id "
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
    if n == 1:
        wipe_join_eks(tx, join_id)
    return n == 1


def purge_joins(tx: Transaction, before: int) -> int:
    """Forget joins that expired before ``before`` (their replay then reads join.unknown)."""
    purge_join_eks(tx, before)
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


# --- every EK of a platform, account bars, lifts, authorisation nonces (migration 2) -----------


def insert_join_eks(tx: Transaction, join_id: str, eks: list[tuple[str, str, bytes]]) -> None:
    """The further EKs of a started join (certificate fingerprint, key id, credential secret),
    in the order of the request."""
    for position, (fingerprint, key_id, secret) in enumerate(eks):
        tx.execute(
            "INSERT INTO join_session_ek (join_id, ek_fingerprint, ek_key_id, secret, position) "
            "VALUES (:j, :f, :k, :s, :p)",
            {"j": join_id, "f": fingerprint, "k": key_id, "s": secret, "p": position},
        )


def join_eks(tx: Transaction, join_id: str) -> list[tuple[str, str, bytes | None]]:
    """(fingerprint, key id, secret or None once used) of a join's further EKs, in order."""
    rows = tx.fetchall(
        "SELECT ek_fingerprint, ek_key_id, secret FROM join_session_ek WHERE join_id = :j "
        "ORDER BY position",
        {"j": join_id},
    )
    return [
        (
            str(r["ek_fingerprint"]),
            str(r["ek_key_id"]),
            None if r["secret"] is None else bytes(r["secret"]),
        )
        for r in rows
    ]


def wipe_join_eks(tx: Transaction, join_id: str) -> None:
    tx.execute("UPDATE join_session_ek SET secret = NULL WHERE join_id = :j", {"j": join_id})


def purge_join_eks(tx: Transaction, before: int) -> None:
    """The EK rows of joins :func:`purge_joins` is about to forget."""
    tx.execute(
        "DELETE FROM join_session_ek WHERE join_id IN "
        "(SELECT join_id FROM join_session WHERE expires_at < :b)",
        {"b": before},
    )


def insert_member_eks(tx: Transaction, member_id: str, eks: list[tuple[str, str]]) -> None:
    """Every EK of the member's TPM: (certificate fingerprint, key id)."""
    for fingerprint, key_id in eks:
        tx.execute(
            "INSERT INTO member_ek (member_id, ek_fingerprint, ek_key_id) VALUES (:m, :f, :k)",
            {"m": member_id, "f": fingerprint, "k": key_id},
        )


_SELECT_BAR = (
    "SELECT m.member_id, m.status, l.lifted_at FROM member m "
    "LEFT JOIN revocation_lift l ON l.member_id = m.member_id "
)


def members_of_platform(tx: Transaction, ek_fingerprint: str, key_id: str) -> list[dict[str, Any]]:
    """Members whose TPM holds this EK: by its certificate (the EK a member attested with, or a
    further one) or by its key (the same EK under another certificate)."""
    return tx.fetchall(
        "SELECT DISTINCT m.member_id, m.status, l.lifted_at, m.joined_at FROM member m "
        "LEFT JOIN revocation_lift l ON l.member_id = m.member_id "
        "LEFT JOIN member_ek e ON e.member_id = m.member_id "
        "AND (e.ek_fingerprint = :f OR e.ek_key_id = :k) "
        "WHERE m.ek_fingerprint = :f OR e.member_id IS NOT NULL "
        "ORDER BY m.joined_at, m.member_id",
        {"f": ek_fingerprint, "k": key_id},
    )


def members_of_account(tx: Transaction, account_id: str) -> list[dict[str, Any]]:
    """``member_id, status, lifted_at`` of every member of an account."""
    return tx.fetchall(
        _SELECT_BAR + "WHERE m.account_id = :a ORDER BY m.joined_at, m.member_id",
        {"a": account_id},
    )


def insert_lift(
    tx: Transaction, member_id: str, now: int, reason: str, lift_order: dict[str, Any]
) -> bool:
    """Record a lift (idempotent: False if this member's revocation was lifted already)."""
    if tx.fetchval("SELECT 1 FROM revocation_lift WHERE member_id = :m", {"m": member_id}):
        return False
    tx.execute(
        "INSERT INTO revocation_lift (member_id, lifted_at, reason, lift_order) "
        "VALUES (:m, :now, :reason, :order)",
        {
            "m": member_id,
            "now": now,
            "reason": reason,
            "order": json.dumps(lift_order, sort_keys=True),
        },
    )
    return True


def lifted_at(tx: Transaction, member_id: str) -> int | None:
    value = tx.fetchval(
        "SELECT lifted_at FROM revocation_lift WHERE member_id = :m", {"m": member_id}
    )
    return None if value is None else int(value)


def use_authorisation(
    tx: Transaction, nonce: bytes, account_id: str, now: int, expires_at: int
) -> None:
    """Spend a join authorisation's nonce (a UniqueViolationError if it was spent before)."""
    tx.execute(
        "INSERT INTO join_authorisation_used (nonce, account_id, used_at, expires_at) "
        "VALUES (:n, :a, :now, :e)",
        {"n": nonce, "a": account_id, "now": now, "e": expires_at},
    )

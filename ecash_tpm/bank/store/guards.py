"""Queries on ``login_guard`` (failed-login counting per account id) and the purge of expired
reservations (``coin_lock``); schema component ``bank_abuse``.

Kept apart from the main ``bank`` component so this migration never collides with another
branch's next ``bank`` migration number. The guard is keyed by the account id as typed, known
or not: an unknown account is locked exactly like a known one, so lock-outs reveal nothing.
"""

from __future__ import annotations

from ecash_tpm.storage import Migration, Transaction

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "claim_attempt",
    "delete_expired_locks",
    "delete_stale_guards",
    "guard_window",
    "release_attempt",
    "reset_guard",
]

COMPONENT = "bank_abuse"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "login_guard",
        """
        CREATE TABLE login_guard (
            account_id TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            window_start BIGINT NOT NULL
        );
        CREATE INDEX login_guard_window ON login_guard (window_start);
        CREATE INDEX coin_lock_until ON coin_lock (locked_until);
        """,
    ),
]


def claim_attempt(tx: Transaction, account_id: str, *, now: int, limit: int, window_s: int) -> bool:
    """Count one attempt for ``account_id`` *before* it is evaluated; False when ``limit``
    attempts are already counted in the current window (the account is locked).

    One conditional UPDATE is the atomic step: N parallel guesses can claim at most ``limit``
    slots, whatever their interleaving (docs/protocol.md, "Login").
    """
    tx.execute(
        "INSERT INTO login_guard (account_id, failures, window_start) VALUES (:a, 0, :now)"
        " ON CONFLICT (account_id) DO NOTHING",
        {"a": account_id, "now": now},
    )
    cut = now - window_s
    updated = tx.execute(
        "UPDATE login_guard SET"
        " failures = CASE WHEN window_start <= :cut THEN 1 ELSE failures + 1 END,"
        " window_start = CASE WHEN window_start <= :cut THEN :now ELSE window_start END"
        " WHERE account_id = :a AND (failures < :limit OR window_start <= :cut)",
        {"a": account_id, "now": now, "cut": cut, "limit": limit},
    )
    return updated == 1


def guard_window(tx: Transaction, account_id: str) -> int | None:
    """When the account's current counting window started (None: no guard row)."""
    value = tx.fetchval(
        "SELECT window_start FROM login_guard WHERE account_id = :a", {"a": account_id}
    )
    return None if value is None else int(value)


def release_attempt(tx: Transaction, account_id: str) -> None:
    """Give back one claimed slot: the attempt was not a failure (a correct, replayed code)."""
    tx.execute(
        "UPDATE login_guard SET failures = failures - 1 WHERE account_id = :a AND failures > 0",
        {"a": account_id},
    )


def reset_guard(tx: Transaction, account_id: str) -> None:
    """After a successful login (or a replayed but correct code): nothing counted any more."""
    tx.execute("DELETE FROM login_guard WHERE account_id = :a", {"a": account_id})


def delete_stale_guards(tx: Transaction, *, before: int) -> int:
    """Drop guards whose window ended (bounds the table an attacker fills with made-up ids)."""
    return tx.execute("DELETE FROM login_guard WHERE window_start <= :b", {"b": before})


def delete_expired_locks(tx: Transaction, now: int) -> int:
    """Purge reservations whose lock period is over (issue 10, attack 9)."""
    return tx.execute("DELETE FROM coin_lock WHERE locked_until <= :now", {"now": now})

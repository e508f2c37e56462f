"""Marking serials spent without serialization retries (issue 13 items 5-6); schema component
``bank_scale``.

The booking runs at READ COMMITTED on PostgreSQL (SQLite keeps its single writer) and finds its
conflicts through unique constraints instead of failed SERIALIZABLE commits:

- :func:`lock_serials` takes one transaction-scoped lock per serial (PostgreSQL advisory lock,
  ascending order, bounded by ``lock_timeout``), so a deposit and a reservation of the same coin
  run one after the other and each sees what the other committed;
- :func:`mark_spent` is THE way to spend a serial (deposits here, swap/redeem elsewhere): the
  transcript and the spent row go in with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, so a
  serial spent concurrently through a path that took no lock is still caught, as ``None``;
- the migrations add a unique constraint on the transcript serial (a damaged or bypassed index
  cannot hold two transcripts of one coin) and, on PostgreSQL only, hash-partition
  ``spent_coin`` by serial (primary key still the serial).

Kept apart from the ``bank`` component so its numbering never collides with another branch.
"""

from __future__ import annotations

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.storage import Database, IntegrityCheckError, Migration, Transaction

__all__ = [
    "COMPONENT",
    "any_spent",
    "SPENT_PARTITIONS",
    "check_integrity",
    "keyset_outstanding",
    "lock_serials",
    "mark_spent",
    "migrations",
    "serial_lock_key",
    "spent_transcript_mismatches",
]

COMPONENT = "bank_scale"
SPENT_PARTITIONS = 8

_TRANSCRIPT_UNIQUE = (
    "CREATE UNIQUE INDEX spend_transcript_sigma_unique ON spend_transcript (sigma);"
)

_PARTITION_SPENT_PG = """
CREATE TABLE spent_coin_new (
    sigma BYTEA NOT NULL,
    keyset_id BYTEA NOT NULL REFERENCES keyset (keyset_id),
    transcript_id BIGINT NOT NULL REFERENCES spend_transcript (transcript_id),
    deposit_id TEXT NOT NULL REFERENCES deposit (deposit_id),
    spent_at BIGINT NOT NULL,
    PRIMARY KEY (sigma)
) PARTITION BY HASH (sigma);
CREATE TABLE spent_coin_p0 PARTITION OF spent_coin_new FOR VALUES WITH (MODULUS 8, REMAINDER 0);
CREATE TABLE spent_coin_p1 PARTITION OF spent_coin_new FOR VALUES WITH (MODULUS 8, REMAINDER 1);
CREATE TABLE spent_coin_p2 PARTITION OF spent_coin_new FOR VALUES WITH (MODULUS 8, REMAINDER 2);
CREATE TABLE spent_coin_p3 PARTITION OF spent_coin_new FOR VALUES WITH (MODULUS 8, REMAINDER 3);
CREATE TABLE spent_coin_p4 PARTITION OF spent_coin_new FOR VALUES WITH (MODULUS 8, REMAINDER 4);
CREATE TABLE spent_coin_p5 PARTITION OF spent_coin_new FOR VALUES WITH (MODULUS 8, REMAINDER 5);
CREATE TABLE spent_coin_p6 PARTITION OF spent_coin_new FOR VALUES WITH (MODULUS 8, REMAINDER 6);
CREATE TABLE spent_coin_p7 PARTITION OF spent_coin_new FOR VALUES WITH (MODULUS 8, REMAINDER 7);
INSERT INTO spent_coin_new (sigma, keyset_id, transcript_id, deposit_id, spent_at)
    SELECT sigma, keyset_id, transcript_id, deposit_id, spent_at FROM spent_coin;
DROP TABLE spent_coin;
ALTER TABLE spent_coin_new RENAME TO spent_coin;
CREATE INDEX spent_coin_keyset ON spent_coin (keyset_id);
CREATE INDEX spent_coin_transcript ON spent_coin (transcript_id);
"""

# SQLite keeps one table (one writer at a time, nothing to spread); the step is recorded anyway
# so that both backends carry the same migration history.
_PARTITION_SPENT_SQLITE = "SELECT 1;"


def migrations(backend: str) -> list[Migration]:
    """The ``bank_scale`` migrations for ``backend`` (``"sqlite"`` or ``"postgresql"``)."""
    partition = _PARTITION_SPENT_PG if backend == "postgresql" else _PARTITION_SPENT_SQLITE
    return [
        Migration(1, "transcript_serial_unique", _TRANSCRIPT_UNIQUE),
        Migration(2, "spent_hash_partitions", partition),
    ]


def serial_lock_key(sigma: bytes) -> int:
    """The advisory-lock key of a serial: its first 8 bytes as a signed 64-bit integer."""
    return int.from_bytes(sigma[:8], "big", signed=True)


def lock_serials(tx: Transaction, sigmas: list[bytes]) -> None:
    """Hold every serial of ``sigmas`` for the rest of ``tx`` (no-op on SQLite)."""
    tx.lock_keys(serial_lock_key(s) for s in sigmas)


def mark_spent(
    tx: Transaction,
    *,
    sigma: bytes,
    keyset_id: bytes,
    deposit_id: str,
    merchant_id: str,
    preq: bytes,
    body_json: str,
    now: int,
) -> int | None:
    """Record the transcript of ``sigma`` and mark it spent; its transcript id, or ``None`` if
    the serial is already spent (the caller refuses and rolls back: nothing of it stays).

    At READ COMMITTED a concurrent spender's uncommitted row makes the insert wait for it and
    then do nothing, so exactly one of two racing spends gets an id.
    """
    tid = tx.fetchval(
        "INSERT INTO spend_transcript (deposit_id, sigma, merchant_id, keyset_id, preq, body,"
        " created_at) VALUES (:d, :s, :m, :k, :preq, :body, :now)"
        " ON CONFLICT (sigma) DO NOTHING RETURNING transcript_id",
        {
            "d": deposit_id,
            "s": sigma,
            "m": merchant_id,
            "k": keyset_id,
            "preq": preq,
            "body": body_json,
            "now": now,
        },
    )
    if tid is None:
        return None
    marked = tx.fetchval(
        "INSERT INTO spent_coin (sigma, keyset_id, transcript_id, deposit_id, spent_at)"
        " VALUES (:s, :k, :t, :d, :now) ON CONFLICT (sigma) DO NOTHING RETURNING transcript_id",
        {"s": sigma, "k": keyset_id, "t": int(tid), "d": deposit_id, "now": now},
    )
    return None if marked is None else int(tid)


def any_spent(tx: Transaction, sigma: bytes) -> bool:
    """Whether ``sigma`` is spent by a deposit, a swap or a redeem: one statement for the three
    primary-key probes (the per-table lookups that name the earlier spend run only on a hit)."""
    value = tx.fetchval(
        "SELECT EXISTS (SELECT 1 FROM spent_coin WHERE sigma = :s)"
        " OR EXISTS (SELECT 1 FROM swap_input WHERE sigma = :s)"
        " OR EXISTS (SELECT 1 FROM redeem_input WHERE sigma = :s) AS used",
        {"s": sigma},
    )
    return bool(value)


def keyset_outstanding(tx: Transaction, ledger_account: str) -> int:
    """The balance of a keyset's ledger account: value withdrawn minus value deposited."""
    value = tx.fetchval(
        "SELECT COALESCE(SUM(amount), 0) AS v FROM ledger_entry WHERE account = :a",
        {"a": ledger_account},
    )
    return int(value or 0)


def spent_transcript_mismatches(tx: Transaction, limit: int = 10) -> list[bytes]:
    """Spent serials whose transcript names another serial (a damaged table or index)."""
    rows = tx.fetchall(
        "SELECT s.sigma FROM spent_coin s LEFT JOIN spend_transcript t"
        " ON t.transcript_id = s.transcript_id"
        " WHERE t.sigma IS NULL OR t.sigma <> s.sigma LIMIT :n",
        {"n": limit},
    )
    return [bytes(r["sigma"]) for r in rows]


def check_integrity(db: Database) -> None:
    """Start-up check (issue 13 item 6): the engine's structural check and spent serials that
    match their transcripts; :class:`IntegrityCheckError` (503) names what is damaged."""
    problems = db.quick_check()
    with db.read() as tx:
        mismatched = spent_transcript_mismatches(tx)
    if problems or mismatched:
        raise IntegrityCheckError(
            "the bank database failed its integrity check; restore it before serving",
            detail={
                "engine": problems[:10],
                "spent_without_matching_transcript": [b64u_encode(s) for s in mismatched],
            },
        )

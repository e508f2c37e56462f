"""The central bank's state in the shared data layer (component ``centralbank``).

What used to be ``state.json`` — issued certificates, revocations, the CRL counter — lives in
the database, so several processes (the HTTP service and an operator's CLI) can share one CA,
and PostgreSQL deployments keep the CA's log with the rest of the system. The root key stays a
0600 file in the data directory: a private key does not belong in a shared database.

This module is data access only. It returns rows and plain outcomes; the domain errors
(``ca.*``, ``cert.*``, ``centralbank.*``) are raised by :mod:`ecash_tpm.centralbank.ca` and the
routes, which know what an outcome means.

Serials are up to 159 bits, more than ``BIGINT`` holds, so they are stored as lower-case hex
without leading zeros (the spelling the CA has always used). Times are integer Unix seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ecash_tpm.errors import StorageError
from ecash_tpm.storage import Database, Migration, Row, Transaction, UniqueViolationError

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "CentralBankStore",
    "RevokeOutcome",
    "StoredCrl",
]

COMPONENT = "centralbank"

_CA_STATE = """
CREATE TABLE cb_root (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    subject TEXT NOT NULL,
    crl_number BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE cb_certificate (
    id {pk},
    serial TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    cert_der {blob} NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE INDEX cb_certificate_role_name ON cb_certificate (role, name);
CREATE TABLE cb_revocation (
    serial TEXT PRIMARY KEY REFERENCES cb_certificate (serial),
    reason TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE TABLE cb_crl (
    crl_number BIGINT PRIMARY KEY,
    crl_der {blob} NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    revoked_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
"""

_SUPPLY_REPORTS = """
CREATE TABLE cb_supply_report (
    id {pk},
    bank_id TEXT NOT NULL,
    as_of BIGINT NOT NULL,
    body_digest {blob} NOT NULL,
    report_json TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    signer_serial TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (bank_id, as_of)
);
CREATE INDEX cb_supply_report_as_of ON cb_supply_report (as_of);
"""

_CERTIFIED = """
CREATE TABLE cb_issuer_epoch (
    issuer TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    public_xy {blob} NOT NULL,
    doc_json TEXT NOT NULL,
    certified_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, epoch)
);
CREATE TABLE cb_keyset (
    bank TEXT NOT NULL,
    keyset_id {blob} NOT NULL,
    deposit_until BIGINT NOT NULL,
    certified_at BIGINT NOT NULL,
    PRIMARY KEY (bank, keyset_id)
);
CREATE TABLE cb_keyset_list (
    bank TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    doc_json TEXT NOT NULL,
    certified_at BIGINT NOT NULL,
    PRIMARY KEY (bank, sequence)
);
"""

#: Forward-only schema history of the central bank. Never edit a released entry; append.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "ca_state", _CA_STATE),
    Migration(2, "supply_reports", _SUPPLY_REPORTS),
    Migration(3, "certified_epochs_and_keyset_lists", _CERTIFIED),
)


class RevokeOutcome(Enum):
    """What :meth:`CentralBankStore.revoke` did."""

    REVOKED = "revoked"
    ALREADY_REVOKED = "already_revoked"
    UNKNOWN_SERIAL = "unknown_serial"


@dataclass(frozen=True)
class StoredCrl:
    """A CRL the CA signed and published."""

    crl_number: int
    der: bytes
    this_update: int
    next_update: int
    revoked_count: int


def _crl(row: Row) -> StoredCrl:
    return StoredCrl(
        crl_number=int(row["crl_number"]),
        der=bytes(row["crl_der"]),
        this_update=int(row["this_update"]),
        next_update=int(row["next_update"]),
        revoked_count=int(row["revoked_count"]),
    )


_SELECT_CERTIFICATES = (
    "SELECT c.serial, c.role, c.name, c.not_before, c.not_after, c.fingerprint, c.cert_der, "
    "c.issued_at, r.reason AS revocation_reason, r.revoked_at "
    "FROM cb_certificate c LEFT JOIN cb_revocation r ON r.serial = c.serial"
)
_SELECT_REPORTS = (
    "SELECT id, bank_id, as_of, body_digest, report_json, cert_pem, signer_serial, received_at "
    "FROM cb_supply_report"
)


class CentralBankStore:
    """Typed access to the ``cb_*`` tables of one :class:`~ecash_tpm.storage.Database`.

    Every method is one transaction; none may be called while the caller holds another
    transaction on the same database in the same thread.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def db(self) -> Database:
        return self._db

    def migrate(self) -> list[int]:
        """Bring the schema up to date (idempotent; also done by the service's lifespan)."""
        return self._db.migrate(MIGRATIONS, component=COMPONENT)

    # --- root -----------------------------------------------------------------------------------

    def root(self) -> Row | None:
        """The root this database belongs to: ``{fingerprint, subject, crl_number, created_at}``."""
        with self._db.read() as tx:
            return tx.fetchone(
                "SELECT fingerprint, subject, crl_number, created_at FROM cb_root WHERE id = 1"
            )

    def init_root(self, fingerprint: str, subject: str, *, crl_number: int = 0) -> bool:
        """Record the root; ``False`` if the database already belongs to a root."""
        with self._db.transaction() as tx:
            inserted = tx.execute(
                "INSERT INTO cb_root (id, fingerprint, subject, crl_number, created_at) "
                "VALUES (1, :fp, :subject, :n, :now) ON CONFLICT (id) DO NOTHING",
                {"fp": fingerprint, "subject": subject, "n": crl_number, "now": int(time.time())},
            )
        return inserted == 1

    def import_state(
        self,
        *,
        fingerprint: str,
        subject: str,
        crl_number: int,
        certificates: Sequence[Mapping[str, Any]],
        revocations: Sequence[tuple[str, str, int]],
    ) -> None:
        """Load a whole pre-database CA log in one transaction (all or nothing).

        ``certificates`` carry the keyword arguments of :meth:`insert_certificate`;
        ``revocations`` are ``(serial_hex, reason, revoked_at)``.
        """
        now = int(time.time())
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO cb_root (id, fingerprint, subject, crl_number, created_at) "
                "VALUES (1, :fp, :subject, :n, :now)",
                {"fp": fingerprint, "subject": subject, "n": crl_number, "now": now},
            )
            tx.executemany(
                "INSERT INTO cb_certificate (serial, role, name, not_before, not_after, "
                "fingerprint, cert_der, issued_at) VALUES (:serial_hex, :role, :name, "
                ":not_before, :not_after, :fingerprint, :cert_der, :now)",
                [{**cert, "now": now} for cert in certificates],
            )
            tx.executemany(
                "INSERT INTO cb_revocation (serial, reason, revoked_at) VALUES (:s, :r, :t)",
                [{"s": s, "r": r, "t": t} for s, r, t in revocations],
            )

    # --- certificates ---------------------------------------------------------------------------

    def serial_exists(self, serial_hex: str) -> bool:
        with self._db.read() as tx:
            found = tx.fetchval(
                "SELECT 1 AS found FROM cb_certificate WHERE serial = :s", {"s": serial_hex}
            )
        return found is not None

    def insert_certificate(
        self,
        *,
        serial_hex: str,
        role: str,
        name: str,
        not_before: int,
        not_after: int,
        fingerprint: str,
        cert_der: bytes,
    ) -> bool:
        """Log an issued certificate; ``False`` when the serial is taken (draw another)."""
        try:
            with self._db.transaction() as tx:
                tx.execute(
                    "INSERT INTO cb_certificate (serial, role, name, not_before, not_after, "
                    "fingerprint, cert_der, issued_at) VALUES (:serial, :role, :name, :nb, :na, "
                    ":fp, :der, :now)",
                    {
                        "serial": serial_hex,
                        "role": role,
                        "name": name,
                        "nb": not_before,
                        "na": not_after,
                        "fp": fingerprint,
                        "der": cert_der,
                        "now": int(time.time()),
                    },
                )
        except UniqueViolationError:
            return False
        return True

    def certificate(self, serial_hex: str) -> Row | None:
        """One issuance record joined with its revocation (``revoked_at`` is None if valid)."""
        with self._db.read() as tx:
            return tx.fetchone(_SELECT_CERTIFICATES + " WHERE c.serial = :s", {"s": serial_hex})

    def certificates(self) -> list[Row]:
        """Every issuance record, oldest first."""
        with self._db.read() as tx:
            return tx.fetchall(_SELECT_CERTIFICATES + " ORDER BY c.id")

    def is_revoked(self, serial_hex: str) -> bool:
        with self._db.read() as tx:
            found = tx.fetchval(
                "SELECT 1 AS found FROM cb_revocation WHERE serial = :s", {"s": serial_hex}
            )
        return found is not None

    def revoke(self, serial_hex: str, reason: str, revoked_at: int) -> RevokeOutcome:
        """Record a revocation; the first reason and time stand (revoking twice is a no-op)."""
        with self._db.transaction() as tx:
            if (
                tx.fetchval(
                    "SELECT 1 AS found FROM cb_certificate WHERE serial = :s", {"s": serial_hex}
                )
                is None
            ):
                return RevokeOutcome.UNKNOWN_SERIAL
            inserted = tx.execute(
                "INSERT INTO cb_revocation (serial, reason, revoked_at) VALUES (:s, :r, :t) "
                "ON CONFLICT (serial) DO NOTHING",
                {"s": serial_hex, "r": reason, "t": revoked_at},
            )
        return RevokeOutcome.REVOKED if inserted == 1 else RevokeOutcome.ALREADY_REVOKED

    def revocation_count(self) -> int:
        with self._db.read() as tx:
            return int(tx.fetchval("SELECT COUNT(*) AS n FROM cb_revocation") or 0)

    # --- CRLs -----------------------------------------------------------------------------------

    def issue_crl(self, build: Callable[[int, list[Row]], tuple[bytes, int, int]]) -> StoredCrl:
        """Take the next CRL number, sign with ``build`` and record the CRL, all in one transaction.

        ``build(crl_number, revocations)`` gets every ``{serial, reason, revoked_at}`` row and
        returns ``(der, this_update, next_update)``. Numbers are strictly increasing even with
        several processes: the counter row is updated under the write lock.
        """

        def run(tx: Transaction) -> StoredCrl:
            number = tx.fetchval(
                "UPDATE cb_root SET crl_number = crl_number + 1 WHERE id = 1 RETURNING crl_number"
            )
            if number is None:
                raise StorageError("the CA database has no root record", code="ca.state_invalid")
            revoked = tx.fetchall(
                "SELECT serial, reason, revoked_at FROM cb_revocation ORDER BY serial"
            )
            der, this_update, next_update = build(int(number), revoked)
            tx.execute(
                "INSERT INTO cb_crl (crl_number, crl_der, this_update, next_update, "
                "revoked_count, created_at) VALUES (:n, :der, :tu, :nu, :rc, :now)",
                {
                    "n": int(number),
                    "der": der,
                    "tu": this_update,
                    "nu": next_update,
                    "rc": len(revoked),
                    "now": int(time.time()),
                },
            )
            return StoredCrl(int(number), der, this_update, next_update, len(revoked))

        return self._db.run_in_transaction(run)

    def latest_crl(self) -> StoredCrl | None:
        with self._db.read() as tx:
            row = tx.fetchone(
                "SELECT crl_number, crl_der, this_update, next_update, revoked_count "
                "FROM cb_crl ORDER BY crl_number DESC LIMIT 1"
            )
        return None if row is None else _crl(row)

    # --- supply reports -------------------------------------------------------------------------

    def insert_supply_report(
        self,
        *,
        bank_id: str,
        as_of: int,
        body_digest: bytes,
        report_json: str,
        cert_pem: str,
        signer_serial: str,
        received_at: int,
    ) -> tuple[Row, bool]:
        """Store a report; ``(row, True)`` if new, ``(existing row, False)`` if (bank, as_of)
        was already reported — the caller compares digests to tell a retry from a conflict."""
        params: dict[str, Any] = {
            "bank_id": bank_id,
            "as_of": as_of,
            "digest": body_digest,
            "report": report_json,
            "cert": cert_pem,
            "serial": signer_serial,
            "received_at": received_at,
        }
        with self._db.transaction() as tx:
            inserted = tx.execute(
                "INSERT INTO cb_supply_report (bank_id, as_of, body_digest, report_json, "
                "cert_pem, signer_serial, received_at) VALUES (:bank_id, :as_of, :digest, "
                ":report, :cert, :serial, :received_at) ON CONFLICT (bank_id, as_of) DO NOTHING",
                params,
            )
            row = tx.fetchone(
                _SELECT_REPORTS + " WHERE bank_id = :bank_id AND as_of = :as_of", params
            )
        if row is None:  # pragma: no cover - the row was just inserted or already there
            raise StorageError("supply report vanished after insert")
        return row, inserted == 1

    def latest_supply_report(self, bank_id: str | None = None) -> Row | None:
        """The newest report by ``as_of`` (of ``bank_id`` if given), ties by arrival."""
        with self._db.read() as tx:
            if bank_id is None:
                return tx.fetchone(_SELECT_REPORTS + " ORDER BY as_of DESC, id DESC LIMIT 1")
            return tx.fetchone(
                _SELECT_REPORTS + " WHERE bank_id = :b ORDER BY as_of DESC, id DESC LIMIT 1",
                {"b": bank_id},
            )

    # --- certified issuer epochs and keyset lists (issue 10, #6 and #7) -------------------------

    def insert_issuer_epoch(
        self, issuer: str, epoch: int, public_xy: bytes, doc_json: str, now: int
    ) -> Row:
        """Store an epoch key unless (issuer, epoch) has one; returns the stored row, which the
        caller compares: the first key of an epoch stands for ever."""
        params: dict[str, Any] = {
            "issuer": issuer,
            "epoch": epoch,
            "xy": public_xy,
            "doc": doc_json,
            "now": now,
        }
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO cb_issuer_epoch (issuer, epoch, public_xy, doc_json, certified_at) "
                "VALUES (:issuer, :epoch, :xy, :doc, :now) ON CONFLICT (issuer, epoch) DO NOTHING",
                params,
            )
            row = tx.fetchone(_SELECT_EPOCH, params)
        if row is None:  # pragma: no cover - the row was just inserted or already there
            raise StorageError("issuer epoch vanished after insert")
        return row

    def upgrade_issuer_epoch(
        self, issuer: str, epoch: int, public_xy: bytes, old_doc: str, new_doc: str
    ) -> Row | None:
        """Replace the stored document of (issuer, epoch) if it is still ``old_doc`` and names
        the same X, Y (compare-and-set: protocol §3.6, the one upgrade of a pre-issue-14
        certificate to one with X2, Y2); the row as stored afterwards."""
        params: dict[str, Any] = {
            "issuer": issuer,
            "epoch": epoch,
            "xy": public_xy,
            "old": old_doc,
            "new": new_doc,
        }
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE cb_issuer_epoch SET doc_json = :new WHERE issuer = :issuer "
                "AND epoch = :epoch AND public_xy = :xy AND doc_json = :old",
                params,
            )
            row: Row | None = tx.fetchone(_SELECT_EPOCH, params)
        return row

    def issuer_epoch(self, issuer: str, epoch: int) -> Row | None:
        with self._db.read() as tx:
            return tx.fetchone(_SELECT_EPOCH, {"issuer": issuer, "epoch": epoch})

    def certify_keysets(
        self,
        bank: str,
        keysets: Sequence[tuple[bytes, int]],
        now: int,
        build: Callable[[int, dict[bytes, int], Row | None], str | None],
    ) -> str:
        """Register ``(keyset_id, deposit_until)`` for ``bank`` and return its list, one
        transaction: ``build(sequence, {id: deposit_until} still depositable, latest row)``
        makes the signed list, or returns None when the latest one already says the same."""
        with self._db.transaction() as tx:
            for keyset_id, deposit_until in keysets:
                tx.execute(
                    "INSERT INTO cb_keyset (bank, keyset_id, deposit_until, certified_at) "
                    "VALUES (:bank, :id, :until, :now) ON CONFLICT (bank, keyset_id) DO NOTHING",
                    {"bank": bank, "id": keyset_id, "until": deposit_until, "now": now},
                )
            ids = {
                bytes(r["keyset_id"]): int(r["deposit_until"])
                for r in tx.fetchall(
                    "SELECT keyset_id, deposit_until FROM cb_keyset WHERE bank = :bank"
                    " AND deposit_until > :now ORDER BY keyset_id",
                    {"bank": bank, "now": now},
                )
            }
            latest = tx.fetchone(_SELECT_LIST + " ORDER BY sequence DESC LIMIT 1", {"bank": bank})
            sequence = 1 if latest is None else int(latest["sequence"]) + 1
            doc = build(sequence, ids, latest)
            if doc is None and latest is not None:
                return str(latest["doc_json"])
            if doc is None:  # pragma: no cover - build returns None only with a latest list
                raise StorageError("no keyset list to return")
            tx.execute(
                "INSERT INTO cb_keyset_list (bank, sequence, doc_json, certified_at) "
                "VALUES (:bank, :seq, :doc, :now)",
                {"bank": bank, "seq": sequence, "doc": doc, "now": now},
            )
            return doc

    def latest_keyset_list(self, bank: str) -> str | None:
        """The newest signed list of ``bank`` (JSON), None before the first."""
        with self._db.read() as tx:
            row = tx.fetchone(_SELECT_LIST + " ORDER BY sequence DESC LIMIT 1", {"bank": bank})
        return None if row is None else str(row["doc_json"])


_SELECT_EPOCH = (
    "SELECT issuer, epoch, public_xy, doc_json, certified_at FROM cb_issuer_epoch "
    "WHERE issuer = :issuer AND epoch = :epoch"
)
_SELECT_LIST = (
    "SELECT bank, sequence, doc_json, certified_at FROM cb_keyset_list WHERE bank = :bank"
)

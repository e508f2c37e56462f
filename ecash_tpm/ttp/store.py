"""The TTP's database (component ``ttp``): products with escrowed keys, disputes, strikes.

* ``ttp_product`` keeps the public ciphertext, the signed descriptor, and the escrowed content
  key k *at rest in this database* (protect the file/role like a key file; an HSM-wrapped
  column is the hardened variant). ``registration_nonce`` is unique: a retried registration
  returns the same product, a different one with the same nonce is a conflict.
* ``ttp_dispute`` has one row per payment request (``preq`` unique): a replay of someone
  else's request lands on the existing dispute, whose answer is sealed to the original buyer.
  ``state`` moves ``pending -> resolved`` once; the per-dispute X25519 reply secret (for the
  merchant's sealed answer) is erased on resolution.
* ``ttp_strike`` is unique per dispute: resolving twice cannot strike twice.
* ``ttp_counter`` counts what the TTP was asked (registrations, disputes, bank queries, key
  requests): evidence that an honest purchase never reached the TTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ecash_tpm.storage import Database, Migration, Transaction
from ecash_tpm.ttp.models import Strike

__all__ = ["COMPONENT", "MIGRATIONS", "DisputeRow", "ProductRow", "TtpStore"]

COMPONENT = "ttp"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "fair_exchange",
        """
        CREATE TABLE ttp_product (
            product_id TEXT PRIMARY KEY,
            merchant_id TEXT NOT NULL,
            title TEXT NOT NULL,
            price BIGINT NOT NULL CHECK (price > 0),
            currency TEXT NOT NULL,
            ciphertext {blob} NOT NULL,
            ciphertext_sha256 {blob} NOT NULL,
            content_key {blob} NOT NULL,
            descriptor TEXT NOT NULL,
            merchant_url TEXT NOT NULL,
            merchant_cert TEXT NOT NULL,
            registration_nonce {blob} NOT NULL UNIQUE,
            registration_digest {blob} NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE INDEX ttp_product_merchant ON ttp_product (merchant_id);
        CREATE TABLE ttp_dispute (
            dispute_id TEXT PRIMARY KEY,
            preq {blob} NOT NULL UNIQUE,
            product_id TEXT NOT NULL REFERENCES ttp_product (product_id),
            merchant_id TEXT NOT NULL,
            customer_key {blob} NOT NULL,
            request TEXT NOT NULL,
            spends TEXT NOT NULL,
            bank_answer TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'resolved')),
            deadline BIGINT NOT NULL,
            reply_secret {blob},
            reply_public {blob} NOT NULL,
            merchant_answer TEXT,
            asked_count INTEGER NOT NULL DEFAULT 0,
            resolution TEXT CHECK (resolution IN ('merchant_key', 'escrow')),
            sealed_key TEXT,
            created_at BIGINT NOT NULL,
            resolved_at BIGINT
        );
        CREATE INDEX ttp_dispute_state ON ttp_dispute (state, deadline);
        CREATE TABLE ttp_strike (
            strike_id {pk},
            merchant_id TEXT NOT NULL,
            dispute_id TEXT NOT NULL UNIQUE REFERENCES ttp_dispute (dispute_id),
            reason TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE INDEX ttp_strike_merchant ON ttp_strike (merchant_id);
        CREATE TABLE ttp_counter (
            name TEXT PRIMARY KEY,
            count BIGINT NOT NULL
        );
        """,
    ),
]


@dataclass(frozen=True)
class ProductRow:
    """A registered product (with its escrowed key: never send this row out whole)."""

    product_id: str
    merchant_id: str
    title: str
    price: int
    currency: str
    ciphertext: bytes
    ciphertext_sha256: bytes
    content_key: bytes
    descriptor: dict[str, Any]
    merchant_url: str
    merchant_cert: str
    registration_digest: bytes
    created_at: int


@dataclass(frozen=True)
class DisputeRow:
    """One dispute as recorded."""

    dispute_id: str
    preq: bytes
    product_id: str
    merchant_id: str
    customer_key: bytes
    request: dict[str, Any]
    spends: list[dict[str, Any]]
    bank_answer: dict[str, Any]
    state: str
    deadline: int
    reply_secret: bytes | None
    reply_public: bytes
    merchant_answer: str | None
    asked_count: int
    resolution: str | None
    sealed_key: dict[str, Any] | None
    created_at: int
    resolved_at: int | None


def _product(r: Mapping[str, Any]) -> ProductRow:
    return ProductRow(
        product_id=r["product_id"],
        merchant_id=r["merchant_id"],
        title=r["title"],
        price=int(r["price"]),
        currency=r["currency"],
        ciphertext=bytes(r["ciphertext"]),
        ciphertext_sha256=bytes(r["ciphertext_sha256"]),
        content_key=bytes(r["content_key"]),
        descriptor=json.loads(r["descriptor"]),
        merchant_url=r["merchant_url"],
        merchant_cert=r["merchant_cert"],
        registration_digest=bytes(r["registration_digest"]),
        created_at=int(r["created_at"]),
    )


def _dispute(r: Mapping[str, Any]) -> DisputeRow:
    return DisputeRow(
        dispute_id=r["dispute_id"],
        preq=bytes(r["preq"]),
        product_id=r["product_id"],
        merchant_id=r["merchant_id"],
        customer_key=bytes(r["customer_key"]),
        request=json.loads(r["request"]),
        spends=json.loads(r["spends"]),
        bank_answer=json.loads(r["bank_answer"]),
        state=r["state"],
        deadline=int(r["deadline"]),
        reply_secret=None if r["reply_secret"] is None else bytes(r["reply_secret"]),
        reply_public=bytes(r["reply_public"]),
        merchant_answer=r["merchant_answer"],
        asked_count=int(r["asked_count"]),
        resolution=r["resolution"],
        sealed_key=json.loads(r["sealed_key"]) if r["sealed_key"] else None,
        created_at=int(r["created_at"]),
        resolved_at=None if r["resolved_at"] is None else int(r["resolved_at"]),
    )


class TtpStore:
    """Products, disputes, strikes and counters on a migrated :class:`Database`."""

    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        self._db = db
        self._clock = clock

    # --- products ------------------------------------------------------------------------------

    def add_product(self, row: ProductRow, nonce: bytes) -> ProductRow:
        """Insert a product; if the nonce is known, return the stored one (caller compares)."""

        def insert(tx: Transaction) -> ProductRow:
            existing = tx.fetchone(
                "SELECT * FROM ttp_product WHERE registration_nonce = :n", {"n": nonce}
            )
            if existing is not None:
                return _product(existing)
            tx.execute(
                "INSERT INTO ttp_product (product_id, merchant_id, title, price, currency,"
                " ciphertext, ciphertext_sha256, content_key, descriptor, merchant_url,"
                " merchant_cert, registration_nonce, registration_digest, created_at)"
                " VALUES (:pid, :m, :t, :p, :c, :ct, :h, :k, :d, :u, :cert, :n, :dg, :now)",
                {
                    "pid": row.product_id,
                    "m": row.merchant_id,
                    "t": row.title,
                    "p": row.price,
                    "c": row.currency,
                    "ct": row.ciphertext,
                    "h": row.ciphertext_sha256,
                    "k": row.content_key,
                    "d": json.dumps(row.descriptor, sort_keys=True),
                    "u": row.merchant_url,
                    "cert": row.merchant_cert,
                    "n": nonce,
                    "dg": row.registration_digest,
                    "now": row.created_at,
                },
            )
            self._count(tx, "registrations")
            return row

        result: ProductRow = self._db.run_in_transaction(insert)
        return result

    def product(self, product_id: str) -> ProductRow | None:
        with self._db.read() as tx:
            r = tx.fetchone("SELECT * FROM ttp_product WHERE product_id = :p", {"p": product_id})
        return None if r is None else _product(r)

    def products(self, merchant_id: str | None = None) -> list[dict[str, Any]]:
        """Signed descriptors, oldest first (optionally of one merchant)."""
        with self._db.read() as tx:
            if merchant_id is None:
                rows = tx.fetchall("SELECT descriptor FROM ttp_product ORDER BY created_at")
            else:
                rows = tx.fetchall(
                    "SELECT descriptor FROM ttp_product WHERE merchant_id = :m ORDER BY created_at",
                    {"m": merchant_id},
                )
        return [json.loads(r["descriptor"]) for r in rows]

    # --- disputes ------------------------------------------------------------------------------

    def add_dispute(
        self,
        *,
        dispute_id: str,
        preq: bytes,
        product_id: str,
        merchant_id: str,
        customer_key: bytes,
        request: Mapping[str, Any],
        spends: list[dict[str, Any]],
        bank_answer: Mapping[str, Any],
        deadline: int,
        reply_secret: bytes,
        reply_public: bytes,
    ) -> tuple[DisputeRow, bool]:
        """Insert a pending dispute; ``(row, created)`` (an existing one for ``preq`` wins)."""
        now = self._clock()

        def insert(tx: Transaction) -> tuple[DisputeRow, bool]:
            existing = tx.fetchone("SELECT * FROM ttp_dispute WHERE preq = :p", {"p": preq})
            if existing is not None:
                return _dispute(existing), False
            tx.execute(
                "INSERT INTO ttp_dispute (dispute_id, preq, product_id, merchant_id,"
                " customer_key, request, spends, bank_answer, state, deadline, reply_secret,"
                " reply_public, created_at) VALUES (:id, :p, :pid, :m, :ck, :r, :s, :b,"
                " 'pending', :dl, :rs, :rp, :now)",
                {
                    "id": dispute_id,
                    "p": preq,
                    "pid": product_id,
                    "m": merchant_id,
                    "ck": customer_key,
                    "r": json.dumps(dict(request), sort_keys=True),
                    "s": json.dumps(spends, sort_keys=True),
                    "b": json.dumps(dict(bank_answer), sort_keys=True),
                    "dl": deadline,
                    "rs": reply_secret,
                    "rp": reply_public,
                    "now": now,
                },
            )
            self._count(tx, "disputes_opened")
            row = tx.fetchone(
                "SELECT * FROM ttp_dispute WHERE dispute_id = :id", {"id": dispute_id}
            )
            if row is None:  # pragma: no cover - just inserted
                raise LookupError(dispute_id)
            return _dispute(row), True

        result: tuple[DisputeRow, bool] = self._db.run_in_transaction(insert)
        return result

    def dispute(self, dispute_id: str) -> DisputeRow | None:
        with self._db.read() as tx:
            r = tx.fetchone("SELECT * FROM ttp_dispute WHERE dispute_id = :id", {"id": dispute_id})
        return None if r is None else _dispute(r)

    def disputes(
        self, *, merchant_id: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[DisputeRow]:
        sql = "SELECT * FROM ttp_dispute WHERE 1 = 1"
        params: dict[str, Any] = {"lim": limit}
        if merchant_id is not None:
            sql += " AND merchant_id = :m"
            params["m"] = merchant_id
        if state is not None:
            sql += " AND state = :s"
            params["s"] = state
        sql += " ORDER BY created_at, dispute_id LIMIT :lim"
        with self._db.read() as tx:
            rows = tx.fetchall(sql, params)
        return [_dispute(r) for r in rows]

    def note_answer(self, dispute_id: str, outcome: str) -> None:
        """Record what the merchant answered last (``wrong_key``, an error code, ...)."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE ttp_dispute SET merchant_answer = :a, asked_count = asked_count + 1"
                " WHERE dispute_id = :id AND state = 'pending'",
                {"a": outcome, "id": dispute_id},
            )
            self._count(tx, "key_requests")

    def resolve(
        self,
        dispute_id: str,
        *,
        resolution: str,
        sealed_key: Mapping[str, Any],
        strike_reason: str | None,
    ) -> bool:
        """``pending -> resolved`` with the sealed key (and a strike); False if already done."""
        now = self._clock()

        def update(tx: Transaction) -> bool:
            changed = tx.execute(
                "UPDATE ttp_dispute SET state = 'resolved', resolution = :r, sealed_key = :k,"
                " reply_secret = NULL, resolved_at = :now"
                " WHERE dispute_id = :id AND state = 'pending'",
                {
                    "r": resolution,
                    "k": json.dumps(dict(sealed_key), sort_keys=True),
                    "now": now,
                    "id": dispute_id,
                },
            )
            if changed != 1:
                return False
            self._count(tx, "disputes_resolved_" + resolution)
            if strike_reason is not None:
                tx.execute(
                    "INSERT INTO ttp_strike (merchant_id, dispute_id, reason, created_at)"
                    " SELECT merchant_id, dispute_id, :reason, :now FROM ttp_dispute"
                    " WHERE dispute_id = :id",
                    {"reason": strike_reason, "now": now, "id": dispute_id},
                )
                self._count(tx, "strikes")
            return True

        done: bool = self._db.run_in_transaction(update)
        return done

    def strikes(self, merchant_id: str | None = None) -> list[Strike]:
        sql = "SELECT strike_id, merchant_id, dispute_id, reason, created_at FROM ttp_strike"
        params: dict[str, Any] = {}
        if merchant_id is not None:
            sql += " WHERE merchant_id = :m"
            params["m"] = merchant_id
        with self._db.read() as tx:
            rows = tx.fetchall(sql + " ORDER BY strike_id", params)
        return [
            Strike(
                strike_id=int(r["strike_id"]),
                merchant_id=r["merchant_id"],
                dispute_id=r["dispute_id"],
                reason=r["reason"],
                created_at=int(r["created_at"]),
            )
            for r in rows
        ]

    # --- counters ------------------------------------------------------------------------------

    def count(self, name: str) -> None:
        with self._db.transaction() as tx:
            self._count(tx, name)

    @staticmethod
    def _count(tx: Transaction, name: str) -> None:
        tx.execute(
            "INSERT INTO ttp_counter (name, count) VALUES (:n, 1)"
            " ON CONFLICT (name) DO UPDATE SET count = ttp_counter.count + 1",
            {"n": name},
        )

    def counters(self) -> dict[str, int]:
        with self._db.read() as tx:
            rows = tx.fetchall("SELECT name, count FROM ttp_counter ORDER BY name")
        return {r["name"]: int(r["count"]) for r in rows}

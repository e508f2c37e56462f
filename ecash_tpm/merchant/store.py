"""The merchant's database: its payment requests (each paid once), deposits, receipts, counters.

A request row moves ``open -> paying -> paid``. ``paying`` is entered, with a fresh
``deposit_id`` and the exact signed deposit document, *before* the bank is called, so a lost
bank answer is retried with the identical document (the bank's deposit is idempotent on
``deposit_id``) and never turns into a second deposit. A definite bank refusal returns the
row to ``open`` so the customer can pay the same request with other coins.

Counters record why payments failed (local verification codes, bank error codes), because a
merchant that keeps forwarding bad coins gets blacklisted by the bank (DESIGN §5).

The catalogue's products (component ``merchant_catalogue``, :class:`CatalogueStore`) keep the
content key the TTP sealed to the shop at registration, at rest like a key file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ecash_tpm.storage import Database, Migration, Transaction

__all__ = [
    "CATALOGUE_COMPONENT",
    "CATALOGUE_MIGRATIONS",
    "COMPONENT",
    "MIGRATIONS",
    "CatalogueProduct",
    "CatalogueStore",
    "MerchantStore",
    "RequestRow",
]

COMPONENT = "merchant"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "requests",
        """
        CREATE TABLE merchant_request (
            preq {blob} PRIMARY KEY,
            nonce {blob} NOT NULL UNIQUE,
            amount BIGINT NOT NULL CHECK (amount > 0),
            currency TEXT NOT NULL,
            deadline BIGINT NOT NULL,
            product_id TEXT,
            request TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'paying', 'paid')),
            spends_digest {blob},
            deposit_id TEXT UNIQUE,
            deposit TEXT,
            receipt TEXT,
            bank_cert TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            paid_at BIGINT
        );
        CREATE INDEX merchant_request_state ON merchant_request (state);
        CREATE TABLE merchant_counter (
            kind TEXT NOT NULL,
            code TEXT NOT NULL,
            count BIGINT NOT NULL,
            last_at BIGINT NOT NULL,
            PRIMARY KEY (kind, code)
        );
        """,
    ),
]


@dataclass(frozen=True)
class RequestRow:
    """One payment request as the merchant recorded it."""

    preq: bytes
    amount: int
    currency: str
    deadline: int
    product_id: str | None
    request: dict[str, Any]
    state: str
    spends_digest: bytes | None
    deposit_id: str | None
    deposit: dict[str, Any] | None
    receipt: dict[str, Any] | None
    bank_cert: str | None
    paid_at: int | None


def _row(r: Mapping[str, Any]) -> RequestRow:
    return RequestRow(
        preq=bytes(r["preq"]),
        amount=int(r["amount"]),
        currency=r["currency"],
        deadline=int(r["deadline"]),
        product_id=r["product_id"],
        request=json.loads(r["request"]),
        state=r["state"],
        spends_digest=None if r["spends_digest"] is None else bytes(r["spends_digest"]),
        deposit_id=r["deposit_id"],
        deposit=json.loads(r["deposit"]) if r["deposit"] else None,
        receipt=json.loads(r["receipt"]) if r["receipt"] else None,
        bank_cert=r["bank_cert"],
        paid_at=None if r["paid_at"] is None else int(r["paid_at"]),
    )


#: How long an unpaid request is kept after its deadline (a late payment still gets the precise
#: ``request expired`` answer rather than ``unknown request``).
PURGE_GRACE_S = 3600


class MerchantStore:
    """Request lifecycle and counters on a :class:`Database` (migrated by the caller/app)."""

    def __init__(
        self, db: Database, clock: Callable[[], int], *, purge_grace_s: int = PURGE_GRACE_S
    ) -> None:
        self._db = db
        self._clock = clock
        self._purge_grace_s = purge_grace_s

    def add_request(
        self,
        *,
        preq: bytes,
        nonce: bytes,
        amount: int,
        currency: str,
        deadline: int,
        product_id: str | None,
        request: Mapping[str, Any],
    ) -> None:
        now = self._clock()
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO merchant_request (preq, nonce, amount, currency, deadline,"
                " product_id, request, state, created_at, updated_at)"
                " VALUES (:p, :n, :a, :c, :d, :pid, :r, 'open', :t, :t)",
                {
                    "p": preq,
                    "n": nonce,
                    "a": amount,
                    "c": currency,
                    "d": deadline,
                    "pid": product_id,
                    "r": json.dumps(dict(request)),
                    "t": now,
                },
            )
            self._purge_expired(tx, now)

    def _purge_expired(self, tx: Transaction, now: int) -> int:
        """Drop open requests past ``deadline + purge_grace_s`` (issue 10, attack 9: requests
        nobody pays must not pile up). Nothing can pay them any more; requests being paid or
        paid are kept. Runs on every new request, so the table stays bounded by the request
        rate times the TTL plus grace (the state index keeps the scan to open requests)."""
        return tx.execute(
            "DELETE FROM merchant_request WHERE state = 'open' AND deadline < :cut",
            {"cut": now - self._purge_grace_s},
        )

    def get(self, preq: bytes) -> RequestRow | None:
        with self._db.read() as tx:
            r = tx.fetchone("SELECT * FROM merchant_request WHERE preq = :p", {"p": preq})
        return None if r is None else _row(r)

    def begin_paying(
        self,
        preq: bytes,
        *,
        spends_digest: bytes,
        deposit_id: str,
        deposit: Mapping[str, Any],
    ) -> bool:
        """``open -> paying`` with the deposit to send; False if the row was not open."""
        with self._db.transaction() as tx:
            changed = tx.execute(
                "UPDATE merchant_request SET state = 'paying', spends_digest = :sd,"
                " deposit_id = :did, deposit = :dep, updated_at = :t"
                " WHERE preq = :p AND state = 'open'",
                {
                    "p": preq,
                    "sd": spends_digest,
                    "did": deposit_id,
                    "dep": json.dumps(dict(deposit)),
                    "t": self._clock(),
                },
            )
        return changed == 1

    def reopen(self, preq: bytes, deposit_id: str) -> None:
        """``paying -> open`` after the bank refused this deposit for good."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE merchant_request SET state = 'open', spends_digest = NULL,"
                " deposit_id = NULL, deposit = NULL, updated_at = :t"
                " WHERE preq = :p AND state = 'paying' AND deposit_id = :did",
                {"p": preq, "did": deposit_id, "t": self._clock()},
            )

    def mark_paid(
        self, preq: bytes, deposit_id: str, receipt: Mapping[str, Any], bank_cert: str
    ) -> None:
        """``paying -> paid`` with the verified bank receipt."""
        now = self._clock()
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE merchant_request SET state = 'paid', receipt = :rc, bank_cert = :bc,"
                " paid_at = :t, updated_at = :t"
                " WHERE preq = :p AND state = 'paying' AND deposit_id = :did",
                {
                    "p": preq,
                    "did": deposit_id,
                    "rc": json.dumps(dict(receipt)),
                    "bc": bank_cert,
                    "t": now,
                },
            )

    def paying(self, *, since_before: int) -> list[RequestRow]:
        """Deposits whose bank answer was lost (to be retried with the same document): those
        ``paying`` since before ``since_before``."""
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT * FROM merchant_request WHERE state = 'paying' AND updated_at <= :t"
                " ORDER BY updated_at",
                {"t": since_before},
            )
        return [_row(r) for r in rows]

    def totals(self) -> dict[str, dict[str, int]]:
        """``{currency: {paid_count, paid_amount}}`` from the receipts held."""
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT currency, COUNT(*) AS n, SUM(amount) AS total FROM merchant_request"
                " WHERE state = 'paid' GROUP BY currency"
            )
        return {
            r["currency"]: {"paid_count": int(r["n"]), "paid_amount": int(r["total"] or 0)}
            for r in rows
        }

    # --- counters --------------------------------------------------------------------------

    def count(self, kind: str, code: str) -> None:
        with self._db.transaction() as tx:
            self._count(tx, kind, code)

    def _count(self, tx: Transaction, kind: str, code: str) -> None:
        tx.execute(
            "INSERT INTO merchant_counter (kind, code, count, last_at) VALUES (:k, :c, 1, :t)"
            " ON CONFLICT (kind, code) DO UPDATE SET count = merchant_counter.count + 1,"
            " last_at = excluded.last_at",
            {"k": kind, "c": code, "t": self._clock()},
        )

    def counters(self) -> dict[str, dict[str, int]]:
        """``{kind: {code: count}}`` — kinds ``verify_failure`` and ``bank_error``."""
        with self._db.read() as tx:
            rows = tx.fetchall("SELECT kind, code, count FROM merchant_counter ORDER BY kind, code")
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["kind"], {})[r["code"]] = int(r["count"])
        return out


# --- catalogue (fair exchange, DESIGN §6): products escrowed with the TTP ---------------------

CATALOGUE_COMPONENT = "merchant_catalogue"

CATALOGUE_MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "catalogue",
        """
        CREATE TABLE merchant_product (
            product_id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            price BIGINT NOT NULL CHECK (price > 0),
            currency TEXT NOT NULL,
            ciphertext_sha256 {blob} NOT NULL,
            ciphertext {blob} NOT NULL,
            content_key {blob} NOT NULL,
            descriptor TEXT NOT NULL,
            ttp_cert TEXT NOT NULL,
            ttp_key_id TEXT NOT NULL,
            ttp_url TEXT,
            registered_at BIGINT NOT NULL
        );
        """,
    ),
]


@dataclass(frozen=True)
class CatalogueProduct:
    """A product this shop sells, with the content key it got from the TTP."""

    product_id: str
    title: str
    price: int
    currency: str
    ciphertext_sha256: bytes
    ciphertext: bytes
    content_key: bytes
    descriptor: dict[str, Any]
    ttp_cert: str
    ttp_key_id: str
    ttp_url: str | None
    registered_at: int

    def listing(self) -> dict[str, Any]:
        """The public entry: TTP-signed descriptor, TTP certificate, where the TTP is."""
        return {"descriptor": self.descriptor, "ttp_cert": self.ttp_cert, "ttp_url": self.ttp_url}


def _product(r: Mapping[str, Any]) -> CatalogueProduct:
    return CatalogueProduct(
        product_id=r["product_id"],
        title=r["title"],
        price=int(r["price"]),
        currency=r["currency"],
        ciphertext_sha256=bytes(r["ciphertext_sha256"]),
        ciphertext=bytes(r["ciphertext"]),
        content_key=bytes(r["content_key"]),
        descriptor=json.loads(r["descriptor"]),
        ttp_cert=r["ttp_cert"],
        ttp_key_id=r["ttp_key_id"],
        ttp_url=r["ttp_url"],
        registered_at=int(r["registered_at"]),
    )


class CatalogueStore:
    """The products this shop lists, with the content keys the TTP sealed to it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, product: CatalogueProduct) -> None:
        """List ``product`` (a product id already listed is kept as it is)."""
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO merchant_product (product_id, title, price, currency,"
                " ciphertext_sha256, ciphertext, content_key, descriptor, ttp_cert, ttp_key_id,"
                " ttp_url, registered_at) VALUES (:pid, :t, :p, :c, :h, :ct, :k, :d, :tc,"
                " :tk, :tu, :now) ON CONFLICT (product_id) DO NOTHING",
                {
                    "pid": product.product_id,
                    "t": product.title,
                    "p": product.price,
                    "c": product.currency,
                    "h": product.ciphertext_sha256,
                    "ct": product.ciphertext,
                    "k": product.content_key,
                    "d": json.dumps(product.descriptor, sort_keys=True),
                    "tc": product.ttp_cert,
                    "tk": product.ttp_key_id,
                    "tu": product.ttp_url,
                    "now": product.registered_at,
                },
            )

    def get(self, product_id: str) -> CatalogueProduct | None:
        with self._db.read() as tx:
            r = tx.fetchone(
                "SELECT * FROM merchant_product WHERE product_id = :p", {"p": product_id}
            )
        return None if r is None else _product(r)

    def all(self) -> list[CatalogueProduct]:
        with self._db.read() as tx:
            rows = tx.fetchall("SELECT * FROM merchant_product ORDER BY registered_at, product_id")
        return [_product(r) for r in rows]

"""``<data_dir>/purchases.db`` (component ``wallet_purchases``): ALL of the purchases' SQL.

A purchase row keeps its ephemeral X25519 private key until the content is decrypted (then it
is erased), and the request, certificate and spends a dispute needs; the decrypted content goes
to ``<data_dir>/purchases/<purchase_id>.content`` (mode 0600).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ecash_tpm.crypto.sealing import EphemeralKey
from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.errors import InputError
from ecash_tpm.storage import Database, Migration, sqlite_url
from ecash_tpm.wallet.purchases.errors import UnknownPurchaseError
from ecash_tpm.wallet.purchases.records import Offer, PurchaseRecord

__all__ = ["COMPONENT", "DISPUTABLE", "MIGRATIONS", "PURCHASES_DB_FILE", "PurchaseStore"]

COMPONENT = "wallet_purchases"
PURCHASES_DB_FILE = "purchases.db"
CONTENT_DIR = "purchases"
#: States in which a key may still be obtained through the TTP.
DISPUTABLE = ("sent", "paid", "key_missing", "key_invalid", "disputing")

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "purchases",
        """
        CREATE TABLE wallet_purchase (
            purchase_id TEXT PRIMARY KEY,
            product_id TEXT NOT NULL,
            merchant_id TEXT NOT NULL,
            title TEXT NOT NULL,
            price BIGINT NOT NULL,
            currency TEXT NOT NULL,
            descriptor TEXT NOT NULL,
            ttp_cert TEXT NOT NULL,
            ttp_url TEXT,
            merchant_url TEXT,
            ciphertext {blob} NOT NULL,
            customer_secret {blob},
            customer_key {blob} NOT NULL,
            request TEXT,
            merchant_cert TEXT,
            preq {blob} UNIQUE,
            payment_id TEXT,
            spends TEXT,
            receipt TEXT,
            dispute_id TEXT,
            delivered_by TEXT,
            state TEXT NOT NULL CHECK (state IN ('started', 'requested', 'sent', 'paid',
                'key_missing', 'key_invalid', 'disputing', 'complete', 'failed')),
            error_code TEXT,
            content_file TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE INDEX wallet_purchase_state ON wallet_purchase (state);
        """,
    ),
]


def _record(r: Mapping[str, Any]) -> PurchaseRecord:
    def js(key: str) -> Any:
        return json.loads(r[key]) if r[key] else None

    return PurchaseRecord(
        purchase_id=r["purchase_id"],
        product_id=r["product_id"],
        merchant_id=r["merchant_id"],
        title=r["title"],
        price=int(r["price"]),
        currency=r["currency"],
        ttp_url=r["ttp_url"],
        merchant_url=r["merchant_url"],
        ciphertext=bytes(r["ciphertext"]),
        customer_secret=None if r["customer_secret"] is None else bytes(r["customer_secret"]),
        customer_key=bytes(r["customer_key"]),
        request=js("request"),
        merchant_cert=r["merchant_cert"],
        preq=None if r["preq"] is None else bytes(r["preq"]),
        payment_id=r["payment_id"],
        spends=js("spends"),
        dispute_id=r["dispute_id"],
        delivered_by=r["delivered_by"],
        state=r["state"],
        error_code=r["error_code"],
        content_file=r["content_file"],
        created_at=int(r["created_at"]),
        updated_at=int(r["updated_at"]),
    )


#: One literal statement per updatable column (values are always bound, never formatted).
_UPDATE_SQL: dict[str, str] = {
    "request": ("UPDATE wallet_purchase SET request = :v, updated_at = :t WHERE purchase_id = :id"),
    "merchant_cert": (
        "UPDATE wallet_purchase SET merchant_cert = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "preq": ("UPDATE wallet_purchase SET preq = :v, updated_at = :t WHERE purchase_id = :id"),
    "payment_id": (
        "UPDATE wallet_purchase SET payment_id = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "spends": ("UPDATE wallet_purchase SET spends = :v, updated_at = :t WHERE purchase_id = :id"),
    "receipt": ("UPDATE wallet_purchase SET receipt = :v, updated_at = :t WHERE purchase_id = :id"),
    "dispute_id": (
        "UPDATE wallet_purchase SET dispute_id = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "delivered_by": (
        "UPDATE wallet_purchase SET delivered_by = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "state": ("UPDATE wallet_purchase SET state = :v, updated_at = :t WHERE purchase_id = :id"),
    "error_code": (
        "UPDATE wallet_purchase SET error_code = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "content_file": (
        "UPDATE wallet_purchase SET content_file = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "customer_secret": (
        "UPDATE wallet_purchase SET customer_secret = :v, updated_at = :t WHERE purchase_id = :id"
    ),
}


class PurchaseStore:
    """``<data_dir>/purchases.db``: purchases and their ephemeral keys (owns its Database)."""

    def __init__(self, db: Database, data_dir: Path, clock: Callable[[], int]) -> None:
        self._db = db
        self.data_dir = data_dir
        self._clock = clock
        db.migrate(MIGRATIONS, component=COMPONENT)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], clock: Callable[[], int]) -> PurchaseStore:
        directory = Path(data_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / PURCHASES_DB_FILE
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        return cls(Database.open(sqlite_url(path.absolute())), directory, clock)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PurchaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self, purchase_id: str, offer: Offer, key: EphemeralKey, merchant_url: str | None
    ) -> None:
        d = offer.descriptor
        now = self._clock()
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO wallet_purchase (purchase_id, product_id, merchant_id, title, price,"
                " currency, descriptor, ttp_cert, ttp_url, merchant_url, ciphertext,"
                " customer_secret, customer_key, state, created_at, updated_at) VALUES (:id,"
                " :pid, :m, :t, :p, :c, :d, :tc, :tu, :mu, :ct, :cs, :ck, 'started', :now, :now)",
                {
                    "id": purchase_id,
                    "pid": d.product_id,
                    "m": d.merchant_id,
                    "t": d.title,
                    "p": d.price,
                    "c": d.currency,
                    "d": json.dumps(offer.descriptor_doc, sort_keys=True),
                    "tc": offer.ttp_cert,
                    "tu": offer.ttp_url,
                    "mu": merchant_url,
                    "ct": offer.ciphertext,
                    "cs": key.secret_bytes(),
                    "ck": key.public_bytes,
                    "now": now,
                },
            )

    def update(self, purchase_id: str, **values: Any) -> None:
        """Set columns (JSON for dicts/lists) in one transaction."""
        now = self._clock()
        with self._db.transaction() as tx:
            for name, value in values.items():
                if name not in _UPDATE_SQL:
                    raise InputError(f"cannot update purchase column {name!r}")
                if isinstance(value, dict | list):
                    value = json.dumps(value, sort_keys=True)
                tx.execute(_UPDATE_SQL[name], {"v": value, "t": now, "id": purchase_id})

    def get(self, purchase_id: str) -> PurchaseRecord:
        with self._db.read() as tx:
            r = tx.fetchone(
                "SELECT * FROM wallet_purchase WHERE purchase_id = :id", {"id": purchase_id}
            )
        if r is None:
            raise UnknownPurchaseError("no such purchase", detail={"purchase_id": purchase_id})
        return _record(r)

    def purchases(self, *, limit: int = 1000) -> list[PurchaseRecord]:
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT * FROM wallet_purchase ORDER BY created_at DESC, purchase_id LIMIT :n",
                {"n": limit},
            )
        return [_record(r) for r in rows]

    def open_disputes(self) -> list[PurchaseRecord]:
        """Purchases waiting for a key (to retry ``dispute``)."""
        return [p for p in self.purchases() if p.state in DISPUTABLE]

    def save_content(self, purchase_id: str, content: bytes) -> Path:
        directory = self.data_dir / CONTENT_DIR
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{purchase_id}.content"
        write_file_atomic(path, content, mode=0o600)
        return path

"""The wallet's coin database: coins, pending withdrawals, payments (SQLite in the data dir).

Crash safety is the point of this module (Cashu's top complaint is proofs stuck "pending"):

* a withdrawal is written with its blinding inverses and coin secrets *before* the request is
  sent, so a lost answer is retried with the same ``request_id`` (the bank answers a retry
  with the same signatures and never debits twice) and no signed coin is ever lost;
* coins chosen for a payment turn ``pending`` in the same transaction that records the
  payment, before any TPM proof is made; the payment turns ``sent`` (with its spends) before
  the merchant is called, so after a crash the wallet knows exactly which coins may have left;
* every state change is one transaction; coins move ``unspent -> pending -> spent`` or back
  ``pending -> unspent`` only through :class:`WalletStore` methods that check the old state.

The blinding inverses and serials are secrets (they link a withdrawal to its coins): the data
directory is created 0700 and the database file 0600.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.errors import ConflictError, NotFoundError
from ecash_tpm.protocol.certified import CertifiedKeysetList
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.protocol.errors import KeysetListError
from ecash_tpm.protocol.keysets import FEE_FIELDS, Fees
from ecash_tpm.protocol.payments import KeysetBook
from ecash_tpm.storage import Database, Migration, Transaction, sqlite_url
from ecash_tpm.wallet.coins import HeldCoin
from ecash_tpm.wallet.records import PaymentRecord, PendingCoin, PendingWithdrawal

__all__ = [
    "COIN_DB_FILE",
    "COMPONENT",
    "MIGRATIONS",
    "CoinStateError",
    "UnknownPaymentError",
    "WalletStore",
]

COIN_DB_FILE = "coins.db"
COMPONENT = "wallet_coins"

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "coins",
        """
        CREATE TABLE wallet_withdrawal (
            request_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
            amount BIGINT NOT NULL CHECK (amount > 0),
            currency TEXT NOT NULL,
            items TEXT NOT NULL,
            error_code TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE TABLE wallet_coin (
            sigma {blob} PRIMARY KEY,
            keyset_id {blob} NOT NULL,
            value BIGINT NOT NULL CHECK (value > 0),
            currency TEXT NOT NULL,
            deposit_until BIGINT NOT NULL,
            coin TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('unspent', 'pending', 'spent')),
            request_id TEXT REFERENCES wallet_withdrawal (request_id),
            payment_id TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE INDEX wallet_coin_state ON wallet_coin (state, currency);
        CREATE INDEX wallet_coin_payment ON wallet_coin (payment_id);
        CREATE TABLE wallet_payment (
            payment_id TEXT PRIMARY KEY,
            merchant_id TEXT NOT NULL,
            merchant_url TEXT,
            preq {blob} NOT NULL,
            amount BIGINT NOT NULL CHECK (amount > 0),
            currency TEXT NOT NULL,
            deadline BIGINT NOT NULL,
            request TEXT NOT NULL,
            spends TEXT,
            state TEXT NOT NULL
                CHECK (state IN ('preparing', 'sent', 'paid', 'spent', 'failed')),
            receipt TEXT,
            error_code TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE INDEX wallet_payment_state ON wallet_payment (state);
        CREATE TABLE wallet_keyset (
            keyset_id {blob} PRIMARY KEY,
            value BIGINT NOT NULL,
            currency TEXT NOT NULL,
            withdraw_until BIGINT NOT NULL,
            deposit_until BIGINT NOT NULL,
            descriptor TEXT NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "keyset_list",
        """
        CREATE TABLE wallet_keyset_list (
            bank TEXT PRIMARY KEY,
            sequence BIGINT NOT NULL,
            list_id TEXT NOT NULL,
            certified_at BIGINT NOT NULL,
            doc TEXT NOT NULL,
            seen_at BIGINT NOT NULL
        );
        """,
    ),
]

_OPEN_PAYMENT_STATES = ("preparing", "sent")


class CoinStateError(ConflictError):
    """A coin or payment is not in the state an operation needs (e.g. already spent)."""

    code = "wallet.coin_state"


class UnknownPaymentError(NotFoundError):
    """No payment with this id in the wallet."""

    code = "wallet.unknown_payment"


def _held(row: dict[str, Any]) -> HeldCoin:
    return HeldCoin(
        coin=Coin.from_dict(json.loads(row["coin"])),
        value=int(row["value"]),
        currency=row["currency"],
        deposit_until=int(row["deposit_until"]),
    )


class WalletStore:
    """The wallet's coin database (component ``wallet_coins``); owns its :class:`Database`."""

    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        self._db = db
        self._clock = clock
        db.migrate(MIGRATIONS, component=COMPONENT)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], clock: Callable[[], int]) -> WalletStore:
        """Open (creating if needed) ``<data_dir>/coins.db`` with private permissions."""
        directory = Path(data_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / COIN_DB_FILE
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        return cls(Database.open(sqlite_url(path.absolute())), clock)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> WalletStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> Database:
        return self._db

    # --- keysets ---------------------------------------------------------------------------

    def save_keysets(self, book: KeysetBook) -> None:
        """Remember the verified keysets (so balances can tell expired coins from good ones)."""
        with self._db.transaction() as tx:
            for ks in book.keysets.values():
                tx.execute(
                    "INSERT INTO wallet_keyset (keyset_id, value, currency, withdraw_until,"
                    " deposit_until, descriptor) VALUES (:id, :v, :c, :wu, :du, :d)"
                    " ON CONFLICT (keyset_id) DO NOTHING",
                    {
                        "id": ks.keyset_id,
                        "v": ks.value,
                        "c": ks.currency,
                        "wu": ks.withdraw_until,
                        "du": ks.deposit_until,
                        "d": json.dumps(book.descriptors[ks.keyset_id], sort_keys=True),
                    },
                )

    def keyset_fees(self) -> dict[bytes, Fees]:
        """The fees of every remembered keyset, from its verified descriptor (docs/protocol.md
        4.2): what the wallet shows before paying."""
        with self._db.read() as tx:
            rows = tx.fetchall("SELECT keyset_id, value, descriptor FROM wallet_keyset")
        out = {}
        for row in rows:
            body = json.loads(row["descriptor"]).get("body", {})
            fees = Fees.from_fields(body, int(row["value"])) if FEE_FIELDS[0] in body else Fees()
            out[bytes(row["keyset_id"])] = fees
        return out

    def save_keyset_list(self, listed: CertifiedKeysetList, doc: dict[str, Any]) -> None:
        """Remember the central-bank keyset list the wallet trusts (docs/protocol.md 4.1);
        ``keyset_list.rollback`` for a list older than one already seen for that bank."""
        with self._db.transaction() as tx:
            row = tx.fetchone(
                "SELECT sequence FROM wallet_keyset_list WHERE bank = :b", {"b": listed.bank}
            )
            if row is not None and int(row["sequence"]) > listed.sequence:
                raise KeysetListError(
                    "the bank served an older keyset list than this wallet has seen",
                    code="keyset_list.rollback",
                    detail={"seen": int(row["sequence"]), "served": listed.sequence},
                )
            tx.execute(
                "INSERT INTO wallet_keyset_list (bank, sequence, list_id, certified_at, doc,"
                " seen_at) VALUES (:b, :s, :i, :c, :d, :t) ON CONFLICT (bank) DO UPDATE SET"
                " sequence = :s, list_id = :i, certified_at = :c, doc = :d, seen_at = :t",
                {
                    "b": listed.bank,
                    "s": listed.sequence,
                    "i": listed.list_id,
                    "c": listed.certified_at,
                    "d": json.dumps(doc, sort_keys=True),
                    "t": self._clock(),
                },
            )

    def trusted_keyset_lists(self) -> list[dict[str, Any]]:
        """The keyset lists the wallet trusts, one per bank: what ``wallet keysets`` shows."""
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT bank, sequence, list_id, certified_at, seen_at FROM wallet_keyset_list"
                " ORDER BY bank"
            )
        return [dict(r) for r in rows]

    # --- withdrawals -----------------------------------------------------------------------

    def add_pending_withdrawal(
        self, request_id: str, currency: str, items: Sequence[PendingCoin]
    ) -> None:
        """Persist a withdrawal before it is sent (see the module docstring)."""
        now = self._clock()
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO wallet_withdrawal (request_id, state, amount, currency, items,"
                " created_at, updated_at) VALUES (:r, 'pending', :a, :c, :i, :t, :t)",
                {
                    "r": request_id,
                    "a": sum(i.value for i in items),
                    "c": currency,
                    "i": json.dumps([i.to_json() for i in items]),
                    "t": now,
                },
            )

    def _withdrawal(self, row: dict[str, Any]) -> PendingWithdrawal:
        return PendingWithdrawal(
            request_id=row["request_id"],
            state=row["state"],
            amount=int(row["amount"]),
            currency=row["currency"],
            items=[PendingCoin.from_json(d) for d in json.loads(row["items"])],
            error_code=row["error_code"],
        )

    def withdrawal(self, request_id: str) -> PendingWithdrawal:
        with self._db.read() as tx:
            row = tx.fetchone(
                "SELECT * FROM wallet_withdrawal WHERE request_id = :r", {"r": request_id}
            )
        if row is None:
            raise NotFoundError("no such withdrawal", detail={"request_id": request_id})
        return self._withdrawal(row)

    def pending_withdrawals(self) -> list[PendingWithdrawal]:
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT * FROM wallet_withdrawal WHERE state = 'pending' ORDER BY created_at"
            )
        return [self._withdrawal(r) for r in rows]

    def complete_withdrawal(self, request_id: str, coins: Sequence[HeldCoin]) -> None:
        """Store the finalized coins and close the withdrawal, atomically (idempotent)."""
        now = self._clock()
        with self._db.transaction() as tx:
            state = tx.fetchval(
                "SELECT state FROM wallet_withdrawal WHERE request_id = :r", {"r": request_id}
            )
            if state == "done":
                return
            if state != "pending":
                raise CoinStateError(
                    "withdrawal is not pending", detail={"request_id": request_id, "state": state}
                )
            for hc in coins:
                tx.execute(
                    "INSERT INTO wallet_coin (sigma, keyset_id, value, currency, deposit_until,"
                    " coin, state, request_id, created_at, updated_at)"
                    " VALUES (:s, :k, :v, :c, :du, :coin, 'unspent', :r, :t, :t)",
                    {
                        "s": hc.sigma,
                        "k": hc.coin.keyset_id,
                        "v": hc.value,
                        "c": hc.currency,
                        "du": hc.deposit_until,
                        "coin": json.dumps(hc.coin.to_dict()),
                        "r": request_id,
                        "t": now,
                    },
                )
            tx.execute(
                "UPDATE wallet_withdrawal SET state = 'done', updated_at = :t"
                " WHERE request_id = :r",
                {"r": request_id, "t": now},
            )

    def complete_swap(
        self,
        payment_id: str,
        request_id: str,
        items: Sequence[PendingCoin],
        coins: Sequence[HeldCoin],
    ) -> None:
        """A swap answered (docs/protocol.md 9.3), atomically: its input coins spent, its
        outputs stored as coins (under a ``done`` withdrawal row named by the swap's
        request_id, so they are never re-sent as a withdrawal). Idempotent."""
        now = self._clock()
        with self._db.transaction() as tx:
            done = tx.fetchval(
                "SELECT state FROM wallet_withdrawal WHERE request_id = :r", {"r": request_id}
            )
            if done is not None:
                return
            tx.execute(
                "INSERT INTO wallet_withdrawal (request_id, state, amount, currency, items,"
                " created_at, updated_at) VALUES (:r, 'done', :a, :c, :i, :t, :t)",
                {
                    "r": request_id,
                    "a": sum(i.value for i in items),
                    "c": items[0].currency,
                    "i": json.dumps([i.to_json() for i in items]),
                    "t": now,
                },
            )
            for hc in coins:
                tx.execute(
                    "INSERT INTO wallet_coin (sigma, keyset_id, value, currency, deposit_until,"
                    " coin, state, request_id, created_at, updated_at)"
                    " VALUES (:s, :k, :v, :c, :du, :coin, 'unspent', :r, :t, :t)",
                    {
                        "s": hc.sigma,
                        "k": hc.coin.keyset_id,
                        "v": hc.value,
                        "c": hc.currency,
                        "du": hc.deposit_until,
                        "coin": json.dumps(hc.coin.to_dict()),
                        "r": request_id,
                        "t": now,
                    },
                )
            self._set_payment_tx(tx, payment_id, "spent", frm=_OPEN_PAYMENT_STATES)
            tx.execute(
                "UPDATE wallet_coin SET state = 'spent', updated_at = :t"
                " WHERE payment_id = :id AND state = 'pending'",
                {"id": payment_id, "t": now},
            )

    def fail_withdrawal(self, request_id: str, code: str) -> None:
        """Give a withdrawal up after the bank refused it for good (nothing was debited)."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE wallet_withdrawal SET state = 'failed', error_code = :e, updated_at = :t"
                " WHERE request_id = :r AND state = 'pending'",
                {"r": request_id, "e": code, "t": self._clock()},
            )

    # --- coins -----------------------------------------------------------------------------

    def coins(self, state: str | None = None) -> list[HeldCoin]:
        with self._db.read() as tx:
            if state is None:
                rows = tx.fetchall("SELECT * FROM wallet_coin ORDER BY created_at, sigma")
            else:
                rows = tx.fetchall(
                    "SELECT * FROM wallet_coin WHERE state = :s ORDER BY created_at, sigma",
                    {"s": state},
                )
        return [_held(r) for r in rows]

    def coin_states(self) -> dict[bytes, str]:
        with self._db.read() as tx:
            rows = tx.fetchall("SELECT sigma, state FROM wallet_coin")
        return {bytes(r["sigma"]): r["state"] for r in rows}

    def balance(self, *, spendable_after: int | None = None) -> dict[str, dict[str, int]]:
        """``{currency: {unspent, pending, expired}}``; ``expired`` counts unspent coins whose
        keyset deposit window ends before ``spendable_after`` (default: now)."""
        t = self._clock() if spendable_after is None else spendable_after
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT currency, state, value, deposit_until FROM wallet_coin"
                " WHERE state IN ('unspent', 'pending')"
            )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            slot = out.setdefault(r["currency"], {"unspent": 0, "pending": 0, "expired": 0})
            if r["state"] == "pending":
                slot["pending"] += int(r["value"])
            elif int(r["deposit_until"]) <= t:
                slot["expired"] += int(r["value"])
            else:
                slot["unspent"] += int(r["value"])
        return out

    # --- payments --------------------------------------------------------------------------

    def start_payment(
        self,
        *,
        payment_id: str,
        merchant_id: str,
        merchant_url: str | None,
        preq: bytes,
        amount: int,
        currency: str,
        deadline: int,
        request: dict[str, Any],
        spendable_after: int,
        choose: Callable[[list[HeldCoin]], list[HeldCoin]],
    ) -> list[HeldCoin]:
        """Pick coins with ``choose`` and mark them pending for a new payment, atomically.

        Only unspent coins of ``currency`` whose keyset accepts deposits after
        ``spendable_after`` are offered to ``choose``. A second payment for the same request
        digest while one is open is refused (it would spend coins twice for one purchase).
        """
        now = self._clock()
        with self._db.transaction() as tx:
            open_one = tx.fetchval(
                "SELECT payment_id FROM wallet_payment WHERE preq = :p"
                " AND state IN ('preparing', 'sent', 'paid', 'spent')",
                {"p": preq},
            )
            if open_one is not None:
                raise CoinStateError(
                    "this payment request was already paid or is being paid",
                    detail={"payment_id": open_one},
                )
            rows = tx.fetchall(
                "SELECT * FROM wallet_coin WHERE state = 'unspent' AND currency = :c"
                " AND deposit_until > :t ORDER BY deposit_until, sigma",
                {"c": currency, "t": spendable_after},
            )
            chosen = choose([_held(r) for r in rows])
            tx.execute(
                "INSERT INTO wallet_payment (payment_id, merchant_id, merchant_url, preq, amount,"
                " currency, deadline, request, state, created_at, updated_at) VALUES"
                " (:id, :m, :u, :p, :a, :c, :d, :r, 'preparing', :t, :t)",
                {
                    "id": payment_id,
                    "m": merchant_id,
                    "u": merchant_url,
                    "p": preq,
                    "a": amount,
                    "c": currency,
                    "d": deadline,
                    "r": json.dumps(request),
                    "t": now,
                },
            )
            for hc in chosen:
                changed = tx.execute(
                    "UPDATE wallet_coin SET state = 'pending', payment_id = :id, updated_at = :t"
                    " WHERE sigma = :s AND state = 'unspent'",
                    {"id": payment_id, "s": hc.sigma, "t": now},
                )
                if changed != 1:
                    raise CoinStateError("coin is no longer unspent")
        return chosen

    def mark_sent(self, payment_id: str, spends: list[dict[str, Any]]) -> None:
        """Record the spends and that they may have left the device (before sending)."""
        self._set_payment(
            payment_id, "sent", frm=("preparing",), spends=json.dumps(spends), error_code=None
        )

    def note_error(self, payment_id: str, code: str) -> None:
        """Record the last error of an open payment without changing its state."""
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE wallet_payment SET error_code = :e, updated_at = :t WHERE payment_id = :id",
                {"id": payment_id, "e": code, "t": self._clock()},
            )

    def finish_payment(
        self,
        payment_id: str,
        *,
        state: str,
        receipt: dict[str, Any] | None = None,
        spent: Sequence[bytes] = (),
        released: Sequence[bytes] = (),
        error_code: str | None = None,
    ) -> None:
        """Close a payment: ``spent`` coins -> spent, ``released`` coins -> unspent.

        Coins of the payment in neither list stay pending (their fate is still unknown).
        """
        if state not in ("paid", "spent", "failed", "sent"):
            raise CoinStateError("bad final payment state", detail={"state": state})
        now = self._clock()
        with self._db.transaction() as tx:
            self._set_payment_tx(
                tx,
                payment_id,
                state,
                frm=_OPEN_PAYMENT_STATES,
                receipt=None if receipt is None else json.dumps(receipt),
                error_code=error_code,
            )
            for sigma in spent:
                tx.execute(
                    "UPDATE wallet_coin SET state = 'spent', updated_at = :t"
                    " WHERE sigma = :s AND payment_id = :id AND state = 'pending'",
                    {"s": sigma, "id": payment_id, "t": now},
                )
            for sigma in released:
                tx.execute(
                    "UPDATE wallet_coin SET state = 'unspent', payment_id = NULL, updated_at = :t"
                    " WHERE sigma = :s AND payment_id = :id AND state = 'pending'",
                    {"s": sigma, "id": payment_id, "t": now},
                )

    def _set_payment(
        self, payment_id: str, state: str, *, frm: tuple[str, ...], **cols: Any
    ) -> None:
        with self._db.transaction() as tx:
            self._set_payment_tx(tx, payment_id, state, frm=frm, **cols)

    def _set_payment_tx(
        self,
        tx: Transaction,
        payment_id: str,
        state: str,
        *,
        frm: tuple[str, ...],
        spends: str | None = None,
        receipt: str | None = None,
        error_code: str | None = None,
    ) -> None:
        current = tx.fetchval(
            "SELECT state FROM wallet_payment WHERE payment_id = :id", {"id": payment_id}
        )
        if current is None:
            raise UnknownPaymentError("no such payment", detail={"payment_id": payment_id})
        if current not in frm:
            raise CoinStateError(
                "payment is not in a state that allows this",
                detail={"payment_id": payment_id, "state": current, "wanted": state},
            )
        tx.execute(
            "UPDATE wallet_payment SET state = :s, spends = COALESCE(:sp, spends),"
            " receipt = COALESCE(:rc, receipt), error_code = :e, updated_at = :t"
            " WHERE payment_id = :id",
            {
                "s": state,
                "sp": spends,
                "rc": receipt,
                "e": error_code,
                "t": self._clock(),
                "id": payment_id,
            },
        )

    def _payment(self, tx: Transaction, row: dict[str, Any]) -> PaymentRecord:
        serials = tx.fetchall(
            "SELECT sigma FROM wallet_coin WHERE payment_id = :id ORDER BY sigma",
            {"id": row["payment_id"]},
        )
        spends = json.loads(row["spends"]) if row["spends"] else None
        if spends is not None:
            got = tuple(b64u_decode(sp["coin"]["sigma"]) for sp in spends)
        else:
            got = tuple(bytes(r["sigma"]) for r in serials)
        return PaymentRecord(
            payment_id=row["payment_id"],
            merchant_id=row["merchant_id"],
            merchant_url=row["merchant_url"],
            preq=bytes(row["preq"]),
            amount=int(row["amount"]),
            currency=row["currency"],
            deadline=int(row["deadline"]),
            request=json.loads(row["request"]),
            spends=spends,
            state=row["state"],
            receipt=json.loads(row["receipt"]) if row["receipt"] else None,
            error_code=row["error_code"],
            created_at=int(row["created_at"]),
            updated_at=int(row["updated_at"]),
            serials=got,
        )

    def payment(self, payment_id: str) -> PaymentRecord:
        with self._db.read() as tx:
            row = tx.fetchone(
                "SELECT * FROM wallet_payment WHERE payment_id = :id", {"id": payment_id}
            )
            if row is None:
                raise UnknownPaymentError("no such payment", detail={"payment_id": payment_id})
            return self._payment(tx, row)

    def payments(self, *, open_only: bool = False, limit: int = 1000) -> list[PaymentRecord]:
        """Newest first; ``open_only`` gives the payments recovery must resolve."""
        with self._db.read() as tx:
            if open_only:
                rows = tx.fetchall(
                    "SELECT * FROM wallet_payment WHERE state IN ('preparing', 'sent')"
                    " ORDER BY created_at DESC, payment_id LIMIT :n",
                    {"n": limit},
                )
            else:
                rows = tx.fetchall(
                    "SELECT * FROM wallet_payment ORDER BY created_at DESC, payment_id LIMIT :n",
                    {"n": limit},
                )
            return [self._payment(tx, r) for r in rows]

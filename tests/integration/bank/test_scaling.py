"""Issue 13 items 4-6: many workers on one database, booking without retries, bounded waits.

Counts, never timings: the PostgreSQL booking is judged by the storage layer's retry counter
(``Database.retries``) and by the answers, a held lock by the error code it produces.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import DENOMINATIONS, BankWorld, make_world, test_policy
from support.coinmint import KeyPool, Pki, RecordingReporter, TestClock, TestIssuer

from ecash_tpm.bank import errors as E
from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.bank.store import MIGRATIONS, spending
from ecash_tpm.pki import load_certificate
from ecash_tpm.storage import Database, IntegrityCheckError, StorageBusyError, sqlite_url

CLIENTS = 8


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(4)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "bank.db")
    url: str = request.getfixturevalue("pg_url")
    return url


def _run_all(count: int, fn: Callable[[int], Any], timeout_s: float = 120.0) -> list[Any]:
    """Run ``fn(0..count-1)`` in threads released together; results or raised errors."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=timeout_s)
            results[i] = fn(i)
        except BaseException as exc:  # collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    assert not any(t.is_alive() for t in threads)
    return results


def _run_processes(count: int, fn: Callable[[int], int], timeout_s: float = 120.0) -> list[Any]:
    """Run ``fn(0..count-1)`` in forked processes released together (what ``serve --workers``
    forks); their results, or the repr of what they raised. Stopped by pid if they hang."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(count)
    queue = ctx.Queue()

    def child(i: int) -> None:
        try:
            barrier.wait(timeout_s)
            queue.put((i, fn(i)))
        except BaseException as exc:  # reported to the parent, which asserts on it
            queue.put((i, repr(exc)))

    procs = [ctx.Process(target=child, args=(i,)) for i in range(count)]
    for proc in procs:
        proc.start()
    try:
        results = dict(queue.get(timeout=timeout_s) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout_s)
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(5)
    return [results[i] for i in range(count)]


# --- item 4: concurrent start-ups ------------------------------------------------------------


def test_four_workers_starting_together_create_the_configured_keysets(
    db_url: str, tmp_path: Path, pki: Pki, keys: KeyPool
) -> None:
    """Four bank processes (each its own pool, key directory and domain) start on one empty
    database at once: every denomination gets exactly one keyset."""
    setup = Database.open(db_url)
    setup.migrate(MIGRATIONS, component="bank")
    setup.close()
    clock = TestClock()

    def start(i: int) -> int:
        db = Database.open(db_url)
        try:
            issuer = TestIssuer()
            bank = BankDomain(
                db,
                bank_key=pki.bank.key,
                bank_cert=load_certificate(pki.bank.cert_pem),
                central_bank_root=load_certificate(pki.root_pem),
                keys_dir=tmp_path / f"worker-{i}" / "keysets",
                issuer_secrets=issuer,
                membership=issuer,
                reporter=RecordingReporter(),
                opener_public=issuer.hop,
                policy=test_policy(),
                clock=clock,
                keygen=keys.keygen_for_bank(),
            )
            return len(bank.ensure_keysets())
        finally:
            db.close()

    made = _run_processes(4, start)
    assert all(isinstance(n, int) for n in made), made
    assert sum(made) == len(DENOMINATIONS)
    with Database.open(db_url) as db, db.read() as tx:
        values = sorted(int(r["value"]) for r in tx.fetchall("SELECT value FROM keyset"))
    assert values == sorted(DENOMINATIONS)


# --- item 5: PostgreSQL booking without retries ----------------------------------------------


@pytest.fixture
def pg_world(pg_url: str, tmp_path: Path, pki: Pki, keys: KeyPool) -> Iterator[BankWorld]:
    w = make_world(db_url=pg_url, data_dir=tmp_path, pki=pki, keys=keys, policy=test_policy())
    yield w
    w.bank.ledger_check()
    w.db.close()


def test_eight_concurrent_depositors_need_no_retry_on_postgresql(pg_world: BankWorld) -> None:
    w = pg_world
    jobs = []
    for i in range(CLIENTS):
        member = w.customer(f"cust-{i}", 100)
        for j in range(2):
            coins = w.withdraw(member, 8)
            shop = "shop-a" if (i + j) % 2 else "shop-b"
            request = w.request(shop, 8)
            jobs.append((shop, w.signed_deposit(shop, request, w.spends(member, coins, request))))
    before = w.db.retries

    def client(i: int) -> list[str]:
        receipts = []
        for shop, signed in jobs[i::CLIENTS]:
            receipt = w.bank.deposit(signed, w.pki.merchants[shop].cert_pem)
            receipts.append(str(receipt["body"]["deposit_id"]))
        return receipts

    results = _run_all(CLIENTS, client)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []  # in particular no 503 storage.serialization_failure
    assert sum(len(r) for r in results) == len(jobs)
    assert w.db.retries - before == 0
    assert w.bank.account("shop-a").balance + w.bank.account("shop-b").balance == 8 * len(jobs)


def test_racing_double_spends_book_once_without_retry(
    db_url: str, tmp_path: Path, pki: Pki, keys: KeyPool
) -> None:
    """The same coin at eight deposits at once: one receipt, seven 409 bank.double_spend."""
    w = make_world(db_url=db_url, data_dir=tmp_path, pki=pki, keys=keys, policy=test_policy())
    try:
        member = w.customer("alice", 100)
        coins = w.withdraw(member, 10)
        signed = []
        for i in range(CLIENTS):
            shop = "shop-a" if i % 2 else "shop-b"
            request = w.request(shop, 10)
            signed.append((shop, w.signed_deposit(shop, request, w.spends(member, coins, request))))
        before = w.db.retries

        def client(i: int) -> str:
            shop, doc = signed[i]
            w.bank.deposit(doc, w.pki.merchants[shop].cert_pem)
            return "ok"

        results = _run_all(CLIENTS, client)
        codes = sorted(r if isinstance(r, str) else getattr(r, "code", repr(r)) for r in results)
        assert codes == ["bank.double_spend"] * (CLIENTS - 1) + ["ok"]
        assert w.db.retries - before == 0
        with w.db.read() as tx:
            assert tx.fetchval("SELECT COUNT(*) AS n FROM spent_coin") == len(coins)
            assert tx.fetchval("SELECT COUNT(*) AS n FROM spend_transcript") == len(coins)
        w.bank.ledger_check()
    finally:
        w.db.close()


def test_spent_table_is_hash_partitioned_on_postgresql(pg_world: BankWorld) -> None:
    with pg_world.db.read() as tx:
        kind = tx.fetchval("SELECT relkind FROM pg_class WHERE relname = 'spent_coin'")
        parts = tx.fetchval(
            "SELECT COUNT(*) AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent"
            " WHERE c.relname = 'spent_coin'"
        )
    assert kind == "p" and parts == spending.SPENT_PARTITIONS


def test_transcript_serial_is_unique(pg_world: BankWorld) -> None:
    w = pg_world
    member = w.customer("alice", 100)
    w.pay(member, "shop-a", 1)
    from ecash_tpm.storage import UniqueViolationError

    with pytest.raises(UniqueViolationError), w.db.transaction() as tx:
        tx.execute(
            "INSERT INTO spend_transcript (deposit_id, sigma, merchant_id, keyset_id, preq,"
            " body, created_at) SELECT deposit_id, sigma, merchant_id, keyset_id, preq, body,"
            " created_at FROM spend_transcript"
        )


def test_deposit_that_would_overdraw_a_keyset_is_refused(
    tmp_path: Path, pki: Pki, keys: KeyPool
) -> None:
    """A damaged ledger (a keyset that issued nothing) cannot pay a merchant: 409 and nothing
    booked."""
    w = make_world(
        db_url=sqlite_url(tmp_path / "bank.db"),
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(),
    )
    try:
        member = w.customer("alice", 100)
        coins = w.withdraw(member, 1)
        account = w.keyset(1).ledger_account
        with w.db.transaction() as tx:  # simulate the damage: the withdrawal's keyset line
            tx.execute("DELETE FROM ledger_entry WHERE account = :a", {"a": account})
        request = w.request("shop-a", 1)
        with pytest.raises(E.KeysetOverdrawnError) as err:
            w.deposit("shop-a", request, w.spends(member, coins, request))
        assert err.value.code == "bank.keyset_overdrawn" and err.value.http_status == 409
        assert w.bank.account("shop-a").balance == 0
    finally:
        w.db.close()


# --- item 6: bounded waits -------------------------------------------------------------------


def test_held_sqlite_write_lock_gives_503_within_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database.open(sqlite_url(path), lock_timeout_s=0.3)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageBusyError) as err, db.transaction():
            pass
        assert err.value.code == "storage.busy" and err.value.http_status == 503
        assert err.value.detail["retry_after"] == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.close()


def test_held_postgresql_row_lock_gives_503_within_the_bound(pg_url: str) -> None:
    db = Database.open(pg_url, lock_timeout_s=0.3)
    other = Database.open(pg_url)
    try:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            tx.execute("INSERT INTO t (k) VALUES (1)")
        with other.transaction(isolation="read_committed") as held:
            held.execute("UPDATE t SET k = 1 WHERE k = 1")
            with (
                pytest.raises(StorageBusyError) as err,
                db.transaction(isolation="read_committed") as tx,
            ):
                tx.execute("UPDATE t SET k = 1 WHERE k = 1")
        assert err.value.code == "storage.serialization_failure"
        assert err.value.http_status == 503
    finally:
        other.close()
        db.close()


def test_advisory_serial_lock_is_bounded_too(pg_url: str) -> None:
    db = Database.open(pg_url, lock_timeout_s=0.3)
    other = Database.open(pg_url)
    serial = secrets.token_bytes(32)
    try:
        with other.transaction(isolation="read_committed") as held:
            spending.lock_serials(held, [serial])
            with pytest.raises(StorageBusyError), db.transaction(isolation="read_committed") as tx:
                spending.lock_serials(tx, [serial])
    finally:
        other.close()
        db.close()


def test_start_up_integrity_check_refuses_a_damaged_spent_index(
    tmp_path: Path, pki: Pki, keys: KeyPool
) -> None:
    w = make_world(
        db_url=sqlite_url(tmp_path / "bank.db"),
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(),
    )
    try:
        member = w.customer("alice", 100)
        w.pay(member, "shop-a", 3)
        spending.check_integrity(w.db)  # a healthy database passes
        with w.db.transaction() as tx:  # damage: a transcript that names another serial
            first = tx.fetchval("SELECT MIN(transcript_id) AS t FROM spend_transcript")
            tx.execute(
                "UPDATE spend_transcript SET sigma = :s WHERE transcript_id = :t",
                {"s": secrets.token_bytes(32), "t": first},
            )
        with pytest.raises(IntegrityCheckError) as err:
            spending.check_integrity(w.db)
        assert err.value.code == "storage.integrity_failed" and err.value.http_status == 503
        assert err.value.detail["spent_without_matching_transcript"]
    finally:
        w.db.close()


def test_partitioning_keeps_the_spent_rows_of_an_existing_bank(pg_url: str) -> None:
    """The PostgreSQL-only migration moves an existing spent table into the partitions."""
    sigma = secrets.token_bytes(32)
    with Database.open(pg_url) as db:
        db.migrate(MIGRATIONS, component="bank")
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO bank_account (account_id, kind, currency, created_at)"
                " VALUES ('shop', 'merchant', 'EUR', 1)"
            )
            tx.execute(
                "INSERT INTO merchant (merchant_id, cert_pem, key_id, updated_at)"
                " VALUES ('shop', 'pem', 'k', 1)"
            )
            tx.execute(
                "INSERT INTO keyset (keyset_id, value, currency, withdraw_from, withdraw_until,"
                " deposit_until, public_key, variant, descriptor, key_file, created_at)"
                " VALUES (:k, 1, 'EUR', 1, 2, 3, :k, 'v', '{}', 'f', 1)",
                {"k": b"k" * 32},
            )
            txn = tx.insert_returning_id(
                "INSERT INTO ledger_txn (kind, ref, created_at) VALUES ('deposit', 'd1', 1)",
                id_column="txn_id",
            )
            tx.execute(
                "INSERT INTO deposit (deposit_id, merchant_id, content_digest, preq, amount,"
                " currency, receipt, txn_id, created_at)"
                " VALUES ('d1', 'shop', :b, :b, 1, 'EUR', '', :t, 1)",
                {"b": b"x", "t": txn},
            )
            tid = tx.insert_returning_id(
                "INSERT INTO spend_transcript (deposit_id, sigma, merchant_id, keyset_id, preq,"
                " body, created_at) VALUES ('d1', :s, 'shop', :k, :b, '{}', 1)",
                {"s": sigma, "k": b"k" * 32, "b": b"x"},
                id_column="transcript_id",
            )
            tx.execute(
                "INSERT INTO spent_coin (sigma, keyset_id, transcript_id, deposit_id, spent_at)"
                " VALUES (:s, :k, :t, 'd1', 1)",
                {"s": sigma, "k": b"k" * 32, "t": tid},
            )
        assert db.migrate(spending.migrations(db.backend), component=spending.COMPONENT) == [1, 2]
        with db.read() as tx:
            assert tx.fetchval("SELECT relkind FROM pg_class WHERE relname = 'spent_coin'") == "p"
            row = tx.fetchone("SELECT sigma, transcript_id FROM spent_coin")
        assert row is not None and bytes(row["sigma"]) == sigma and row["transcript_id"] == tid
        with db.transaction(isolation="read_committed") as tx:  # the primary key still holds
            again = spending.mark_spent(
                tx,
                sigma=sigma,
                keyset_id=b"k" * 32,
                deposit_id="d1",
                merchant_id="shop",
                preq=b"x",
                body_json="{}",
                now=2,
            )
        assert again is None


def test_held_lock_costs_one_bound_not_twenty_retries(tmp_path: Path) -> None:
    """The issue's 102 s: 20 retries of a 5 s busy wait. Now a lock wait that used up the
    bound is not retried (counted by the retry counter, not timed)."""
    path = tmp_path / "x.db"
    db = Database.open(sqlite_url(path), lock_timeout_s=0.3)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageBusyError) as err:
            db.run_in_transaction(lambda tx: tx.execute("CREATE TABLE t (x INTEGER)"))
        assert err.value.code == "storage.busy"
        assert db.retries == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.close()

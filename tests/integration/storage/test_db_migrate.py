"""``ecash-tpm <party> db migrate --to URL`` (issue 15): move a party with data to another backend.

The trap this closes: ``bank init --force`` on a new database made new keysets, and every coin
issued before became ``coin.unknown_keyset``. Here a bank with real history (withdrawals,
deposits, a refused double spend, verification failures, a coin still in a wallet) is moved
from SQLite to a throwaway PostgreSQL; the target must hold the same rows (counts and
digests), pass the bank's ledger check and the supervision department's audit, and a bank
started on it must accept the coin withdrawn before the move. A target with data is refused.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, test_policy
from support.coinmint import KeyPool, Member, Pki, make_spend
from support.swapworld import swap

from ecash_tpm.bank import errors as E
from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.bank.ledger import ledger_check
from ecash_tpm.bank.store import MIGRATIONS
from ecash_tpm.bank.store.redeems import MIGRATIONS as REDEEMS
from ecash_tpm.bank.store.refunds import MIGRATIONS as REFUNDS
from ecash_tpm.bank.store.swap_reports import MIGRATIONS as SWAP_REPORTS
from ecash_tpm.bank.store.swaps import MIGRATIONS as SWAPS
from ecash_tpm.cli import main as cli_main
from ecash_tpm.cli.db_migrate import PARTIES
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.protocol.redeem import RedeemRequest
from ecash_tpm.storage import Database, sqlite_url
from ecash_tpm.storage.copy import plan_tables
from ecash_tpm.supervision.audit import run_audit

#: What ``bank db migrate`` moves: the ledger's component with the swaps', refunds' and redeems'
#: (issue 12).
BANK_COMPONENTS = [
    ("bank", MIGRATIONS),
    ("bank_swap", SWAPS),
    ("bank_refunds", REFUNDS),
    ("bank_redeem", REDEEMS),
    ("bank_swap_reports", SWAP_REPORTS),  # §9.3: double spends of swapped coins
]


@dataclass
class MovedBank:
    """A bank built on SQLite and closed, plus what a test needs to use it after a move."""

    world: BankWorld
    data_dir: Path
    url: str
    counts: dict[str, int]
    kept: tuple[Member, list[Coin]]  # coins withdrawn before the move, still in the wallet
    max_txn: int


def _counts(path: Path) -> dict[str, int]:
    """Rows per table, read with sqlite3 directly (not with the code under test)."""
    con = sqlite3.connect(path)
    try:
        names = [p.name for p in plan_tables(BANK_COMPONENTS)]
        return {n: con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MovedBank]:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    data_dir = tmp_path_factory.mktemp("bank")
    db_path = data_dir / "bank.db"
    w = make_world(db_url=sqlite_url(db_path), data_dir=data_dir, pki=pki, keys=KeyPool(4))
    alice, bob = w.customer("alice", 100), w.customer("bob", 100)
    w.pay(alice, "shop-a", 7)
    w.pay(bob, "shop-b", 10)
    kept = w.withdraw(alice, 8)  # stays in the wallet across the move
    coin = w.withdraw(bob, 5)
    req_a, req_b = w.request("shop-a", 5), w.request("shop-b", 5)
    w.deposit("shop-a", req_a, w.spends(bob, coin, req_a))
    with pytest.raises(E.DoubleSpendError):
        w.deposit("shop-b", req_b, w.spends(bob, coin, req_b))
    _, ones = swap(w, bob, w.withdraw(bob, 2), [1, 1])  # issue 12: swaps move too
    req_s = w.request("shop-b", 2)
    w.deposit("shop-b", req_s, w.spends(bob, ones, req_s))
    three = w.withdraw(bob, 3)  # issue 12 (#5): a redeem into bob's account moves too
    doc = w.bank.redeem_request("bob", 3)["request"]
    rpreq = RedeemRequest.from_body(doc["body"]).preq
    spends = [make_spend(bob, c, rpreq, w.issuer.hop).to_dict() for c in three]
    w.bank.redeem("bob", {"request": doc, "spends": spends})
    for _ in range(2):
        with pytest.raises(E.InvalidCredentialsError):
            w.bank.login("bob", "not the password", "000000")
    ledger_check(w.db)
    with w.db.read() as tx:
        max_txn = int(tx.fetchval("SELECT MAX(txn_id) FROM ledger_txn"))
    w.db.close()
    try:
        yield MovedBank(w, data_dir, sqlite_url(db_path), _counts(db_path), (alice, kept), max_txn)
    finally:
        pki.close()


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    status = cli_main([*argv, "--json"])
    return status, json.loads(capsys.readouterr().out)


def _migrate(
    capsys: pytest.CaptureFixture[str], mb: MovedBank, source: str, target: str
) -> tuple[int, dict[str, Any]]:
    return _cli(
        capsys,
        *("bank", "db", "migrate", "--data-dir", str(mb.data_dir)),
        *("--database-url", source, "--to", target, "--batch-size", "3"),
    )


def _bank_on(db: Database, mb: MovedBank) -> BankDomain:
    """The bank as ``bank serve`` would start it on ``db``: same key files, no new keysets."""
    w = mb.world
    return BankDomain(
        db,
        bank_key=w.pki.bank.key,
        bank_cert=load_certificate(w.pki.bank.cert_pem),
        central_bank_root=load_certificate(w.pki.root_pem),
        keys_dir=mb.data_dir / "keysets",
        issuer_secrets=w.issuer,
        membership=w.issuer,
        reporter=w.reporter,
        opener_public=w.issuer.hop,
        policy=test_policy(),
        clock=w.clock,
    )


def test_a_bank_with_data_moves_from_sqlite_to_postgresql(
    moved: MovedBank, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    mb, w = moved, moved.world
    with Database.open(pg_url) as pre:  # an empty schema is an acceptable target
        pre.migrate(MIGRATIONS, component="bank")
    status, out = _migrate(capsys, mb, mb.url, pg_url)
    assert status == 0, out
    assert out["ok"] is True and out["party"] == "bank"
    assert {t["table"]: t["rows"] for t in out["tables"]} == mb.counts
    assert out["rows_total"] == sum(mb.counts.values()) > 0
    assert out["schema_versions"] == {name: len(m) for name, m in BANK_COMPONENTS}
    assert out["checks"]["ledger"]["outstanding_total"] == 8
    assert out["key_files"]["moved"] is False
    assert out["key_files"]["data_dir"] == str(mb.data_dir)

    with Database.open(pg_url) as target:
        with target.read() as tx:  # independent recount on the target
            for table, n in mb.counts.items():
                assert tx.fetchval(f'SELECT COUNT(*) AS n FROM "{table}"') == n, table
        assert ledger_check(target)["outstanding_total"] == 8

    report = run_audit(
        pg_url,
        bank_cert=w.pki.bank.cert_pem,
        central_bank_root=w.pki.root_pem,
        opener_public=w.issuer.hop,
        issuer_secrets=w.issuer,
        issuer_public={e: s.public for e, s in w.issuer.secrets.items()},
        now=w.clock(),
    )
    assert report.ok, report.summary()
    assert report.counts["double_spend_reports"] == 1 and report.skipped == []
    assert report.outstanding_total() == 8

    # a second move into the now-filled database is refused, and changes nothing
    status, refused = _migrate(capsys, mb, mb.url, pg_url)
    assert status == 1 and refused["ok"] is False
    assert refused["error"]["code"] == "storage.copy_target_not_empty"
    assert refused["error"]["detail"]["tables"]["ledger_txn"] == mb.counts["ledger_txn"]

    # and back again (PostgreSQL -> SQLite): the same digests, table by table
    back = mb.data_dir.parent / "back.db"
    status, again = _migrate(capsys, mb, pg_url, sqlite_url(back))
    assert status == 0, again
    assert again["tables"] == out["tables"]

    # the bank restarted on PostgreSQL knows the keysets: a coin from before the move deposits
    with Database.open(pg_url) as target:
        bank = _bank_on(target, mb)
        alice, coins = mb.kept
        request = w.request("shop-b", 8)
        signed = w.signed_deposit("shop-b", request, w.spends(alice, coins, request))
        receipt = bank.deposit(signed, w.pki.merchants["shop-b"].cert_pem)
        assert receipt["body"]["amount"] == 8, receipt
        # the id sequences continue after the copied ids
        with target.read() as tx:
            new_txn = int(tx.fetchval("SELECT MAX(txn_id) FROM ledger_txn"))
        assert new_txn > mb.max_txn
        assert ledger_check(target)["outstanding_total"] == 0


def test_a_target_with_data_or_the_source_itself_is_refused(
    moved: MovedBank, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = sqlite_url(tmp_path / "new" / "bank.db")
    status, first = _migrate(capsys, moved, moved.url, target)
    assert status == 0, first
    assert first["rows_total"] == sum(moved.counts.values())

    status, out = _migrate(capsys, moved, moved.url, target)
    assert (status, out["error"]["code"]) == (1, "storage.copy_target_not_empty")
    assert _counts(tmp_path / "new" / "bank.db") == moved.counts  # untouched

    status, out = _migrate(capsys, moved, moved.url, moved.url)
    assert (status, out["error"]["code"]) == (1, "storage.copy_same_database")

    missing = sqlite_url(tmp_path / "nowhere" / "bank.db")
    status, out = _migrate(capsys, moved, missing, sqlite_url(tmp_path / "x.db"))
    assert (status, out["error"]["code"]) == (1, "storage.copy_no_source")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("party", sorted(PARTIES))
def test_every_party_with_a_database_has_db_migrate(
    party: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    components = PARTIES[party].components()
    source = sqlite_url(tmp_path / "src" / f"{party}.db")
    with Database.open(source) as db:
        for name, migrations in components:
            db.migrate(migrations, component=name)
    status, out = _cli(
        capsys,
        *(party, "db", "migrate", "--data", str(tmp_path / "src")),
        *("--to", sqlite_url(tmp_path / "dst" / f"{party}.db")),
    )
    assert status == 0, out
    assert [t["table"] for t in out["tables"]] == [p.name for p in plan_tables(components)]
    assert out["rows_total"] == 0
    assert out["schema_versions"] == {name: len(list(m)) for name, m in components}

"""The supervision audit re-checks refunds (issue 12, item 3): a bank with a full and a partial
refund passes and its figures agree with the bank's ledger check and money-supply lines; each
tampering with a refund table (``refund``, ``refund_coin``, ``refund_item``) or with a refund's
ledger transaction is reported."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import make_world, refused
from support.coinmint import KeyPool, Pki
from support.refund_world import refund, refundable_payment

from ecash_tpm.bank.supply import outstanding_per_keyset
from ecash_tpm.protocol.refunds import RefundNotAllowedError
from ecash_tpm.storage import sqlite_url
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.supervision.audit_report import VIOLATION_KINDS, AuditReport


@dataclass
class RefundAuditWorld:
    db_path: Path
    now: int
    hop: Any
    issuer: Any
    pki: Pki
    ledger: dict[str, Any]
    supply_total: int
    full_refund: str
    partial_refund: str

    def audit(self, path: Path | None = None) -> AuditReport:
        return run_audit(
            sqlite_url(path or self.db_path),
            bank_cert=self.pki.bank.cert_pem,
            central_bank_root=self.pki.root_pem,
            opener_public=self.hop,
            issuer_secrets=self.issuer,
            now=self.now,
        )


@pytest.fixture(scope="module")
def rw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefundAuditWorld]:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    data_dir = tmp_path_factory.mktemp("bank")
    db_path = data_dir / "bank.db"
    w = make_world(db_url=sqlite_url(db_path), data_dir=data_dir, pki=pki, keys=KeyPool(4))
    alice = w.customer("alice", 100)
    receipt, coins = refundable_payment(w, alice, "shop-a", 7)
    full = refund(w, alice, "shop-a", receipt, coins, 7)
    receipt, coins = refundable_payment(w, alice, "shop-a", 5)
    partial = refund(w, alice, "shop-a", receipt, coins, 2)
    coins = w.withdraw(alice, 3)  # paid with a request without refund_deadline
    request = w.request("shop-a", 3)
    plain = w.deposit("shop-a", request, w.spends(alice, coins, request))
    with refused(RefundNotAllowedError, "refund.not_refundable"):
        refund(w, alice, "shop-a", plain, coins, 1)
    ledger = w.bank.ledger_check()
    supply = sum(
        line["outstanding_value"] for line in outstanding_per_keyset(w.db, as_of=w.clock())
    )
    now = w.clock()
    w.db.close()
    yield RefundAuditWorld(
        db_path,
        now,
        w.issuer.hop,
        w.issuer,
        pki,
        ledger,
        supply,
        full.refund_id,
        partial.refund_id,
    )
    pki.close()


def test_clean_bank_with_refunds_passes_the_audit(rw: RefundAuditWorld) -> None:
    report = rw.audit()
    assert report.ok, report.summary()
    assert report.counts["refunds"] == 2 and report.counts["refund_items"] == 3  # 5+2, 2
    # ledger, audit and money-supply figures agree after refunds
    assert report.outstanding_total() == rw.ledger["outstanding_total"] == rw.supply_total
    ours = {k.keyset_id: k for k in report.keysets}
    assert all(k.issued_count - k.spent_count == k.outstanding_count for k in ours.values())


Tamper = Callable[[sqlite3.Connection, RefundAuditWorld], None]


def _refund_txn(con: sqlite3.Connection, refund_id: str) -> int:
    (txn,) = con.execute("SELECT txn_id FROM refund WHERE refund_id = ?", (refund_id,)).fetchone()
    return int(txn)


def tamper_refund_amount(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    con.execute("UPDATE refund SET amount = amount + 1 WHERE refund_id = ?", (rw.partial_refund,))


def tamper_permission_signature(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    (perm,) = con.execute(
        "SELECT permission FROM refund WHERE refund_id = ?", (rw.full_refund,)
    ).fetchone()
    con.execute(
        "UPDATE refund SET permission = ? WHERE refund_id = ?",
        (perm.replace('"amount": 7', '"amount": 8'), rw.full_refund),
    )


def tamper_refund_coin_removed(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    con.execute(
        "DELETE FROM refund_coin WHERE rowid = (SELECT MIN(rowid) FROM refund_coin"
        " WHERE refund_id = ?)",
        (rw.full_refund,),
    )


def tamper_refund_coin_swapped(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    con.execute(
        "UPDATE refund_coin SET sigma = ? WHERE refund_id = ?",
        (secrets.token_bytes(32), rw.partial_refund),
    )


def tamper_refund_item_signature(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    (sig,) = con.execute(
        "SELECT blind_sig FROM refund_item WHERE refund_id = ? AND idx = 0", (rw.full_refund,)
    ).fetchone()
    flipped = bytes([sig[0] ^ 1]) + bytes(sig[1:])
    con.execute(
        "UPDATE refund_item SET blind_sig = ? WHERE refund_id = ? AND idx = 0",
        (flipped, rw.full_refund),
    )


def tamper_refund_item_extra(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    con.execute(
        "INSERT INTO refund_item (refund_id, idx, keyset_id, blinded_msg, blind_sig)"
        " SELECT refund_id, 9, keyset_id, blinded_msg, blind_sig FROM refund_item"
        " WHERE refund_id = ? AND idx = 0",
        (rw.partial_refund,),
    )


def tamper_refund_proof(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    (digest,) = con.execute(
        "SELECT claim_digest FROM refund WHERE refund_id = ?", (rw.full_refund,)
    ).fetchone()
    con.execute(
        "UPDATE refund SET claim_digest = ? WHERE refund_id = ?",
        (bytes([digest[0] ^ 1]) + bytes(digest[1:]), rw.full_refund),
    )


def tamper_refund_after_deadline(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    con.execute(
        "UPDATE refund SET claimed_at = claimed_at + 86400 WHERE refund_id = ?",
        (rw.partial_refund,),
    )


def tamper_refund_ledger(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    txn = _refund_txn(con, rw.full_refund)
    con.execute(
        "UPDATE ledger_entry SET amount = amount + 1"
        " WHERE txn_id = ? AND account LIKE 'merchant:%'",
        (txn,),
    )
    con.execute(
        "UPDATE ledger_entry SET amount = amount - 1 WHERE entry_id = (SELECT MIN(entry_id)"
        " FROM ledger_entry WHERE txn_id = ? AND account LIKE 'coins-outstanding:%')",
        (txn,),
    )


def tamper_refund_deleted(con: sqlite3.Connection, rw: RefundAuditWorld) -> None:
    con.execute("DELETE FROM refund WHERE refund_id = ?", (rw.full_refund,))


@pytest.mark.parametrize(
    ("tamper", "kinds"),
    [
        (tamper_refund_amount, {"refund.bad_permission", "refund.amount_mismatch"}),
        (tamper_permission_signature, {"refund.bad_permission"}),
        (tamper_refund_coin_removed, {"refund.bad_permission"}),
        (tamper_refund_coin_swapped, {"refund.bad_permission", "refund.unknown_coin"}),
        (tamper_refund_item_signature, {"refund.bad_blind_signature"}),
        (tamper_refund_item_extra, {"refund.amount_mismatch", "supply.withdrawn_mismatch"}),
        (tamper_refund_proof, {"refund.bad_proof"}),
        (tamper_refund_after_deadline, {"refund.after_deadline"}),
        (tamper_refund_ledger, {"refund.ledger_mismatch"}),
        (tamper_refund_deleted, {"refund.amount_mismatch", "ledger.orphan_txn"}),
    ],
    ids=lambda v: v.__name__.removeprefix("tamper_") if callable(v) else None,
)
def test_refund_tampering_is_reported(
    rw: RefundAuditWorld, tmp_path: Path, tamper: Tamper, kinds: set[str]
) -> None:
    copy = tmp_path / "tampered.db"
    copy.write_bytes(rw.db_path.read_bytes())
    con = sqlite3.connect(copy)
    try:
        tamper(con, rw)
        con.commit()
    finally:
        con.close()
    report = rw.audit(copy)
    assert not report.ok
    assert kinds <= report.kinds(), report.summary()
    assert report.kinds() <= set(VIOLATION_KINDS), report.kinds() - set(VIOLATION_KINDS)


def test_refunds_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """The same tables, booking and audit on PostgreSQL (SERIALIZABLE money transactions)."""
    pki = Pki.create(tmp_path / "pki", merchants=("shop-a",))
    w = make_world(db_url=pg_url, data_dir=tmp_path / "bank", pki=pki, keys=KeyPool(4))
    try:
        alice = w.customer("alice", 100)
        receipt, coins = refundable_payment(w, alice, "shop-a", 7)
        refund(w, alice, "shop-a", receipt, coins, 5)
        ledger = w.bank.ledger_check()
        report = run_audit(
            w.db,
            bank_cert=pki.bank.cert_pem,
            central_bank_root=pki.root_pem,
            opener_public=w.issuer.hop,
            issuer_secrets=w.issuer,
            now=w.clock(),
        )
        assert report.ok, report.summary()
        assert report.counts["refunds"] == 1
        assert report.outstanding_total() == ledger["outstanding_total"] == 5
    finally:
        w.db.close()
        pki.close()

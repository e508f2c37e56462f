"""The supervision audit after redeems (issue 12 #5, docs/protocol.md 9.4): a clean bank with
redeems passes and agrees with the ledger, and a tampered redeem request, redeem, redeemed coin
or redeem report is reported."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world
from support.coinmint import KeyPool, Member, Pki, make_spend

from ecash_tpm.bank import errors as E
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.protocol.redeem import RedeemRequest
from ecash_tpm.storage import sqlite_url
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.supervision.audit_report import VIOLATION_KINDS, AuditReport


@dataclass
class RedeemAudit:
    world: BankWorld
    db_path: Path
    now: int
    ledger: dict[str, Any]
    request_ids: list[str]

    def audit(self, db: str | None = None) -> AuditReport:
        issuer = self.world.issuer
        return run_audit(
            db or sqlite_url(self.db_path),
            bank_cert=self.world.pki.bank.cert_pem,
            central_bank_root=self.world.pki.root_pem,
            opener_public=issuer.hop,
            issuer_secrets=issuer,
            issuer_public={e: s.public for e, s in issuer.secrets.items()},
            now=self.now,
        )


def _redeem(w: BankWorld, member: Member, coins: list[Coin], amount: int) -> str:
    doc = w.bank.redeem_request(member.account_id, amount)["request"]
    req = RedeemRequest.from_body(doc["body"])
    spends = [make_spend(member, c, req.preq, w.issuer.hop).to_dict() for c in coins]
    w.bank.redeem(member.account_id, {"request": doc, "spends": spends})
    return req.request_id


@pytest.fixture(scope="module")
def ra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedeemAudit]:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    data_dir = tmp_path_factory.mktemp("bank")
    db_path = data_dir / "bank.db"
    w = make_world(db_url=sqlite_url(db_path), data_dir=data_dir, pki=pki, keys=KeyPool(4))
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 17)
    first = _redeem(w, alice, [c for c in coins if w.bank.keysets.get(c.keyset_id).value == 10], 10)
    rest = [c for c in coins if w.bank.keysets.get(c.keyset_id).value != 10]
    second = _redeem(w, alice, rest[:1], w.bank.keysets.get(rest[0].keyset_id).value)
    req = w.request("shop-a", 10)  # a redeemed coin paid again: refused and reported
    redeemed = [c for c in coins if w.bank.keysets.get(c.keyset_id).value == 10]
    with pytest.raises(E.DoubleSpendError):
        w.deposit("shop-a", req, w.spends(alice, redeemed, req))
    assert len(w.reporter.reports) == 1
    ledger = w.bank.ledger_check()
    w.db.close()
    yield RedeemAudit(w, db_path, w.clock(), ledger, [first, second])
    pki.close()


def test_clean_bank_with_redeems_passes_and_agrees_with_the_ledger(ra: RedeemAudit) -> None:
    report = ra.audit()
    assert report.ok, report.summary()
    assert report.counts["redeems"] == 2 and report.counts["redeem_inputs"] == 2
    assert report.outstanding_total() == ra.ledger["outstanding_total"]
    assert ra.ledger["customers_total"] == 100 - report.outstanding_total()


def _tamper(ra: RedeemAudit, tmp_path: Path, sql: str, params: dict[str, Any]) -> AuditReport:
    copy = tmp_path / "tampered.db"
    shutil.copyfile(ra.db_path, copy)
    con = sqlite3.connect(copy)
    try:
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()
    report = ra.audit(sqlite_url(copy))
    assert report.kinds() <= set(VIOLATION_KINDS), report.kinds() - set(VIOLATION_KINDS)
    json.loads(report.to_json())
    return report


Tamper = Callable[[RedeemAudit], tuple[str, dict[str, Any]]]


def _flip_proof(ra: RedeemAudit) -> tuple[str, dict[str, Any]]:
    con = sqlite3.connect(ra.db_path)
    try:
        sigma, body = con.execute("SELECT sigma, body FROM redeem_input LIMIT 1").fetchone()
    finally:
        con.close()
    doc = json.loads(body)
    s = doc["spend"]["proof"]["s"]
    doc["spend"]["proof"]["s"] = ("B" if s[0] != "B" else "C") + s[1:]
    return "UPDATE redeem_input SET body = :b WHERE sigma = :s", {"b": json.dumps(doc), "s": sigma}


def _forge_request(ra: RedeemAudit) -> tuple[str, dict[str, Any]]:
    con = sqlite3.connect(ra.db_path)
    try:
        (doc_json,) = con.execute(
            "SELECT doc FROM redeem_request WHERE request_id = :r", {"r": ra.request_ids[0]}
        ).fetchone()
    finally:
        con.close()
    doc = json.loads(doc_json)
    doc["body"]["amount"] += 5  # the bank's signature no longer covers it
    return (
        "UPDATE redeem_request SET doc = :d WHERE request_id = :r",
        {"d": json.dumps(doc), "r": ra.request_ids[0]},
    )


@pytest.mark.parametrize(
    ("tamper", "kinds"),
    [
        (
            lambda ra: ("UPDATE redeem_request SET account_id = 'mallory'", {}),
            {"redeem.row_mismatch"},
        ),
        (_forge_request, {"redeem.request_invalid"}),
        (
            lambda ra: (
                "DELETE FROM redeem_request WHERE request_id = :r",
                {"r": ra.request_ids[0]},
            ),
            {"redeem.unknown_request"},
        ),
        (
            lambda ra: ("UPDATE redeem SET amount = amount + 1", {}),
            {"redeem.amount_mismatch", "redeem.row_mismatch"},
        ),
        (
            lambda ra: ("UPDATE redeem SET account_id = 'mallory'", {}),
            {"redeem.row_mismatch", "redeem.ledger_mismatch"},
        ),
        (
            lambda ra: ("DELETE FROM redeem WHERE request_id = :r", {"r": ra.request_ids[0]}),
            {"ledger.orphan_txn"},
        ),
        (
            lambda ra: ("UPDATE redeem_input SET value = value * 2", {}),
            {"redeem.row_mismatch", "redeem.amount_mismatch"},
        ),
        (
            lambda ra: ("DELETE FROM redeem_input WHERE request_id = :r", {"r": ra.request_ids[1]}),
            {"redeem.amount_mismatch", "supply.deposited_mismatch"},
        ),
        (_flip_proof, {"spend.bad_proof"}),
        (
            lambda ra: ("UPDATE redeem_report SET sigma = :s", {"s": b"\x07" * 32}),
            {"redeem_report.unknown_coin"},
        ),
    ],
    ids=[
        "request_account",
        "request_forged",
        "request_deleted",
        "redeem_amount",
        "redeem_account",
        "redeem_deleted",
        "input_value",
        "input_deleted",
        "input_proof",
        "report_serial",
    ],
)
def test_tampered_redeems_are_reported(
    ra: RedeemAudit, tmp_path: Path, tamper: Tamper, kinds: set[str]
) -> None:
    sql, params = tamper(ra)
    report = _tamper(ra, tmp_path, sql, params)
    assert not report.ok
    assert kinds <= report.kinds(), report.summary()

"""The supervision audit after swaps (issue 12, docs/protocol.md 9.3): a clean bank with swaps
passes, the audit's outstanding figures equal the bank's ledger and its supply report, and a
tampered swap, swap input, swap output or swap double-spend report is reported."""

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
from support.coinmint import KeyPool, Pki
from support.swapworld import swap

from ecash_tpm.bank import errors as E
from ecash_tpm.bank.supply import supply_report_body
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.protocol.supply import check_supply_report
from ecash_tpm.storage import sqlite_url
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.supervision.audit_report import VIOLATION_KINDS, AuditReport


@dataclass
class SwapAudit:
    world: BankWorld
    db_path: Path
    now: int
    ledger: dict[str, Any]
    supply: dict[str, Any]  # the money-supply report's body
    swap_ids: list[str]

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


@pytest.fixture(scope="module")
def sa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwapAudit]:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    data_dir = tmp_path_factory.mktemp("bank")
    db_path = data_dir / "bank.db"
    w = make_world(db_url=sqlite_url(db_path), data_dir=data_dir, pki=pki, keys=KeyPool(4))
    alice = w.customer("alice", 100)
    ten = w.withdraw(alice, 10)  # one 10
    first, change = swap(w, alice, ten, [5, 2, 2, 1])
    assert sorted(w.bank.keysets.get(c.keyset_id).value for c in change) == [1, 2, 2, 5]
    second, _ = swap(w, alice, change[:2], [5, 1, 1])  # 5 + 2 -> 5 + 1 + 1
    req = w.request("shop-a", 2)
    w.deposit("shop-a", req, w.spends(alice, [change[2]], req))  # a change coin, deposited
    with pytest.raises(E.DoubleSpendError):  # a swapped coin cannot be deposited
        req = w.request("shop-a", 10)
        w.deposit("shop-a", req, w.spends(alice, ten, req))
    assert [r.status for r in w.bank.swap_reports.all()] == ["sent"]  # §9.3: and is reported
    ledger = w.bank.ledger_check()
    supply = supply_report_body(w.bank)  # what the bank reports to the central bank
    w.db.close()
    yield SwapAudit(w, db_path, w.clock(), ledger, supply, [first, second])
    pki.close()


def test_clean_bank_with_swaps_passes_and_agrees_with_the_ledger(sa: SwapAudit) -> None:
    report = sa.audit()
    assert report.ok, report.summary()
    c = report.counts
    assert c["swaps"] == 2 and c["swap_inputs"] == 3 and c["swap_outputs"] == 7
    assert c["swap_reports"] == 1
    assert report.outstanding_total() == sa.ledger["outstanding_total"] == 8
    ours = {b64u_decode(k.keyset_id).hex(): k for k in report.keysets}
    for k in sa.ledger["keysets"]:  # the bank's ledger check, per keyset
        mine = ours[k["keyset_id"]]
        assert mine.outstanding_value == k["outstanding"] == mine.ledger_outstanding
    # the money-supply report says what the audit found
    assert check_supply_report(sa.supply, report.outstanding()) == []
    assert sum(int(k["outstanding_value"]) for k in sa.supply["keysets"]) == 8


def _tamper(sa: SwapAudit, tmp_path: Path, sql: str, params: dict[str, Any]) -> AuditReport:
    copy = tmp_path / "tampered.db"
    shutil.copyfile(sa.db_path, copy)
    con = sqlite3.connect(copy)
    try:
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()
    report = sa.audit(sqlite_url(copy))
    assert report.kinds() <= set(VIOLATION_KINDS), report.kinds() - set(VIOLATION_KINDS)
    json.loads(report.to_json())
    return report


Tamper = Callable[[SwapAudit], tuple[str, dict[str, Any]]]


def _report_for_the_swap(sa: SwapAudit) -> tuple[str, dict[str, Any]]:
    """The report's refused attempt rewritten to the swap's own request: a retry, no spend."""
    con = sqlite3.connect(sa.db_path)
    try:
        (preq,) = con.execute(
            "SELECT preq FROM swap WHERE request_id = :r", {"r": sa.swap_ids[0]}
        ).fetchone()
    finally:
        con.close()
    return "UPDATE swap_report SET second_preq = :p", {"p": preq}


def _flip_proof(sa: SwapAudit) -> tuple[str, dict[str, Any]]:
    con = sqlite3.connect(sa.db_path)
    try:
        sigma, body = con.execute("SELECT sigma, body FROM swap_input LIMIT 1").fetchone()
    finally:
        con.close()
    doc = json.loads(body)
    s = doc["spend"]["proof"]["s"]
    doc["spend"]["proof"]["s"] = ("B" if s[0] != "B" else "C") + s[1:]
    return "UPDATE swap_input SET body = :b WHERE sigma = :s", {"b": json.dumps(doc), "s": sigma}


@pytest.mark.parametrize(
    ("tamper", "kinds"),
    [
        (
            lambda sa: ("UPDATE swap SET amount_out = amount_out + 1", {}),
            {"swap.amount_mismatch"},
        ),
        (
            lambda sa: ("UPDATE swap_input SET value = value * 2", {}),
            {"swap.row_mismatch", "swap.amount_mismatch"},
        ),
        (
            lambda sa: ("DELETE FROM swap_input WHERE request_id = :r", {"r": sa.swap_ids[1]}),
            {"swap.amount_mismatch", "supply.deposited_mismatch"},
        ),
        (_flip_proof, {"spend.bad_proof"}),
        (
            lambda sa: ("UPDATE swap_output SET blind_sig = blinded_msg WHERE idx = 0", {}),
            {"swap.bad_blind_signature"},
        ),
        (
            lambda sa: ("DELETE FROM swap_output WHERE request_id = :r", {"r": sa.swap_ids[0]}),
            {"swap.amount_mismatch", "supply.withdrawn_mismatch"},
        ),
        (
            lambda sa: ("DELETE FROM swap WHERE request_id = :r", {"r": sa.swap_ids[0]}),
            {"ledger.orphan_txn"},
        ),
        (
            lambda sa: ("UPDATE swap_report SET sigma = :s", {"s": b"\x07" * 32}),
            {"swap_report.unknown_coin"},
        ),
        (_report_for_the_swap, {"swap_report.invalid"}),
        (
            lambda sa: ("UPDATE swap_report SET second_transcript = '{}'", {}),
            {"swap_report.invalid"},
        ),
    ],
    ids=[
        "swap_amount",
        "input_value",
        "input_deleted",
        "input_proof",
        "output_signature",
        "outputs_deleted",
        "swap_deleted",
        "report_serial",
        "report_same_request",
        "report_attempt_unreadable",
    ],
)
def test_tampered_swaps_are_reported(
    sa: SwapAudit, tmp_path: Path, tamper: Tamper, kinds: set[str]
) -> None:
    sql, params = tamper(sa)
    report = _tamper(sa, tmp_path, sql, params)
    assert not report.ok
    assert kinds <= report.kinds(), report.summary()

"""A redeem pays the deposit fee (docs/protocol.md 4.2, 9.4): the account is credited the amount
less the coins' ``fee_deposit``, the fees go to ``bank:fees`` in the same transaction, the
signed receipt names both, and the ledger check and the supervision audit agree (and report a
redeem whose fee went back to the account)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, test_policy
from support.coinmint import KeyPool, Member, Pki, make_spend

from ecash_tpm.bank.ledger import balance
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, Fees
from ecash_tpm.protocol.redeem import RedeemRequest, verify_redeem_receipt
from ecash_tpm.storage import sqlite_url
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.supervision.audit_report import AuditReport

#: per denomination: withdraw, deposit, refresh, refund (the 1-unit coin is free)
FEES = {2: Fees(1, 1, 1, 1), 5: Fees(1, 2, 1, 1), 10: Fees(2, 3, 3, 1)}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    yield p
    p.close()


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(4)


def _world(data: Path, pki: Pki, keys: KeyPool, url: str | None = None) -> BankWorld:
    return make_world(
        db_url=url or sqlite_url(data / "bank.db"),
        data_dir=data,
        pki=pki,
        keys=keys,
        policy=test_policy(fees=FEES),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, pki: Pki, keys: KeyPool
) -> Iterator[BankWorld]:
    url = None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
    w = _world(tmp_path, pki, keys, url)
    yield w
    w.bank.ledger_check()
    w.db.close()


def _redeem(
    w: BankWorld, member: Member, coins: list[Coin], amount: int
) -> tuple[RedeemRequest, dict[str, Any]]:
    doc = w.bank.redeem_request(member.account_id, amount)["request"]
    req = RedeemRequest.from_body(doc["body"])
    spends = [make_spend(member, c, req.preq, w.issuer.hop).to_dict() for c in coins]
    return req, w.bank.redeem(member.account_id, {"request": doc, "spends": spends})


def _story(w: BankWorld) -> tuple[list[Coin], RedeemRequest, dict[str, Any]]:
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 17)  # 10 + 5 + 2: withdraw fees 2 + 1 + 1
    assert w.bank.account("alice").balance == 100 - 17 - 4
    return coins, *_redeem(w, alice, coins, 17)  # deposit fees 3 + 2 + 1


def test_a_redeem_credits_the_amount_less_the_deposit_fees(world: BankWorld, pki: Pki) -> None:
    w = world
    coins, req, answer = _story(w)
    body = answer["receipt"]["body"]
    assert (body["amount"], body["fee"], body["credited"]) == (17, 6, 11)
    receipt = verify_redeem_receipt(
        answer["receipt"],
        answer["cert"],
        pki.root_pem,
        request=req,
        serials=[c.sigma for c in coins],
        now=w.clock(),
    )
    assert (receipt.amount, receipt.fee, receipt.credited) == (17, 6, 11)
    assert w.bank.account("alice").balance == 100 - 17 - 4 + 11
    with w.db.read() as tx:
        assert balance(tx, FEE_ACCOUNT) == 4 + 6
    books = w.bank.ledger_check()
    assert books["fees"] == {"withdraw": 4, "deposit": 6, "refresh": 0, "refund": 0}
    assert books["fees_total"] == 10 and books["outstanding_total"] == 0
    assert books["customers_total"] + books["fees_total"] == 100


# --- the supervision audit ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: KeyPool) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("audited")
    w = _world(data, pki, keys)
    _story(w)
    w.bank.ledger_check()
    out = {"path": data / "bank.db", "world": w, "now": w.clock()}
    w.db.close()
    return out


def _audit(audited: dict[str, Any], path: Path | None = None) -> AuditReport:
    w: BankWorld = audited["world"]
    return run_audit(
        sqlite_url(path or audited["path"]),
        bank_cert=w.pki.bank.cert_pem,
        central_bank_root=w.pki.root_pem,
        opener_public=w.issuer.hop,
        issuer_secrets=w.issuer,
        now=audited["now"],
    )


def test_the_audit_counts_the_redeem_fees(audited: dict[str, Any]) -> None:
    report = _audit(audited)
    assert report.ok, report.summary()
    assert report.fees == {"withdraw": 4, "deposit": 6, "refresh": 0, "refund": 0}


def test_the_audit_reports_a_redeem_fee_credited_to_the_account(
    audited: dict[str, Any], tmp_path: Path
) -> None:
    """The redeem's fee entry moved back to the account holder (balanced, but wrong)."""
    copy = tmp_path / "tampered.db"
    shutil.copyfile(audited["path"], copy)
    txn = "(SELECT txn_id FROM redeem LIMIT 1)"
    con = sqlite3.connect(copy)
    with con:
        con.execute(
            f"UPDATE ledger_entry SET amount = amount + 6 WHERE txn_id = {txn}"
            " AND account LIKE 'customer:%'"
        )
        con.execute(f"DELETE FROM ledger_entry WHERE txn_id = {txn} AND account = '{FEE_ACCOUNT}'")
    con.close()
    report = _audit(audited, copy)
    assert report.kinds() == {"redeem.ledger_mismatch", "fees.account_mismatch"}, report.summary()
    (v,) = report.of_kind("fees.account_mismatch")
    assert (v.expected, v.found) == (10, 4)

"""Fees (issue 12 item 4, docs/protocol.md 4.2) at the bank with software DAA keys: withdraw,
deposit, swap and refund fees booked to ``bank:fees`` with exact balances, the refusals when a
fee is not accounted for, and the supervision audit agreeing with the ledger and reporting each
tampering with the fee bookings."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Pki
from support.refund_world import make_claim, permission, refundable_payment
from support.swapworld import swap

from ecash_tpm.bank import errors as E
from ecash_tpm.bank.supply import supply_report_body
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.protocol.errors import RequestMismatchError
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, Fees
from ecash_tpm.protocol.refunds import RefundAmountError
from ecash_tpm.protocol.supply import SUPPLY_REPORT_KIND
from ecash_tpm.storage import sqlite_url
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.supervision.audit_report import AuditReport

#: per denomination: withdraw, deposit, refresh, refund (the 1-unit coin is free)
FEES = {2: Fees(1, 1, 1, 1), 5: Fees(1, 1, 1, 1), 10: Fees(2, 1, 3, 1)}


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


def _story(w: BankWorld) -> dict[str, Any]:
    """Withdraw, pay, swap, refund with non-zero fees; the ledger after each (exact)."""
    alice = w.customer("alice", 100)
    ten = w.withdraw(alice, 10)  # 10 + withdraw fee 2
    assert w.bank.account("alice").balance == 88
    req = w.request("shop-a", 10)
    receipt = w.deposit("shop-a", req, w.spends(alice, ten, req))
    assert receipt["body"]["amount"] == 10  # the receipt states the payment
    books = w.bank.ledger_check()
    assert (books["merchants_total"], books["fees_total"]) == (9, 3)  # deposit fee 1
    ten = w.withdraw(alice, 10)
    with refused(RequestMismatchError, "bank.request_mismatch"):  # outputs ignore the fee
        swap(w, alice, ten, [5, 5])
    _, change = swap(w, alice, ten, [5, 2])  # 10 - refresh fee 3
    books = w.bank.ledger_check()
    assert books["fees_total"] == 2 + 1 + 2 + 3 and books["outstanding_total"] == 7
    receipt, coins = refundable_payment(w, alice, "shop-a", 7)  # 5 + 2: fees 2 + 2
    perm = permission(w, "shop-a", receipt, coins, 7)
    with refused(RefundAmountError, "refund.bad_amount"):  # fresh coins ignore the refund fee
        make_claim(w, alice, perm, coins).send(w, "shop-a")
    claim = make_claim(w, alice, perm, coins, value=5)  # 7 - refund fees 1 + 1
    assert claim.send(w, "shop-a").amount == 7
    return w.bank.ledger_check()


def test_fees_are_booked_to_the_fee_account(world: BankWorld) -> None:
    books = _story(world)
    assert world.bank.account("alice").balance == 100 - 12 - 12 - 9
    assert books["merchants_total"] == 9 + 5 - 7
    assert books["fees"] == {"withdraw": 6, "deposit": 3, "refresh": 3, "refund": 2}
    assert books["fees_total"] == 14
    assert books["outstanding_total"] == 7 + 5  # the swap's change and the refund's coin
    # everything funded is somewhere: customers + merchants + coins + fees
    assert books["customers_total"] + books["merchants_total"] + 12 + 14 == 100
    assert -books["external"]["external:funding"] == 100


def test_a_withdrawal_must_cover_its_fee(world: BankWorld) -> None:
    bob = world.customer("bob", 10)
    with refused(E.InsufficientFundsError, "bank.insufficient_funds") as info:
        world.withdraw(bob, 10)
    assert info.value.detail == {"balance": 10, "amount": 10, "fee": 2}
    world.withdraw(bob, 8)  # 5 + 2 + 1: fees 1 + 1 + 0
    assert world.bank.account("bob").balance == 0
    assert world.bank.ledger_check()["fees_total"] == 2


def test_zero_fees_by_default(tmp_path: Path, pki: Pki, keys: KeyPool) -> None:
    w = make_world(db_url=sqlite_url(tmp_path / "b.db"), data_dir=tmp_path, pki=pki, keys=keys)
    try:
        assert all(k.fees == Fees() and k.fee_fields for k in w.keysets())
        alice = w.customer("alice", 20)
        w.pay(alice, "shop-a", 10)
        books = w.bank.ledger_check()
        assert (books["merchants_total"], books["fees_total"]) == (10, 0)
    finally:
        w.bank.ledger_check()
        w.db.close()


# --- the supervision audit ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: KeyPool) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("audited")
    w = _world(data, pki, keys)
    _story(w)
    w.bank.ledger_check()
    body = supply_report_body(w.bank)
    out = {"path": data / "bank.db", "world": w, "now": w.clock(), "report_body": body}
    w.db.close()
    return out


def _audit(audited: dict[str, Any], path: Path | None = None, **kw: Any) -> AuditReport:
    w: BankWorld = audited["world"]
    return run_audit(
        sqlite_url(path or audited["path"]),
        bank_cert=w.pki.bank.cert_pem,
        central_bank_root=w.pki.root_pem,
        opener_public=w.issuer.hop,
        issuer_secrets=w.issuer,
        now=audited["now"],
        **kw,
    )


def _stored_report(audited: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The bank's signed supply report (with ``changes`` to its body) as the central bank
    stores it."""
    w: BankWorld = audited["world"]
    body = {**audited["report_body"], **changes}
    signed = sign_object(w.pki.bank.key, SUPPLY_REPORT_KIND, body)
    return {"report_id": 1, "report": signed, "cert": w.pki.bank.cert_pem}


def _tampered(audited: dict[str, Any], tmp_path: Path, *statements: str) -> AuditReport:
    copy = tmp_path / "tampered.db"
    shutil.copyfile(audited["path"], copy)
    con = sqlite3.connect(copy)
    with con:
        for sql in statements:
            con.execute(sql)
    con.close()
    return _audit(audited, copy)


def test_the_audit_recomputes_the_fees(audited: dict[str, Any]) -> None:
    report = _audit(audited)
    assert report.ok, report.summary()
    assert report.fees == {"withdraw": 6, "deposit": 3, "refresh": 3, "refund": 2}
    assert report.to_dict()["fees_total"] == 14


def test_the_supply_report_carries_the_fees(audited: dict[str, Any]) -> None:
    assert audited["report_body"]["fees"] == 14
    report = _audit(audited, supply_report=_stored_report(audited))
    assert report.ok, report.summary()
    assert report.supply_report is not None
    assert report.supply_report["reported_fees"] == report.supply_report["audited_fees"] == 14
    wrong = _audit(audited, supply_report=_stored_report(audited, fees=13))
    assert wrong.kinds() == {"supply_report.fees_mismatch"}, wrong.summary()
    (v,) = wrong.of_kind("supply_report.fees_mismatch")
    assert (v.expected, v.found) == (14, 13)


def test_audit_reports_a_fee_account_credited_off_the_books(
    audited: dict[str, Any], tmp_path: Path
) -> None:
    """A balanced transaction moving money into the fee account without any coin behind it."""
    report = _tampered(
        audited,
        tmp_path,
        "INSERT INTO ledger_txn (kind, ref, created_at) VALUES ('fund', 'x-fees', 1)",
        "INSERT INTO ledger_entry (txn_id, account, amount, currency) VALUES"
        f" ((SELECT MAX(txn_id) FROM ledger_txn), '{FEE_ACCOUNT}', 5, 'EUR')",
        "INSERT INTO ledger_entry (txn_id, account, amount, currency) VALUES"
        " ((SELECT MAX(txn_id) FROM ledger_txn), 'external:funding', -5, 'EUR')",
    )
    assert report.kinds() == {"fees.account_mismatch"}, report.summary()
    (v,) = report.of_kind("fees.account_mismatch")
    assert (v.expected, v.found) == (14, 19)


def test_audit_reports_a_deposit_fee_kept_from_the_merchant_twice(
    audited: dict[str, Any], tmp_path: Path
) -> None:
    """The merchant's credit of the first deposit lowered by 1, the fee entry raised by 1."""
    deposit_txn = "(SELECT txn_id FROM deposit ORDER BY created_at, deposit_id LIMIT 1)"
    report = _tampered(
        audited,
        tmp_path,
        f"UPDATE ledger_entry SET amount = amount - 1 WHERE txn_id = {deposit_txn}"
        " AND account LIKE 'merchant:%'",
        f"UPDATE ledger_entry SET amount = amount + 1 WHERE txn_id = {deposit_txn}"
        f" AND account = '{FEE_ACCOUNT}'",
    )
    assert {
        "deposit.ledger_mismatch",
        "fees.account_mismatch",
        "ledger.merchant_balance_mismatch",
    } <= report.kinds(), report.summary()


def test_audit_reports_a_swap_fee_row_changed(audited: dict[str, Any], tmp_path: Path) -> None:
    report = _tampered(audited, tmp_path, "UPDATE swap SET fee = fee + 1")
    assert "fees.refresh_mismatch" in report.kinds(), report.summary()
    (v,) = report.of_kind("fees.refresh_mismatch")
    assert (v.expected, v.found) == (3, 4)


def test_audit_reports_a_withdrawal_fee_not_booked(audited: dict[str, Any], tmp_path: Path) -> None:
    """The first withdrawal's fee entry moved back to the customer (balanced, but wrong)."""
    txn = "(SELECT txn_id FROM withdrawal ORDER BY created_at, request_id LIMIT 1)"
    report = _tampered(
        audited,
        tmp_path,
        f"UPDATE ledger_entry SET amount = amount + 2 WHERE txn_id = {txn}"
        " AND account LIKE 'customer:%'",
        f"DELETE FROM ledger_entry WHERE txn_id = {txn} AND account = '{FEE_ACCOUNT}'",
    )
    assert {"withdrawal.ledger_mismatch", "fees.account_mismatch"} <= report.kinds()

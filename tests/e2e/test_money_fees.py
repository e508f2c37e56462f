"""Fees end to end over real HTTPS with swtpm (issue 12 item 4, docs/protocol.md 4.2).

The bank charges 1 of each fee on every coin of 5 and more: the wallet withdraws (debited the
coins plus the withdraw fee), pays (the merchant is credited the amount less the deposit fees,
shown before paying), swaps (the outputs are the inputs less the refresh fee), claims a refund
(fresh coins worth the refund less the refund fee); then the ledger, the supervision audit and
the money-supply report agree. A wallet whose coins cover an amount but not the swap's fee is
refused with ``wallet.fees_not_covered`` before anything leaves the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from support.money import change_for
from support.refunds import ADMIN_TOKEN, claim, grant, preq_of
from support.system import System, WalletHandle, start_system

from ecash_tpm.bank.settings import DEFAULT_DENOMINATIONS
from ecash_tpm.bank.supply import build_supply_report
from ecash_tpm.device import TpmDevice
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, Fees
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.wallet.swap import FeesNotCoveredError, payable_mix, swap_coins

pytestmark = pytest.mark.swtpm

FEES = {d: Fees(1, 1, 1, 1) for d in DEFAULT_DENOMINATIONS if d >= 5}


def _charged(values: list[int]) -> int:
    """1 per coin of 5 and more: any one fee of these coins."""
    return sum(1 for v in values if v >= 5)


@pytest.fixture
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture
def system(swtpm: Any, device: TpmDevice, tmp_path: Path) -> Iterator[System]:
    with start_system(
        tmp_path / "sys",
        swtpm=swtpm,
        tpm=device,
        denominations=DEFAULT_DENOMINATIONS,
        initial_balance=1000,
        merchant_admin_token=ADMIN_TOKEN,
        bank_policy={"fees": FEES},
    ) as s:
        yield s


def _fees(system: System) -> int:
    return int(system.bank.ledger_check()["fees_total"])


def test_withdraw_pay_swap_refund_with_fees(
    system: System, device: TpmDevice, tmp_path: Path
) -> None:
    wallet = system.open_wallet(device, tmp_path / "w")
    got = wallet.withdraw(200).to_dict()
    assert got["fee"] == _charged(got["coins"]) > 0
    assert system.customer_balance() == 1000 - 200 - got["fee"]
    assert _fees(system) == got["fee"]

    # pay: the fees are shown before the proofs, the merchant bears the deposit fees
    change = change_for(wallet, refresh_margin_s=3600)
    shown: list[Any] = []
    first = wallet.pay(37, change=change, on_fees=shown.append)
    fees = first.to_dict()["fees"]
    assert [f.to_dict() for f in shown] == [fees]
    assert fees["deposit"] == _charged(first.coins) and fees["deposit_paid_by"] == "merchant"
    assert fees["customer_total"] == 37 + fees["refresh"]
    assert system.merchant_balance("shop-1") == 37 - fees["deposit"]
    assert wallet.balance() == 200 - 37 - fees["refresh"]

    # swap the largest coin: the outputs are worth its value less its refresh fee
    big = max(wallet.store.coins("unspent"), key=lambda c: c.value)
    before, fee_account = wallet.balance(), _fees(system)
    denoms = [v for v in DEFAULT_DENOMINATIONS if v < big.value]
    swapped = swap_coins(
        wallet.spending(),
        system.bank_client(),
        credential=wallet.membership.credential,
        epoch=wallet.membership.epoch,
        inputs=[big],
        values=payable_mix(big.value - 1, denoms),
    )
    assert swapped.fee == 1 and sum(swapped.outputs) == big.value - 1
    assert wallet.balance() == before - 1 and _fees(system) == fee_account + 1

    # refund a second payment: fresh coins worth the refund less the refund fees
    second = wallet.pay(12, "shop-1")
    shop, fee_account, before = system.merchant_balance("shop-1"), _fees(system), wallet.balance()
    grant(system, preq_of(second))
    refunded = claim(wallet, preq_of(second))
    refund_fee = _charged(second.coins)
    assert refunded.amount == 12 and sum(c.value for c in refunded.coins) == 12 - refund_fee
    assert system.merchant_balance("shop-1") == shop - 12
    assert wallet.balance() == before + 12 - refund_fee
    assert _fees(system) == fee_account + refund_fee

    # the ledger, the audit and the supply report agree
    books = system.bank.ledger_check()
    outstanding = system.outstanding()
    funded = 1000
    assert (
        system.customer_balance() + books["merchants_total"] + outstanding + books["fees_total"]
        == funded
    )
    cert_pem = system.bank.bank_cert.public_bytes(serialization.Encoding.PEM).decode()
    report = build_supply_report(system.bank)
    assert report["body"]["fees"] == books["fees_total"]
    audit = run_audit(
        system.bank.db,
        bank_cert=cert_pem,
        central_bank_root=system.root_pem,
        opener_public=wallet.membership.opener_public,
        now=system.clock(),
        supply_report={"report_id": 1, "report": report, "cert": cert_pem},
    )
    assert audit.ok, audit.summary()
    assert sum(audit.fees.values()) == books["fees_total"]
    assert audit.outstanding_total() == outstanding
    assert audit.supply_report is not None and audit.supply_report["discrepancies"] == []
    assert audit.supply_report["audited_fees"] == books["fees_total"]
    with system.bank.db.read() as tx:
        assert (
            tx.fetchval(
                "SELECT COALESCE(SUM(amount), 0) AS s FROM ledger_entry WHERE account = :a",
                {"a": FEE_ACCOUNT},
            )
            == books["fees_total"]
        )


def test_coins_that_cannot_cover_amount_and_fees_are_refused(
    system: System, device: TpmDevice, tmp_path: Path
) -> None:
    wallet: WalletHandle = system.open_wallet(device, tmp_path / "w")
    wallet.withdraw(15, strategy="fewest")  # 10 + 5: no exact 14, and a swap costs 2
    assert sorted(c.value for c in wallet.store.coins("unspent")) == [5, 10]
    fee_account = _fees(system)
    with pytest.raises(FeesNotCoveredError) as exc:
        wallet.pay(14, change=change_for(wallet, refresh_margin_s=3600))
    assert exc.value.code == "wallet.fees_not_covered"
    assert exc.value.detail == {"amount": 14, "coins": 15, "fee": 2}
    assert wallet.balance() == 15 and _fees(system) == fee_account  # nothing was spent
    assert system.merchant_balance("shop-1") == 0

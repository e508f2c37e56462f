"""A redeem pays the deposit fee, end to end over HTTPS with swtpm (docs/protocol.md 4.2, 9.4):
the wallet shows the fee and the credit before any spend proof, the account is credited the
amount less the coins' deposit fees, the bank-signed receipt says both, the fee account holds
them, and the ledger check and the supervision audit agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from support.system import System, start_system

from ecash_tpm.bank.settings import DEFAULT_DENOMINATIONS
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.device import TpmDevice
from ecash_tpm.protocol.keysets import Fees
from ecash_tpm.protocol.redeem import REDEEM_RECEIPT_KIND
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.wallet.pay import PaymentOutcomeUnknownError
from ecash_tpm.wallet.redeem import (
    RedeemFeeMismatchError,
    RedeemFees,
    fetch_redeem_receipts,
    redeem,
)

pytestmark = pytest.mark.swtpm

#: 1 of each fee on every coin of 5 and more, 2 of the deposit fee on coins of 10 and more
FEES = {d: Fees(1, 2 if d >= 10 else 1, 1, 1) for d in DEFAULT_DENOMINATIONS if d >= 5}


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
        bank_policy={"fees": FEES},
    ) as s:
        yield s


def test_redeem_credits_the_amount_less_the_deposit_fees(
    system: System, device: TpmDevice, tmp_path: Path
) -> None:
    wallet = system.open_wallet(device, tmp_path / "w")
    got = wallet.withdraw(17).to_dict()
    after_withdrawal = system.customer_balance()
    assert after_withdrawal == 1000 - 17 - got["fee"]
    fees_before = int(system.bank.ledger_check()["fees_total"])
    shown: list[RedeemFees] = []
    done = redeem(
        wallet.spending(),
        wallet.bank(),
        account_id=system.customer.account_id,
        amount=17,
        currency="EUR",
        on_fees=shown.append,
    )
    fee = sum(FEES[v].deposit for v in done.coins if v in FEES)  # the coins' fee_deposit
    assert fee > 0
    assert [f.to_dict() for f in shown] == [
        {"deposit": fee, "refresh": 0, "credited": 17 - fee, "customer_total": 17}
    ]
    assert (done.amount, done.fee, done.credited) == (17, fee, 17 - fee)
    assert done.to_dict()["fees"] == shown[0].to_dict()
    assert system.customer_balance() == after_withdrawal + 17 - fee
    books = system.bank.ledger_check()
    assert books["fees_total"] == fees_before + fee and books["outstanding_total"] == 0
    cert_pem = system.bank.bank_cert.public_bytes(serialization.Encoding.PEM).decode()
    audit = run_audit(
        system.bank.db,
        bank_cert=cert_pem,
        central_bank_root=system.root_pem,
        opener_public=wallet.membership.opener_public,
        now=system.clock(),
    )
    assert audit.ok, audit.summary()
    assert sum(audit.fees.values()) == books["fees_total"]


class _OverchargingBank:
    """The bank's link with the redeem receipt re-signed by the bank's own key at a fee 3 over
    the one its signed keyset descriptors state: a bank that lies about its fee (§4.2)."""

    def __init__(self, inner: Any, system: System) -> None:
        self._inner = inner
        self._system = system

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def redeem(self, doc: Any, wire: Any) -> Any:
        answer = dict(self._inner.redeem(doc, wire))
        receipt = answer["receipt"]
        body = {**receipt["body"], "fee": receipt["body"]["fee"] + 3}
        body["credited"] = body["amount"] - body["fee"]
        answer["receipt"] = sign_object(
            self._system.bank.bank_key, REDEEM_RECEIPT_KIND, body, signer=receipt.get("signer")
        )
        return answer


def test_a_receipt_charging_another_fee_than_the_signed_keysets_is_flagged(
    system: System, device: TpmDevice, tmp_path: Path
) -> None:
    """The redeem is booked (coins spent, the lying receipt kept as evidence), and the wallet
    says so with a typed error naming both fees instead of reporting success."""
    wallet = system.open_wallet(device, tmp_path / "w")
    wallet.withdraw(17)
    with pytest.raises(RedeemFeeMismatchError) as info:
        redeem(
            wallet.spending(),
            _OverchargingBank(wallet.bank(), system),
            account_id=system.customer.account_id,
            amount=17,
            currency="EUR",
        )
    assert info.value.code == "wallet.fee_mismatch" and info.value.http_status == 502
    detail = info.value.detail
    assert detail["fee"] == detail["expected_fee"] + 3 > 3
    record = wallet.store.payment(detail["payment_id"])
    assert record.state == "paid" and record.receipt is not None
    assert record.receipt["body"]["fee"] == detail["fee"]  # the evidence is kept
    assert wallet.store.balance().get("EUR", {}).get("unspent", 0) == 0


class _LosingAnswer:
    """The bank books the redeem; its answer never reaches the wallet."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def redeem(self, doc: Any, wire: Any) -> Any:
        self._inner.redeem(doc, wire)
        raise RemoteCallError("answer lost (test)", code="remote.timeout", status=None, url="")


def test_recover_flags_a_receipt_charging_another_fee(
    system: System, device: TpmDevice, tmp_path: Path
) -> None:
    wallet = system.open_wallet(device, tmp_path / "w")
    wallet.withdraw(17)
    with pytest.raises(PaymentOutcomeUnknownError):
        redeem(
            wallet.spending(),
            _LosingAnswer(wallet.bank()),
            account_id=system.customer.account_id,
            amount=17,
            currency="EUR",
        )
    (fetched,) = fetch_redeem_receipts(
        wallet.store,
        _OverchargingBank(wallet.bank(), system),
        root=system.root_pem,
        bank_name="bank",
        clock=system.clock,
        crl=system.crl_source(),
    )
    assert fetched.outcome == "redeemed"  # booked: the record ends paid with the receipt
    mismatch = fetched.fee_mismatch
    assert mismatch is not None and mismatch["code"] == "wallet.fee_mismatch"
    assert mismatch["detail"]["fee"] == mismatch["detail"]["expected_fee"] + 3 == fetched.fee

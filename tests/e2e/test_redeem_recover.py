"""``wallet recover`` after a lost redeem answer (docs/protocol.md 9.4) against a running system
(real swtpm, HTTPS): the recorded request and spends are sent again with the session, the bank
answers with its stored receipt (never a second credit), and the record ends redeemed with the
receipt rather than merely spent; a redeem whose request never reached the bank is booked once
by the same retry while its request is live."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.system import start_system

from ecash_tpm.cli import main
from ecash_tpm.clients.bank import BankClient
from ecash_tpm.device import TpmDevice
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.pay import PaymentOutcomeUnknownError
from ecash_tpm.wallet.redeem import fetch_redeem_receipts, redeem

pytestmark = pytest.mark.swtpm


class _Losing:
    """The wallet's bank link losing the redeem answer (after the bank booked it, or before the
    request reached the bank)."""

    def __init__(self, bank: BankClient, *, forward: bool) -> None:
        self.bank = bank
        self.forward = forward

    def redeem_request(self, amount: int) -> dict[str, Any]:
        return self.bank.redeem_request(amount)

    def redeem(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        if self.forward:
            self.bank.redeem(request, spends)
        raise RemoteCallError("answer lost (test)", code="remote.timeout", status=None, url="")


def test_recover_fetches_the_redeem_receipt_and_ends_the_coins_redeemed(
    swtpm: Any, tmp_path: Path
) -> None:
    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        honest = s.open_wallet(dev, tmp_path / "wallet")
        honest.withdraw(15)
        assert s.customer_balance() == 985
        account = s.customer.account_id

        def recover() -> list[dict[str, Any]]:
            done = fetch_redeem_receipts(
                honest.store,
                honest.bank(),
                root=s.root_pem,
                bank_name="bank",
                clock=s.clock,
                crl=s.crl_source(),
            )
            return [f.to_dict() for f in done]

        for amount, forward, balance in ((8, True, 993), (7, False, 993)):
            with pytest.raises(PaymentOutcomeUnknownError):
                redeem(
                    honest.spending(),
                    _Losing(honest.bank(), forward=forward),
                    account_id=account,
                    amount=amount,
                    currency="EUR",
                )
            assert s.customer_balance() == balance  # booked (8) or not (7) by the bank
            assert honest.store.balance()["EUR"]["pending"] == amount
            (fetched,) = recover()
            assert fetched["outcome"] == "redeemed", fetched
            assert (fetched["credited"], fetched["fee"]) == (amount, 0)
            record = next(
                p for p in honest.store.payments() if p.payment_id == fetched["payment_id"]
            )
            assert record.state == "paid" and record.receipt is not None
            assert record.receipt["body"]["request_id"] == fetched["request_id"]
            assert honest.store.balance().get("EUR", {}).get("pending", 0) == 0
            assert recover() == []  # nothing open: nothing sent again
            assert honest.recover() == []  # and nothing left for the coin-status recovery
        assert s.customer_balance() == 1000 and s.outstanding() == 0
        assert honest.balance() == 0
        s.bank.ledger_check()


def test_wallet_recover_cli_ends_a_lost_redeem_redeemed(
    swtpm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        wallet = tmp_path / "wallet"
        honest = s.open_wallet(dev, wallet)
        honest.withdraw(5)
        with pytest.raises(PaymentOutcomeUnknownError):
            redeem(
                honest.spending(),
                _Losing(honest.bank(), forward=True),
                account_id=s.customer.account_id,
                amount=5,
                currency="EUR",
            )
        assert s.customer_balance() == 1000
        pw = tmp_path / "pw"
        pw.write_text(s.customer.password)
        code = main(
            ["wallet", "recover", "--data", str(wallet), "--bank", s.bank_url,
             "--bank-name", "bank", "--root", str(s.root_path), "--password-file", str(pw),
             "--totp", s.customer.totp(), "--json"]
        )  # fmt: skip
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0 and result["ok"] is True, result
        (fetched,) = result["redeems"]
        assert (fetched["outcome"], fetched["credited"], fetched["fee"]) == ("redeemed", 5, 0)
        assert result["payments"] == []  # nothing left for the coin-status recovery
        (record,) = [p for p in honest.store.payments() if p.payment_id == fetched["payment_id"]]
        assert record.state == "paid" and s.customer_balance() == 1000
        s.bank.ledger_check()

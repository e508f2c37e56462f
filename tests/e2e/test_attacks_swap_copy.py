"""A double spend through a swap (docs/protocol.md 9.3) on a running system: real swtpm, every
party over HTTPS.

The customer copies its wallet state on its own machine (same TPM, so the copy's coins are as
good as the original's), lets the original wallet swap a coin for change while paying one
merchant, then pays another merchant with the copy's version of the swapped coin. The bank
refuses the deposit (409 ``bank.double_spend``, naming the swap), queues and sends the report
(the swap's bank-signed transcript and the refused payment's) to the supervision department,
which opens both spends to the customer's membership and has the issuer revoke it. The honest
merchant is not credited; the merchant paid with the change keeps its money.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support.money import change_for, pay_with_change
from support.system import start_system

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError

pytestmark = pytest.mark.swtpm


def test_swapped_coin_paid_from_a_wallet_copy_is_reported_opened_and_revoked(
    swtpm: Any, tmp_path: Path
) -> None:
    with (
        TpmDevice(swtpm.tcti) as dev,
        start_system(
            tmp_path / "sys", swtpm=swtpm, tpm=dev, bank_policy={"blacklist_threshold": 1000}
        ) as system,
    ):
        original = system.open_wallet(dev, tmp_path / "w")
        original.withdraw(16, strategy="fewest")
        ((sigma, coin),) = [(hc.sigma, hc.coin) for hc in original.store.coins("unspent")]
        copy_dir = tmp_path / "copy"
        shutil.copytree(original.data_dir, copy_dir)
        copy = system.open_wallet(dev, copy_dir, join=False)  # the same TPM: a working copy
        assert copy.balance() == 16

        # the original pays 5 at shop-1: one swap of the 16 for change, then the payment
        change = change_for(original)
        paid = pay_with_change(original, 5, "shop-1", change=change)
        assert paid.amount == 5 and paid.swap is not None
        assert system.merchant_balance("shop-1") == 5
        assert original.balance() == 11
        with system.bank.db.read() as tx:
            swap_id = tx.fetchval(
                "SELECT request_id FROM swap_input WHERE sigma = :s", {"s": sigma}
            )
        assert swap_id is not None

        # the copy still holds the 16 and pays shop-2 with it: refused as a double spend
        before = system.merchant_balance("shop-2")
        with pytest.raises(EcashError) as err:
            copy.pay(16, "shop-2")
        assert err.value.code == "bank.double_spend"
        assert getattr(err.value, "http_status", None) == 409
        assert err.value.detail["serial"] == b64u_encode(sigma)
        assert err.value.detail["swap_request_id"] == swap_id
        assert system.merchant_balance("shop-2") == before == 0  # the honest merchant: unpaid

        # the bank queued the report (first spend a swap) and the supervision took it
        reports = system.bank.swap_reports.all()
        assert [(r.sigma, r.status, r.attempts) for r in reports] == [(sigma, "sent", 1)]
        case = system.supervision.case(sigma)
        assert case is not None and case.member_id == original.membership.member_id
        transcripts = case.evidence["body"]["transcripts"]
        assert transcripts[0]["body"]["kind"] == "swap"
        assert transcripts[0]["body"]["transcript_id"] == f"swap:{swap_id}"
        assert transcripts[1]["body"]["merchant_id"] == "shop-2"
        assert transcripts[1]["body"]["spend"]["coin"]["sigma"] == coin.to_dict()["sigma"]

        # the issuer re-verified the evidence and revoked the member
        with pytest.raises(EcashError) as exc:
            original.withdraw(1)
        assert exc.value.code == "bank.member_not_active"
        assert system.merchant_balance("shop-1") == 5 and system.merchant_balance("shop-2") == 0
        system.bank.ledger_check()

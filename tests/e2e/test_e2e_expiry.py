"""End to end: coins of a keyset whose deposit window has closed are refused everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.system import start_system
from test_e2e_payment import bank_refusal, coin_of, merchant_refusal, tpm_spend

from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError

pytestmark = pytest.mark.swtpm


@pytest.fixture
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


def test_coin_of_an_expired_keyset_is_refused(
    swtpm: Any, device: TpmDevice, tmp_path: Path
) -> None:
    with start_system(
        tmp_path / "sys", swtpm=swtpm, tpm=device, withdraw_period_s=120, deposit_period_s=60
    ) as system:
        w = system.open_wallet(device, tmp_path / "w")
        w.withdraw(4, strategy="fewest")
        hc = coin_of(w, 4)
        w.request(4, "shop-1")  # the merchant loads the keysets while they are valid
        system.clock.advance(200)  # past deposit_until = start + 120 + 60
        assert w.balance() == 0 and w.store.balance()["EUR"]["expired"] == 4
        with pytest.raises(EcashError) as exc:
            w.pay(4, "shop-1")
        assert exc.value.code == "wallet.insufficient_funds"  # the wallet does not offer it
        req = w.request(4, "shop-1")
        spends = [tpm_spend(w, hc.coin, req)]
        assert merchant_refusal(system, "shop-1", req, spends).code == "coin.keyset_expired"
        assert bank_refusal(system, "shop-1", req, spends).code == "bank.keyset_expired"

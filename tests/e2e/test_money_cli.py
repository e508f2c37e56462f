"""Issue 12 on the command line: ``wallet pay`` swaps first when no exact combination is held
(shown in its output), ``wallet refresh``, ``wallet balance`` with expiring coins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.system import start_system

from ecash_tpm.cli import main
from ecash_tpm.device import TpmDevice

pytestmark = pytest.mark.swtpm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(out)
    assert code == 0 and result["ok"] is True, result
    return dict(result)


def test_pay_with_change_refresh_and_balance(
    swtpm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        wallet = tmp_path / "wallet"
        s.join(dev, wallet)
        dev.close()  # the CLI opens the TPM itself
        pw = tmp_path / "pw"
        pw.write_text(s.customer.password)
        run(capsys, "wallet", "withdraw", "10", "--split", "fewest", "--data", str(wallet),
            "--bank", s.bank_url, "--bank-name", "bank", "--root", str(s.root_path),
            "--password-file", str(pw), "--totp", s.customer.totp())  # fmt: skip
        bal = run(capsys, "wallet", "balance", "--data", str(wallet))
        assert bal["coins"]["EUR"] == {"8": 1, "2": 1} and bal["expiring"] == {"EUR": 0}

        shop = s.merchant_urls["shop-1"]
        paid = run(capsys, "wallet", "pay", "--data", str(wallet), "--merchant", shop,
                   "--merchant-name", "shop-1", "--amount", "3",
                   "--tcti", swtpm.tcti)  # fmt: skip
        assert paid["amount"] == 3 and paid["swap"]["inputs"] == [8]
        assert sum(paid["swap"]["outputs"]) == 8 and paid["swap"]["fee"] == 0
        assert s.merchant_balance("shop-1") == 3

        refreshed = run(capsys, "wallet", "refresh", "--data", str(wallet),
                        "--tcti", swtpm.tcti)  # fmt: skip
        assert refreshed["swaps"] == [] and refreshed["resumed"] == []
        bal = run(capsys, "wallet", "balance", "--data", str(wallet))
        assert bal["balance"]["EUR"]["unspent"] == 7

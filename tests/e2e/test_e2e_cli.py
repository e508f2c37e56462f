"""The ``ecash-tpm merchant`` and ``ecash-tpm wallet`` coin commands against a running system."""

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


def test_wallet_and_merchant_commands(
    swtpm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        wallet = tmp_path / "wallet"
        s.join(dev, wallet)
        dev.close()  # the CLI opens the TPM itself (swtpm serves one connection)

        # a new shop gets its key certified straight from the central bank's directory
        init = run(capsys, "merchant", "init", "--data", str(tmp_path / "shop"), "--name",
                   "shop-x", "--ca-dir", str(s.base_dir / "ca"))  # fmt: skip
        assert init["certified"] is True and init["name"] == "shop-x"

        pw = tmp_path / "pw"
        pw.write_text(s.customer.password)
        w = run(capsys, "wallet", "withdraw", "20", "--data", str(wallet), "--bank", s.bank_url,
                "--bank-name", "bank", "--root", str(s.root_path), "--password-file", str(pw),
                "--totp", s.customer.totp())  # fmt: skip
        assert [d["amount"] for d in w["withdrawals"]] == [20]
        assert s.customer_balance() == 1000 - 20
        bal = run(capsys, "wallet", "balance", "--data", str(wallet))
        assert bal["balance"]["EUR"] == {"unspent": 20, "pending": 0, "expired": 0}

        offer = tmp_path / "offer.json"
        req = run(capsys, "merchant", "request", "--url", s.merchant_urls["shop-1"],
                  "--name", "shop-1", "--root", str(s.root_path),
                  "--amount", "13", "--out", str(offer))  # fmt: skip
        assert req["request"]["body"]["amount"] == 13
        shop = s.merchant_urls["shop-1"]
        paid = run(capsys, "wallet", "pay", "--data", str(wallet), "--merchant", shop,
                   "--request", str(offer), "--tcti", swtpm.tcti)  # fmt: skip
        assert paid["amount"] == 13 and sum(paid["coins"]) == 13
        assert s.merchant_balance("shop-1") == 13

        hist = run(capsys, "wallet", "history", "--data", str(wallet))
        assert [(p["state"], p["amount"]) for p in hist["payments"]] == [("paid", 13)]
        assert run(capsys, "wallet", "recover", "--data", str(wallet))["payments"] == []
        bal = run(capsys, "wallet", "balance", "--data", str(wallet))
        assert bal["balance"]["EUR"]["unspent"] == 7
        stats = run(capsys, "merchant", "stats", "--data", str(s.base_dir / "shop-1"))
        assert stats["totals"] == {"EUR": {"paid_count": 1, "paid_amount": 13}}

        # errors keep their codes on the command line too
        assert main(["wallet", "pay", "--data", str(wallet), "--merchant",
                     s.merchant_urls["shop-1"], "--merchant-name", "shop-1", "--amount", "50",
                     "--tcti", swtpm.tcti, "--json"]) == 1  # fmt: skip
        err = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert err["error"]["code"] == "wallet.insufficient_funds"

        # issue 10 attack 5: a deadline further ahead than --max-deadline is refused
        assert main(["wallet", "pay", "--data", str(wallet), "--merchant",
                     s.merchant_urls["shop-1"], "--merchant-name", "shop-1", "--amount", "1",
                     "--max-deadline", "60", "--tcti", swtpm.tcti, "--json"]) == 1  # fmt: skip
        err = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert err["error"]["code"] == "wallet.deadline_too_far"
        assert err["error"]["detail"]["max_deadline_s"] == 60
        assert run(capsys, "wallet", "balance", "--data", str(wallet))["balance"]["EUR"] == {
            "unspent": 7, "pending": 0, "expired": 0}  # fmt: skip

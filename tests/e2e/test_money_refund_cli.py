"""``ecash-tpm merchant refund`` and ``ecash-tpm wallet refund-claim`` against a running system
(issue 12, item 3; docs/operations.md "Merchants", "Wallets")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.refunds import ADMIN_TOKEN
from support.system import start_system

from ecash_tpm.cli import main
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.device import TpmDevice

pytestmark = pytest.mark.swtpm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(out)
    assert code == 0 and result["ok"] is True, result
    return dict(result)


def test_merchant_refund_and_wallet_refund_claim(
    swtpm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        TpmDevice(swtpm.tcti) as dev,
        start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev, merchant_admin_token=ADMIN_TOKEN) as s,
    ):
        wallet = tmp_path / "wallet"
        s.join(dev, wallet)
        dev.close()  # the CLI opens the TPM itself (swtpm serves one connection)
        pw = tmp_path / "pw"
        pw.write_text(s.customer.password)
        run(capsys, "wallet", "withdraw", "20", "--data", str(wallet), "--bank", s.bank_url,
            "--bank-name", "bank", "--root", str(s.root_path), "--password-file", str(pw),
            "--totp", s.customer.totp())  # fmt: skip
        shop = s.merchant_urls["shop-1"]
        offer = tmp_path / "offer.json"
        run(capsys, "merchant", "request", "--url", shop, "--name", "shop-1", "--root",
            str(s.root_path), "--amount", "13", "--out", str(offer))  # fmt: skip
        paid = run(capsys, "wallet", "pay", "--data", str(wallet), "--merchant", shop,
                   "--request", str(offer), "--tcti", swtpm.tcti)  # fmt: skip
        assert s.merchant_balance("shop-1") == 13
        preq = canonical_digest(json.loads(offer.read_text())["request"]["body"])

        token = tmp_path / "admin-token"
        token.write_text(ADMIN_TOKEN)
        granted = run(capsys, "merchant", "refund", "--url", shop, "--name", "shop-1", "--root",
                      str(s.root_path), f"--preq={b64u_encode(preq)}", "--amount", "5",
                      "--admin-token-file", str(token))  # fmt: skip
        assert granted["refunds"][0]["body"]["amount"] == 5
        claimed = run(capsys, "wallet", "refund-claim", "--data", str(wallet), "--payment",
                      paid["payment_id"], "--tcti", swtpm.tcti)  # fmt: skip
        assert claimed["amount"] == 5 and sum(claimed["coins"]) == 5
        assert s.merchant_balance("shop-1") == 13 - 5
        bal = run(capsys, "wallet", "balance", "--data", str(wallet))
        assert bal["balance"]["EUR"]["unspent"] == 20 - 13 + 5
        again = run(capsys, "wallet", "refund-claim", "--data", str(wallet), "--payment",
                    paid["payment_id"], "--tcti", swtpm.tcti)  # fmt: skip
        assert again["refund_ids"] == [] and s.merchant_balance("shop-1") == 8
        s.bank.ledger_check()

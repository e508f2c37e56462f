"""Issue 12 item 6: the wallet logs in once and reuses its bank session (CLI, real swtpm)."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.system import start_system

from ecash_tpm.cli import main
from ecash_tpm.device import TpmDevice
from ecash_tpm.wallet.session import SESSION_FILE, load_session, save_session

pytestmark = pytest.mark.swtpm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(out)
    assert code == 0 and result["ok"] is True, result
    return dict(result)


def _no_prompt(question: str, *, secret: bool = False) -> str:
    raise AssertionError(f"the wallet asked {question!r}: it should have reused its session")


def test_ten_withdrawals_one_totp(
    swtpm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten `wallet withdraw` runs: the TOTP code is given on the first only, the account is
    never locked, and a token the bank refuses makes the wallet log in again."""
    monkeypatch.delenv("ECASH_TPM_PASSWORD", raising=False)
    monkeypatch.setattr("ecash_tpm.cli.wallet_cmd.prompt", _no_prompt)
    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        wallet = tmp_path / "wallet"
        s.join(dev, wallet)
        dev.close()
        pw = tmp_path / "pw"
        pw.write_text(s.customer.password)
        first = ["--bank", s.bank_url, "--bank-name", "bank", "--root", str(s.root_path),
                 "--password-file", str(pw), "--totp", s.customer.totp()]  # fmt: skip
        for i in range(10):
            extra = first if i == 0 else []
            w = run(capsys, "wallet", "withdraw", "3", "--data", str(wallet), *extra)
            assert [d["amount"] for d in w["withdrawals"]] == [3]
        assert s.customer_balance() == 1000 - 30
        session_file = wallet / SESSION_FILE
        assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
        assert s.customer.password not in session_file.read_text()
        session = load_session(wallet)
        assert session is not None and session.account_id == s.customer.account_id

        # a token the bank does not know (say its token table was reset): 401
        # auth.invalid_token, and the wallet logs in once more with the code it is given
        save_session(wallet, replace(session, token="forgotten-by-the-bank"))
        code = s.customer.totp()
        w = run(capsys, "wallet", "withdraw", "2", "--data", str(wallet), "--totp", code,
                "--password-file", str(pw))  # fmt: skip
        assert [d["amount"] for d in w["withdrawals"]] == [2]
        renewed = load_session(wallet)
        assert renewed is not None and renewed.token != session.token
        assert s.customer_balance() == 1000 - 32

        # logout forgets it; the next run has to log in (and here is given nothing to do so)
        assert run(capsys, "wallet", "logout", "--data", str(wallet))["logged_out"] is True
        assert not session_file.exists()
        assert (
            run(capsys, "wallet", "balance", "--data", str(wallet))["balance"]["EUR"]["unspent"]
            == 32
        )


def test_join_then_withdraw_without_a_second_code(
    swtpm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`wallet join --bank` logs in for the join authorisation and keeps that session: the
    withdrawal right after it (same 30 s TOTP step) asks for nothing."""
    monkeypatch.delenv("ECASH_TPM_PASSWORD", raising=False)
    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        dev.close()  # the CLI opens the TPM itself
        wallet = tmp_path / "wallet"
        pw = tmp_path / "pw"
        pw.write_text(s.customer.password)
        joined = run(capsys, "wallet", "join", "--issuer", s.issuer_url, "--tcti", swtpm.tcti,
                     "--data-dir", str(wallet), "--account", s.customer.account_id,
                     "--bank", s.bank_url, "--bank-name", "bank", "--root", str(s.root_path),
                     "--password-file", str(pw), "--totp", s.customer.totp())  # fmt: skip
        assert joined["account_id"] == s.customer.account_id
        assert (wallet / SESSION_FILE).exists()
        monkeypatch.setattr("ecash_tpm.cli.wallet_cmd.prompt", _no_prompt)
        w = run(capsys, "wallet", "withdraw", "5", "--data-dir", str(wallet))
        assert [d["amount"] for d in w["withdrawals"]] == [5]
        assert s.customer_balance() == 1000 - 5

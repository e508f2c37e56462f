"""The wallet's stored bank session (docs/protocol.md, "Wallet sessions")."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from ecash_tpm.errors import AuthenticationError, EcashError
from ecash_tpm.wallet.session import (
    SESSION_FILE,
    SessionKeeper,
    delete_session,
    load_session,
)

URL = "https://127.0.0.1:8443"


class FakeBank:
    """Counts logins; hands out tokens valid for an hour of the test clock."""

    def __init__(self, clock: list[int], prefix: str = "t") -> None:
        self.prefix = prefix
        self.token: str | None = None
        self.clock = clock
        self.logins: list[tuple[str, str, str]] = []

    def login(self, account_id: str, password: str, totp: str) -> dict[str, Any]:
        self.logins.append((account_id, password, totp))
        return {"token": f"{self.prefix}{len(self.logins)}", "expires_at": self.clock[0] + 3600}


class InvalidToken(AuthenticationError):
    code = "auth.invalid_token"


def keeper(
    tmp_path: Path, bank: FakeBank, clock: list[int], account: str = "alice"
) -> SessionKeeper:
    asked: list[int] = []

    def credentials() -> tuple[str, str]:
        asked.append(1)
        return "secret password", f"{100000 + len(asked)}"

    return SessionKeeper(
        tmp_path,
        bank,
        account_id=account,
        bank_url=URL,
        clock=lambda: clock[0],
        credentials=credentials,
    )


def test_one_login_then_the_stored_token_until_near_expiry(tmp_path: Path) -> None:
    clock = [1_000_000]
    bank = FakeBank(clock)
    keeper(tmp_path, bank, clock).ensure()
    path = tmp_path / SESSION_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "secret password" not in path.read_text()  # never the password
    for _ in range(5):  # later commands: no login
        fresh = FakeBank(clock)
        assert keeper(tmp_path, fresh, clock).ensure().token == "t1"
        assert fresh.logins == [] and fresh.token == "t1"
    clock[0] += 3600 - 60  # within the margin of its expiry: log in again
    again = FakeBank(clock)
    keeper(tmp_path, again, clock).ensure()
    assert len(again.logins) == 1


def test_another_account_or_bank_logs_in(tmp_path: Path) -> None:
    clock = [1_000_000]
    keeper(tmp_path, FakeBank(clock), clock).ensure()
    other = FakeBank(clock)
    keeper(tmp_path, other, clock, account="bob").ensure()
    assert [a for a, _, _ in other.logins] == ["bob"]
    stored = load_session(tmp_path)
    assert stored is not None and stored.account_id == "bob"


def test_a_refused_token_means_one_fresh_login_and_one_retry(tmp_path: Path) -> None:
    clock = [1_000_000]
    keeper(tmp_path, FakeBank(clock), clock).ensure()
    bank = FakeBank(clock, prefix="new")
    calls: list[str | None] = []

    def work() -> str:
        calls.append(bank.token)
        if bank.token == "t1":
            raise InvalidToken("unknown or expired token")
        return "done"

    assert keeper(tmp_path, bank, clock).run(work) == "done"
    assert calls == ["t1", "new1"] and len(bank.logins) == 1
    assert (s := load_session(tmp_path)) is not None and s.token == "new1"


def test_a_token_refused_right_after_login_is_not_retried_forever(tmp_path: Path) -> None:
    clock = [1_000_000]
    bank = FakeBank(clock)

    def work() -> None:
        raise InvalidToken("unknown or expired token")

    with pytest.raises(EcashError) as err:
        keeper(tmp_path, bank, clock).run(work)
    assert err.value.code == "auth.invalid_token" and len(bank.logins) == 1


def test_logout_and_a_damaged_file(tmp_path: Path) -> None:
    clock = [1_000_000]
    keeper(tmp_path, FakeBank(clock), clock).ensure()
    assert delete_session(tmp_path) is True and delete_session(tmp_path) is False
    (tmp_path / SESSION_FILE).write_text("{not json")
    assert load_session(tmp_path) is None
    bank = FakeBank(clock)
    keeper(tmp_path, bank, clock).ensure()
    assert len(bank.logins) == 1

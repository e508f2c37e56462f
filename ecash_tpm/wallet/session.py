"""The wallet's bank session: log in once (password + TOTP), reuse the token until it expires.

docs/protocol.md, "Login" and "Wallet sessions": the bank answers a login with a bearer token
and its expiry. A TOTP code is accepted once, so a wallet that logged in on every command made
its user wait for the next 30 s step (and a second run in the same step was refused as
``auth.totp_reused``). The wallet therefore keeps ``{token, expires_at, account_id, bank_url}``
in ``<data>/bank-session.json`` (mode 0600, written atomically; never the password) and reuses
it until ``expires_at - margin``; a token the bank no longer accepts (401 ``auth.invalid_token``,
e.g. the bank restarted its token table) is dropped and the wallet logs in again.
``wallet logout`` deletes the file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.errors import EcashError

__all__ = [
    "SESSION_FILE",
    "SESSION_MARGIN_S",
    "BankSession",
    "SessionBank",
    "SessionKeeper",
    "delete_session",
    "is_invalid_token",
    "load_session",
    "save_session",
]

SESSION_FILE = "bank-session.json"
#: A token this close to its expiry is not reused (a withdrawal must not expire half-way).
SESSION_MARGIN_S = 60
INVALID_TOKEN = "auth.invalid_token"  # noqa: S105 (an error code)

T = TypeVar("T")


class SessionBank(Protocol):
    """What the session needs of the bank client: its token and a login."""

    token: str | None

    def login(self, account_id: str, password: str, totp: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class BankSession:
    """One login's bearer token, for one account at one bank."""

    token: str
    expires_at: int
    account_id: str
    bank_url: str

    def usable(self, *, now: int, account_id: str, bank_url: str, margin_s: int) -> bool:
        """Same account and bank, and not within ``margin_s`` of its expiry."""
        return (
            self.account_id == account_id
            and self.bank_url == bank_url
            and now < self.expires_at - margin_s
        )


def load_session(data: Path) -> BankSession | None:
    """The stored session, or None (missing or unreadable: the wallet simply logs in)."""
    try:
        raw = json.loads((data / SESSION_FILE).read_text(encoding="utf-8"))
        return BankSession(
            token=str(raw["token"]),
            expires_at=int(raw["expires_at"]),
            account_id=str(raw["account_id"]),
            bank_url=str(raw["bank_url"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_session(data: Path, session: BankSession) -> None:
    """Write the session atomically with mode 0600 (it is a bearer secret)."""
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = json.dumps(asdict(session), indent=2, sort_keys=True) + "\n"
    write_file_atomic(data / SESSION_FILE, text.encode("utf-8"), mode=0o600)


def delete_session(data: Path) -> bool:
    """Forget the session (``wallet logout``); whether there was one."""
    try:
        (data / SESSION_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def is_invalid_token(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps, e.g. a pending withdrawal) is a 401 token refusal."""
    if not isinstance(exc, EcashError):
        return False
    return exc.code == INVALID_TOKEN or exc.detail.get("cause") == INVALID_TOKEN


class SessionKeeper:
    """Gives ``bank`` a usable token for ``account_id``: the stored one, else a fresh login.

    ``credentials`` is asked only when a login is needed (so the password and TOTP are
    prompted for once per session, not once per command).
    """

    def __init__(
        self,
        data: Path,
        bank: SessionBank,
        *,
        account_id: str,
        bank_url: str,
        clock: Callable[[], int],
        credentials: Callable[[], tuple[str, str]],
        margin_s: int = SESSION_MARGIN_S,
        on_login: Callable[[], None] | None = None,
    ) -> None:
        self._on_login = on_login
        self._data = data
        self._bank = bank
        self._account_id = account_id
        self._bank_url = bank_url
        self._clock = clock
        self._credentials = credentials
        self._margin_s = margin_s
        self.logins = 0  # how many logins this keeper made (0: the stored session served)

    def ensure(self) -> BankSession:
        """The stored session if still usable, else log in and store the new one."""
        stored = load_session(self._data)
        if stored is not None and stored.usable(
            now=self._clock(),
            account_id=self._account_id,
            bank_url=self._bank_url,
            margin_s=self._margin_s,
        ):
            self._bank.token = stored.token
            return stored
        return self.login()

    def login(self) -> BankSession:
        """Password + TOTP now; the new token is stored (the password never is)."""
        with contextlib.suppress(OSError):
            delete_session(self._data)
        password, totp = self._credentials()
        if self._on_login is not None:
            self._on_login()
        answer = self._bank.login(self._account_id, password, totp)
        session = BankSession(
            token=str(answer["token"]),
            expires_at=int(answer["expires_at"]),
            account_id=self._account_id,
            bank_url=self._bank_url,
        )
        self._bank.token = session.token
        self.logins += 1
        save_session(self._data, session)
        return session

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` with a session; once more after a fresh login if the bank no longer
        accepts the stored token (``work`` must be safe to repeat: requests keep their ids)."""
        self.ensure()
        try:
            return work()
        except EcashError as exc:
            if not is_invalid_token(exc) or self.logins:
                raise
        self.login()
        return work()

"""Login abuse (issue 10, attack 9): atomic per-account lock-out claimed before scrypt, the
per-source throttle, replayed codes that are no failure, +-1 TOTP step of skew. The lock-out
runs on both backends (``db_url``): N parallel guesses must evaluate at most the threshold."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from support.bankworld import PASSWORD, TOTP_SECRET, BankWorld, make_world, test_policy
from support.coinmint import KeyPool, Pki

import ecash_tpm.bank.accounts as accounts_module
from ecash_tpm.bank import errors as E
from ecash_tpm.bank.throttle import SourceThrottle
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.storage import sqlite_url

THRESHOLD = 3  # bankworld's login_threshold
WINDOW_S = 600  # bankworld's login_window_s


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(2)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    yield p
    p.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "bank.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def world(db_url: str, tmp_path: Path, pki: Pki, keys: KeyPool) -> Iterator[BankWorld]:
    w = make_world(
        db_url=db_url,
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(login_source_limit=4, login_source_window_s=300),
    )
    yield w
    w.bank.ledger_check()
    w.db.close()


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = accounts_module._scrypt

    def counted(*args: Any) -> bytes:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(accounts_module, "_scrypt", counted)
    return calls


def _totp(at: int) -> str:
    return TOTP(TOTP_SECRET, 6, hashes.SHA1(), 30).generate(at).decode()  # noqa: S303


def _code(call: Any) -> str:
    try:
        call()
    except EcashError as exc:
        return exc.code
    return "ok"


def test_parallel_guesses_evaluate_at_most_the_threshold(
    world: BankWorld, scrypt_calls: list[int]
) -> None:
    world.customer("alice", 10)
    scrypt_calls.clear()  # opening the account hashed the password once
    barrier = threading.Barrier(24)

    def guess(i: int) -> str:
        barrier.wait(10)
        return _code(lambda: world.bank.login("alice", f"guess-{i}", "123456"))

    with ThreadPoolExecutor(max_workers=24) as pool:
        codes = list(pool.map(guess, range(24)))
    assert codes.count("auth.invalid_credentials") == THRESHOLD
    assert codes.count("auth.locked") == 24 - THRESHOLD
    assert len(scrypt_calls) == THRESHOLD
    assert len(world.bank.login_blacklist.failures("login:alice")) == THRESHOLD
    with pytest.raises(E.LoginLockedError) as err:
        world.bank.login("alice", PASSWORD, _totp(world.clock()))
    assert err.value.http_status == 429 and err.value.detail["retry_after"] > 0
    world.clock.advance(WINDOW_S)
    world.bank.login("alice", PASSWORD, _totp(world.clock()))


def test_unknown_account_locks_like_a_known_one(world: BankWorld) -> None:
    codes = [_code(lambda: world.bank.login("nobody", "guess-guess", "123456")) for _ in range(5)]
    assert codes == ["auth.invalid_credentials"] * THRESHOLD + ["auth.locked"] * 2


def test_success_clears_earlier_failures(world: BankWorld) -> None:
    world.customer("alice", 10)
    for _ in range(THRESHOLD - 1):
        assert _code(lambda: world.bank.login("alice", "typo-typo", "123456")) == (
            "auth.invalid_credentials"
        )
    world.bank.login("alice", PASSWORD, _totp(world.clock()))
    for _ in range(THRESHOLD - 1):  # counting starts again
        assert _code(lambda: world.bank.login("alice", "typo-typo", "123456")) == (
            "auth.invalid_credentials"
        )


def test_replayed_code_is_not_a_failure_and_skew_is_one_step(world: BankWorld) -> None:
    world.customer("alice", 10)
    now = world.clock()
    step = now // 30
    world.bank.login("alice", PASSWORD, _totp((step - 1) * 30))  # one step behind
    for _ in range(THRESHOLD + 2):  # replays: refused, never counted, never locked
        with pytest.raises(E.TotpReusedError) as err:
            world.bank.login("alice", PASSWORD, _totp((step - 1) * 30))
        assert err.value.code == "auth.totp_reused" and err.value.http_status == 401
    assert world.bank.login_blacklist.failures("login:alice") == []
    world.bank.login("alice", PASSWORD, _totp((step + 1) * 30))  # one step ahead
    with pytest.raises(E.TotpReusedError) as err:  # the current step is now behind the used one
        world.bank.login("alice", PASSWORD, _totp(now))
    assert err.value.detail["retry_after"] > 0
    world.clock.advance(60)
    with pytest.raises(E.InvalidCredentialsError):  # two steps off: not a valid code
        world.bank.login("alice", PASSWORD, _totp(world.clock() - 60))


def test_source_throttle_refuses_before_scrypt(world: BankWorld, scrypt_calls: list[int]) -> None:
    world.customer("alice", 10)
    scrypt_calls.clear()
    codes = [
        _code(lambda i=i: world.bank.login(f"who-{i}", "guess-guess", "1", source="10.0.0.9"))
        for i in range(6)
    ]
    assert codes == ["auth.invalid_credentials"] * 4 + ["auth.throttled"] * 2
    assert len(scrypt_calls) == 4
    with pytest.raises(E.LoginThrottledError) as err:
        world.bank.login("alice", PASSWORD, _totp(world.clock()), source="10.0.0.9")
    assert err.value.http_status == 429 and 0 < err.value.detail["retry_after"] <= 300
    # another source is not affected; successes give their slot back
    for _ in range(6):
        world.clock.advance(30)
        world.bank.login("alice", PASSWORD, _totp(world.clock()), source="10.0.0.10")
    world.clock.advance(300)
    world.bank.login("alice", PASSWORD, _totp(world.clock()), source="10.0.0.9")


def test_source_throttle_table_is_bounded() -> None:
    now = [0]
    throttle = SourceThrottle(limit=1, window_s=10, clock=lambda: now[0], max_sources=2)
    assert throttle.acquire("a") is None and throttle.acquire("a") == 10
    throttle.release("a")
    assert throttle.acquire("a") is None
    assert throttle.acquire("b") is None and throttle.acquire("c") is None  # "a" evicted
    assert throttle.acquire("a") is None
    now[0] = 10
    assert throttle.acquire("b") is None  # its window ended
    with pytest.raises(InputError):
        SourceThrottle(limit=0, window_s=1, clock=lambda: 0)

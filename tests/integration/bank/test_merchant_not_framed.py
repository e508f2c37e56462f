"""Issue 10, attack 4, at the bank: only failures the merchant could have detected itself count
towards its blacklist (docs/protocol.md §7.2, §11), and a reservation answers the bank's full
verdict on the coins (§10)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bankworld import BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Pki, TestIssuer

from ecash_tpm.bank import errors as E
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import SpendProofError
from ecash_tpm.protocol.errors import MalformedCoinError
from ecash_tpm.protocol.payments import RESERVE_CHECKS
from ecash_tpm.storage import sqlite_url


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(4)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


@pytest.fixture
def world(tmp_path: Path, pki: Pki, keys: KeyPool) -> Iterator[BankWorld]:
    """Blacklist threshold 3 within 600 s; the ledger and the blacklist audited afterwards."""
    w = make_world(
        db_url=sqlite_url(tmp_path / "bank.db"),
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(),
    )
    yield w
    w.bank.ledger_check()
    assert w.bank.merchant_blacklist.audit() == []
    w.db.close()


def test_counted_failures_are_only_those_the_merchant_can_detect() -> None:
    assert set(E.COUNTED_FAILURES) == {
        E.BAD_COIN_SIGNATURE,
        E.UNKNOWN_KEYSET,
        E.WrongKeyError.code,
        E.BAD_PROOF,
        MalformedCoinError.code,
    }
    assert E.BadCredentialError.code not in E.COUNTED_FAILURES


def test_forged_credentials_never_blacklist_the_merchant(world: BankWorld) -> None:
    """Twice the threshold of forged-credential payments, at reserve and at deposit, from a
    customer whose credential is from another issuer key or an unknown epoch: every one is
    refused with ``bank.bad_credential``, none is counted, honest business goes on."""
    world.customer("mallory", 100)
    forgers = [
        TestIssuer().enroll("mallory"),  # (R, S, T, W) under another (x, y)
        TestIssuer(epochs=(7,)).enroll("mallory", epoch=7),  # an epoch the bank never had
    ]
    threshold = world.bank.merchant_blacklist.threshold
    for i in range(threshold * 2):
        forger = forgers[i % 2]
        coins = world.withdraw(forger, 1)
        request = world.request("shop-a", 1)
        spends = world.spends(forger, coins, request)
        with refused(E.BadCredentialError, "bank.bad_credential"):
            if i % 3 == 0:
                world.deposit("shop-a", request, spends)
            else:
                world.reserve("shop-a", request, spends)
        assert world.bank.coin_status(coins[0].sigma).state == "unspent"  # not locked either
    assert world.bank.merchant_blacklist.failures("merchant:shop-a") == []
    assert world.bank.blacklist_entries() == []
    alice = world.customer("alice", 100)
    receipt = world.pay(alice, "shop-a", 5)
    assert receipt["body"]["amount"] == 5


def test_failures_the_merchant_could_detect_still_count(world: BankWorld) -> None:
    """The rule still bites a merchant that skips its own checks (here: a proof for another
    request, which the merchant's local verify_spend refuses)."""
    alice = world.customer("alice", 100)
    coins = world.withdraw(alice, 1)
    other = world.request("shop-b", 1)
    spends = world.spends(alice, coins, other)
    for _ in range(world.bank.merchant_blacklist.threshold):
        request = world.request("shop-b", 1)
        with refused(SpendProofError, "bank.bad_proof"):
            world.reserve("shop-b", request, spends)
    (entry,) = world.bank.blacklist_entries()
    assert entry.subject == "merchant:shop-b"


def test_reservation_answers_the_full_verdict(world: BankWorld) -> None:
    alice = world.customer("alice", 100)
    coins = world.withdraw(alice, 3)
    request = world.request("shop-a", 3)
    held = world.reserve("shop-a", request, world.spends(alice, coins, request))
    assert held.verdict == "valid" and held.checks == RESERVE_CHECKS
    assert sorted(held.serials) == sorted(b64u_encode(c.sigma) for c in coins)
    answer = held.to_dict()
    assert answer["verdict"] == "valid" and answer["checks"] == list(RESERVE_CHECKS)

"""Issue 13 item 2 at the bank: the credentials of all coins of a deposit are checked in one
random-weight batch (docs/protocol.md §7.2 "Batch verification"); when the batch fails, the
per-coin checks name the first bad coin with the same code and detail as before."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bankworld import BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Pki, TestIssuer

from ecash_tpm.bank import errors as E
from ecash_tpm.bank import verify as bank_verify
from ecash_tpm.crypto.bn256 import G
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import SpendProofError
from ecash_tpm.protocol import spend as protocol_spend
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.storage import sqlite_url


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(4)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    yield p
    p.close()


@pytest.fixture
def world(tmp_path: Path, pki: Pki, keys: KeyPool) -> Iterator[BankWorld]:
    w = make_world(
        db_url=sqlite_url(tmp_path / "bank.db"),
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(),
    )
    yield w
    w.bank.ledger_check()
    w.db.close()


def _ones(world: BankWorld, member: object, count: int) -> list[Coin]:
    return [world.withdraw(member, 1)[0] for _ in range(count)]  # type: ignore[arg-type]


def test_valid_batch_skips_the_per_coin_checks(
    world: BankWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = world.customer("alice", 100)
    coins = _ones(world, alice, 4)
    request = world.request("shop-a", 4)
    spends = world.spends(alice, coins, request)

    def per_coin(*_: object) -> None:
        raise AssertionError("the batch passed: no per-coin check expected")

    monkeypatch.setattr(bank_verify, "verify_credential", per_coin)
    monkeypatch.setattr(protocol_spend, "verify_spend_proof", per_coin)  # proofs batched too
    receipt = world.deposit("shop-a", request, spends)
    assert receipt["body"]["amount"] == 4


def test_forged_credential_in_a_batch_is_named_by_index(world: BankWorld) -> None:
    """Coin 1 of 3 is under another issuer key: refused with ``bank.bad_credential`` naming
    index 1 and its serial, exactly as the per-coin check reports it."""
    alice = world.customer("alice", 100)
    world.customer("mallory", 100)
    forger = TestIssuer().enroll("mallory")
    good = _ones(world, alice, 2)
    (bad,) = world.withdraw(forger, 1)
    request = world.request("shop-a", 3)
    spends = (
        world.spends(alice, [good[0]], request)
        + world.spends(forger, [bad], request)
        + world.spends(alice, [good[1]], request)
    )
    with refused(E.BadCredentialError, "bank.bad_credential") as info:
        world.deposit("shop-a", request, spends)
    assert info.value.detail == {"index": 1, "serial": b64u_encode(bad.sigma), "check": "S"}
    for coin in (*good, bad):
        assert world.bank.coin_status(coin.sigma).state == "unspent"


def test_bad_proof_after_a_valid_credential_batch_is_named_by_index(world: BankWorld) -> None:
    alice = world.customer("alice", 100)
    coins = _ones(world, alice, 3)
    request = world.request("shop-a", 3)
    other = world.request("shop-a", 3)
    spends = world.spends(alice, coins[:2], request) + world.spends(alice, coins[2:], other)
    with refused(SpendProofError, "bank.bad_proof") as info:
        world.deposit("shop-a", request, spends)
    assert info.value.detail["index"] == 2
    assert info.value.detail["serial"] == b64u_encode(coins[2].sigma)


def test_spend_proofs_batch_with_both_encodings(world: BankWorld) -> None:
    """Proofs with commitments are batched; a proof in the first encoding (no E, R1, R2) is
    still accepted (protocol §7.3: one release of overlap)."""
    alice = world.customer("alice", 100)
    coins = _ones(world, alice, 3)
    request = world.request("shop-a", 3)
    spends = world.spends(alice, coins, request)
    assert all(sp.proof.commitments is not None for sp in spends)
    old = dataclasses.replace(spends[1].proof, commitments=None)
    spends[1] = dataclasses.replace(spends[1], proof=old)
    receipt = world.deposit("shop-a", request, spends)
    assert receipt["body"]["amount"] == 3


def test_tampered_commitment_is_named_by_index(world: BankWorld) -> None:
    alice = world.customer("alice", 100)
    coins = _ones(world, alice, 3)
    request = world.request("shop-a", 3)
    spends = world.spends(alice, coins, request)
    proof = spends[1].proof
    assert proof.commitments is not None
    e, r1, r2 = proof.commitments
    spends[1] = dataclasses.replace(
        spends[1], proof=dataclasses.replace(proof, commitments=(e, r1 + G, r2))
    )
    with refused(SpendProofError, "bank.bad_proof") as info:
        world.deposit("shop-a", request, spends)
    assert info.value.detail["index"] == 1
    assert info.value.detail["check"] == "challenge"

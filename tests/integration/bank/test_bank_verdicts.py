"""The bank's signed verdicts (docs/protocol.md 10.1, issue 10 attacks 1, 2 and 5): coin status
(single and batch) signed with the bank's time, signed deposit refusals, deadline bounds, and the
deadline re-checked at booking time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bankworld import BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Pki

from ecash_tpm.bank import errors as E
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.errors import InputError
from ecash_tpm.protocol import evidence
from ecash_tpm.protocol.errors import (
    DifferentCoinsError,
    EvidenceCoinSignatureError,
    RequestExpiredError,
)
from ecash_tpm.protocol.status import CoinStatusStatement, DepositRefusal
from ecash_tpm.storage import sqlite_url
from ecash_tpm.wallet.pay import RECOVERY_GRACE_S


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
    w = make_world(
        db_url=sqlite_url(tmp_path / "bank.db"),
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(max_deadline_s=600),
    )
    yield w
    w.bank.ledger_check()
    w.db.close()


def status(world: BankWorld, pki: Pki, sigmas: list[bytes]) -> CoinStatusStatement:
    doc = world.bank.signed_status(sigmas)
    return CoinStatusStatement.from_signed(
        doc, world.bank.bank_cert_pem(), pki.root_pem, serials=sigmas, bank_name="bank"
    )


def test_signed_status_says_unspent_locked_spent_with_the_bank_time(
    world: BankWorld, pki: Pki
) -> None:
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 3)  # 2 + 1
    sigmas = [c.sigma for c in coins]
    st = status(world, pki, sigmas)
    assert st.bank_time == world.clock() and {c.state for c in st.coins} == {"unspent"}
    request = world.request("shop-a", 3)
    preq = canonical_digest(request["body"])
    spends = world.spends(member, coins, request)
    held = world.reserve("shop-a", request, spends)
    locked = status(world, pki, sigmas).by_serial()[sigmas[0]]
    assert (locked.state, locked.locked_until, locked.merchant_id, locked.preq) == (
        "locked",
        held.locked_until,
        "shop-a",
        preq,
    )
    world.clock.advance(5)
    receipt = world.deposit("shop-a", request, spends)
    spent = status(world, pki, sigmas).by_serial()[sigmas[1]]
    assert (spent.state, spent.deposit_id, spent.deposited_at, spent.preq) == (
        "spent",
        receipt["body"]["deposit_id"],
        world.clock(),
        preq,
    )


def test_signed_status_input(world: BankWorld) -> None:
    for bad in ([], [b"short"], [b"\x01" * 32, b"\x01" * 32], [b"\x02" * 32] * 257):
        with pytest.raises(InputError) as exc:
            world.bank.signed_status(bad)
        assert exc.value.code == "input.invalid"


def test_far_deadlines_are_refused_for_reservations_and_deposits(world: BankWorld) -> None:
    """Attack 5: a request whose deadline lies beyond max_deadline_s holds no coins."""
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 1)
    far = world.request("shop-a", 1, deadline_in=601)
    spends = world.spends(member, coins, far)
    with refused(E.DeadlineTooFarError, "bank.deadline_too_far") as exc:
        world.reserve("shop-a", far, spends)
    assert exc.value.http_status == 400 and exc.value.detail["max_deadline_s"] == 600
    with refused(E.DeadlineTooFarError, "bank.deadline_too_far"):
        world.deposit("shop-a", far, spends)
    assert world.bank.coin_status(coins[0].sigma).state == "unspent"
    assert world.bank.merchant_blacklist.failures("merchant:shop-a") == []
    ok = world.request("shop-a", 1, deadline_in=600)
    world.deposit("shop-a", ok, world.spends(member, coins, ok))


def test_double_spend_refusal_is_bank_signed(world: BankWorld, pki: Pki) -> None:
    """Attack 1: the refusal the merchant relays carries the bank's signed word."""
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 3)
    first = world.request("shop-a", 3)
    world.deposit("shop-a", first, world.spends(member, coins, first))
    second = world.request("shop-b", 3)
    spends = world.spends(member, coins, second)
    with refused(E.DoubleSpendError, "bank.double_spend") as exc:
        world.deposit("shop-b", second, spends)
    detail = exc.value.detail
    refusal = DepositRefusal.from_signed(
        detail["refusal"],
        detail["cert"],
        pki.root_pem,
        preq=canonical_digest(second["body"]),
        serials=[c.sigma for c in coins],
        bank_name="bank",
    )
    assert refusal.code == "bank.double_spend" and refusal.merchant_id == "shop-b"
    assert refusal.detail["serial"] == detail["serial"] and refusal.bank_time == world.clock()
    with refused(E.DoubleSpendError, "bank.double_spend") as again:  # a reservation too
        world.reserve("shop-b", second, spends)
    assert again.value.detail["refusal"]["kind"] == "deposit-refusal"


def test_deadline_is_checked_again_when_the_deposit_is_booked(world: BankWorld, pki: Pki) -> None:
    """10.1: a deposit verified before the deadline but booked after it is refused, so a
    signed "unspent" after the deadline stays true."""
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 1)
    request = world.request("shop-a", 1, deadline_in=10)
    spends = world.spends(member, coins, request)
    clock = world.bank.deposits._clock
    ticks = iter([world.clock(), world.clock() + 11])  # verification, then booking
    world.bank.deposits._clock = lambda: next(ticks)
    try:
        with refused(RequestExpiredError, "bank.request_expired"):
            world.deposit("shop-a", request, spends)
    finally:
        world.bank.deposits._clock = clock
    st = status(world, pki, [coins[0].sigma])
    assert st.coins[0].state == "unspent"
    assert b64u_encode(coins[0].sigma) == st.coins[0].to_dict()["sigma"]


def test_reported_transcripts_carry_the_keyset_for_the_blind_signature_check(
    world: BankWorld, pki: Pki
) -> None:
    """12.1: the bank's double-spend transcripts carry the coin's signed keyset descriptor;
    the supervision check passes for the real coin and refuses a coin whose blind signature
    does not verify (evidence.bad_coin_signature)."""
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 2)
    req_a, req_b = world.request("shop-a", 2), world.request("shop-b", 2)
    world.deposit("shop-a", req_a, world.spends(member, coins, req_a))
    with refused(E.DoubleSpendError, "bank.double_spend"):
        world.deposit("shop-b", req_b, world.spends(member, coins, req_b))
    first, second = world.reporter.reports[0]
    bodies = evidence.transcript_bodies([first, second], bank_cert=pki.bank.cert)
    assert all(b["keyset"]["kind"] == "bank-keyset" for b in bodies)
    parsed = [evidence.parse_transcript(b) for b in bodies]
    assert evidence.check_double_spend(parsed[0], parsed[1], world.issuer.hop) == coins[0].sigma
    evidence.check_coin_signatures(parsed, pki.bank.cert)
    body = dict(bodies[1])
    coin = dict(body["spend"]["coin"])
    coin["signature"] = b64u_encode(b"\x01" * len(b64u_decode(coin["signature"])))
    body["spend"] = {**body["spend"], "coin": coin}
    forged = evidence.parse_transcript(body)
    with pytest.raises(EvidenceCoinSignatureError) as exc:
        evidence.check_coin_signatures([parsed[0], forged], pki.bank.cert)
    assert exc.value.code == "evidence.bad_coin_signature"
    with pytest.raises(DifferentCoinsError):  # and it is not the same coin any more
        evidence.check_double_spend(parsed[0], forged, world.issuer.hop)


def test_a_lock_on_other_coins_of_the_request_does_not_let_late_coins_in(
    tmp_path: Path, pki: Pki, keys: KeyPool
) -> None:
    """§10: the late path needs a live lock on EVERY deposited coin. A merchant that sent one
    signed request to two customers and reserved only Bob's coins before the deadline must not
    deposit Alice's spends after it: her wallet released them on the bank's signed "unspent"
    past deadline + grace, and her next honest payment would look like a double spend."""
    world = make_world(
        db_url=sqlite_url(tmp_path / "late.db"),
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(max_deadline_s=600, lock_period_s=300),
    )
    alice, bob = world.customer("alice", 100), world.customer("bob", 100)
    a_coins, b_coins = world.withdraw(alice, 3), world.withdraw(bob, 3)
    req = world.request("shop-a", 3, deadline_in=300)  # the same request for both customers
    a_spends, b_spends = world.spends(alice, a_coins, req), world.spends(bob, b_coins, req)
    world.clock.advance(299)
    world.reserve("shop-a", req, b_spends)  # Bob's coins only, just before the deadline
    world.clock.advance(RECOVERY_GRACE_S + 2)
    serials = [c.sigma for c in a_coins]
    seen = status(world, pki, serials)
    assert {c.state for c in seen.coins} == {"unspent"}
    assert seen.bank_time > req["body"]["deadline"] + RECOVERY_GRACE_S  # Alice releases them
    with refused(RequestExpiredError, "bank.request_expired"):
        world.deposit("shop-a", req, a_spends)
    world.deposit("shop-a", req, b_spends)  # Bob's reserved coins still go in
    req2 = world.request("shop-b", 3)
    world.deposit("shop-b", req2, world.spends(alice, a_coins, req2))  # no double spend
    world.bank.ledger_check()
    world.db.close()

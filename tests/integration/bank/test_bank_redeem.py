"""Redeem to an account (issue 12 item 5, docs/protocol.md 9.4) at the bank's domain: the credit,
idempotent retries, single-use requests bound to the account, the deadline, and double spends
between a redeem and a payment reported with evidence that verifies and opens."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Member, Pki, make_spend

from ecash_tpm.bank import errors as E
from ecash_tpm.bank.redeem import MAX_OPEN_REQUESTS, REDEEM_TTL_S
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol import evidence
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.protocol.redeem import (
    REDEEM_REQUEST_KIND,
    REDEEM_SPENDER,
    RedeemRequest,
    verify_redeem_receipt,
)
from ecash_tpm.protocol.status import CoinStatusStatement
from ecash_tpm.storage import sqlite_url


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(4)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    yield p
    p.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, pki: Pki, keys: KeyPool
) -> Iterator[BankWorld]:
    url = (
        sqlite_url(tmp_path / "bank.db")
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    w = make_world(
        db_url=url,
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(),
    )
    yield w
    w.bank.ledger_check()
    w.db.close()


def _wire(w: BankWorld, member: Member, coins: list[Coin], doc: dict[str, Any]) -> dict[str, Any]:
    req = RedeemRequest.from_body(doc["body"])
    spends = [make_spend(member, c, req.preq, w.issuer.hop).to_dict() for c in coins]
    return {"request": doc, "spends": spends}


def _balance(w: BankWorld, account: str) -> int:
    return w.bank.account(account).balance


def test_redeem_credits_the_account_once_and_spends_the_coins(world: BankWorld, pki: Pki) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 10)
    assert _balance(w, "alice") == 90
    doc = w.bank.redeem_request("alice", 10)["request"]
    wire = _wire(w, alice, coins, doc)
    answer = w.bank.redeem("alice", wire)
    req = RedeemRequest.from_body(doc["body"])
    receipt = verify_redeem_receipt(
        answer["receipt"],
        answer["cert"],
        pki.root_pem,
        request=req,
        serials=[c.sigma for c in coins],
        now=w.clock(),
    )
    assert (receipt.account_id, receipt.amount) == ("alice", 10)
    assert _balance(w, "alice") == 100
    assert w.bank.redeem("alice", wire) == answer  # a retry after a lost answer: same receipt
    assert _balance(w, "alice") == 100
    assert w.bank.coin_status(coins[0].sigma).state == "spent"
    status = CoinStatusStatement.from_signed(
        w.bank.signed_status([coins[0].sigma]),
        pki.bank.cert_pem,
        pki.root_pem,
        serials=[coins[0].sigma],
        now=w.clock(),
    )
    (state,) = status.coins
    assert (state.state, state.merchant_id, state.deposit_id) == (
        "spent",
        REDEEM_SPENDER,
        req.request_id,
    )
    report = w.bank.ledger_check()
    assert report["customers_total"] == 100 and report["outstanding_total"] == 0


def test_a_redeem_request_is_single_use(world: BankWorld) -> None:
    w = world
    alice = w.customer("alice", 100)
    first, second = w.withdraw(alice, 5), w.withdraw(alice, 5)
    doc = w.bank.redeem_request("alice", 5)["request"]
    w.bank.redeem("alice", _wire(w, alice, first, doc))
    with refused(E.ConflictError, "bank.redeem_used"):
        w.bank.redeem("alice", _wire(w, alice, second, doc))
    assert _balance(w, "alice") == 95
    assert w.bank.coin_status(second[0].sigma).state == "unspent"


def test_another_account_cannot_use_the_request_nor_the_coins(world: BankWorld) -> None:
    """The attacker (bob, logged in) replays alice's request, then alice's spends under his own
    request: refused both times; alice's money and coins are untouched and still redeemable."""
    w = world
    alice = w.customer("alice", 100)
    w.customer("bob", 100)
    coins = w.withdraw(alice, 10)
    doc = w.bank.redeem_request("alice", 10)["request"]
    wire = _wire(w, alice, coins, doc)
    with refused(E.ForbiddenError, "bank.redeem_wrong_account"):
        w.bank.redeem("bob", wire)
    bob_doc = w.bank.redeem_request("bob", 10)["request"]
    with refused(EcashError, "bank.bad_proof"):  # the proofs sign alice's request only
        w.bank.redeem("bob", {"request": bob_doc, "spends": wire["spends"]})
    assert (_balance(w, "alice"), _balance(w, "bob")) == (90, 100)
    assert w.bank.coin_status(coins[0].sigma).state == "unspent"
    w.bank.redeem("alice", wire)
    assert (_balance(w, "alice"), _balance(w, "bob")) == (100, 100)
    assert w.reporter.reports == []


def test_expired_unknown_and_forged_requests_are_refused(world: BankWorld, pki: Pki) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 5)
    doc = w.bank.redeem_request("alice", 5)["request"]
    body = RedeemRequest.from_body(doc["body"])
    forged = sign_object(PartyKey.generate(), REDEEM_REQUEST_KIND, doc["body"], signer="x")
    with refused(EcashError, "redeem.request_invalid"):
        w.bank.redeem("alice", _wire(w, alice, coins, forged))
    unknown = sign_object(
        pki.bank.key,
        REDEEM_REQUEST_KIND,
        {**doc["body"], "request_id": "rdm-never-issued"},
        signer="bank",
    )
    with refused(E.NotFoundError, "bank.redeem_unknown"):
        w.bank.redeem("alice", _wire(w, alice, coins, unknown))
    w.clock.advance(body.deadline - w.clock() + 1)
    with refused(EcashError, "bank.redeem_expired") as info:
        w.bank.redeem("alice", _wire(w, alice, coins, doc))
    assert info.value.http_status == 400
    assert REDEEM_TTL_S <= 600 and _balance(w, "alice") == 95
    with refused(EcashError, "input.invalid"):
        w.bank.redeem_request("alice", 0)


def _evidence_opens(w: BankWorld, pki: Pki, member: Member, reports: list[Any]) -> None:
    """12.1: both transcripts bank-signed, a double spend, the requests signed as their kind
    requires, and both open to the member."""
    first, second = reports[0]
    bodies = evidence.transcript_bodies([first, second], bank_cert=pki.bank.cert)
    parsed = [evidence.parse_transcript(b) for b in bodies]
    evidence.check_double_spend(parsed[0], parsed[1], w.issuer.hop)
    evidence.check_coin_signatures(parsed, pki.bank.cert)
    evidence.check_request_signatures(parsed, pki.bank.cert)
    t0s = {w.issuer.open_t0(b["spend"]["proof"]) for b in bodies}
    assert t0s == {member.t0}


def test_paid_then_redeemed_is_a_double_spend_with_evidence(world: BankWorld, pki: Pki) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 5)
    req = w.request("shop-a", 5)
    w.deposit("shop-a", req, w.spends(alice, coins, req))
    doc = w.bank.redeem_request("alice", 5)["request"]
    with refused(E.DoubleSpendError, "bank.double_spend") as info:
        w.bank.redeem("alice", _wire(w, alice, coins, doc))
    assert info.value.detail["refusal"]["kind"] == "deposit-refusal"
    assert _balance(w, "alice") == 95
    assert len(w.reporter.reports) == 1
    first, second = w.reporter.reports[0]
    assert second["body"]["merchant_id"] == REDEEM_SPENDER
    assert second["body"]["request"]["kind"] == REDEEM_REQUEST_KIND
    _evidence_opens(w, pki, alice, w.reporter.reports)


def test_redeemed_then_paid_is_a_double_spend_with_evidence(world: BankWorld, pki: Pki) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 5)
    doc = w.bank.redeem_request("alice", 5)["request"]
    w.bank.redeem("alice", _wire(w, alice, coins, doc))
    req = w.request("shop-a", 5)
    with refused(E.DoubleSpendError, "bank.double_spend") as info:
        w.deposit("shop-a", req, w.spends(alice, coins, req))
    assert info.value.detail["redeem_request_id"] == doc["body"]["request_id"]
    assert "refusal" in info.value.detail
    with refused(E.DoubleSpendError, "bank.double_spend"):  # a reservation too
        w.reserve("shop-a", req, w.spends(alice, coins, req))
    assert len(w.reporter.reports) == 1  # one report per (serial, second request)
    first, _ = w.reporter.reports[0]
    assert first["body"]["merchant_id"] == REDEEM_SPENDER
    assert first["body"]["transcript_id"] == "redeem:" + doc["body"]["request_id"]
    _evidence_opens(w, pki, alice, w.reporter.reports)
    # a redeem request the bank did not sign cannot stand in for the first spend (12.1)
    bodies = evidence.transcript_bodies(list(w.reporter.reports[0]), bank_cert=pki.bank.cert)
    forged = dict(bodies[0])
    forged["request"] = sign_object(
        PartyKey.generate(), REDEEM_REQUEST_KIND, doc["body"], signer="x"
    )
    with refused(EcashError, "evidence.invalid"):
        evidence.check_request_signatures([evidence.parse_transcript(forged)], pki.bank.cert)
    assert w.bank.retry_double_spend_reports() == {"sent": 0, "failed": 0}
    assert _balance(w, "alice") == 100


def test_redeemed_twice_under_two_requests_is_reported(world: BankWorld, pki: Pki) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 2)
    one = w.bank.redeem_request("alice", 2)["request"]
    two = w.bank.redeem_request("alice", 2)["request"]
    w.bank.redeem("alice", _wire(w, alice, coins, one))
    with refused(E.DoubleSpendError, "bank.double_spend"):
        w.bank.redeem("alice", _wire(w, alice, coins, two))
    assert len(w.reporter.reports) == 1
    _evidence_opens(w, pki, alice, w.reporter.reports)
    assert _balance(w, "alice") == 100


def _race(**work: Callable[[], Any]) -> dict[str, Any]:
    """Run each callable in its own thread, released together; name -> answer or error."""
    start = threading.Barrier(len(work))
    answers: dict[str, Any] = {}

    def run(name: str, fn: Callable[[], Any]) -> None:
        start.wait(timeout=30)
        try:
            answers[name] = fn()
        except Exception as exc:  # noqa: BLE001 - the loser's refusal is the point
            answers[name] = exc

    threads = [threading.Thread(target=run, args=item) for item in work.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def test_a_deposit_and_a_redeem_of_one_coin_racing_book_one(world: BankWorld) -> None:
    """Both take the serial locks first (READ COMMITTED on PostgreSQL), so a payment and a redeem
    of one coin never both commit: the later sees the other's row and is a double spend."""
    w = world
    carol = w.customer("carol", 100)
    for _ in range(3):
        coins = w.withdraw(carol, 5)
        req = w.request("shop-a", 5)
        deposit_spends = w.spends(carol, coins, req)
        wire = _wire(w, carol, coins, w.bank.redeem_request("carol", 5)["request"])
        answers = _race(
            deposit=partial(w.deposit, "shop-a", req, deposit_spends),
            redeem=partial(w.bank.redeem, "carol", wire),
        )
        refused_ = [n for n, a in answers.items() if isinstance(a, Exception)]
        assert len(answers) == 2 and len(refused_) == 1, answers
        assert isinstance(answers[refused_[0]], E.DoubleSpendError), answers
        with w.db.read() as tx:
            spent = tx.fetchval(
                "SELECT COUNT(*) AS n FROM spent_coin WHERE sigma = :s", {"s": coins[0].sigma}
            )
            redeemed = tx.fetchval(
                "SELECT COUNT(*) AS n FROM redeem_input WHERE sigma = :s", {"s": coins[0].sigma}
            )
        assert int(spent) + int(redeemed) == 1
    w.bank.ledger_check()


def test_coins_past_their_deposit_window_are_refused_as_for_a_deposit(world: BankWorld) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 5)
    until = max(w.bank.keysets.get(c.keyset_id).deposit_until for c in coins)
    w.clock.advance(until - w.clock() + 1)
    doc = w.bank.redeem_request("alice", 5)["request"]
    with refused(EcashError, "bank.keyset_expired"):
        w.bank.redeem("alice", _wire(w, alice, coins, doc))
    assert _balance(w, "alice") == 95


def test_an_account_holds_a_bounded_number_of_unused_requests(world: BankWorld) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 1)
    docs = [w.bank.redeem_request("alice", 1)["request"] for _ in range(MAX_OPEN_REQUESTS)]
    with refused(EcashError, "bank.redeem_too_many") as info:
        w.bank.redeem_request("alice", 1)
    assert info.value.http_status == 429 and info.value.detail["retry_after"] > 0
    w.customer("bob", 100)
    w.bank.redeem_request("bob", 1)  # per account: bob is not held up by alice
    w.bank.redeem("alice", _wire(w, alice, coins, docs[0]))  # a used request frees a slot
    w.bank.redeem_request("alice", 1)
    w.clock.advance(REDEEM_TTL_S + 1)  # and expired ones free theirs
    for _ in range(MAX_OPEN_REQUESTS):
        w.bank.redeem_request("alice", 1)
